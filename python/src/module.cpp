// spiraltorch._C: the compiled part of the package. Each init_* lives in the file of its part.

#include "bindings.h"

NB_MODULE(_C, m) {
  m.doc() = "SpiralTorch's compiled core; use it through `import spiraltorch as st`.";
  m.attr("__version__") = st::kVersion;
  st::python::init_errors(m);
  st::python::init_tensor(m);
  st::python::init_ops(m);
  st::python::init_autograd(m);
  st::python::init_nn(m);
  st::python::init_serialize(m);
  st::python::init_cuda(m);
  st::python::init_optim(m);
  st::python::init_distributed(m);
}
