#pragma once
// Training of the character-level GPT: the corpus, batches, the loop with evaluation, checkpoints
// (model, optimizer, random stream, step and loss history in one safetensors file) and sampling.
// Everything a step draws is a function of the seed and the step number or of the saved random
// stream, so a run resumed from a checkpoint computes what the uninterrupted run would have.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <spiraltorch/distributed.h>
#include <spiraltorch/optim.h>

#include <memory>

#include "gpt.h"

namespace st_train {

struct TrainConfig {
  std::string data;     // text file to train on
  std::string out_dir;  // checkpoint.safetensors, loss.png and sample.txt go here
  std::string device = "cpu";
  int64_t context = 64;
  int64_t layers = 2;
  int64_t d_model = 128;
  int64_t heads = 4;
  double dropout = 0;
  int64_t batch = 16;
  int64_t steps = 2000;
  double lr = 3e-3;
  double min_lr = 3e-4;
  int64_t warmup = 50;
  double weight_decay = 0.1;
  double grad_clip = 1.0;
  int64_t eval_every = 100;
  int64_t eval_batches = 8;
  int64_t checkpoint_every = 250;
  int64_t sample_chars = 400;
  double temperature = 0.8;
  uint64_t seed = 1337;
};

// The corpus as token ids: the vocabulary is the sorted set of its bytes; the first 90% trains,
// the rest is held out.
class CharCorpus {
 public:
  CharCorpus() = default;
  explicit CharCorpus(std::string text);
  static CharCorpus from_file(const std::string& path);
  const std::string& vocab() const { return vocab_; }
  int64_t encode(char c) const;
  std::string decode(const std::vector<int64_t>& ids) const;
  const std::vector<int64_t>& train() const { return train_; }
  const std::vector<int64_t>& validation() const { return validation_; }

 private:
  std::string vocab_;
  std::vector<int64_t> train_, validation_;
};

struct LossHistory {
  std::vector<float> train;        // one per step
  std::vector<int64_t> eval_step;  // steps after which the held-out split was evaluated
  std::vector<float> eval;         // its mean loss then
};

// What the loop reports after each step, for the progress display.
struct StepReport {
  int64_t step, steps;
  float loss;
  double tokens_per_second, eta_seconds;
};

// In a process group (st::distributed initialized, e.g. under mpirun), every rank trains the same
// model on its share of each batch (batch / world_size sequences, by rank), the gradients are
// averaged over the ranks during backward, and reported losses are the ranks' mean: the run
// computes what one process would on the whole batch, up to rounding. Only rank 0 writes
// checkpoints; every rank resumes from the same one.
class Trainer {
 public:
  // A new run; or, with `resume`, the run saved in that checkpoint, continued with `config`
  // (normally checkpoint_config(resume): the same settings give the uninterrupted run's results;
  // a model of another shape is refused).
  Trainer(TrainConfig config, const std::string& resume = {});
  // The settings a checkpoint was trained with; out_dir is the checkpoint's folder.
  static TrainConfig checkpoint_config(const std::string& path);

  // Trains up to config.steps, evaluating and checkpointing on schedule. Returns false when
  // `stop` was raised (a checkpoint of the last finished step is saved first).
  bool train(const std::atomic<bool>& stop, const std::function<void(const StepReport&)>& report);
  // Mean loss on `batches` fixed held-out batches, in evaluation mode.
  float evaluate();
  // Writes the checkpoint (atomically) and returns its path.
  std::string save_checkpoint() const;
  // `length` characters continuing `prompt`, drawn at `temperature` with a seeded generator.
  std::string sample(const std::string& prompt, int64_t length, double temperature);
  // Writes loss.png under out_dir and returns its path.
  std::string plot_losses() const;

  int64_t step() const { return step_; }
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  const LossHistory& history() const { return history_; }
  const TrainConfig& config() const { return config_; }
  const CharCorpus& corpus() const { return corpus_; }
  GPT& model() { return *model_; }

 private:
  // Inputs and next-token targets [batch, context] of training step `step`, or of held-out batch
  // `index` when `held_out`.
  std::pair<st::Tensor, st::Tensor> batch(int64_t index, bool held_out) const;
  // The model's mean next-character loss on that batch (on this rank's rows of it).
  st::Tensor batch_loss(int64_t index, bool held_out) const;
  // A loss of this rank's rows as the mean over the ranks (equal shares: the whole batch's mean).
  float mean_over_ranks(const st::Tensor& loss) const;
  // Whether `stop` was raised on any rank.
  bool stop_requested(const std::atomic<bool>& stop) const;
  void load_checkpoint(const std::string& path);

  TrainConfig config_;
  CharCorpus corpus_;
  st::Device device_;
  std::unique_ptr<GPT> model_;
  std::unique_ptr<st::optim::AdamW> optimizer_;
  std::unique_ptr<st::optim::WarmupCosineLR> schedule_;
  int64_t step_ = 0;
  LossHistory history_;
  int rank_ = 0, world_size_ = 1;
  std::unique_ptr<st::distributed::GradientReducer> reducer_;  // in a process group only
};

}  // namespace st_train
