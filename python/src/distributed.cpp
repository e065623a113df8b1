// st.distributed's compiled part (_C._distributed): the process group, the collectives with their
// work handles, the gradient reducer of DDP and the sampler's indices (distributed.h). The Python
// module spiraltorch/distributed.py gives them torch.distributed's signatures.

#include <spiraltorch/distributed.h>

#include <nanobind/stl/chrono.h>
#include <nanobind/stl/shared_ptr.h>

#include "bindings.h"

namespace st::python {

using namespace nb::literals;
namespace dist = st::distributed;

void init_distributed(nb::module_& m) {
  nb::module_ d = m.def_submodule("_distributed", "st::distributed (use spiraltorch.distributed).");

  // DistributedError is a RuntimeError, TimeoutError also Python's TimeoutError; both derive from
  // st.SpiralTorchError as every error of the core does.
  nb::handle base = m.attr("SpiralTorchError");
  static PyObject* error = PyErr_NewExceptionWithDoc(
      "spiraltorch.distributed.DistributedError",
      "A collective that failed, or tensors that differ across ranks.",
      nb::make_tuple(base, nb::handle(PyExc_RuntimeError)).ptr(), nullptr);
  static PyObject* timeout = PyErr_NewExceptionWithDoc(
      "spiraltorch.distributed.TimeoutError",
      "A collective that did not complete within the process group's timeout.",
      nb::make_tuple(nb::handle(error), nb::handle(PyExc_TimeoutError)).ptr(), nullptr);
  if (error == nullptr || timeout == nullptr) throw nb::python_error();
  d.attr("DistributedError") = nb::handle(error);
  d.attr("TimeoutError") = nb::handle(timeout);
  // Registered after the core's translator, so tried before it.
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const dist::TimeoutError& e) {
      PyErr_SetString(timeout, e.what());
    } catch (const dist::DistributedError& e) {
      PyErr_SetString(error, e.what());
    }
  });

  nb::enum_<dist::ReduceOp>(d, "ReduceOp")
      .value("SUM", dist::ReduceOp::Sum)
      .value("AVG", dist::ReduceOp::Avg)
      .value("MAX", dist::ReduceOp::Max);

  // Waiting releases the GIL: other Python threads run while the ranks meet.
  nb::class_<dist::Work>(d, "Work", "A collective in flight.")
      .def("is_completed", &dist::Work::is_completed,
           "Whether it has completed (its results may be read); never blocks.")
      .def("wait", &dist::Work::wait, nb::call_guard<nb::gil_scoped_release>(),
           "Blocks until it completes; TimeoutError after the group's timeout.");

  d.def(
      "init_process_group",
      [](const std::string& backend, std::chrono::milliseconds timeout,
         const std::string& store_file, bool check_signatures) {
        dist::InitOptions options;
        options.timeout = timeout;
        options.store_file = store_file;
        options.check_signatures = check_signatures;
        nb::gil_scoped_release release;
        dist::init_process_group(backend, options);
      },
      "backend"_a, "timeout"_a, "store_file"_a, "check_signatures"_a);
  d.def("is_initialized", &dist::is_initialized);
  d.def("destroy_process_group", &dist::destroy_process_group,
        nb::call_guard<nb::gil_scoped_release>());
  d.def("abort", &dist::abort, "exit_code"_a = 1);
  d.def("get_rank", &dist::get_rank);
  d.def("get_world_size", &dist::get_world_size);
  d.def("get_local_rank", &dist::get_local_rank);
  d.def("get_backend", &dist::get_backend);
  d.def("device", &dist::device);
  d.def("set_timeout", &dist::set_timeout, "timeout"_a);
  d.def("timeout", [] { return dist::timeout(); });
  d.def("all_reduce", &dist::all_reduce, "tensor"_a, "op"_a, "async_op"_a,
        nb::call_guard<nb::gil_scoped_release>());
  d.def("broadcast", &dist::broadcast, "tensor"_a, "src"_a, "async_op"_a,
        nb::call_guard<nb::gil_scoped_release>());
  d.def("all_gather", &dist::all_gather, "output"_a, "input"_a, "async_op"_a,
        nb::call_guard<nb::gil_scoped_release>());
  d.def("reduce_scatter", &dist::reduce_scatter, "output"_a, "input"_a, "op"_a, "async_op"_a,
        nb::call_guard<nb::gil_scoped_release>());
  d.def("barrier", &dist::barrier, nb::call_guard<nb::gil_scoped_release>());
  d.def("broadcast_parameters", &dist::broadcast_parameters, "params"_a, "names"_a,
        nb::call_guard<nb::gil_scoped_release>());

  nb::class_<dist::GradientReducer>(
      d, "GradientReducer", "Averages gradients over the ranks during backward, in buckets.")
      .def(nb::init<std::vector<Tensor>, size_t>(), "params"_a, "bucket_bytes"_a)
      .def_prop_rw("sync", &dist::GradientReducer::sync, &dist::GradientReducer::set_sync)
      .def_prop_ro("bucket_count", &dist::GradientReducer::bucket_count);

  d.def(
      "sampler_indices",
      [](int64_t size, int world_size, int rank, bool shuffle, uint64_t seed, bool drop_last,
         int64_t epoch) {
        dist::DistributedSampler sampler(size, world_size, rank, shuffle, seed, drop_last);
        sampler.set_epoch(epoch);
        return sampler.indices();
      },
      "size"_a, "world_size"_a, "rank"_a, "shuffle"_a, "seed"_a, "drop_last"_a, "epoch"_a);
}

}  // namespace st::python
