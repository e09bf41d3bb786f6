// moe-alltoall-bench: all-to-all bandwidth in the manner of nccl-tests'
// alltoall_perf.
//   mpiexec -n P moe-alltoall-bench [--min-bytes 1K] [--max-bytes 64M]
//   [--factor 2]
//                                   [--iters 20] [--warmup 5] [--check]
// For each size S (bytes sent by each rank, in P equal blocks of floats; S runs
// from min to max multiplying by factor, rounded down to whole floats per
// block) it times `iters` calls after `warmup` untimed ones and prints, on rank
// 0, the max over ranks of each rank's mean time per call, algbw = S / time and
// busbw = algbw * (P-1)/P (nccl-tests' definitions for alltoall: of the S bytes
// a rank sends, S/P stay on the rank, so (P-1)/P of them cross the links). Two
// tables:
// - alltoall: MPI_Alltoall of floats in the default execution space's memory,
// fenced before MPI
//   and staged through host mirrors where that memory is not host-accessible
//   (the staging copies are inside the timing, as they are in training);
// - exchange: the suite's own token exchange, ExpertExchange<float>::plan +
// forward, with rows of
//   C = 512 floats and an equal split (S/P bytes of rows from every rank to
//   every rank, over two experts per rank so the rows really land expert-major,
//   two blocks per peer). Against the alltoall row of the same size it shows the
//   price of the counts exchange and of one message per (peer, expert) block.
// --check fills every element with a code of its source rank and index and
// verifies what arrives (exit 1 on a mismatch). Bad arguments: one line on
// stderr, exit 2.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.hpp"
#include "parallel/comm.hpp"
#include "parallel/expert_exchange.hpp"
#include "parallel/runtime.hpp"
#include "programs/alltoall_check.hpp"
#include "programs/command_line.hpp"
#include "programs/run_main.hpp"
#include "util/checked_parse.hpp"
#include "util/user_error.hpp"

