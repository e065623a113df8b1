// Checks that an installed SpiralTorch works from outside its source tree: headers found, library
// linked and loaded, ops and autograd giving the right numbers.

#include <cmath>
#include <cstdio>
#include <cstring>

#include <spiraltorch/spiraltorch.h>

int main() {
  std::printf("consumer of SpiralTorch %s\n", st::kVersion);
  if (std::strcmp(st::kVersion, SPIRALTORCH_VERSION) != 0) return 1;

  // y = sum(relu(x @ w)); x = [[1, 2]], w = [[1, -1], [1, 1]] gives x @ w = [[3, 1]], y = 4,
  // dy/dw = x^T broadcast over the two positive columns: [[1, 1], [2, 2]].
  st::Tensor x = st::tensor({1.0f, 2.0f}).reshape({1, 2});
  st::Tensor w = st::tensor({1.0f, -1.0f, 1.0f, 1.0f}).reshape({2, 2});
  w.set_requires_grad(true);
  const st::Tensor y = st::relu(st::matmul(x, w)).sum();
  y.backward();
  std::printf("y = %s\ngrad = %s\n", y.str().c_str(), w.grad().str().c_str());

  const double expected_grad[] = {1, 1, 2, 2};
  bool ok = std::abs(y.item<double>() - 4.0) < 1e-6;
  const auto grad = w.grad().to_vector<double>();
  for (int i = 0; i < 4; ++i) ok = ok && std::abs(grad[i] - expected_grad[i]) < 1e-6;
  std::printf("%s\n", ok ? "package test passed" : "package test FAILED");
  return ok ? 0 : 1;
}
