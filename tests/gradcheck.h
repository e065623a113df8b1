#pragma once
// Gradient checks by central finite differences, in float64 on any device.
//
// gradcheck(f, inputs, device) builds a float64 leaf on `device` for each input NDArray, computes
// out = f(leaves), reduces it to the scalar L = sum(out * w) with a fixed random weighting w (so
// every output element gets a distinct weight), and calls L.backward(). The gradient of each leaf
// that requires grad is then compared with (L(x + eps e_j) - L(x - eps e_j)) / (2 eps), where the
// perturbed L is evaluated under NoGradGuard and reduced on the host in float64.
//
// Views, broadcasting and non-contiguous operands belong inside f (e.g. `x[0].transpose(0, 1)`),
// so leaves are always contiguous and perturbing one element is unambiguous.

#include <functional>
#include <vector>

#include "reference.h"

namespace st_test {

struct GradcheckOptions {
  double eps = 1e-6;
  double rtol = 1e-5;
  double atol = 1e-7;
  uint32_t seed = 1234;
  std::vector<bool> requires_grad = {};  // per input; empty means every input requires grad
};

using GradFn = std::function<Tensor(const std::vector<Tensor>&)>;

namespace detail {

inline double weighted_sum(const Tensor& out, const NDArray& w) {
  std::vector<double> v = to_f64(out);
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += v[i] * w[static_cast<int64_t>(i)];
  return s;
}

}  // namespace detail

inline ::testing::AssertionResult gradcheck(const GradFn& f, const std::vector<NDArray>& inputs,
                                            Device device, GradcheckOptions options = {}) {
  if (options.requires_grad.empty()) options.requires_grad.assign(inputs.size(), true);

  std::vector<Tensor> leaves;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor leaf = make_tensor(inputs[i], DType::Float64, device);
    if (options.requires_grad[i]) leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  Tensor out = f(leaves);
  if (!out.defined()) return ::testing::AssertionFailure() << "f returned an undefined tensor";
  if (out.dtype() != DType::Float64) {
    return ::testing::AssertionFailure() << "output dtype " << out.dtype() << ", expected float64";
  }
  if (out.device() != device) {
    return ::testing::AssertionFailure() << "output on " << out.device() << ", expected " << device;
  }
  if (!out.requires_grad()) return ::testing::AssertionFailure() << "output does not require grad";

  std::mt19937 rng(options.seed);
  NDArray w = uniform_random(out.shape(), rng, 0.5, 1.5);
  std::bernoulli_distribution sign(0.5);
  for (auto& v : w.data) v = sign(rng) ? v : -v;
  Tensor loss = st::sum(st::mul(out, make_tensor(w, DType::Float64, device)));
  loss.backward();

  auto evaluate = [&](const std::vector<NDArray>& values) {
    st::NoGradGuard no_grad;
    std::vector<Tensor> args;
    for (const auto& v : values) args.push_back(make_tensor(v, DType::Float64, device));
    return detail::weighted_sum(f(args), w);
  };

  std::vector<NDArray> values = inputs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!options.requires_grad[i]) {
      if (leaves[i].grad().defined()) {
        return ::testing::AssertionFailure()
               << "input " << i << " has a grad but does not require one";
      }
      continue;
    }
    Tensor grad = leaves[i].grad();
    std::vector<double> analytic(inputs[i].numel(), 0.0);
    if (grad.defined()) {
      if (grad.shape() != inputs[i].shape) {
        return ::testing::AssertionFailure()
               << "grad of input " << i << " has shape " << shape_str(grad.shape()) << ", expected "
               << shape_str(inputs[i].shape);
      }
      if (grad.dtype() != DType::Float64 || grad.device() != device) {
        return ::testing::AssertionFailure()
               << "grad of input " << i << " is " << grad.dtype() << " on " << grad.device();
      }
      analytic = to_f64(grad);
    }
    int64_t bad = 0, worst = -1;
    double worst_ratio = 0, worst_numeric = 0;
    for (int64_t j = 0; j < inputs[i].numel(); ++j) {
      double x0 = values[i][j];
      values[i][j] = x0 + options.eps;
      double plus = evaluate(values);
      values[i][j] = x0 - options.eps;
      double minus = evaluate(values);
      values[i][j] = x0;
      double numeric = (plus - minus) / (2 * options.eps);
      double allowed = options.atol + options.rtol * std::fabs(numeric);
      double err = std::fabs(analytic[j] - numeric);
      if (!(err <= allowed)) {
        ++bad;
        double ratio = std::isnan(err) ? std::numeric_limits<double>::infinity() : err / allowed;
        if (worst < 0 || ratio > worst_ratio) {
          worst = j;
          worst_ratio = ratio;
          worst_numeric = numeric;
        }
      }
    }
    if (bad > 0) {
      return ::testing::AssertionFailure()
             << "input " << i << " " << shape_str(inputs[i].shape) << ": " << bad << " of "
             << inputs[i].numel() << " gradient elements differ"
             << (grad.defined() ? "" : " (grad undefined, taken as 0)") << "; worst at "
             << index_str(unravel(worst, inputs[i].shape)) << ": backward " << analytic[worst]
             << ", finite difference " << worst_numeric;
    }
  }
  return ::testing::AssertionSuccess();
}