// A named namespace rather than an anonymous one: CUDA's extended lambdas want
// enclosing functions with external linkage.
namespace moe_alltoall_bench {

using moe::Index;

constexpr int kRowWidth = 512;               // C of the exchange table: floats per token row
constexpr int kExpertsPerRank = 2;           // local experts per rank in the exchange table
constexpr Index kMaxBytes = Index(1) << 32;  // keeps every MPI count (floats per rank) in an int

struct Options {
  Index min_bytes = 1024, max_bytes = Index(64) << 20;
  int factor = 2, iters = 20, warmup = 5;
  bool check = false;
};

// "4096", "1K", "64M", "2G" (binary multiples, as nccl-tests reads them).
Index parse_bytes(const std::string& flag, const std::string& s) {
  const std::string rule = "a positive byte count like 4096, 1K, 64M, at most 4G";
  Index mult = 1;
  std::string digits = s;
  const char unit = s.empty() ? '\0' : s.back();
  if (unit == 'K' || unit == 'k') mult = Index(1) << 10;
  if (unit == 'M' || unit == 'm') mult = Index(1) << 20;
  if (unit == 'G' || unit == 'g') mult = Index(1) << 30;
  if (mult > 1) digits.pop_back();
  try {
    return moe::parse_integer(flag, digits, 1, kMaxBytes / mult) * mult;
  } catch (const moe::UserError&) {
    throw moe::UserError(flag + " '" + s + "' (allowed: " + rule + ")");
  }
}

void add_bytes(CLI::App& app, const std::string& name, Index& value, const std::string& help) {
  app.add_option_function<std::string>(
         name, [&value, name](const std::string& text) { value = parse_bytes(name, text); }, help)
      ->type_name("BYTES");
}

// False when --help was given.
bool parse(int argc, char** argv, Options& o, bool print_help) {
  CLI::App app("All-to-all bandwidth in the manner of nccl-tests' alltoall_perf.",
               "moe-alltoall-bench");
  add_bytes(app, "--min-bytes", o.min_bytes, "smallest size per rank (4096, 1K, 64M; default 1K)");
  add_bytes(app, "--max-bytes", o.max_bytes, "largest size per rank (at most 4G; default 64M)");
  moe::add_integer(app, "--factor", o.factor, 2, INT_MAX, "size multiplier between rows");
  moe::add_integer(app, "--iters", o.iters, 1, INT_MAX, "timed calls per size");
  moe::add_integer(app, "--warmup", o.warmup, 0, INT_MAX, "untimed calls per size");
  app.add_flag("--check", o.check, "verify every element received (exit 1 on a mismatch)");
  if (!moe::parse_command_line(app, argc, argv, print_help)) return false;
  if (o.max_bytes < o.min_bytes) throw moe::UserError("--max-bytes is below --min-bytes");
  return true;
}

// `warmup` untimed calls, then the max over ranks of each rank's mean seconds over `iters`
// timed ones (fenced, started together after a barrier).
template <class Call>
double seconds_per_call(const Call& call, const Options& o) {
  for (int w = 0; w < o.warmup; ++w) call();
  moe::ExecSpace().fence();
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = MPI_Wtime();
  for (int it = 0; it < o.iters; ++it) call();
  moe::ExecSpace().fence();
  double mean = (MPI_Wtime() - t0) / o.iters, worst = 0;
  MPI_Allreduce(&mean, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return worst;
}

// Every rank learns whether any rank saw a mismatch, so all stop together.
bool any_errors(Index bad, int rank, const char* what, Index bytes) {
  if (bad > 0)
    std::fprintf(stderr,
                 "moe-alltoall-bench: rank %d: %lld wrong elements in %s at "
                 "%lld bytes\n",
                 rank, static_cast<long long>(bad), what, static_cast<long long>(bytes));
  long long total = 0, mine = bad;
  MPI_Allreduce(&mine, &total, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  return total > 0;
}

void print_row(const char* label, Index bytes, Index floats, double secs, int P) {
  const double algbw = double(bytes) / secs / 1e9;
  const double busbw = algbw * double(P - 1) / double(P);
  std::printf("%s%12lld  %12lld  %10.2f  %10.3f  %10.3f", label, static_cast<long long>(bytes),
              static_cast<long long>(floats), secs * 1e6, algbw, busbw);
}

std::vector<Index> sizes(const Options& o) {
  std::vector<Index> out;
  for (Index s = o.min_bytes; s <= o.max_bytes; s *= o.factor) out.push_back(s);
  return out;
}

void print_header(const Options& o, int P) {
  const bool host_visible = Kokkos::SpaceAccessibility<moe::HostSpace, moe::MemSpace>::accessible;
  std::printf(
      "# moe-alltoall-bench: %d ranks, %s, buffers in %s%s, iters "
      "%d, warmup %d%s\n",
      P, moe::Runtime::backend_name(), moe::MemSpace::name(),
      host_visible ? "" : " staged through host mirrors", o.iters, o.warmup,
      o.check ? ", data checked" : "");
  std::printf(
      "# time = max over ranks of the mean per call; algbw = size / time; "
      "busbw = algbw * (P-1)/P\n");
}

// What the alltoall table measured per size, for the exchange table's overhead column.
struct AlltoallRows {
  std::vector<double> secs;
  std::vector<Index> bytes;
};

// Table 1: MPI_Alltoall. Each element's code depends only on its index in the sender's buffer,
// so one fill at the largest size serves every size. False when the data check failed.
bool alltoall_table(const Options& o, int rank, int P, const std::vector<Index>& all,
                    AlltoallRows& rows) {
  const Index max_floats = o.max_bytes / Index(sizeof(float));
  moe::Buffer<float> send("moe::a2a.send", std::size_t(std::max<Index>(max_floats, 1)));
  moe::Buffer<float> recv("moe::a2a.recv", std::size_t(std::max<Index>(max_floats, 1)));
  fill_codes(send, rank);
  auto send_h = Kokkos::create_mirror_view(send);  // aliases `send` on host memory
  auto recv_h = Kokkos::create_mirror_view(recv);
  Kokkos::deep_copy(send_h, send);
  if (rank == 0) {
    std::printf("# alltoall: MPI_Alltoall, float, size bytes per rank in %d blocks\n", P);
    std::printf("#%11s  %12s  %10s  %10s  %10s\n", "size_bytes", "count_floats", "time_us",
                "algbw_GBps", "busbw_GBps");
  }
  for (std::size_t k = 0; k < all.size(); ++k) {
    const Index block = all[k] / (Index(sizeof(float)) * P);
    if (block == 0) continue;  // fewer bytes than one float per rank
    const Index n = block * P;
    const auto window = std::make_pair(Index(0), n);
    auto dev_send = Kokkos::subview(send, window), dev_recv = Kokkos::subview(recv, window);
    auto host_send = Kokkos::subview(send_h, window), host_recv = Kokkos::subview(recv_h, window);
    Kokkos::deep_copy(dev_recv, -1.0f);  // no code is negative
    auto call = [&] {
      Kokkos::deep_copy(host_send, dev_send);  // no-op where the memory is host-accessible
      moe::ExecSpace().fence();                // MPI reads and writes the buffers directly
      MPI_Alltoall(host_send.data(), int(block), MPI_FLOAT, host_recv.data(), int(block), MPI_FLOAT,
                   MPI_COMM_WORLD);
      Kokkos::deep_copy(dev_recv, host_recv);
    };
    const double secs = seconds_per_call(call, o);
    if (o.check && any_errors(alltoall_errors(moe::View1<const float>(recv.data(), std::size_t(n)),
                                              block, P, rank),
                              rank, "alltoall", n * Index(sizeof(float))))
      return false;
    rows.secs[k] = secs;
    rows.bytes[k] = n * Index(sizeof(float));
    if (rank == 0) {
      print_row(" ", rows.bytes[k], n, secs, P);
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  return true;
}

// Table 2: ExpertExchange::plan + forward, experts 2d and 2d+1 on rank d, R rows per peer.
// False when the data check failed.
bool exchange_table(const Options& o, int rank, int P, const std::vector<Index>& all,
                    const AlltoallRows& a2a) {
  const int C = kRowWidth, E = kExpertsPerRank * P;
  const Index row_bytes = Index(C) * Index(sizeof(float));
  const Index max_rows = o.max_bytes / row_bytes;  // rows each rank sends in all
  moe::Comm comm(MPI_COMM_WORLD, P);
  moe::ExpertExchange<float> ex;
  moe::Buffer<float> rows("moe::a2a.rows", std::size_t(std::max<Index>(max_rows, 1) * C));
  moe::Buffer<float> out("moe::a2a.out", std::size_t(std::max<Index>(max_rows, 1) * C));
  fill_codes(rows, rank);
  if (rank == 0) {
    std::printf(
        "# exchange: ExpertExchange<float>::plan + forward, rows of "
        "%d floats, equal "
        "split, %d experts per rank; overhead_us = time_us - "
        "alltoall time_us at the "
        "same size\n",
        C, kExpertsPerRank);
    std::printf("#%19s  %12s  %10s  %10s  %10s  %13s  %11s\n", "size_bytes", "count_floats",
                "time_us", "algbw_GBps", "busbw_GBps", "rows_per_peer", "overhead_us");
  }
  for (std::size_t k = 0; k < all.size(); ++k) {
    const Index R = all[k] / (row_bytes * P);
    if (R == 0) continue;  // less than one row per peer
    const Index a = R / 2, b = R - a;
    std::vector<int> offsets(E + 1, 0);
    for (int d = 0; d < P; ++d) {
      offsets[2 * d + 1] = offsets[2 * d] + int(a);
      offsets[2 * d + 2] = offsets[2 * d + 1] + int(b);
    }
    const Index n = R * P * C;
    moe::View1<const float> in(rows.data(), std::size_t(n));
    moe::View1<float> got(out.data(), std::size_t(n));
    Kokkos::deep_copy(Kokkos::subview(out, std::make_pair(Index(0), n)), -1.0f);
    auto call = [&] {
      ex.plan(offsets, E, comm);
      ex.forward(in, got, C);
    };
    const double secs = seconds_per_call(call, o);
    if (o.check) {
      Index bad = ex.received() == R * P ? 0 : 1;
      if (bad == 0) bad = exchange_errors(got, a, b, P, rank, C);
      if (any_errors(bad, rank, "exchange", n * Index(sizeof(float)))) return false;
    }
    if (rank == 0) {
      const Index bytes = n * Index(sizeof(float));
      print_row("exchange", bytes, n, secs, P);
      std::printf("  %13lld", static_cast<long long>(R));
      if (a2a.bytes[k] == bytes)
        std::printf("  %11.2f\n", (secs - a2a.secs[k]) * 1e6);
      else
        std::printf("  %11s\n", "-");
      std::fflush(stdout);
    }
  }
  return true;
}

int run(int argc, char** argv, int rank, int P) {
  Options o;
  if (!parse(argc, argv, o, rank == 0)) return 0;
  if (rank == 0) print_header(o, P);
  const std::vector<Index> all = sizes(o);
  AlltoallRows a2a{std::vector<double>(all.size(), 0.0), std::vector<Index>(all.size(), 0)};
  // The alltoall buffers go before the exchange allocates its own.
  if (!alltoall_table(o, rank, P, all, a2a)) return 1;
  return exchange_table(o, rank, P, all, a2a) ? 0 : 1;
}

}  // namespace moe_alltoall_bench

int main(int argc, char** argv) {
  return moe::run_mpi_main("moe-alltoall-bench", argc, argv, [&](const moe::Runtime& rt) {
    return moe_alltoall_bench::run(argc, argv, rt.rank(), rt.size());
  });
}
