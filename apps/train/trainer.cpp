#include "trainer.h"

#include <spiraltorch/autograd.h>
#include <spiraltorch/serialize.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "plot.h"

namespace st_train {

using st::Tensor;
using json = nlohmann::json;

namespace {

constexpr const char* kFormat = "spiraltorch-train/1";

// A generator for one purpose and index: batches of step s and held-out batch i draw from
// independent streams, so no draw depends on what ran before it.
std::mt19937_64 stream(uint64_t seed, uint64_t purpose, uint64_t index) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(purpose), static_cast<uint32_t>(index),
                    static_cast<uint32_t>(index >> 32)};
  return std::mt19937_64(seq);
}

// The settings a run trains with, as saved in its checkpoints (the rest of TrainConfig says where
// outputs go and how often): one list, for writing them and for reading them back.
template <typename Config, typename Visit>
void training_settings(Config& c, Visit&& visit) {
  visit("data", c.data);
  visit("context", c.context);
  visit("layers", c.layers);
  visit("d_model", c.d_model);
  visit("heads", c.heads);
  visit("dropout", c.dropout);
  visit("batch", c.batch);
  visit("steps", c.steps);
  visit("lr", c.lr);
  visit("min_lr", c.min_lr);
  visit("warmup", c.warmup);
  visit("weight_decay", c.weight_decay);
  visit("grad_clip", c.grad_clip);
  visit("eval_every", c.eval_every);
  visit("eval_batches", c.eval_batches);
  visit("seed", c.seed);
}

json config_json(const TrainConfig& c) {
  json j;
  training_settings(c, [&](const char* key, const auto& value) { j[key] = value; });
  return j;
}

st::SafetensorsFile read_checkpoint(const std::string& path) {
  st::SafetensorsFile file = st::load_safetensors(path);
  const auto& meta = file.metadata;
  ST_CHECK(meta.count("format") && meta.at("format") == kFormat && meta.count("config") &&
               meta.count("vocab") && meta.count("step"),
           ValueError, "[spiraltorch-train] '", path, "' is not a checkpoint of this program (",
           kFormat, ")");
  return file;
}

void check_config(const TrainConfig& c) {
  ST_CHECK(c.context > 0 && c.layers > 0 && c.d_model > 0 && c.heads > 0 && c.batch > 0 &&
               c.steps > 0 && c.eval_every > 0 && c.eval_batches > 0 && c.checkpoint_every > 0,
           ValueError,
           "[spiraltorch-train] context, layers, d_model, heads, batch, steps, eval_every, "
           "eval_batches and checkpoint_every must be positive");
  ST_CHECK(c.d_model % c.heads == 0, ValueError, "[spiraltorch-train] d_model (", c.d_model,
           ") must be a multiple of heads (", c.heads, ")");
  ST_CHECK(c.warmup >= 0 && c.warmup < c.steps, ValueError, "[spiraltorch-train] warmup (",
           c.warmup, ") must be below steps (", c.steps, ")");
  ST_CHECK(c.temperature > 0, ValueError, "[spiraltorch-train] temperature must be positive");
}

Tensor vector_tensor(const std::vector<float>& v) {
  return st::from_buffer<float>(v.data(), {static_cast<int64_t>(v.size())});
}

}  // namespace

CharCorpus::CharCorpus(std::string text) {
  std::vector<bool> seen(256, false);
  for (char c : text) seen[static_cast<unsigned char>(c)] = true;
  for (int c = 0; c < 256; ++c)
    if (seen[c]) vocab_.push_back(static_cast<char>(c));
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for (char c : text) ids.push_back(encode(c));
  const size_t split = ids.size() * 9 / 10;
  train_.assign(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(split));
  validation_.assign(ids.begin() + static_cast<std::ptrdiff_t>(split), ids.end());
}

CharCorpus CharCorpus::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ST_CHECK(in.good(), ValueError, "[spiraltorch-train] cannot read the text file '", path, "'");
  std::ostringstream text;
  text << in.rdbuf();
  return CharCorpus(text.str());
}

