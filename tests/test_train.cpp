// The training program's loop: a run stopped and resumed from its checkpoint computes exactly what
// the uninterrupted run computes (losses, held-out losses and final weights, bit for bit), dropout
// included; and a checkpoint refuses a changed text file.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "trainer.h"

namespace {

namespace fs = std::filesystem;
using st_train::TrainConfig;
using st_train::Trainer;

TrainConfig tiny(const fs::path& out) {
  TrainConfig c;
  c.data = ST_SOURCE_CORPUS;
  c.out_dir = out.string();
  c.context = 16;
  c.layers = 1;
  c.d_model = 16;
  c.heads = 2;
  c.dropout = 0.1;
  c.batch = 4;
  c.steps = 12;
  c.warmup = 2;
  c.eval_every = 4;
  c.eval_batches = 2;
  c.checkpoint_every = 100;
  return c;
}

class Train : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("st_train_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path dir;
};

std::vector<std::vector<float>> weights(Trainer& t) {
  std::vector<std::vector<float>> out;
  for (const st::Tensor& p : t.model().parameters()) out.push_back(p.to_vector<float>());
  return out;
}

TEST_F(Train, ResumedRunEqualsUninterruptedRun) {
  const std::atomic<bool> never{false};
  Trainer full(tiny(dir / "full"));
  ASSERT_TRUE(full.train(never, {}));
  EXPECT_EQ(full.step(), 12);
  EXPECT_EQ(full.history().train.size(), 12u);
  EXPECT_EQ(full.history().eval_step, (std::vector<int64_t>{0, 4, 8, 12}));

  std::atomic<bool> stop{false};
  Trainer first(tiny(dir / "split"));
  const bool finished = first.train(stop, [&](const st_train::StepReport& r) {
    if (r.step == 5) stop.store(true);
  });
  EXPECT_FALSE(finished);
  EXPECT_EQ(first.step(), 5);
  const fs::path checkpoint = dir / "split" / "checkpoint.safetensors";
  ASSERT_TRUE(fs::exists(checkpoint));

  // A fresh process would start from a different random stream position; make it so here.
  st::manual_seed(999);
  Trainer resumed(tiny(dir / "split"), checkpoint.string());
  EXPECT_EQ(resumed.step(), 5);
  ASSERT_TRUE(resumed.train(never, {}));
  EXPECT_EQ(resumed.history().train, full.history().train);
  EXPECT_EQ(resumed.history().eval, full.history().eval);
  EXPECT_EQ(resumed.history().eval_step, full.history().eval_step);
  EXPECT_EQ(weights(resumed), weights(full));
}

TEST_F(Train, CheckpointRejectsAChangedTextOrAForeignFile) {
  const std::atomic<bool> never{false};
  fs::create_directories(dir);
  fs::copy_file(ST_SOURCE_CORPUS, dir / "corpus.txt");
  TrainConfig c = tiny(dir / "run");
  c.data = (dir / "corpus.txt").string();
  c.steps = 2;
  c.warmup = 1;
  Trainer(c).train(never, {});
  const std::string checkpoint = (dir / "run" / "checkpoint.safetensors").string();
  EXPECT_NO_THROW(Trainer(c, checkpoint));
  std::ofstream(dir / "corpus.txt", std::ios::app) << "~";  // a character the corpus lacks
  EXPECT_THROW(Trainer(c, checkpoint), st::ValueError);
  std::ofstream(dir / "not_a_checkpoint") << "hello";
  EXPECT_THROW(Trainer(c, (dir / "not_a_checkpoint").string()), st::Error);
}

TEST_F(Train, SamplesAndPlots) {
  const std::atomic<bool> never{false};
  TrainConfig c = tiny(dir / "run");
  c.steps = 3;
  c.warmup = 1;
  Trainer run(c);
  run.train(never, {});
  const std::string text = run.sample("ACT", 40, 0.8);
  EXPECT_EQ(text.size(), 40u);
  for (char ch : text) EXPECT_NE(run.corpus().vocab().find(ch), std::string::npos);
  const fs::path png = run.plot_losses();
  std::ifstream in(png, std::ios::binary);
  char signature[8] = {};
  in.read(signature, 8);
  EXPECT_EQ(std::string(signature, 8), std::string("\x89PNG\r\n\x1a\n", 8));
}

}  // namespace
