#include "plot.h"

#include <cairo.h>
#include <spiraltorch/error.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

namespace st_train {

namespace {

constexpr int kWidth = 800, kHeight = 480;
constexpr double kLeft = 70, kRight = 20, kTop = 40, kBottom = 55;

// "Nice" tick spacing: 1, 2 or 5 times a power of ten, giving about `target` ticks over `span`.
double tick_step(double span, int target) {
  const double raw = span / target;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (raw <= m * power) return m * power;
  return 10 * power;
}

void text(cairo_t* cr, double x, double y, const std::string& s, double align_x, double align_y) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, s.c_str(), &e);
  cairo_move_to(cr, x - e.width * align_x - e.x_bearing, y - e.height * align_y - e.y_bearing);
  cairo_show_text(cr, s.c_str());
}

std::string number(double v, double step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, step >= 1 ? "%.0f" : step >= 0.1 ? "%.1f" : "%.2f", v);
  return buf;
}

}  // namespace

void write_loss_plot(const std::string& path, const std::vector<float>& train,
                     const std::vector<int64_t>& eval_step, const std::vector<float>& eval) {
  ST_CHECK(!train.empty(), ValueError, "[loss plot] no training steps to plot");
  std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> surface(
      cairo_image_surface_create(CAIRO_FORMAT_RGB24, kWidth, kHeight), cairo_surface_destroy);
  std::unique_ptr<cairo_t, decltype(&cairo_destroy)> context(cairo_create(surface.get()),
                                                             cairo_destroy);
  cairo_t* cr = context.get();
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, 12);

  const double steps = static_cast<double>(train.size());
  double lo = *std::min_element(train.begin(), train.end());
  double hi = *std::max_element(train.begin(), train.end());
  for (float v : eval) lo = std::min(lo, static_cast<double>(v)), hi = std::max(hi, double{v});
  const double y_step = tick_step(std::max(hi - lo, 1e-3), 6);
  lo = std::floor(lo / y_step) * y_step;
  hi = std::ceil(hi / y_step) * y_step;
  const double x_step = tick_step(steps, 8);
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  const auto px = [&](double step) { return kLeft + plot_w * step / steps; };
  const auto py = [&](double loss) { return kTop + plot_h * (hi - loss) / (hi - lo); };

  // Grid, ticks and labels.
  cairo_set_line_width(cr, 1);
  for (double y = lo; y <= hi + y_step / 2; y += y_step) {
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, kLeft, std::round(py(y)) + 0.5);
    cairo_line_to(cr, kLeft + plot_w, std::round(py(y)) + 0.5);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    text(cr, kLeft - 6, py(y), number(y, y_step), 1, 0.5);
  }
  for (double x = 0; x <= steps + x_step / 2; x += x_step) {
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    text(cr, px(x), kTop + plot_h + 8, number(x, 1), 0.5, 0);
  }
  cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
  cairo_rectangle(cr, kLeft + 0.5, kTop + 0.5, plot_w, plot_h);
  cairo_stroke(cr);
  text(cr, kLeft + plot_w / 2, kHeight - 12, "step", 0.5, 1);
  cairo_save(cr);
  cairo_translate(cr, 18, kTop + plot_h / 2);
  cairo_rotate(cr, -M_PI / 2);
  text(cr, 0, 0, "cross-entropy loss (nats/char)", 0.5, 0.5);
  cairo_restore(cr);
  cairo_set_font_size(cr, 15);
  text(cr, kLeft, 14, "spiraltorch-train: character-level GPT", 0, 0);
  cairo_set_font_size(cr, 12);

  // Raw training loss, then its exponential moving average, then the held-out points.
  cairo_rectangle(cr, kLeft, kTop, plot_w, plot_h);
  cairo_clip(cr);
  cairo_set_source_rgb(cr, 0.75, 0.82, 0.95);
  for (size_t i = 0; i < train.size(); ++i) cairo_line_to(cr, px(i + 1.0), py(train[i]));
  cairo_stroke(cr);
  cairo_set_source_rgb(cr, 0.1, 0.3, 0.8);
  cairo_set_line_width(cr, 2);
  double average = train.front();
  for (size_t i = 0; i < train.size(); ++i) {
    average = i == 0 ? train[0] : 0.95 * average + 0.05 * train[i];
    cairo_line_to(cr, px(i + 1.0), py(average));
  }
  cairo_stroke(cr);
  cairo_set_source_rgb(cr, 0.85, 0.35, 0.1);
  for (size_t i = 0; i < eval.size(); ++i)
    cairo_line_to(cr, px(static_cast<double>(eval_step[i])), py(eval[i]));
  cairo_stroke(cr);
  for (size_t i = 0; i < eval.size(); ++i) {
    cairo_arc(cr, px(static_cast<double>(eval_step[i])), py(eval[i]), 3.5, 0, 2 * M_PI);
    cairo_fill(cr);
  }
  cairo_reset_clip(cr);

  // Legend.
  const double lx = kLeft + plot_w - 190, ly = kTop + 16;
  const struct {
    double r, g, b;
    const char* label;
  } entries[] = {{0.75, 0.82, 0.95, "training loss"},
                 {0.1, 0.3, 0.8, "training loss, smoothed"},
                 {0.85, 0.35, 0.1, "held-out loss"}};
  for (int i = 0; i < 3; ++i) {
    cairo_set_source_rgb(cr, entries[i].r, entries[i].g, entries[i].b);
    cairo_move_to(cr, lx, ly + 18 * i);
    cairo_line_to(cr, lx + 24, ly + 18 * i);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    text(cr, lx + 32, ly + 18 * i, entries[i].label, 0, 0.5);
  }

  cairo_surface_flush(surface.get());
  const std::string temporary = path + ".tmp";
  const cairo_status_t status = cairo_surface_write_to_png(surface.get(), temporary.c_str());
  ST_CHECK(status == CAIRO_STATUS_SUCCESS, Error, "[loss plot] cannot write '", temporary,
           "': ", cairo_status_to_string(status));
  std::filesystem::rename(temporary, path);
}

}  // namespace st_train