int64_t CharCorpus::encode(char c) const {
  const auto it = std::lower_bound(vocab_.begin(), vocab_.end(), c, [](char a, char b) {
    return static_cast<unsigned char>(a) < static_cast<unsigned char>(b);
  });
  ST_CHECK(it != vocab_.end() && *it == c, ValueError, "[spiraltorch-train] character code ",
           static_cast<int>(static_cast<unsigned char>(c)), " is not in the vocabulary");
  return it - vocab_.begin();
}

std::string CharCorpus::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  for (int64_t id : ids) out.push_back(vocab_.at(static_cast<size_t>(id)));
  return out;
}

TrainConfig Trainer::checkpoint_config(const std::string& path) {
  const json j = json::parse(read_checkpoint(path).metadata.at("config"));
  TrainConfig c;
  c.out_dir = std::filesystem::path(path).parent_path().string();
  training_settings(c, [&](const char* key, auto& value) {
    value = j.at(key).get<std::decay_t<decltype(value)>>();
  });
  return c;
}

Trainer::Trainer(TrainConfig config, const std::string& resume)
    : config_(std::move(config)), device_(config_.device) {
  if (st::distributed::is_initialized()) {
    rank_ = st::distributed::get_rank();
    world_size_ = st::distributed::get_world_size();
    ST_CHECK(config_.batch % world_size_ == 0, ValueError, "[spiraltorch-train] --batch ",
             config_.batch, " must divide among the ", world_size_, " ranks");
    // The group's device: cpu for MPI, this rank's GPU for NCCL.
    const st::Device group_device = st::distributed::device();
    ST_CHECK(group_device.type == device_.type, DeviceError, "[spiraltorch-train] --device ",
             config_.device, " in a '", st::distributed::get_backend(),
             "' process group, which takes tensors on ", group_device);
    device_ = group_device;
  }
  st::SafetensorsFile checkpoint;
  if (!resume.empty()) checkpoint = read_checkpoint(resume);
  check_config(config_);
  corpus_ = CharCorpus::from_file(config_.data);
  ST_CHECK(static_cast<int64_t>(corpus_.validation().size()) > config_.context + 1, ValueError,
           "[spiraltorch-train] '", config_.data,
           "' is too short for a held-out split of one context (", config_.context + 1,
           " characters)");
  if (!resume.empty())
    ST_CHECK(checkpoint.metadata.at("vocab") == corpus_.vocab(), ValueError,
             "[spiraltorch-train] the vocabulary of '", config_.data,
             "' differs from the checkpoint's: the text file changed");

  st::manual_seed(config_.seed);
  model_ = std::make_unique<GPT>(GPTConfig{static_cast<int64_t>(corpus_.vocab().size()),
                                           config_.context, config_.layers, config_.d_model,
                                           config_.heads, config_.dropout});
  model_->to(device_);
  optimizer_ = std::make_unique<st::optim::AdamW>(
      model_->parameters(),
      st::optim::AdamOptions{
          .lr = config_.lr, .beta1 = 0.9, .beta2 = 0.95, .weight_decay = config_.weight_decay});
  schedule_ = std::make_unique<st::optim::WarmupCosineLR>(*optimizer_, config_.warmup,
                                                          config_.steps, config_.min_lr);
  if (!resume.empty()) load_checkpoint(resume);
  if (st::distributed::is_initialized()) {
    const st::nn::NamedTensors named = model_->named_parameters();
    std::vector<Tensor> tensors;
    std::vector<std::string> names;
    for (const auto& [name, t] : named) {
      names.push_back(name);
      tensors.push_back(t);
    }
    st::distributed::broadcast_parameters(tensors, names);
    reducer_ =
        std::make_unique<st::distributed::GradientReducer>(model_->parameters(), 25 * 1024 * 1024);
  }
}

