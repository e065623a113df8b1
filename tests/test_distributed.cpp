// st::distributed across the ranks of one launch (mpirun -n N test_distributed, or one process):
// every collective against values computed here from the rank numbers, the errors of mismatched
// tensors and of a rank that does not arrive, and DistributedDataParallel training against
// single-process training on the concatenated batch. ST_TEST_DIST_BACKEND=nccl runs the same tests
// on CUDA tensors through NCCL.

#include <spiraltorch/autocast.h>
#include <spiraltorch/cuda.h>
#include <spiraltorch/distributed.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <thread>

#include "reference.h"

namespace dist = st::distributed;
using namespace std::chrono_literals;

namespace st_test {
namespace {

int rank() { return dist::get_rank(); }
int world() { return dist::get_world_size(); }
Device dev() { return dist::device(); }

std::vector<double> values(const Tensor& t) { return t.to(st::kCPU).to_vector<double>(); }

// Rank r's input to the reductions: element i is a small integer that depends on both, so sums of
// up to a few ranks are exact in every dtype, bf16 included.
double input_value(int r, int64_t i) { return static_cast<double>((i * 7 + r * 3) % 5 + r - 2); }

Tensor rank_input(int r, const Shape& shape, DType dtype) {
  std::vector<double> v(static_cast<size_t>(st::shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = input_value(r, static_cast<int64_t>(i));
  return st::from_buffer(v.data(), shape, {DType::Float64}).to(dev(), dtype);
}

class Collectives : public ::testing::TestWithParam<DType> {};

TEST_P(Collectives, AllReduceSumAvgMax) {
  const DType dtype = GetParam();
  const Shape shape = {3, 5};
  for (dist::ReduceOp op : {dist::ReduceOp::Sum, dist::ReduceOp::Avg, dist::ReduceOp::Max}) {
    if (op == dist::ReduceOp::Avg && !st::is_floating(dtype)) continue;
    Tensor t = rank_input(rank(), shape, dtype);
    dist::all_reduce(t, op);
    const std::vector<double> got = values(t);
    for (int64_t i = 0; i < 15; ++i) {
      double sum = 0, max = -1e300;
      for (int r = 0; r < world(); ++r) {
        sum += input_value(r, i);
        max = std::max(max, input_value(r, i));
      }
      const double expected = op == dist::ReduceOp::Sum   ? sum
                              : op == dist::ReduceOp::Avg ? sum / world()
                                                          : max;
      const double tol = dtype == DType::BFloat16 || dtype == DType::Float16 ? 1e-2 : 1e-6;
      EXPECT_NEAR(got[static_cast<size_t>(i)], expected, tol) << "op " << static_cast<int>(op);
    }
  }
}

TEST_P(Collectives, BroadcastFromTheLastRank) {
  const int src = world() - 1;
  Tensor t = rank_input(rank(), {4, 2}, GetParam());
  dist::broadcast(t, src);
  const std::vector<double> got = values(t);
  for (int64_t i = 0; i < 8; ++i) EXPECT_EQ(got[static_cast<size_t>(i)], input_value(src, i));
}

TEST_P(Collectives, AllGatherBothLayouts) {
  const DType dtype = GetParam();
  Tensor in = rank_input(rank(), {2, 3}, dtype);
  Tensor concatenated = st::zeros({2 * world(), 3}, {dtype, dev()});
  Tensor stacked = st::zeros({world(), 2, 3}, {dtype, dev()});
  dist::all_gather(concatenated, in);
  dist::all_gather(stacked, in);
  const std::vector<double> a = values(concatenated), b = values(stacked);
  for (int r = 0; r < world(); ++r)
    for (int64_t i = 0; i < 6; ++i) {
      EXPECT_EQ(a[static_cast<size_t>(r * 6 + i)], input_value(r, i));
      EXPECT_EQ(b[static_cast<size_t>(r * 6 + i)], input_value(r, i));
    }
}

TEST_P(Collectives, ReduceScatterGivesEachRankItsBlock) {
  const DType dtype = GetParam();
  // Every rank's input is [world * 4]; rank r receives the sum of block r.
  Tensor in = rank_input(rank(), {world() * 4}, dtype);
  Tensor out = st::zeros({4}, {dtype, dev()});
  dist::reduce_scatter(out, in, dist::ReduceOp::Sum);
  const std::vector<double> got = values(out);
  for (int64_t i = 0; i < 4; ++i) {
    double sum = 0;
    for (int r = 0; r < world(); ++r) sum += input_value(r, rank() * 4 + i);
    EXPECT_NEAR(got[static_cast<size_t>(i)], sum, 1e-6);
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, Collectives,
                         ::testing::Values(DType::Float32, DType::Float64, DType::BFloat16,
                                           DType::Int32, DType::Int64),
                         [](const auto& info) { return std::string(st::dtype_name(info.param)); });

TEST(Distributed, AsyncHandles) {
  Tensor t = st::full({1000}, rank() + 1.0, {DType::Float32, dev()});
  dist::WorkHandle work = dist::all_reduce(t, dist::ReduceOp::Sum, /*async_op=*/true);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!work->is_completed()) ASSERT_LT(std::chrono::steady_clock::now(), deadline);
  work->wait();  // also fine after completion
  EXPECT_EQ(values(t)[999], world() * (world() + 1) / 2.0);
  // Several in flight at once, waited for in reverse order.
  std::vector<Tensor> tensors;
  std::vector<dist::WorkHandle> works;
  for (int k = 0; k < 4; ++k) {
    tensors.push_back(st::full({17}, k + rank(), {DType::Float64, dev()}));
    works.push_back(dist::all_reduce(tensors.back(), dist::ReduceOp::Max, true));
  }
  for (int k = 3; k >= 0; --k) works[static_cast<size_t>(k)]->wait();
  for (int k = 0; k < 4; ++k)
    EXPECT_EQ(values(tensors[static_cast<size_t>(k)])[0], k + world() - 1);
  dist::barrier();
}

TEST(Distributed, RankAndWorld) {
  EXPECT_GE(rank(), 0);
  EXPECT_LT(rank(), world());
  EXPECT_GE(dist::get_local_rank(), 0);
  Tensor all = st::zeros({world()}, {DType::Int64, dev()});
  dist::all_gather(all, st::full({1}, rank(), {DType::Int64, dev()}));
  for (int r = 0; r < world(); ++r) EXPECT_EQ(values(all)[static_cast<size_t>(r)], r);
}

TEST(Distributed, LocalErrorsNameTheOpAndWhatWasExpected) {
  Tensor t = st::zeros({4, 4}, {DType::Float32, dev()});
  EXPECT_TRUE(
      throws<st::ValueError>([&] { dist::all_reduce(t.t()); }, {"all_reduce", "contiguous"}));
  EXPECT_TRUE(throws<st::DTypeError>(
      [&] {
        dist::all_reduce(st::zeros({2}, {DType::Bool, dev()}));
      },
      {"all_reduce", "bool"}));
  EXPECT_TRUE(throws<st::DTypeError>(
      [&] {
        dist::all_reduce(st::zeros({2}, {DType::Int32, dev()}), dist::ReduceOp::Avg);
      },
      {"all_reduce", "Avg"}));
  EXPECT_TRUE(throws<st::ShapeError>(
      [&] {
        dist::all_gather(st::zeros({3}, {DType::Float32, dev()}), t);
      },
      {"all_gather", "expected"}));
  EXPECT_TRUE(
      throws<st::IndexError>([&] { dist::broadcast(t, world()); }, {"broadcast", "source"}));
  if (!dev().is_cpu()) {
    EXPECT_TRUE(
        throws<st::DeviceError>([] { dist::all_reduce(st::zeros({2})); }, {"all_reduce", "cpu"}));
  } else if (st::cuda::is_available()) {
    EXPECT_TRUE(throws<st::DeviceError>(
        [] {
          dist::all_reduce(st::zeros({2}, {DType::Float32, Device("cuda")}));
        },
        {"all_reduce", "cuda"}));
  }
  EXPECT_TRUE(throws<dist::DistributedError>([] { dist::init_process_group("mpi"); },
                                             {"init_process_group", "already"}));
}

TEST(Distributed, MismatchedTensorsAcrossRanksFailOnEveryRank) {
  if (world() == 1) GTEST_SKIP() << "needs two ranks";
  // Rank 0 passes a different shape, then a different dtype, then calls another collective: every
  // rank throws, before any data moves, and the group stays usable.
  Tensor shape_t = st::zeros({rank() == 0 ? 3 : 4}, {DType::Float32, dev()});
  EXPECT_TRUE(throws<st::ShapeError>([&] { dist::all_reduce(shape_t); },
                                     {"all_reduce", "different shapes", "range from 3 to 4"}));
  Tensor dtype_t = st::zeros({4}, {rank() == 0 ? DType::Float64 : DType::Float32, dev()});
  EXPECT_TRUE(throws<dist::DistributedError>([&] { dist::broadcast(dtype_t, 0); },
                                             {"broadcast", "different dtypes"}));
  Tensor t = st::zeros({4}, {DType::Float32, dev()});
  EXPECT_TRUE(throws<dist::DistributedError>(
      [&] { rank() == 0 ? dist::all_reduce(t) : dist::broadcast(t, 0); },
      {"different collectives"}));
  Tensor ok = st::ones({4}, {DType::Float32, dev()});
  dist::all_reduce(ok);
  EXPECT_EQ(values(ok)[0], world());
}

TEST(Distributed, ARankThatDoesNotArriveIsATimeoutNotAHang) {
  if (world() == 1) GTEST_SKIP() << "needs two ranks";
  const auto previous = dist::timeout();
  dist::set_timeout(300ms);
  if (rank() == 0) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(
        throws<dist::TimeoutError>([] { dist::barrier(); }, {"barrier", "rank 0", "300 ms"}));
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  } else {
    std::this_thread::sleep_for(1500ms);
    dist::barrier();  // matches rank 0's barrier, still pending in MPI
  }
  dist::set_timeout(previous);
  dist::barrier();
}

// ------------------------------------------------------------------------------------------------
// DistributedDataParallel against one process training on the whole batch.

std::shared_ptr<st::nn::Sequential> make_model(DType dtype) {
  st::manual_seed(7);
  auto model = std::make_shared<st::nn::Sequential>(std::vector<std::shared_ptr<st::nn::Module>>{
      std::make_shared<st::nn::Linear>(5, 16), std::make_shared<st::nn::ReLU>(),
      std::make_shared<st::nn::Linear>(16, 8), std::make_shared<st::nn::ReLU>(),
      std::make_shared<st::nn::Linear>(8, 3)});
  model->to(dev());
  model->to(dtype);
  return model;
}

Tensor mse(st::nn::Module& model, const Tensor& x, const Tensor& y) {
  const Tensor d = model(x) - y;
  return (d * d).mean();
}

enum class Opt { SGD, AdamW };

std::unique_ptr<st::optim::Optimizer> make_optimizer(const std::vector<Tensor>& params, Opt opt) {
  if (opt == Opt::SGD)
    return std::make_unique<st::optim::SGD>(params,
                                            st::optim::SGDOptions{.lr = 0.05, .momentum = 0.9});
  return std::make_unique<st::optim::AdamW>(
      params, st::optim::AdamOptions{.lr = 0.01, .weight_decay = 0.01});
}

// `micro` micro-batches per rank and step, all but the last under no_sync; with `autocast`, both
// trainings run their forward passes under a bf16 autocast scope (f32 weights and gradients).
void check_ddp_matches_single_process(Opt opt, int micro, DType dtype, double tol,
                                      bool autocast = false) {
  const int64_t rows = 4 * micro;  // per rank and step
  const int steps = 4;
  st::manual_seed(100);
  const Tensor x_all = st::randn({steps, world() * rows, 5}).to(dev(), dtype);
  const Tensor y_all = st::randn({steps, world() * rows, 3}).to(dev(), dtype);

  auto local = make_model(dtype);
  if (rank() != 0) {  // DDP must start every rank from rank 0's parameters
    st::NoGradGuard no_grad;
    for (Tensor& p : local->parameters()) p.add_(1.0);
  }
  dist::DistributedDataParallel ddp(local, {.bucket_cap_bytes = 600});  // several buckets
  ASSERT_GT(ddp.reducer().bucket_count(), 2u);
  auto ddp_opt = make_optimizer(ddp.parameters(), opt);

  auto single = make_model(dtype);
  auto single_opt = make_optimizer(single->parameters(), opt);

  std::optional<st::AutocastGuard> amp;
  if (autocast) amp.emplace(dev().type, DType::BFloat16);
  for (int s = 0; s < steps; ++s) {
    const Tensor x = x_all.select(0, s), y = y_all.select(0, s);
    ddp_opt->zero_grad();
    for (int m = 0; m < micro; ++m) {
      const int64_t start = rank() * rows + m * (rows / micro);
      const Tensor loss =
          mse(ddp, x.narrow(0, start, rows / micro), y.narrow(0, start, rows / micro)) *
          (1.0 / micro);
      if (m + 1 < micro) {
        auto guard = ddp.no_sync();
        loss.backward();
      } else {
        loss.backward();
      }
    }
    ddp_opt->step();

    single_opt->zero_grad();
    mse(*single, x, y).backward();
    single_opt->step();
  }
  const auto a = ddp.module().named_parameters();
  const auto b = single->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const std::vector<double> va = values(a[i].second), vb = values(b[i].second);
    for (size_t j = 0; j < va.size(); ++j)
      ASSERT_NEAR(va[j], vb[j], tol * (1 + std::abs(vb[j]))) << a[i].first << "[" << j << "]";
  }
}

TEST(DistributedDataParallel, SGDMatchesSingleProcessOnTheWholeBatch) {
  check_ddp_matches_single_process(Opt::SGD, 1, DType::Float64, 1e-10);
  check_ddp_matches_single_process(Opt::SGD, 1, DType::Float32, 1e-5);
}

TEST(DistributedDataParallel, AdamWMatchesSingleProcessOnTheWholeBatch) {
  check_ddp_matches_single_process(Opt::AdamW, 1, DType::Float64, 1e-9);
  check_ddp_matches_single_process(Opt::AdamW, 1, DType::Float32, 1e-4);
}

TEST(DistributedDataParallel, NoSyncAccumulationMatchesToo) {
  check_ddp_matches_single_process(Opt::SGD, 2, DType::Float64, 1e-10);
  check_ddp_matches_single_process(Opt::AdamW, 3, DType::Float32, 1e-4);
}

// Each rank's bf16 weight gradients are rounded before they are averaged, the single process's
// after it summed the whole batch: the two differ by a few bf16 roundings (2^-8 relative).
TEST(DistributedDataParallel, UnderBFloat16AutocastMatchesToo) {
  check_ddp_matches_single_process(Opt::SGD, 1, DType::Float32, 5e-3, /*autocast=*/true);
  check_ddp_matches_single_process(Opt::SGD, 2, DType::Float32, 5e-3, /*autocast=*/true);
}

// Whether every rank holds the same gradient of `param` (a float64 tensor).
bool same_grad_on_every_rank(const Tensor& param) {
  const Tensor g = param.grad().reshape({-1});
  const Tensor gathered = st::zeros({world() * g.numel()}, {DType::Float64, dev()});
  dist::all_gather(gathered, g);
  const std::vector<double> all = values(gathered), mine = values(g);
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i] != mine[i % mine.size()]) return false;
  return true;
}

