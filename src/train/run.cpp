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
#include "train/memory_estimate.hpp"
#include "train/metrics_recorder.hpp"
#include "train/output_claim.hpp"
#include "train/resume_check.hpp"
#include "train/run_schema.hpp"
#include "train/trainer.hpp"
#include "util/user_error.hpp"
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

// Ranks of comm on this node (they share its memory).
int ranks_on_this_node(MPI_Comm comm) {
  MPI_Comm local;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
  int n = 1;
  MPI_Comm_size(local, &n);
  MPI_Comm_free(&local);
  return n;
}

// Rank 0's error, or "", on every rank.
std::string from_rank0(MPI_Comm comm, const std::string& mine) {
  int failed = mine.empty() ? 0 : 1;
  MPI_Bcast(&failed, 1, MPI_INT, 0, comm);
  if (!failed) return "";
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  return rank == 0 ? mine : "rank 0 refused the run";
}

void write_identity(RunFile& f, const Config& cfg, const Corpus& corpus, int ranks) {
  f.set_attr("/suite_version", std::string(suite_version()));
  f.set_attr("/git_commit", std::string(git_commit()));
  f.set_attr("/kokkos_version", std::int64_t(KOKKOS_VERSION));
  f.set_attr("/kokkos_backend", std::string(Runtime::backend_name()));
  f.set_attr("/gemm_backend", std::string(gemm_backend()));
  f.set_attr("/matmul_precision", cfg.train.matmul_precision);
  f.set_attr("/mpi_ranks", std::int64_t(ranks));
  f.set_attr("/device", host_name() + " " + Runtime::backend_name());
  f.set_attr("/seed", std::int64_t(cfg.train.seed));
  MetricsRecorder::record_data(f, corpus);
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

// Rank 0 claims the output (output_claim.hpp) for every rank: the lock is held until the run
// ends and released by the OS if the process dies.
std::unique_ptr<OutputLock> claim_output_on_rank0(const Config& cfg, const RunOptions& opts,
                                                  MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  std::unique_ptr<OutputLock> lock;
  std::string error;
  if (rank == 0) {
    try {
      lock = claim_output(cfg, opts.inputs, opts.resume, opts.overwrite);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  error = from_rank0(comm, error);
  if (!error.empty()) throw UserError(error);
  return lock;
}

// Memory, data and checkpoint, checked before any file is created or changed; every rank
// learns whether any rank failed (data or a checkpoint may be unreadable on one node only):
// all of them refuse together instead of some training on while the others have gone.
void load_inputs(const Config& cfg, const RunOptions& opts, MPI_Comm comm, Corpus& corpus,
                 Checkpoint& ck) {
  int ranks = 1;
  MPI_Comm_size(comm, &ranks);
  std::string error;
  try {
    const std::string memory = check_memory(cfg, ranks, ranks_on_this_node(comm));
    if (!memory.empty()) throw UserError(memory);
    corpus = load_corpus(cfg);
    if (opts.resume) {
      try {
        ck = read_checkpoint(checkpoint_path(cfg.output.path));
      } catch (const std::exception& e) {
        throw UserError(std::string("--resume: ") + e.what());
      }
      check_resume_config(ck.config_text, config_to_toml(cfg));
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  error = agreed_error(comm, error);
  if (!error.empty()) throw UserError(error);
}

// Rank 0's run file (null on the other ranks). A new run writes a first checkpoint (step 0)
// and then its header, so once anything of it is on disk --resume can continue it; a resumed
// run's file is rebuilt from the checkpoint's image of it, whatever a kill left at the path.
std::unique_ptr<RunFile> open_run_file(const Config& cfg, const RunOptions& opts,
                                       const Checkpoint& ck, const Corpus& corpus, int ep,
                                       MPI_Comm comm) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  const std::string& path = cfg.output.path;
  std::unique_ptr<RunFile> file;
  std::string error;
  if (rank == 0) {
    try {
      if (opts.resume && !ck.run_file_image.empty()) {
        file = std::make_unique<RunFile>(path, ck.run_file_image);
        file->set_attr("/checkpoint_step", std::int64_t(ck.next_step));
      } else if (opts.resume) {  // a checkpoint of an older version: cut the series back
        file = std::make_unique<RunFile>(path, RunFile::Mode::Append);
        file->truncate(ck.series_rows);
      } else {
        std::remove(checkpoint_path(path).c_str());  // --overwrite: an old checkpoint goes
        file = std::make_unique<RunFile>(path, RunFile::Mode::Create);
        write_identity(*file, cfg, corpus, ranks);
        file->set_attr("/start_time", now_iso8601());
      }
      file->set_attr("/status", std::string("running"));
      file->set_attr("/resume_count",
                     opts.resume ? file->int_attr("/resume_count") + 1 : std::int64_t(0));
      file->set_attr("/expert_parallel", std::int64_t(ep));
      file->set_attr("/data_parallel", std::int64_t(ranks));
      file->write_text("/config", config_to_toml(cfg));
      if (!opts.resume) {
        Checkpoint first;
        first.config_text = config_to_toml(cfg);
        first.shape = model_shape(cfg.model);
        first.run_file_image = file->image();
        write_checkpoint(checkpoint_path(path), first);
      }
      file->save();
    } catch (const std::exception& e) {
      error = e.what();
      file.reset();
      // A new run's file is ours and incomplete: it goes (the lock is still held).
      if (!opts.resume) std::remove(path.c_str()), std::remove(checkpoint_path(path).c_str());
    }
  }
  error = from_rank0(comm, error);
  if (!error.empty()) throw UserError(error);
  return file;
}

void log_start(std::ostream& log, const Corpus& corpus, int ranks) {
  log << "moe-suite " << suite_version() << " (" << git_commit() << ")  Kokkos "
      << KOKKOS_VERSION / 10000 << "." << KOKKOS_VERSION / 100 % 100 << "." << KOKKOS_VERSION % 100
      << " " << Runtime::backend_name() << "  gemm " << gemm_backend() << "  ranks " << ranks
      << "\n"
      << "data: " << corpus.description << "\n";
  char line[160];
  std::snprintf(line, sizeof line,
                "data: unigram entropy %.4f nats/token, entropy rate %.4f nats/token "
                "(the best reachable loss)\n",
                corpus.unigram_entropy, corpus.entropy_rate);
  log << line;
}

// A run that failed keeps what it trained: the file is marked failed with the reason, and the
// last checkpoint stays as it was. The file may itself be what failed (a full disk): marking it
// is then attempted and given up quietly.
void mark_failed(RunFile* file, const std::string& why) {
  if (!file) return;
  try {
    file->set_attr("/status", std::string("failed"));
    file->set_attr("/error", why);
    file->set_attr("/end_time", now_iso8601());
    file->save();
  } catch (const std::exception&) {
  }
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

  const std::unique_ptr<OutputLock> lock = claim_output_on_rank0(cfg, opts, comm);
  Corpus corpus;
  Checkpoint ck;
  load_inputs(cfg, opts, comm, corpus, ck);
  std::unique_ptr<RunFile> file = open_run_file(cfg, opts, ck, corpus, ep, comm);
  if (log) log_start(*log, corpus, ranks);

  try {
    Trainer trainer(cfg, corpus, file.get(), log, &ranks_of_run);
    std::int64_t first = 0;
    // A step-0 checkpoint holds no parameters: the fresh initialisation is its state.
    if (opts.resume && ck.next_step > 0) first = trainer.restore(ck);
    if (file) file->set_attr("/num_params", std::int64_t(trainer.model().num_params()));
    if (log)
      *log << "model: " << trainer.model().num_params() << " parameters, "
           << trainer.model().num_moe_layers() << " MoE layers of " << cfg.model.num_experts
           << " experts (top-" << cfg.model.top_k << ", router " << cfg.router.type << "), "
           << ranks << " data-parallel ranks, expert-parallel groups of " << ep
           << (opts.resume ? ", resumed at step " + std::to_string(first) : std::string()) << "\n";
    const TrainSummary s = trainer.train(first, opts.stop_after, [] { return g_stop_signal != 0; });
    if (!file) return s.finished ? RunOutcome::Complete : RunOutcome::Stopped;
    // A resume after the final checkpoint (killed before the file was marked complete) runs no
    // step: the last loss is the file's.
    const double last_loss = s.steps_done > 0 ? s.last_loss : file->last_value(schema::kTrainLoss);
    auto write_final = [&](RunFile& f) {
      f.set_attr("/final_loss", last_loss);
      f.set_attr("/final_val_loss", s.last_val_loss);
      f.set_attr("/end_time", now_iso8601());
    };
    if (!s.finished) {
      write_final(*file);
      file->save();
      if (log)
        *log << "stopped after step " << s.next_step << " (checkpoint " << checkpoint_path(path)
             << "); continue with --resume\n";
      return RunOutcome::Stopped;
    }
    write_final(*file);
    file->set_attr("/status", std::string("complete"));
    file->save();
    file.reset();
    if (log) *log << "wrote " << path << "\n";
    return RunOutcome::Complete;
  } catch (const std::exception& e) {
    // Failures inside a step are agreed on by every rank, so all of them get here together.
    mark_failed(file.get(), e.what());
    if (rank == 0) std::fprintf(stderr, "moe-train: run failed: %s\n", e.what());
    return RunOutcome::Failed;
  }
}

}  // namespace moe
