// The CUDA backend's index arithmetic, checked on the host against plain integer division:
// FastDivmod must equal n / d for every divisor and every dividend below 2^31, the range the
// strided kernels use it in.

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "backend/cuda/fast_divmod.h"

namespace {

using st::backend::cuda::FastDivmod;

constexpr uint32_t kLimit = uint32_t{1} << 31;  // dividends are below this

// Dividends where a rounding error would show first: around multiples of d and the range's end.
std::vector<uint32_t> edge_dividends(uint32_t d) {
  std::vector<uint32_t> n{0, 1, kLimit - 1, kLimit - 2};
  for (uint64_t k : {uint64_t{1}, uint64_t{2}, uint64_t{3}, (kLimit - 1) / uint64_t{d}}) {
    const uint64_t m = k * d;
    for (int64_t delta = -1; delta <= 1; ++delta) {
      const int64_t v = static_cast<int64_t>(m) + delta;
      if (v >= 0 && v < kLimit) n.push_back(static_cast<uint32_t>(v));
    }
  }
  return n;
}

void expect_exact(uint32_t d, uint32_t n) {
  ASSERT_EQ(FastDivmod(d).div(n), n / d) << n << " / " << d;
}

TEST(FastDivmod, SmallDivisorsAgainstEveryDividendNearTheirMultiples) {
  for (uint32_t d = 1; d <= 4096; ++d)
    for (uint32_t n : edge_dividends(d)) expect_exact(d, n);
}

TEST(FastDivmod, PowersOfTwoAndTheirNeighbours) {
  for (int bit = 0; bit < 31; ++bit)
    for (int64_t delta = -1; delta <= 1; ++delta) {
      const int64_t d = (int64_t{1} << bit) + delta;
      if (d < 1 || d >= kLimit) continue;
      for (uint32_t n : edge_dividends(static_cast<uint32_t>(d)))
        expect_exact(static_cast<uint32_t>(d), n);
    }
}

TEST(FastDivmod, RandomDivisorsAndDividends) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> any(0, kLimit - 1);
  for (int i = 0; i < 20000; ++i) {
    const uint32_t d = 1 + any(rng) % (1u << (1 + i % 30));
    const FastDivmod fast(d);
    for (int j = 0; j < 50; ++j) {
      const uint32_t n = any(rng);
      ASSERT_EQ(fast.div(n), n / d) << n << " / " << d;
    }
  }
}

}  // namespace