TEST(DistributedDataParallel, NoSyncLeavesGradientsLocal) {
  auto model = make_model(DType::Float64);
  dist::DistributedDataParallel ddp(model);
  const Tensor x = st::full({2, 5}, rank() + 1.0, {DType::Float64, dev()});
  const Tensor first_weight = model->parameters().front();
  auto same_on_every_rank = [&] { return same_grad_on_every_rank(first_weight); };
  {
    auto guard = ddp.no_sync();
    ddp(x).sum().backward();
  }
  // The last layer's bias gets d(sum)/db = 2 rows on every rank; the first weight's gradient
  // depends on the rank's input and stays local.
  EXPECT_EQ(values(model->parameters().back().grad())[0], 2.0);
  if (world() > 1) {
    EXPECT_FALSE(same_on_every_rank());
  }
  // The next synchronized backward averages the accumulated sums.
  ddp(x).sum().backward();
  EXPECT_EQ(values(model->parameters().back().grad())[0], 4.0);
  EXPECT_TRUE(same_on_every_rank());
}

TEST(DistributedDataParallel, ABackwardThatFailsLeavesTheNextOneSynchronized) {
  if (world() == 1) GTEST_SKIP() << "needs two ranks";
  auto model = make_model(DType::Float64);
  dist::DistributedDataParallel ddp(model, {.bucket_cap_bytes = 600});
  const Tensor x = st::full({2, 5}, rank() + 1.0, {DType::Float64, dev()});
  // A hook on the first layer's weight, which backward reaches last, fails the first backward
  // after DDP has started its buckets and before it has finished them.
  const Tensor first = model->parameters().front();
  bool fail = true;
  const uint64_t id = first.register_post_accumulate_grad_hook([&fail](const Tensor&) {
    if (fail) {
      fail = false;
      throw st::ValueError("[test] a planned failure");
    }
  });
  EXPECT_THROW(ddp(x).sum().backward(), st::ValueError);
  model->zero_grad();
  ddp(x).sum().backward();
  first.remove_post_accumulate_grad_hook(id);
  EXPECT_TRUE(same_grad_on_every_rank(first));
}

