#pragma once
// The loss curve as a PNG image, drawn with cairo.

#include <cstdint>
#include <string>
#include <vector>

namespace st_train {

// Training loss per step (raw and smoothed) and held-out loss at `eval_step`, written atomically
// to `path`.
void write_loss_plot(const std::string& path, const std::vector<float>& train,
                     const std::vector<int64_t>& eval_step, const std::vector<float>& eval);

}  // namespace st_train
