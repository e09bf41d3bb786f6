// ExpertExchange at P ranks (run under mpiexec -n 1, 2 and 4): uneven, partly empty per-expert
// row counts, checked against a plain reference that every rank rebuilds from the shared seed:
// - forward puts every source's rows of expert e on e's owner, expert-major (for each local
//   expert, source 0's rows, then source 1's, ...), each source's rows in their own order;
// - reverse brings rows back to their senders' positions (checked on rows the owner changed);
// - with expert groups smaller than P, rows stay within the sender's group;
// - the k-th block a rank sends to a peer pairs with the k-th block the peer receives from it
//   (the order the NCCL path relies on, having no message tags).
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <random>
#include <vector>

#include "parallel/comm.hpp"
#include "parallel/expert_exchange.hpp"
#include "support.hpp"

// A named namespace rather than an anonymous one: CUDA's extended lambdas want enclosing
// functions with external linkage.
namespace exchange_test {

using moe::Index;

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int p = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  return p;
}

// Rows world rank r holds for each of the E experts: seeded by (seed, r), about a quarter empty.
std::vector<int> counts_of(int r, int E, unsigned seed) {
  std::mt19937 gen(seed * 1000u + unsigned(r));
  std::uniform_int_distribution<int> n(0, 7);
  std::vector<int> c(E);
  for (auto& x : c) x = n(gen) < 2 ? 0 : n(gen);
  return c;
}

// Value c of row i of expert e sent by world rank r: unique over (r, e, i, c).
double code(int r, int e, int i, int c) {
  return ((r * 64.0 + e) * 256.0 + i) * 16.0 + c;
}