TEST(DistributedDataParallel, BFloat16GradientsAreTheRanksMean) {
  auto model = make_model(DType::BFloat16);
  dist::DistributedDataParallel ddp(model, {.bucket_cap_bytes = 256});
  st::manual_seed(5);
  const Tensor x = st::randn({world(), 4, 5}).to(dev(), DType::BFloat16);
  ddp(x.select(0, rank())).sum().backward();
  // Every rank computes every rank's local gradient with a plain copy of the model.
  auto copy = make_model(DType::BFloat16);
  copy->load_state_dict(model->state_dict());
  const auto params = model->parameters();
  std::vector<std::vector<double>> mean(params.size());
  for (int r = 0; r < world(); ++r) {
    copy->zero_grad();
    (*copy)(x.select(0, r)).sum().backward();
    const auto cp = copy->parameters();
    for (size_t i = 0; i < cp.size(); ++i) {
      const std::vector<double> g = values(cp[i].grad());
      mean[i].resize(g.size());
      for (size_t j = 0; j < g.size(); ++j) mean[i][j] += g[j] / world();
    }
  }
  for (size_t i = 0; i < params.size(); ++i) {
    ASSERT_EQ(params[i].grad().dtype(), DType::BFloat16);
    const std::vector<double> g = values(params[i].grad());
    for (size_t j = 0; j < g.size(); ++j)
      ASSERT_NEAR(g[j], mean[i][j], 2e-2 * (1 + std::abs(mean[i][j]))) << i << "[" << j << "]";
  }
}