// The gradients f's backward computes in `dtype` (f32, f16, bf16: the lower-precision backward
// kernels), against central finite differences of f evaluated in float64. Inputs and the weighting
// w should be exact in `dtype` (grid_random values are), so that only the computation differs.
inline ::testing::AssertionResult gradcheck_in(DType dtype, const GradFn& f,
                                               const std::vector<NDArray>& inputs, Device device,
                                               Tolerance tol, double eps = 1e-6) {
  std::vector<Tensor> leaves;
  for (const NDArray& input : inputs) {
    Tensor leaf = make_tensor(input, dtype, device);
    leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  Tensor out = f(leaves);
  if (out.dtype() != dtype) {
    return ::testing::AssertionFailure()
           << "output dtype " << out.dtype() << ", expected " << dtype;
  }
  std::mt19937 rng(99);
  NDArray w = grid_random(out.shape(), rng, -1, 1);
  st::sum(st::mul(out, make_tensor(w, dtype, device))).backward();

  std::vector<NDArray> values = inputs;
  auto evaluate = [&] {
    st::NoGradGuard no_grad;
    std::vector<Tensor> args;
    for (const auto& v : values) args.push_back(make_tensor(v, DType::Float64, device));
    return detail::weighted_sum(f(args), w);
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!leaves[i].grad().defined())
      return ::testing::AssertionFailure() << "input " << i << " has no grad";
    const std::vector<double> analytic = to_f64(leaves[i].grad());
    NDArray numeric(inputs[i].shape);
    for (int64_t j = 0; j < inputs[i].numel(); ++j) {
      const double x0 = values[i][j];
      values[i][j] = x0 + eps;
      const double plus = evaluate();
      values[i][j] = x0 - eps;
      const double minus = evaluate();
      values[i][j] = x0;
      numeric[j] = (plus - minus) / (2 * eps);
    }
    // Errors are judged against the largest gradient element: low-precision sums lose digits
    // relative to their biggest terms, not to each result.
    double scale = 0;
    for (double v : numeric.data) scale = std::max(scale, std::fabs(v));
    for (int64_t j = 0; j < inputs[i].numel(); ++j) {
      const double allowed = tol.atol + tol.rtol * std::max(std::fabs(numeric[j]), scale);
      if (!(std::fabs(analytic[j] - numeric[j]) <= allowed)) {
        return ::testing::AssertionFailure()
               << dtype << " grad of input " << i << " at "
               << index_str(unravel(j, inputs[i].shape)) << ": backward " << analytic[j]
               << ", finite difference " << numeric[j] << " (allowed error " << allowed << ")";
      }
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace st_test
