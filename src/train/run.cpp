#include "train/run.hpp"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>

#include "data/corpus.hpp"
#include "io/checkpoint.hpp"
#include "io/run_file.hpp"
#include "matmul.hpp"
#include "parallel/comm.hpp"
#include "parallel/runtime.hpp"
#include "train/trainer.hpp"
#include "version.hpp"

namespace moe {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) {
  g_stop_signal = sig;
}

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string host_name() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

// Every key that fixes the parameter layout must match the checkpoint's.
void check_same_shape(const Config& cfg, const Checkpoint& ck) {
  const std::map<std::string, std::int64_t> now = model_shape(cfg.model);
  for (const auto& [key, value] : ck.shape) {
    auto it = now.find(key);
    if (it != now.end() && it->second != value)
      throw UserError(key + " = " + std::to_string(it->second) + " differs from the checkpoint's " +
                      std::to_string(value) + " (a resumed run keeps its model shape)");
  }
}

void write_identity(RunFile& f, const Config& cfg, const Corpus& corpus, int ranks) {
  f.set_attr("/suite_version", std::string(suite_version()));
  f.set_attr("/git_commit", std::string(git_commit()));
  f.set_attr("/kokkos_version", std::int64_t(KOKKOS_VERSION));
  f.set_attr("/kokkos_backend", std::string(Runtime::backend_name()));
  f.set_attr("/gemm_backend", std::string(gemm_backend()));
  f.set_attr("/mpi_ranks", std::int64_t(ranks));
  f.set_attr("/device", host_name() + " " + Runtime::backend_name());
  f.set_attr("/seed", std::int64_t(cfg.train.seed));
  f.set_attr("/data_description", corpus.description);
  f.set_attr("/data_unigram_entropy", corpus.unigram_entropy);
  f.set_attr("/data_entropy_rate", corpus.entropy_rate);
}

// What the ranks cannot divide is refused before training.
void check_decomposition(const Config& cfg, int ranks) {
  const std::string P = std::to_string(ranks);
  if (cfg.train.batch_size % ranks != 0)
    throw UserError("train.batch_size = " + std::to_string(cfg.train.batch_size) +
                    " is not divisible by the " + P + " MPI ranks (allowed: a multiple of " + P +
                    ")");
  const int ep = cfg.parallel.expert_parallel == 0 ? ranks : cfg.parallel.expert_parallel;
  if (ranks % ep != 0)
    throw UserError("parallel.expert_parallel = " + std::to_string(ep) + " does not divide the " +
                    P + " MPI ranks (allowed: a divisor of " + P + ", or 0 = all ranks)");
  if (cfg.model.num_experts > 1 && cfg.model.num_experts % ep != 0)
    throw UserError("model.num_experts = " + std::to_string(cfg.model.num_experts) +
                    " is not divisible by the expert-parallel group of " + std::to_string(ep) +
                    " ranks (allowed: a multiple of parallel.expert_parallel, which is 0 = all " +
                    P + " ranks by default)");
  if (ranks > 1 && cfg.router.drop_policy == "probability" && cfg.router.capacity_factor > 0)
    throw UserError("router.drop_policy = \"probability\" with " + P +
                    " MPI ranks (allowed: \"position\"; dropping by probability over the "
                    "global batch is single-rank only)");
}

}  // namespace

void install_stop_signal_handlers() {
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
}