TEST(DistributedDataParallel, ModelsThatDifferAreRefusedOnEveryRank) {
  if (world() == 1) GTEST_SKIP() << "needs two ranks";
  auto model = std::make_shared<st::nn::Linear>(rank() == 0 ? 3 : 4, 2);
  model->to(dev());
  EXPECT_TRUE(throws<dist::DistributedError>([&] { dist::DistributedDataParallel ddp(model); },
                                             {"broadcast_parameters", "weight"}));
}

TEST(DistributedSampler, RanksShareAPermutationWithoutOverlap) {
  const int64_t size = 10;
  for (bool drop_last : {false, true}) {
    std::vector<int64_t> counts(size, 0);
    int64_t total = 0;
    for (int r = 0; r < 3; ++r) {
      dist::DistributedSampler sampler(size, 3, r, true, 42, drop_last);
      sampler.set_epoch(2);
      const auto mine = sampler.indices();
      EXPECT_EQ(static_cast<int64_t>(mine.size()), drop_last ? 3 : 4);
      for (int64_t i : mine) ++counts[static_cast<size_t>(i)];
      total += static_cast<int64_t>(mine.size());
    }
    int64_t covered = 0;
    for (int64_t c : counts) covered += c > 0;
    EXPECT_EQ(total, drop_last ? 9 : 12);
    EXPECT_EQ(covered, drop_last ? 9 : 10);  // padding repeats two indices; drop_last drops one
  }
  // Another epoch shuffles differently; the same epoch the same.
  dist::DistributedSampler a(100, 2, 0, true, 1), b(100, 2, 0, true, 1);
  b.set_epoch(1);
  EXPECT_NE(a.indices(), b.indices());
  b.set_epoch(0);
  EXPECT_EQ(a.indices(), b.indices());
  // Without shuffle: every world_size-th index from the rank.
  EXPECT_EQ(dist::DistributedSampler(7, 3, 1, false).indices(), (std::vector<int64_t>{1, 4, 0}));
}

TEST(DistributedSampler, TheGroupsRanksGetDisjointShares) {
  dist::DistributedSampler sampler(12 * world());
  const auto mine = sampler.indices();
  Tensor gathered = st::zeros({world() * 12}, {DType::Int64, dev()});
  dist::all_gather(gathered, st::from_buffer(mine.data(), {12}, {DType::Int64}).to(dev()));
  std::vector<double> all = values(gathered);
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], static_cast<double>(i));
}

}  // namespace
}  // namespace st_test

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const char* backend = std::getenv("ST_TEST_DIST_BACKEND");
  dist::InitOptions options;
  options.timeout = 60s;
  dist::init_process_group(backend != nullptr ? backend : "mpi", options);
  const int result = RUN_ALL_TESTS();
  // A failure on any rank fails the launch on every rank.
  st::Tensor failed = st::full({1}, result != 0 ? 1 : 0, {st::DType::Int32, dist::device()});
  dist::all_reduce(failed, dist::ReduceOp::Max);
  const bool any_failed = failed.item<int>() != 0;
  dist::destroy_process_group();
  return any_failed ? 1 : 0;
}
