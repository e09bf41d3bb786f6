#include "train/trainer.hpp"

#include <Kokkos_Core.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <ostream>
#include <stdexcept>
#include <string>

#include "parallel/expert_exchange.hpp"
#include "precision.hpp"
#include "train/run_schema.hpp"
#include "util/user_error.hpp"

namespace moe {
namespace {

using clock_type = std::chrono::steady_clock;

// One training step as a Kokkos Tools region ("moe::step"): profiling tools (e.g. the suite's
// launch/fence counter, src/profiling/) attribute kernels, fences and copies to steps by it.
struct StepRegion {
  StepRegion() { Kokkos::Profiling::pushRegion("moe::step"); }
  ~StepRegion() { Kokkos::Profiling::popRegion(); }
  StepRegion(const StepRegion&) = delete;
  StepRegion& operator=(const StepRegion&) = delete;
};

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

}  // namespace

Trainer::Trainer(const Config& cfg, const Corpus& corpus, RunFile* run, std::ostream* log,
                 const Comm* comm)
    : comm_(comm ? *comm : solo_),
      cfg_(cfg),
      corpus_(corpus),
      log_(log),
      model_(cfg, cfg.train.batch_size / comm_.size(), /*force_moe=*/false, &corpus.train_counts,
             &comm_),
      batch_(Index(cfg.train.batch_size / comm_.size()) * cfg.model.seq_len, comm_.rank()),
      optimizer_(cfg.train, model_, comm_),
      evaluator_(cfg, corpus, model_, batch_, comm_),
      recorder_(run, model_, batch_, comm_),
      checkpointer_(cfg, run, model_, optimizer_, evaluator_) {
  // train.matmul_precision holds for every float product of the process from here on (training
  // and evaluation), as torch.set_float32_matmul_precision does.
  MatmulPrecision precision = MatmulPrecision::fp32;
  if (!parse_matmul_precision(cfg.train.matmul_precision.c_str(), &precision))
    throw UserError("train.matmul_precision = \"" + cfg.train.matmul_precision +
                    "\" is not supported (allowed: fp32, tf32, bf16)");
  set_matmul_precision(precision);
  // parallel.nccl is decided now, by every rank of each expert group together: a refusal
  // stops the run before training (exit 2), a fallback to MPI says so once.
  comm_.set_nccl_mode(parse_nccl_mode(cfg.parallel.nccl));
  if (comm_.ep_size() > 1)
    exchange_uses_nccl(comm_);
  else if (comm_.nccl_mode() == NcclMode::On && !nccl_built())
    throw UserError(
        "parallel.nccl = on, but this build has no NCCL (MOE_ENABLE_NCCL=OFF or "
        "NCCL not found; set parallel.nccl = auto or off)");
  model_.init_parameters(cfg.train.seed);
  model_.set_timer(&timer_);
  const char* profile = std::getenv("MOE_PROFILE");
  set_profiling(profile && *profile && std::string(profile) != "0");
  recorder_.record_buckets(evaluator_.buckets(), evaluator_.frequency_split());
  recorder_.record_frequency_classes(evaluator_.infrequent_train_mass(),
                                     evaluator_.infrequent_types());
}

double Trainer::step(std::int64_t step) {
  const StepRegion region;
  timer_.start();
  batch_.upload(train_batch(corpus_, cfg_, step));
  model_.zero_grad();
  last_.forward = model_.forward(batch_.tokens(), batch_.targets(), /*training=*/true, step);
  // The mean over the ranks' equal shares; the auxiliary losses are global already.
  last_.forward.loss = comm_.sum(last_.forward.loss) / comm_.size();
  if (!std::isfinite(last_.forward.loss))
    throw std::runtime_error("non-finite training loss at step " + std::to_string(step));
  model_.backward();
  const OptimizerStep o = optimizer_.apply(step);
  last_.lr = o.lr;
  last_.grad_norm = o.grad_norm;
  last_.clipped = o.clipped;
  timer_.lap(Phase::Optimizer);
  last_.phase_seconds = timer_.take();
  return last_.forward.loss;
}

void Trainer::guarded_step(std::int64_t s) {
  // A failure on one rank must end every rank, with its reason: agree after each step.
  std::string error;
  try {
    step(s);
  } catch (const std::exception& e) {
    error = e.what();
  }
  error = agreed_error(comm_.world(), error);  // a one-rank Comm's world is MPI_COMM_NULL
  if (!error.empty()) throw std::runtime_error(error);
}

double Trainer::evaluate(std::int64_t steps_done) {
  const EvalResult r = evaluator_.evaluate(steps_done);
  recorder_.record_trace(schema::kTraceEval, steps_done);  // collective: every rank takes part
  recorder_.record_eval(r);
  return r.val_loss;
}

bool Trainer::stop_agreed(const std::function<bool()>& stop_requested) const {
  // Every rank must stop at the same step: a signal may reach them at different moments.
  return comm_.sum((stop_requested && stop_requested()) ? 1.0 : 0.0) > 0;
}

TrainSummary Trainer::train(std::int64_t first, std::int64_t max_steps,
                            const std::function<bool()>& stop_requested) {
  TrainSummary sum;
  const std::int64_t total = cfg_.train.steps;
  const std::int64_t end = max_steps < 0 ? total : std::min(total, first + max_steps);
  const double tokens_per_step = double(cfg_.train.batch_size) * cfg_.model.seq_len;
  sum.next_step = first;
  sum.last_val_loss = evaluator_.last_val_loss();

  for (std::int64_t s = first; s < end; ++s) {
    const auto t0 = clock_type::now();
    guarded_step(s);
    const double tps = tokens_per_step / seconds_since(t0);
    const auto r0 = clock_type::now();
    record_step(s, tps);
    if (cfg_.output.trace_every > 0 && (s + 1) % cfg_.output.trace_every == 0)
      recorder_.record_trace(schema::kTraceTrain, s);
    recorder_.flush_if_due();
    recorder_.add_seconds(seconds_since(r0));
    sum.last_loss = last_.forward.loss;
    sum.steps_done = s + 1 - first;
    sum.next_step = s + 1;

    const bool last_step = (s + 1 == total);
    const bool eval_now =
        last_step || (cfg_.train.eval_every > 0 && (s + 1) % cfg_.train.eval_every == 0);
    if (log_ && (s % std::max<std::int64_t>(1, total / 20) == 0 || eval_now)) log_step(s, tps);
    if (eval_now) {
      sum.last_val_loss = evaluate(s + 1);
      log_eval(s + 1, sum.last_val_loss);
    }
    // The test split is scored once, on the final model, before its checkpoint (which carries
    // the run file's rows, so a resume never scores it twice).
    if (last_step) {
      const TestResult t = evaluator_.test(s + 1);
      recorder_.record_test(t);
      if (log_)
        *log_ << "test   " << std::setw(6) << s + 1 << "  test_loss " << std::fixed
              << std::setprecision(4) << t.loss << "  (" << t.tokens << " tokens)\n"
              << std::defaultfloat << std::flush;
    }
    const bool ckpt_due =
        cfg_.output.checkpoint_every > 0 && (s + 1) % cfg_.output.checkpoint_every == 0;
    // The final model is always checkpointed; an early stop must be, to be resumed.
    const bool stop = last_step || (s + 1 == end) || stop_agreed(stop_requested);
    if (ckpt_due || stop) save_checkpoint(s + 1);
    if (stop) break;
  }
  sum.finished = (sum.next_step == total);
  return sum;
}

void Trainer::log_step(std::int64_t s, double tokens_per_s) const {
  *log_ << "step " << std::setw(6) << s + 1 << "/" << cfg_.train.steps << "  loss " << std::fixed
        << std::setprecision(4) << last_.forward.loss << "  aux " << last_.forward.aux.weighted
        << "  lr " << std::scientific << std::setprecision(2) << last_.lr << "  grad_norm "
        << std::fixed << std::setprecision(3) << last_.grad_norm << "  tokens/s "
        << std::setprecision(0) << tokens_per_s << "\n"
        << std::defaultfloat << std::flush;
}

void Trainer::log_eval(std::int64_t steps_done, double val_loss) const {
  if (!log_) return;
  *log_ << "eval   " << std::setw(6) << steps_done << "  val_loss " << std::fixed
        << std::setprecision(4) << val_loss << "  val_ppl " << std::setprecision(2)
        << std::exp(val_loss) << "\n"
        << std::defaultfloat << std::flush;
}

}  // namespace moe
