// st.cuda's native half: device count, synchronization, allocator statistics, events, graphs and
// GEMM settings (cuda.h); python/spiraltorch/cuda.py adds the graph helpers.
// Callable in every build; without a CUDA backend is_available() is False.

#include <spiraltorch/cuda.h>

#include "bindings.h"

using namespace nb::literals;

namespace st::python {

void init_cuda(nb::module_& m) {
  nb::module_ cuda = m.def_submodule("cuda", "The CUDA backend's settings and statistics.");
  cuda.def("is_available", &st::cuda::is_available, "Whether a CUDA device can be used now.");
  cuda.def("device_count", &st::cuda::device_count, "The number of CUDA devices.");
  cuda.def(
      "synchronize",
      [](int device) {
        nb::gil_scoped_release release;
        st::cuda::synchronize(device);
      },
      "device"_a = 0, "Waits for all work queued on the device's current stream.");
  cuda.def(
      "memory_stats",
      [](int device) {
        const MemoryStats s = st::cuda::memory_stats(device);
        nb::dict out;
        out["allocated_bytes"] = s.allocated_bytes;
        out["requested_bytes"] = s.requested_bytes;
        out["reserved_bytes"] = s.reserved_bytes;
        out["cached_bytes"] = s.cached_bytes;
        out["peak_allocated_bytes"] = s.peak_allocated_bytes;
        out["peak_reserved_bytes"] = s.peak_reserved_bytes;
        out["allocations"] = s.allocations;
        out["frees"] = s.frees;
        out["cache_hits"] = s.cache_hits;
        out["device_allocations"] = s.device_allocations;
        out["device_frees"] = s.device_frees;
        out["oom_retries"] = s.oom_retries;
        return out;
      },
      "device"_a = 0, "The caching allocator's statistics for one device, in bytes and counts.");
  cuda.def("empty_cache", &st::cuda::empty_cache,
           "Gives every cached block of every device back to the driver.");
  nb::class_<st::cuda::Event>(cuda, "Event",
                              "A mark in the work queued on a device's stream, for timing and "
                              "ordering (as torch.cuda.Event, always able to time).")
      .def(nb::init<int>(), "device"_a = 0)
      .def("record", &st::cuda::Event::record,
           "Marks the work queued so far on the device's current stream.")
      .def(
          "synchronize",
          [](const st::cuda::Event& e) {
            nb::gil_scoped_release release;
            e.synchronize();
          },
          "Waits until the marked work has finished.")
      .def("query", &st::cuda::Event::query, "Whether the marked work has finished.")
      .def(
          "elapsed_time",
          [](const st::cuda::Event& start, const st::cuda::Event& end) {
            nb::gil_scoped_release release;
            return start.elapsed_time(end);
          },
          "end"_a, "Milliseconds from this event to `end`; waits for `end`.")
      .def("wait", &st::cuda::Event::wait, "device"_a = 0,
           "Makes the device's current stream wait for the marked work; the host does not wait.")
      .def_prop_ro("device", &st::cuda::Event::device);
  using st::cuda::Graph;
  nb::class_<Graph>(cuda, "CUDAGraph",
                    "The work queued on one device between capture_begin and capture_end, replayed "
                    "with one launch (as torch.cuda.CUDAGraph; see st.cuda.graph and "
                    "st.cuda.capture_step).")
      .def(nb::init<>())
      .def("capture_begin", &Graph::capture_begin, "device"_a = 0,
           "Starts recording the work queued on the device.")
      .def("capture_end", &Graph::capture_end, "Stops recording; the graph can then be replayed.")
      .def("capture_abort", &Graph::capture_abort,
           "Stops recording and discards it (after an error in the captured code).")
      .def(
          "replay",
          [](Graph& g) {
            nb::gil_scoped_release release;
            g.replay();
          },
          "Queues the recorded work once more; the host does not wait.")
      .def("reset", &Graph::reset, "Frees the graph and its memory; it can then capture again.")
      .def_prop_ro("captured", &Graph::captured)
      .def_prop_ro("capturing", &Graph::capturing)
      .def_prop_ro("device", &Graph::device);
  cuda.def("is_capturing", &st::cuda::is_capturing, "device"_a = 0,
           "Whether a graph is being captured on the device.");
  cuda.def(
      "set_gemm_backend",
      [](const std::string& name) {
        using st::cuda::GemmBackend;
        ST_CHECK(name == "cublaslt" || name == "tiled" || name == "tensorcore", ValueError,
                 "[set_gemm_backend] expected 'cublaslt', 'tiled' or 'tensorcore', got '", name,
                 "'");
        st::cuda::set_gemm_backend(name == "tiled"        ? GemmBackend::Tiled
                                   : name == "tensorcore" ? GemmBackend::TensorCore
                                                          : GemmBackend::CublasLt);
      },
      "name"_a, "Which GEMM serves matmul on CUDA: 'cublaslt' (default), 'tiled' or 'tensorcore'.");
  cuda.def("gemm_backend", [] {
    switch (st::cuda::gemm_backend()) {
      case st::cuda::GemmBackend::Tiled: return "tiled";
      case st::cuda::GemmBackend::TensorCore: return "tensorcore";
      default: return "cublaslt";
    }
  });
  cuda.def("set_allow_tf32", &st::cuda::set_allow_tf32, "allow"_a,
           "Whether float32 matmuls may round their inputs to TF32 on the tensor cores.");
  cuda.def("allow_tf32", &st::cuda::allow_tf32);
}

}  // namespace st::python
