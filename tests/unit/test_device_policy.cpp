// Device choice and the NCCL decision: every branch, driven with plain inputs (the logic is
// host code, so the fallback paths of a GPU cluster are checked here without a GPU).
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "parallel/device_policy.hpp"
#include "util/user_error.hpp"

using namespace moe;

namespace {

auto env(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

}  // namespace

TEST(DevicePolicy, LocalRankFromLaunchers) {
  EXPECT_EQ(local_rank_from_env(env({})), -1);
  EXPECT_EQ(local_rank_from_env(env({{"OMPI_COMM_WORLD_LOCAL_RANK", "3"}})), 3);
  EXPECT_EQ(local_rank_from_env(env({{"MPI_LOCALRANKID", "1"}})), 1);
  EXPECT_EQ(local_rank_from_env(env({{"SLURM_LOCALID", "2"}})), 2);
  // The MPI launcher's own variable wins over the resource manager's (srun inside mpirun).
  EXPECT_EQ(local_rank_from_env(env({{"SLURM_LOCALID", "0"}, {"MPI_LOCALRANKID", "5"}})), 5);
  // Garbage is ignored, not read as 0.
  EXPECT_EQ(local_rank_from_env(env({{"SLURM_LOCALID", "x1"}})), -1);
  EXPECT_EQ(local_rank_from_env(env({{"SLURM_LOCALID", "-1"}, {"PMIX_LOCAL_RANK", "4"}})), 4);
}

TEST(DevicePolicy, DeviceRoundRobin) {
  EXPECT_EQ(device_for_local_rank(0, 4), 0);
  EXPECT_EQ(device_for_local_rank(5, 4), 1);
  EXPECT_EQ(device_for_local_rank(-1, 2), 0);
  EXPECT_EQ(device_for_local_rank(3, 0), -1);
}

TEST(DevicePolicy, ModeParsing) {
  EXPECT_EQ(parse_nccl_mode("auto"), NcclMode::Auto);
  EXPECT_EQ(parse_nccl_mode("on"), NcclMode::On);
  EXPECT_EQ(parse_nccl_mode("off"), NcclMode::Off);
  EXPECT_THROW(parse_nccl_mode("yes"), std::invalid_argument);
  EXPECT_STREQ(to_string(NcclMode::Auto), "auto");
}

TEST(DevicePolicy, OneGpuPerRankUsesNccl) {
  const std::uint64_t a = node_hash("node-a"), b = node_hash("node-b");
  // Same device number on different nodes is fine.
  const auto d = nccl_preflight(true, NcclMode::Auto, {{a, 0}, {a, 1}, {b, 0}, {b, 1}});
  EXPECT_TRUE(d.use);
  EXPECT_FALSE(d.error);
  EXPECT_TRUE(d.message.empty());
}

TEST(DevicePolicy, SharedGpuFallsBackToMpiWithOneLine) {
  const std::uint64_t a = node_hash("node-a");
  const auto d = nccl_preflight(true, NcclMode::Auto, {{a, 0}, {a, 0}});
  EXPECT_FALSE(d.use);
  EXPECT_FALSE(d.error);
  EXPECT_NE(d.message.find("group ranks 0 and 1 share GPU 0"), std::string::npos) << d.message;
  EXPECT_NE(d.message.find("MPI"), std::string::npos);
  EXPECT_EQ(d.message.find('\n'), std::string::npos);
  // Asked for explicitly, the same situation is an error, not a silent downgrade.
  const auto on = nccl_preflight(true, NcclMode::On, {{a, 0}, {a, 0}});
  EXPECT_FALSE(on.use);
  EXPECT_TRUE(on.error);
  EXPECT_NE(on.message.find("parallel.nccl = on"), std::string::npos);
}

TEST(DevicePolicy, NoGpuOrNoNccl) {
  const std::uint64_t a = node_hash("node-a");
  EXPECT_FALSE(nccl_preflight(true, NcclMode::Auto, {{a, 0}, {a, -1}}).use);
  // A build without NCCL in auto mode says nothing: that is the ordinary CPU build.
  const auto cpu = nccl_preflight(false, NcclMode::Auto, {{a, -1}});
  EXPECT_FALSE(cpu.use);
  EXPECT_TRUE(cpu.message.empty());
  EXPECT_TRUE(nccl_preflight(false, NcclMode::On, {{a, 0}}).error);
  EXPECT_FALSE(nccl_preflight(true, NcclMode::Off, {{a, 0}, {a, 1}}).use);
}

TEST(DevicePolicy, InitFailureFallsBack) {
  const auto d = nccl_after_init(NcclMode::Auto, false, "unhandled cuda error");
  EXPECT_FALSE(d.use);
  EXPECT_FALSE(d.error);
  EXPECT_NE(d.message.find("unhandled cuda error"), std::string::npos);
  EXPECT_TRUE(nccl_after_init(NcclMode::On, false, "x").error);
  EXPECT_TRUE(nccl_after_init(NcclMode::Auto, true, "").use);
}

// The whole decision as the exchange takes it, with NCCL's initialisation and the ranks'
// agreement simulated: the failure paths a CPU machine cannot produce for real.
TEST(DevicePolicy, DecideSimulatedInitFailureFallsBackToMpi) {
  const std::uint64_t a = node_hash("node-a"), b = node_hash("node-b");
  const std::vector<RankDevice> two_gpus = {{a, 0}, {b, 0}};
  int inits = 0;
  const auto failing = [&] {
    ++inits;
    return std::string("unhandled system error");
  };
  const auto alone = [](bool mine) { return mine; };
  const auto d = decide_nccl(true, NcclMode::Auto, two_gpus, failing, alone);
  EXPECT_EQ(inits, 1);
  EXPECT_FALSE(d.use);
  EXPECT_FALSE(d.error);
  EXPECT_NE(d.message.find("NCCL initialisation failed (unhandled system error)"),
            std::string::npos)
      << d.message;
  EXPECT_NE(d.message.find("MPI"), std::string::npos);
  EXPECT_EQ(d.message.find('\n'), std::string::npos);
  // on: the same failure stops the run.
  EXPECT_TRUE(decide_nccl(true, NcclMode::On, two_gpus, failing, alone).error);
  // This rank succeeded, another did not: every rank falls back together.
  const auto other_failed = decide_nccl(
      true, NcclMode::Auto, two_gpus, [] { return std::string(); }, [](bool) { return false; });
  EXPECT_FALSE(other_failed.use);
  EXPECT_NE(other_failed.message.find("another rank"), std::string::npos);
  // Success everywhere: NCCL, silently.
  const auto ok = decide_nccl(
      true, NcclMode::Auto, two_gpus, [] { return std::string(); }, alone);
  EXPECT_TRUE(ok.use);
  EXPECT_TRUE(ok.message.empty());
}

TEST(DevicePolicy, DecideSharedGpuNeverInitialisesNccl) {
  const std::uint64_t a = node_hash("node-a");
  int inits = 0;
  const auto init = [&] {
    ++inits;
    return std::string();
  };
  const auto d = decide_nccl(true, NcclMode::Auto, {{a, 0}, {a, 0}}, init, nullptr);
  EXPECT_FALSE(d.use);
  EXPECT_EQ(inits, 0);  // "Duplicate GPU detected" is avoided, not caught
  EXPECT_NE(d.message.find("share GPU 0"), std::string::npos);
  EXPECT_FALSE(decide_nccl(false, NcclMode::Auto, {{a, -1}, {a, -1}}, init, nullptr).use);
  EXPECT_TRUE(decide_nccl(true, NcclMode::Off, {{a, 0}, {a, 1}}, init, nullptr).message.empty());
  EXPECT_EQ(inits, 0);
}

// parallel.nccl values: the config's allowed list and the parser agree.
TEST(DevicePolicy, NcclModeParses) {
  EXPECT_EQ(parse_nccl_mode("off"), NcclMode::Off);
  EXPECT_EQ(parse_nccl_mode("auto"), NcclMode::Auto);
  EXPECT_EQ(parse_nccl_mode("on"), NcclMode::On);
  EXPECT_THROW(parse_nccl_mode("yes"), std::invalid_argument);
}

TEST(DevicePolicy, DeviceMpiDirectOnHostMemoryAndGpuAwareMpi) {
  EXPECT_EQ(moe::decide_device_mpi(true, nullptr, -1).mode, moe::DeviceMpi::Direct);
  EXPECT_EQ(moe::decide_device_mpi(true, "", 0).mode, moe::DeviceMpi::Direct);
  EXPECT_EQ(moe::decide_device_mpi(false, nullptr, 1).mode, moe::DeviceMpi::Direct);
  EXPECT_EQ(moe::decide_device_mpi(false, "1", 0).mode, moe::DeviceMpi::Direct);
}

TEST(DevicePolicy, DeviceMpiStagedWithoutGpuAwareMpiOrWhenAsked) {
  const auto no = moe::decide_device_mpi(false, nullptr, 0);
  EXPECT_EQ(no.mode, moe::DeviceMpi::Staged);
  EXPECT_NE(no.reason.find("does not take"), std::string::npos) << no.reason;
  EXPECT_EQ(moe::decide_device_mpi(false, nullptr, -1).mode, moe::DeviceMpi::Staged);
  // "0" stages even on host memory: the way CPU tests exercise the staged copies.
  EXPECT_EQ(moe::decide_device_mpi(true, "0", 1).mode, moe::DeviceMpi::Staged);
}

TEST(DevicePolicy, DeviceMpiBadEnvironmentIsOneLine) {
  try {
    moe::decide_device_mpi(false, "yes", 1);
    FAIL() << "no error for MOE_GPU_AWARE_MPI=yes";
  } catch (const moe::UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("MOE_GPU_AWARE_MPI is 'yes'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("allowed"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}
