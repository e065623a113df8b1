// st.optim: the C++ optimizers, gradient clipping and learning-rate schedules of
// include/spiraltorch/optim.h, over lists of Python tensors (a Parameter is a tensor). The thin
// Python classes in spiraltorch/optim.py give them torch.optim's signatures.

#include <nanobind/stl/map.h>

#include "bindings.h"

namespace st::python {

using namespace nb::literals;
using optim::Optimizer;

void init_optim(nb::module_& m) {
  nb::class_<Optimizer>(m, "_Optimizer")
      .def("step", &Optimizer::step, nb::call_guard<nb::gil_scoped_release>(),
           "One fused update of every parameter that has a gradient.")
      .def("zero_grad", &Optimizer::zero_grad, "set_to_none"_a = true,
           "Clears (set_to_none, the default) or zeroes every parameter's gradient.")
      .def_prop_rw("lr", &Optimizer::lr, &Optimizer::set_lr, "The learning rate of the next step.")
      .def_prop_ro("params", &Optimizer::params, "The parameters, in the order given.")
      .def("state_dict", &Optimizer::state_dict,
           "The state as tensors by name ('<i>.step', '<i>.exp_avg', ...).")
      .def("load_state_dict", &Optimizer::load_state_dict, "state"_a,
           "Restores a state_dict() of an optimizer over parameters of the same shapes.");

  nb::class_<optim::SGD, Optimizer>(m, "_SGD").def(
      "__init__",
      [](optim::SGD* self, std::vector<Tensor> params, double lr, double momentum, double dampening,
         double weight_decay, bool nesterov) {
        new (self) optim::SGD(std::move(params), {lr, momentum, dampening, weight_decay, nesterov});
      },
      "params"_a, "lr"_a, "momentum"_a, "dampening"_a, "weight_decay"_a, "nesterov"_a);
  nb::class_<optim::Adam, Optimizer>(m, "_Adam")
      .def(
          "__init__",
          [](optim::Adam* self, std::vector<Tensor> params, double lr, double beta1, double beta2,
             double eps, double weight_decay) {
            new (self) optim::Adam(std::move(params), {lr, beta1, beta2, eps, weight_decay});
          },
          "params"_a, "lr"_a, "beta1"_a, "beta2"_a, "eps"_a, "weight_decay"_a);
  nb::class_<optim::AdamW, optim::Adam>(m, "_AdamW")
      .def(
          "__init__",
          [](optim::AdamW* self, std::vector<Tensor> params, double lr, double beta1, double beta2,
             double eps, double weight_decay) {
            new (self) optim::AdamW(std::move(params), {lr, beta1, beta2, eps, weight_decay});
          },
          "params"_a, "lr"_a, "beta1"_a, "beta2"_a, "eps"_a, "weight_decay"_a);

  m.def("_clip_grad_norm_", &optim::clip_grad_norm_, "params"_a, "max_norm"_a,
        nb::call_guard<nb::gil_scoped_release>());

  // A schedule keeps a reference to its optimizer: keep_alive ties their Python lifetimes.
  nb::class_<optim::LRScheduler>(m, "_LRScheduler")
      .def("step", &optim::LRScheduler::step, "Sets lr for the next step.")
      .def_prop_ro("last_epoch", &optim::LRScheduler::steps, "Scheduler steps taken so far.")
      .def("set_step", &optim::LRScheduler::set_step, "steps"_a,
           "Jumps to a step count (resuming a run), setting lr for it.")
      .def("lr_at", &optim::LRScheduler::lr_at, "t"_a, "The learning rate after t steps.");
  nb::class_<optim::LinearLR, optim::LRScheduler>(m, "_LinearLR")
      .def(nb::init<Optimizer&, double, double, int64_t>(), "optimizer"_a, "start_factor"_a,
           "end_factor"_a, "total_iters"_a, nb::keep_alive<1, 2>());
  nb::class_<optim::CosineAnnealingLR, optim::LRScheduler>(m, "_CosineAnnealingLR")
      .def(nb::init<Optimizer&, int64_t, double>(), "optimizer"_a, "T_max"_a, "eta_min"_a,
           nb::keep_alive<1, 2>());
  nb::class_<optim::WarmupCosineLR, optim::LRScheduler>(m, "_WarmupCosineLR")
      .def(nb::init<Optimizer&, int64_t, int64_t, double>(), "optimizer"_a, "warmup"_a, "total"_a,
           "min_lr"_a, nb::keep_alive<1, 2>());
}

}  // namespace st::python