RunOutcome run_training(const Config& cfg, const RunOptions& opts, MPI_Comm comm) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  check_decomposition(cfg, ranks);  // every rank refuses the same way, before any file exists
  const int ep = cfg.parallel.expert_parallel == 0 ? ranks : cfg.parallel.expert_parallel;
  const Comm ranks_of_run(comm, ep);
  std::ostream* log = rank == 0 ? opts.log : nullptr;
  const std::string& path = cfg.output.path;

  // Everything is checked before any file is created or changed, and every rank learns whether
  // any rank failed (data or a checkpoint may be unreadable on one node only): all of them
  // refuse together instead of some training on while the others have gone.
  Corpus corpus;
  Checkpoint ck;
  std::string input_error;
  try {
    corpus = load_corpus(cfg);
    if (opts.resume) {
      try {
        ck = read_checkpoint(checkpoint_path(path));
      } catch (const std::exception& e) {
        throw UserError(std::string("--resume: ") + e.what());
      }
      check_same_shape(cfg, ck);
    }
  } catch (const std::exception& e) {
    input_error = e.what();
  }
  input_error = agreed_error(comm, input_error);
  if (!input_error.empty()) throw UserError(input_error);

  // One writer: rank 0 holds the run file; the others learn whether it could be created.
  std::unique_ptr<RunFile> file;
  std::string file_error;
  if (rank == 0) {
    try {
      file = std::make_unique<RunFile>(path,
                                       opts.resume ? RunFile::Mode::Append : RunFile::Mode::Create);
      if (opts.resume && file->string_attr("/status") == "complete")
        file_error = "--resume: run file '" + path + "' is already complete";
    } catch (const std::exception& e) {
      file_error = std::string(e.what()) + " (output.path)";
    }
  }
  int failed = file_error.empty() ? 0 : 1;
  MPI_Bcast(&failed, 1, MPI_INT, 0, comm);
  if (failed) throw UserError(rank == 0 ? file_error : "the run file could not be opened");
  if (log) {
    *log << "moe-suite " << suite_version() << " (" << git_commit() << ")  Kokkos "
         << KOKKOS_VERSION / 10000 << "." << KOKKOS_VERSION / 100 % 100 << "."
         << KOKKOS_VERSION % 100 << " " << Runtime::backend_name() << "  gemm " << gemm_backend()
         << "  ranks " << ranks << "\n"
         << "data: " << corpus.description << "\n";
    char line[160];
    std::snprintf(line, sizeof line,
                  "data: unigram entropy %.4f nats/token, entropy rate %.4f nats/token "
                  "(the best reachable loss)\n",
                  corpus.unigram_entropy, corpus.entropy_rate);
    *log << line;
  }

  if (file) {
    file->set_attr("/status", std::string("running"));
    if (opts.resume) {
      file->truncate(ck.series_rows);
      file->set_attr("/resume_count", file->int_attr("/resume_count") + 1);
    } else {
      write_identity(*file, cfg, corpus, ranks);
      file->set_attr("/start_time", now_iso8601());
      file->set_attr("/resume_count", std::int64_t(0));
    }
    file->set_attr("/expert_parallel", std::int64_t(ep));
    file->set_attr("/data_parallel", std::int64_t(ranks));
    file->write_text("/config", config_to_toml(cfg));
    file->flush();
  }

  try {
    Trainer trainer(cfg, corpus, file.get(), log, &ranks_of_run);
    std::int64_t first = 0;
    if (opts.resume) first = trainer.restore(ck);
    if (file) file->set_attr("/num_params", std::int64_t(trainer.model().num_params()));
    if (log)
      *log << "model: " << trainer.model().num_params() << " parameters, "
           << trainer.model().num_moe_layers() << " MoE layers of " << cfg.model.num_experts
           << " experts (top-" << cfg.model.top_k << ", router " << cfg.router.type << "), "
           << ranks << " data-parallel ranks, expert-parallel groups of " << ep
           << (opts.resume ? ", resumed at step " + std::to_string(first) : std::string()) << "\n";
    const TrainSummary s = trainer.train(first, opts.stop_after, [] { return g_stop_signal != 0; });
    if (!file) return s.finished ? RunOutcome::Complete : RunOutcome::Stopped;
    file->set_attr("/final_loss", s.last_loss);
    file->set_attr("/final_val_loss", s.last_val_loss);
    file->set_attr("/end_time", now_iso8601());
    if (!s.finished) {
      file->flush();
      if (log)
        *log << "stopped after step " << s.next_step << " (checkpoint " << checkpoint_path(path)
             << "); continue with --resume\n";
      return RunOutcome::Stopped;
    }
    file->set_attr("/status", std::string("complete"));
    file->flush();
    if (log) *log << "wrote " << path << "\n";
    return RunOutcome::Complete;
  } catch (const std::exception& e) {
    // Keep what was trained so far: the file stays, marked failed with the reason. Failures
    // inside a step are agreed on by every rank, so all of them get here together.
    if (file) {
      file->set_attr("/status", std::string("failed"));
      file->set_attr("/error", std::string(e.what()));
      file->set_attr("/end_time", now_iso8601());
      file->flush();
    }
    if (rank == 0) std::fprintf(stderr, "moe-train: run failed: %s\n", e.what());
    return RunOutcome::Failed;
  }
}

}  // namespace moe
