#pragma once
// A block of device memory shared by a tensor and its views. It carries the version counter that
// autograd uses to detect in-place changes to tensors saved for backward.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "spiraltorch/device.h"

namespace st {

class Storage {
 public:
  using Deleter = std::function<void(void*)>;

  // Takes ownership of `data` (nbytes on `device`); `deleter` releases it.
  Storage(void* data, size_t nbytes, Device device, Deleter deleter)
      : data_(data), nbytes_(nbytes), device_(device), deleter_(std::move(deleter)) {}
  ~Storage() {
    if (deleter_) deleter_(data_);
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

  // Views made by view ops that are alive now. An in-place op recording a graph is refused while
  // any exist: those views would keep the old history (see assign_in_place in src/ops).
  bool has_live_views() const { return live_views_.load(std::memory_order_relaxed) > 0; }
  void add_view() { live_views_.fetch_add(1, std::memory_order_relaxed); }
  void remove_view() { live_views_.fetch_sub(1, std::memory_order_relaxed); }

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  Deleter deleter_;
  std::atomic<uint64_t> version_{0};
  std::atomic<int64_t> live_views_{0};
};

}  // namespace st