template <class Real>
void check_exchange(int ep_size, int E, unsigned seed) {
  const int P = world_size(), me = world_rank(), C = 3;
  moe::Comm comm(MPI_COMM_WORLD, ep_size);
  const int G = comm.ep_size(), El = E / G, group0 = me - comm.ep_rank();

  // This rank's rows, grouped by expert.
  const auto mine = counts_of(me, E, seed);
  std::vector<int> offsets(E + 1, 0);
  for (int e = 0; e < E; ++e) offsets[e + 1] = offsets[e] + mine[e];
  const int M = offsets[E];
  std::vector<Real> rows(std::size_t(std::max(M, 1)) * C);
  for (int e = 0; e < E; ++e)
    for (int i = 0; i < mine[e]; ++i)
      for (int c = 0; c < C; ++c) rows[std::size_t(offsets[e] + i) * C + c] = code(me, e, i, c);

  // Reference: what the owner of local experts [first, first + El) must hold.
  const int first = comm.ep_rank() * El;
  std::vector<Real> expect;
  std::vector<int> expect_offsets(El + 1, 0);
  for (int j = 0; j < El; ++j) {
    for (int s = 0; s < G; ++s) {
      const auto theirs = counts_of(group0 + s, E, seed);
      for (int i = 0; i < theirs[first + j]; ++i)
        for (int c = 0; c < C; ++c) expect.push_back(Real(code(group0 + s, first + j, i, c)));
      expect_offsets[j + 1] += theirs[first + j];
    }
    expect_offsets[j + 1] += expect_offsets[j];
  }

  moe::ExpertExchange<Real> ex;
  ex.plan(offsets, E, comm);
  // Mismatches are counted, not asserted, so that every rank goes through every exchange
  // (a rank leaving early would leave its peers waiting).
  EXPECT_EQ(ex.sent(), M);
  EXPECT_EQ(ex.first_expert(), first);
  EXPECT_EQ(ex.local_experts(), El);
  EXPECT_EQ(ex.local_offsets(), expect_offsets);
  const int R = ex.received();
  EXPECT_EQ(std::size_t(R) * C, expect.size()) << "rank " << me << " of " << P;

  // The pairing both transports rely on (NCCL has no tags): the k-th block this rank sends to a
  // peer has as many rows as the k-th block that peer receives from this rank. Every rank's
  // lists, in world ranks, gathered everywhere.
  auto flatten = [&](const std::vector<moe::ExchangeBlock>& blocks) {
    std::vector<int> v;
    for (const auto& b : blocks) v.insert(v.end(), {group0 + b.peer, b.rows});
    return v;
  };
  auto gather = [&](const std::vector<int>& mine_list) {
    const int n = int(mine_list.size());
    std::vector<int> sizes(P), starts(P, 0);
    MPI_Allgather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, MPI_COMM_WORLD);
    for (int r = 1; r < P; ++r) starts[r] = starts[r - 1] + sizes[r - 1];
    std::vector<int> all(std::size_t(starts[P - 1] + sizes[P - 1]));
    MPI_Allgatherv(mine_list.data(), n, MPI_INT, all.data(), sizes.data(), starts.data(), MPI_INT,
                   MPI_COMM_WORLD);
    std::vector<std::vector<std::pair<int, int>>> per_rank(P);  // (peer, rows) per world rank
    for (int r = 0; r < P; ++r)
      for (int i = starts[r]; i < starts[r] + sizes[r]; i += 2)
        per_rank[r].push_back({all[std::size_t(i)], all[std::size_t(i) + 1]});
    return per_rank;
  };
  const auto sends = gather(flatten(ex.send_blocks())), recvs = gather(flatten(ex.recv_blocks()));
  for (int a = 0; a < P; ++a)
    for (int b = 0; b < P; ++b) {
      std::vector<int> out_rows, in_rows;  // a -> b as a sends them, and as b receives them
      for (const auto& [peer, n] : sends[std::size_t(a)])
        if (peer == b) out_rows.push_back(n);
      for (const auto& [peer, n] : recvs[std::size_t(b)])
        if (peer == a) in_rows.push_back(n);
      EXPECT_EQ(out_rows, in_rows) << "blocks " << a << " -> " << b;
    }

  auto in = moe::test::to_device(rows);
  moe::Buffer<Real> got("got", std::size_t(std::max(R, 1)) * C);
  ex.forward(moe::View1<const Real>(in.data(), in.extent(0)),
             moe::View1<Real>(got.data(), got.extent(0)), C);
  auto host = moe::test::to_host(got, Index(R) * C);
  std::size_t wrong = 0;
  for (std::size_t k = 0; k < std::min(expect.size(), host.size()); ++k)
    wrong += host[k] != expect[k];
  EXPECT_EQ(wrong, 0u) << "forward: rank " << me << " of " << P;

  // The owner negates what it received; reverse must hand each sender its own rows, negated.
  Kokkos::parallel_for(
      "negate", moe::range(Index(R) * C), KOKKOS_LAMBDA(const Index i) { got(i) = -got(i); });
  moe::Buffer<Real> back("back", std::size_t(std::max(M, 1)) * C);
  ex.reverse(moe::View1<const Real>(got.data(), got.extent(0)),
             moe::View1<Real>(back.data(), back.extent(0)), C);
  auto returned = moe::test::to_host(back, Index(M) * C);
  wrong = 0;
  for (std::size_t k = 0; k < returned.size(); ++k) wrong += returned[k] != -rows[k];
  EXPECT_EQ(wrong, 0u) << "reverse: rank " << me << " of " << P;
}

TEST(ExpertExchange, WholeWorldIsOneExpertGroupFloat) {
  for (unsigned seed = 1; seed <= 3; ++seed)
    check_exchange<float>(world_size(), 4 * world_size(), seed);
}

TEST(ExpertExchange, WholeWorldIsOneExpertGroupDouble) {
  check_exchange<double>(world_size(), 2 * world_size(), 7);
}

TEST(ExpertExchange, OneExpertPerRank) {
  check_exchange<double>(world_size(), world_size(), 11);
}

TEST(ExpertExchange, GroupsOfTwoStayWithinTheirGroup) {
  if (world_size() % 2 != 0) GTEST_SKIP() << "needs an even number of ranks";
  check_exchange<double>(2, 6, 5);
}

}  // namespace exchange_test