std::pair<Tensor, Tensor> Trainer::batch(int64_t index, bool held_out) const {
  const std::vector<int64_t>& ids = held_out ? corpus_.validation() : corpus_.train();
  const int64_t B = config_.batch, T = config_.context;
  std::mt19937_64 gen = stream(config_.seed, held_out ? 2 : 1, static_cast<uint64_t>(index));
  std::uniform_int_distribution<int64_t> start(0, static_cast<int64_t>(ids.size()) - T - 1);
  std::vector<int64_t> x(static_cast<size_t>(B * T)), y(static_cast<size_t>(B * T));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t s = start(gen);
    std::copy_n(ids.begin() + s, T, x.begin() + b * T);
    std::copy_n(ids.begin() + s + 1, T, y.begin() + b * T);
  }
  return {st::from_buffer<int64_t>(x.data(), {B, T}).to(device_),
          st::from_buffer<int64_t>(y.data(), {B * T}).to(device_)};
}

Tensor Trainer::batch_loss(int64_t index, bool held_out) const {
  auto [x, y] = batch(index, held_out);
  if (world_size_ > 1) {  // this rank's rows of the batch
    const int64_t rows = config_.batch / world_size_;
    x = x.narrow(0, rank_ * rows, rows);
    y = y.narrow(0, rank_ * rows * config_.context, rows * config_.context);
  }
  const Tensor logits = model_->forward(x);
  return st::cross_entropy(logits.view({-1, logits.shape()[2]}), y);
}

float Trainer::mean_over_ranks(const Tensor& loss) const {
  if (world_size_ == 1) return loss.item<float>();
  const Tensor mean = loss.detach().to(st::DType::Float32).reshape({1}).clone();
  st::distributed::all_reduce(mean, st::distributed::ReduceOp::Avg);
  return mean.item<float>();
}

bool Trainer::stop_requested(const std::atomic<bool>& stop) const {
  if (world_size_ == 1) return stop.load();
  // Signals reach the ranks at different moments; they must stop after the same step.
  const Tensor flag = st::full({1}, stop.load() ? 1 : 0, {st::DType::Int32, device_});
  st::distributed::all_reduce(flag, st::distributed::ReduceOp::Max);
  return flag.item<int>() != 0;
}

bool Trainer::train(const std::atomic<bool>& stop,
                    const std::function<void(const StepReport&)>& report) {
  const std::vector<Tensor> params = model_->parameters();
  const auto started = std::chrono::steady_clock::now();
  const int64_t first = step_;
  if (history_.eval.empty()) {  // the starting point of the held-out curve
    history_.eval_step.push_back(0);
    history_.eval.push_back(evaluate());
  }
  model_->train();
  while (step_ < config_.steps) {
    if (stop_requested(stop)) {
      save_checkpoint();
      return false;
    }
    schedule_->set_step(step_);
    const Tensor loss = batch_loss(step_, false);
    optimizer_->zero_grad();
    loss.backward();
    st::optim::clip_grad_norm_(params, config_.grad_clip);
    optimizer_->step();
    history_.train.push_back(mean_over_ranks(loss));
    ++step_;
    if (step_ % config_.eval_every == 0 || step_ == config_.steps) {
      history_.eval_step.push_back(step_);
      history_.eval.push_back(evaluate());
    }
    if (step_ % config_.checkpoint_every == 0 || step_ == config_.steps) save_checkpoint();
    if (report) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      const double done = static_cast<double>(step_ - first);
      const double tokens = done * static_cast<double>(config_.batch * config_.context);
      report({step_, config_.steps, history_.train.back(), tokens / std::max(seconds, 1e-9),
              seconds / done * static_cast<double>(config_.steps - step_)});
    }
  }
  return true;
}

float Trainer::evaluate() {
  st::NoGradGuard no_grad;
  model_->eval();
  double total = 0;
  for (int64_t i = 0; i < config_.eval_batches; ++i) {
    total += mean_over_ranks(batch_loss(i, true));
  }
  model_->train();
  return static_cast<float>(total / static_cast<double>(config_.eval_batches));
}

