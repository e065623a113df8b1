// spiraltorch-train: trains a character-level GPT on a text file, with a progress bar,
// evaluation on a held-out split, checkpoints, a loss plot and a text sample at the end. Launched
// by mpirun (or with torchrun's RANK/WORLD_SIZE for CUDA), it trains data-parallel: MPI for cpu,
// NCCL for cuda, with rank 0 alone logging, checkpointing, plotting and sampling.

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "trainer.h"

namespace {

using st_train::TrainConfig;

std::atomic<bool> interrupted{false};

extern "C" void on_interrupt(int) {
  interrupted.store(true);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the program at once
}

// One command-line option: its flag, what it sets, and its help line.
struct Option {
  const char* flag;
  const char* help;
  std::function<void(const std::string&)> set;
  std::function<std::string()> show;
};

template <typename T>
Option option(const char* flag, const char* help, T& value) {
  return {flag, help,
          [&value, flag](const std::string& text) {
            try {
              size_t used = 0;
              if constexpr (std::is_same_v<T, std::string>) {
                value = text;
                used = text.size();
              } else if constexpr (std::is_same_v<T, double>) {
                value = std::stod(text, &used);
              } else if constexpr (std::is_same_v<T, uint64_t>) {
                value = std::stoull(text, &used);
              } else {
                value = std::stoll(text, &used);
              }
              if (used != text.size()) throw std::invalid_argument(text);
            } catch (const std::logic_error&) {
              throw st::ValueError(std::string("[spiraltorch-train] --") + flag +
                                   " expects a number, got '" + text + "'");
            }
          },
          [&value] {
            if constexpr (std::is_same_v<T, std::string>) {
              std::string shown;  // newlines shown as \n, so that the help stays one line each
              for (char c : value) shown += c == '\n' ? std::string("\\n") : std::string(1, c);
              return value.empty() ? std::string("(none)") : shown;
            } else {
              std::ostringstream out;
              out << value;  // 0.8 and 3e-03, not 0.800000
              return out.str();
            }
          }};
}

std::string default_corpus() {
  // The corpus shipped with the sources, from the source tree or where install put it.
  for (const char* candidate : {ST_SOURCE_CORPUS, ST_INSTALLED_CORPUS})
    if (std::filesystem::exists(candidate)) return candidate;
  return ST_SOURCE_CORPUS;
}

// Whether a launcher started this process as one rank of several (mpirun, or torchrun's variables).
bool launched_as_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "WORLD_SIZE"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

std::string clock_text(double seconds) {
  const long s = std::lround(std::max(seconds, 0.0));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

// A one-line progress bar on a terminal; a line every 5% of the run otherwise (logs, CI).
void show_progress(const st_train::StepReport& r, bool terminal) {
  const double done = static_cast<double>(r.step) / static_cast<double>(r.steps);
  char line[200];
  constexpr int kBar = 24;
  std::string bar(static_cast<size_t>(kBar * done), '#');
  bar.resize(kBar, '.');
  std::snprintf(line, sizeof line,
                "step %6lld/%lld [%s] %3.0f%% | loss %.4f | %5.1fk tok/s | ETA %s",
                static_cast<long long>(r.step), static_cast<long long>(r.steps), bar.c_str(),
                100 * done, r.loss, r.tokens_per_second / 1000, clock_text(r.eta_seconds).c_str());
  const int64_t every = std::max<int64_t>(1, r.steps / 20);
  if (terminal) {
    std::fprintf(stderr, "\r%s", line);
    if (r.step == r.steps) std::fprintf(stderr, "\n");
  } else if (r.step % every == 0 || r.step == r.steps) {
    std::fprintf(stderr, "%s\n", line);
  }
}

}  // namespace

int main(int argc, char** argv) {
  TrainConfig config;
  config.data = default_corpus();
  config.out_dir = "runs/char-gpt";
  std::string resume, prompt = "\n";
  const std::vector<Option> options{
      option("data", "text file to train on", config.data),
      option("out", "folder for checkpoint.safetensors, loss.png and sample.txt", config.out_dir),
      option("resume",
             "continue the run saved in this checkpoint, with its settings unless given here",
             resume),
      option("device", "cpu, cuda, cuda:1, vulkan", config.device),
      option("layers", "transformer blocks", config.layers),
      option("d-model", "width of the residual stream", config.d_model),
      option("heads", "attention heads (divide d-model)", config.heads),
      option("context", "characters of context", config.context),
      option("dropout", "dropout probability", config.dropout),
      option("batch", "sequences per step", config.batch),
      option("steps", "training steps", config.steps),
      option("lr", "peak learning rate (AdamW)", config.lr),
      option("min-lr", "learning rate at the end of the cosine decay", config.min_lr),
      option("warmup", "steps of linear warmup", config.warmup),
      option("weight-decay", "AdamW's decoupled weight decay", config.weight_decay),
      option("grad-clip", "largest global gradient norm", config.grad_clip),
      option("eval-every", "steps between held-out evaluations", config.eval_every),
      option("eval-batches", "held-out batches per evaluation", config.eval_batches),
      option("checkpoint-every", "steps between checkpoints", config.checkpoint_every),
      option("sample-chars", "characters to sample at the end", config.sample_chars),
      option("temperature", "sampling temperature", config.temperature),
      option("prompt", "text the sample continues", prompt),
      option("seed", "seed of initialization, batches, dropout and sampling", config.seed)};
  const auto usage = [&](std::FILE* out) {
    std::fprintf(out,
                 "usage: spiraltorch-train [--option value]...\n\n"
                 "Trains a character-level GPT on a text file, evaluates it on the last 10%%,\n"
                 "checkpoints it, samples text and plots the loss curve. Ctrl-C saves a\n"
                 "checkpoint and stops; --resume continues exactly where it stopped.\n\n");
    for (const Option& o : options)
      std::fprintf(out, "  --%-17s %s (default: %s)\n", o.flag, o.help, o.show().c_str());
    std::fprintf(out, "  --%-17s %s\n", "help", "show this text");
  };

  try {
    std::map<std::string, const Option*> by_flag;
    for (const Option& o : options) by_flag[o.flag] = &o;
    std::vector<std::pair<const Option*, std::string>> given;
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        usage(stdout);
        return 0;
      }
      ST_CHECK(arg.rfind("--", 0) == 0, ValueError, "[spiraltorch-train] unexpected argument '",
               arg, "' (see --help)");
      std::string value;
      const size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
      } else {
        ST_CHECK(i + 1 < argc, ValueError, "[spiraltorch-train] ", arg, " needs a value");
        value = argv[++i];
      }
      const auto it = by_flag.find(arg.substr(2));
      ST_CHECK(it != by_flag.end(), ValueError, "[spiraltorch-train] unknown option ", arg,
               " (see --help)");
      it->second->set(value);
      given.emplace_back(it->second, value);
    }
    // A resumed run takes the checkpoint's settings, then whatever the command line changes.
    if (!resume.empty()) {
      config = st_train::Trainer::checkpoint_config(resume);
      for (const auto& [option, value] : given) option->set(value);
    }

    if (launched_as_rank())
      st::distributed::init_process_group(config.device.rfind("cuda", 0) == 0 ? "nccl" : "mpi");
    // Left on every way out, while MPI, NCCL and CUDA are all still up.
    struct LeaveGroup {
      ~LeaveGroup() {
        if (st::distributed::is_initialized()) st::distributed::destroy_process_group();
      }
    } leave_group;
    st_train::Trainer trainer(config, resume);
    const TrainConfig& c = trainer.config();
    // The other ranks train in silence; rank 0 speaks for the run.
    if (trainer.rank() != 0) {
      std::signal(SIGINT, on_interrupt);
      return trainer.train(interrupted, nullptr) ? 0 : 130;
    }
    size_t parameters = 0;
    for (const st::Tensor& p : trainer.model().parameters()) parameters += p.numel();
    std::fprintf(stderr,
                 "%s: %zu characters, vocabulary %zu | GPT %lld layers, d_model %lld, %lld heads, "
                 "context %lld, %.2fM parameters | %s\n",
                 c.data.c_str(),
                 trainer.corpus().train().size() + trainer.corpus().validation().size(),
                 trainer.corpus().vocab().size(), static_cast<long long>(c.layers),
                 static_cast<long long>(c.d_model), static_cast<long long>(c.heads),
                 static_cast<long long>(c.context), parameters / 1e6, c.device.c_str());
    if (trainer.world_size() > 1)
      std::fprintf(stderr, "data-parallel over %d ranks (%s): %lld sequences per rank and step\n",
                   trainer.world_size(), st::distributed::get_backend().c_str(),
                   static_cast<long long>(c.batch / trainer.world_size()));
    if (!resume.empty())
      std::fprintf(stderr, "resuming from %s at step %lld\n", resume.c_str(),
                   static_cast<long long>(trainer.step()));

    std::signal(SIGINT, on_interrupt);
    const bool terminal = isatty(STDERR_FILENO) != 0;
    const bool finished =
        trainer.train(interrupted, [terminal](const auto& r) { show_progress(r, terminal); });
    const std::string checkpoint =
        (std::filesystem::path(trainer.config().out_dir) / "checkpoint.safetensors").string();
    if (!finished) {
      std::fprintf(stderr,
                   "\ninterrupted after step %lld: checkpoint saved to %s\n"
                   "continue with: spiraltorch-train --resume %s\n",
                   static_cast<long long>(trainer.step()), checkpoint.c_str(), checkpoint.c_str());
      return 130;
    }
    const auto& h = trainer.history();
    std::fprintf(stderr, "held-out loss: %.4f at step %lld -> %.4f at step %lld\n", h.eval.front(),
                 static_cast<long long>(h.eval_step.front()), h.eval.back(),
                 static_cast<long long>(h.eval_step.back()));
    std::fprintf(stderr, "checkpoint: %s\nloss curve: %s\n", checkpoint.c_str(),
                 trainer.plot_losses().c_str());
    if (c.sample_chars > 0) {
      const std::string text = trainer.sample(prompt, c.sample_chars, c.temperature);
      const std::string path = (std::filesystem::path(c.out_dir) / "sample.txt").string();
      std::ofstream(path) << prompt << text << "\n";
      std::printf("---- sample (temperature %.2f) ----\n%s%s\n", c.temperature, prompt.c_str(),
                  text.c_str());
    }
    return 0;
  } catch (const st::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