std::string Trainer::save_checkpoint() const {
  std::map<std::string, Tensor> tensors;
  for (const auto& [name, t] : model_->state_dict()) tensors.emplace("model." + name, t);
  for (const auto& [name, t] : optimizer_->state_dict()) tensors.emplace("optim." + name, t);
  tensors.emplace("history.train", vector_tensor(history_.train));
  tensors.emplace("history.eval", vector_tensor(history_.eval));
  tensors.emplace("history.eval_step",
                  st::from_buffer<int64_t>(history_.eval_step.data(),
                                           {static_cast<int64_t>(history_.eval_step.size())}));
  const st::RngState rng = st::rng_state(device_.type);
  const std::map<std::string, std::string> metadata{{"format", kFormat},
                                                    {"config", config_json(config_).dump()},
                                                    {"vocab", corpus_.vocab()},
                                                    {"step", std::to_string(step_)},
                                                    {"rng_seed", std::to_string(rng.seed)},
                                                    {"rng_offset", std::to_string(rng.offset)}};
  const std::string path = (std::filesystem::path(config_.out_dir) / "checkpoint.safetensors");
  if (rank_ != 0) return path;  // the ranks hold the same state: rank 0 writes it
  std::filesystem::create_directories(config_.out_dir);
  st::save_safetensors(path, tensors, metadata);
  return path;
}

void Trainer::load_checkpoint(const std::string& path) {
  const st::SafetensorsFile file = st::load_safetensors(path, device_);
  st::nn::StateDict model_state;
  std::map<std::string, Tensor> optim_state;
  for (const auto& [name, t] : file.tensors) {
    if (name.rfind("model.", 0) == 0) model_state.emplace(name.substr(6), t);
    if (name.rfind("optim.", 0) == 0) optim_state.emplace(name.substr(6), t);
  }
  model_->load_state_dict(model_state);
  optimizer_->load_state_dict(optim_state);
  const auto values = [&](const char* name) { return file.tensors.at(name).to(st::kCPU); };
  history_.train = values("history.train").to_vector<float>();
  history_.eval = values("history.eval").to_vector<float>();
  history_.eval_step = values("history.eval_step").to_vector<int64_t>();
  step_ = std::stoll(file.metadata.at("step"));
  st::set_rng_state(
      {std::stoull(file.metadata.at("rng_seed")), std::stoull(file.metadata.at("rng_offset"))},
      device_.type);
}

std::string Trainer::sample(const std::string& prompt, int64_t length, double temperature) {
  st::NoGradGuard no_grad;
  model_->eval();
  std::vector<int64_t> ids;
  for (char c : prompt) ids.push_back(corpus_.encode(c));
  if (ids.empty()) ids.push_back(corpus_.encode(corpus_.vocab().front()));
  std::mt19937_64 gen = stream(config_.seed, 3, 0);
  const int64_t prompt_size = static_cast<int64_t>(ids.size());
  for (int64_t n = 0; n < length; ++n) {
    const int64_t t = std::min<int64_t>(static_cast<int64_t>(ids.size()), config_.context);
    const Tensor context =
        st::from_buffer<int64_t>(ids.data() + ids.size() - static_cast<size_t>(t), {1, t})
            .to(device_);
    const Tensor last = model_->forward(context).select(1, t - 1).select(0, 0);
    const std::vector<double> p = st::softmax(st::div(last, temperature), 0).to_vector<double>();
    std::discrete_distribution<int64_t> next(p.begin(), p.end());
    ids.push_back(next(gen));
  }
  model_->train();
  return corpus_.decode(std::vector<int64_t>(ids.begin() + prompt_size, ids.end()));
}

std::string Trainer::plot_losses() const {
  std::filesystem::create_directories(config_.out_dir);
  const std::string path = (std::filesystem::path(config_.out_dir) / "loss.png");
  write_loss_plot(path, history_.train, history_.eval_step, history_.eval);
  return path;
}

}  // namespace st_train
