// The run's own energy on a shared machine (energy/attribution.h): the pure
// split of a window, the cgroups it reads (Slurm v1 and v2 layouts, a cgroup of
// powertrain's own) and the reserved CPUs. GPUs are in gpu_share_test.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "powertrain/energy/attribution.h"
#include "powertrain/energy/cgroup.h"
#include "powertrain/energy/registry.h"
#include "powertrain/energy/scope.h"
#include "powertrain/energy/tracker.h"
#include "powertrain/energy/workload.h"
#include "powertrain/error.h"
#include "scoped_env.h"
#include "temp_dir.h"

namespace powertrain::energy {
namespace {

using powertrain::testing::ScopedEnv;

using ::testing::HasSubstr;

ChannelInfo info(std::string id, Component c, double idle_w = kNaN) {
  ChannelInfo i;
  i.id = std::move(id);
  i.component = c;
  i.method = Method::estimated;
  i.idle_power_w = idle_w;
  return i;
}

ChannelEnergy reading(const ChannelInfo& i, double energy_j) {
  ChannelEnergy c;
  c.channel_id = c.device = i.id;
  c.component = i.component;
  c.method = i.method;
  c.energy_j = energy_j;
  return c;
}

WindowResult window(const std::vector<ChannelInfo>& infos, const std::vector<double>& energy_j, double duration_s) {
  WindowResult w;
  w.duration_s = duration_s;
  for (std::size_t i = 0; i < infos.size(); ++i) {
    w.channels.push_back(reading(infos[i], energy_j[i]));
    w.energy_j += energy_j[i];
    auto comp = std::find_if(w.components.begin(), w.components.end(),
                             [&](const ComponentEnergy& c) { return c.component == infos[i].component; });
    if (comp == w.components.end()) w.components.push_back({infos[i].component, "estimated", energy_j[i], 0.0});
    else comp->energy_j += energy_j[i];
  }
  w.method = "estimated";
  return w;
}

// The estimate's model on 2 CPUs: 0.74 W idle and 3.5 W full per CPU.
constexpr double kIdle = 0.74, kFull = 3.5;
double machine_cpu_j(double busy_cpu_s, double seconds) { return 2 * kIdle * seconds + (kFull - kIdle) * busy_cpu_s; }

RunShare share_of(double machine_cpu_s, double run_cpu_s, double reserved = 1.0) {
  RunShare s;
  s.machine_cpus = 2;
  s.reserved_cpus = reserved;
  s.reserved_basis = "threads";
  s.machine_cpu_s = machine_cpu_s;
  s.run_cpu_s = run_cpu_s;
  return s;
}

TEST(RunShare, IdleByTheReservedCpusAndTheRestByTheCpuTimeShare) {
  const std::vector<ChannelInfo> infos{info("estimate:cpu", Component::cpu, 2 * kIdle)};
  auto w = window(infos, {machine_cpu_j(20.0, 10.0)}, 10.0);  // both CPUs busy for 10 s
  attribute_window(w, infos, share_of(20.0, 10.0));
  // Idle of one of the two CPUs (7.4 J) and half of the dynamic part (27.6 J).
  EXPECT_NEAR(w.energy_j, 7.4 + 27.6, 1e-9);
  EXPECT_NEAR(w.machine_energy_j, machine_cpu_j(20.0, 10.0), 1e-9);
  EXPECT_NEAR(w.channels[0].machine_energy_j, machine_cpu_j(20.0, 10.0), 1e-9);
  EXPECT_EQ(w.method, "estimated, attributed by CPU-time share");
  EXPECT_THAT(w.channels[0].attribution, HasSubstr("CPU-time share 50%"));
  EXPECT_THAT(w.channels[0].attribution, HasSubstr("idle power of 1 of 2 CPUs held (1 reserved: threads)"));
  EXPECT_NEAR(w.components[0].energy_j, w.energy_j, 1e-9);
  EXPECT_NEAR(w.avg_power_w, w.energy_j / 10.0, 1e-9);
}

// The physics: the same work costs the run the same energy, whatever else runs.
TEST(RunShare, TheSameWorkCostsTheSameAloneAndBesideANeighbour) {
  const std::vector<ChannelInfo> infos{info("estimate:cpu", Component::cpu, 2 * kIdle)};
  auto alone = window(infos, {machine_cpu_j(10.0, 10.0)}, 10.0);
  attribute_window(alone, infos, share_of(10.0, 10.0));
  auto beside = window(infos, {machine_cpu_j(20.0, 10.0)}, 10.0);
  attribute_window(beside, infos, share_of(20.0, 10.0));
  EXPECT_NEAR(alone.energy_j, beside.energy_j, 1e-9);
  EXPECT_GT(beside.machine_energy_j, 1.5 * alone.machine_energy_j);
}

// Neighbours that slow the run down (the same CPU time over a longer window,
// the machine full) do not charge it more idle power.
TEST(RunShare, ASlowerWindowForTheSameWorkCostsTheSame) {
  const std::vector<ChannelInfo> infos{info("estimate:cpu", Component::cpu, 2 * kIdle)};
  auto fast = window(infos, {machine_cpu_j(2.0, 1.0)}, 1.0);  // 1 s, the run 1 CPU-s, a neighbour 1
  attribute_window(fast, infos, share_of(2.0, 1.0));
  auto slow = window(infos, {machine_cpu_j(8.0, 4.0)}, 4.0);  // 4 s, the run 1 CPU-s, neighbours 7
  attribute_window(slow, infos, share_of(8.0, 1.0));
  EXPECT_NEAR(slow.energy_j, fast.energy_j, 1e-9);
}

// A reservation the run does not use is its own while the CPUs stay idle
// (a Slurm allocation of 4 CPUs, one used, on a quiet 8-CPU node).
TEST(RunShare, UnusedReservedCpusAreChargedWhileTheyAreIdle) {
  const std::vector<ChannelInfo> infos{info("estimate:cpu", Component::cpu, 8 * kIdle)};
  auto w = window(infos, {8 * kIdle * 10.0 + (kFull - kIdle) * 10.0}, 10.0);
  RunShare s = share_of(10.0, 10.0, 4.0);
  s.machine_cpus = 8;
  attribute_window(w, infos, s);
  EXPECT_NEAR(w.energy_j, 4 * kIdle * 10.0 + (kFull - kIdle) * 10.0, 1e-9);
}

TEST(RunShare, ARunHoldingEveryCpuIsChargedAllIdlePower) {
  const std::vector<ChannelInfo> infos{info("estimate:cpu", Component::cpu, 2 * kIdle)};
  auto w = window(infos, {machine_cpu_j(1.0, 10.0)}, 10.0);
  attribute_window(w, infos, share_of(1.0, 1.0, 2.0));
  EXPECT_NEAR(w.energy_j, w.machine_energy_j, 1e-9);
}

TEST(RunShare, UnknownIdlePowerSplitsTheWholeReadingByCpuTime) {
  auto rapl = info("rapl:package-0", Component::cpu);
  rapl.method = Method::counter;
  const std::vector<ChannelInfo> infos{rapl};
  auto w = window(infos, {100.0}, 10.0);
  w.channels[0].method = Method::counter;
  attribute_window(w, infos, share_of(20.0, 5.0));
  EXPECT_NEAR(w.energy_j, 25.0, 1e-9);
  EXPECT_THAT(w.channels[0].attribution, HasSubstr("idle power unknown"));
  EXPECT_EQ(w.method, "counter, attributed by CPU-time share");
}

TEST(RunShare, MemoryByItsShareOfTheMemoryInUse) {
  const std::vector<ChannelInfo> infos{info("estimate:cpu", Component::cpu, 2 * kIdle),
                                       info("estimate:memory", Component::dram)};
  auto w = window(infos, {machine_cpu_j(10.0, 10.0), 40.0}, 10.0);
  auto s = share_of(10.0, 10.0);
  s.memory_share = 0.25;
  attribute_window(w, infos, s);
  EXPECT_NEAR(w.channels[1].energy_j, 10.0, 1e-9);
  EXPECT_NEAR(w.energy_j_of(Component::dram), 10.0, 1e-9);
  EXPECT_EQ(w.method, "estimated, attributed by CPU-time share and memory share");
}

// Memory held while neighbours occupy the run's CPU (an oversubscribed node:
// the run gets a quarter of a CPU, the same work over four times the time)
// costs it no more than the same work alone.
TEST(RunShare, MemoryIsChargedForTheTimeTheRunHeldItsCpus) {
  const std::vector<ChannelInfo> infos{info("estimate:cpu", Component::cpu, 2 * kIdle),
                                       info("estimate:memory", Component::dram)};
  auto alone = window(infos, {machine_cpu_j(2.0, 2.0), 2.0}, 2.0);  // the run 2 CPU-s of its 1 reserved CPU
  auto s = share_of(2.0, 2.0);
  s.memory_share = 0.5;
  attribute_window(alone, infos, s);
  auto crowded = window(infos, {machine_cpu_j(16.0, 8.0), 8.0}, 8.0);  // the same 2 CPU-s over 8 s, machine full
  auto c = share_of(16.0, 2.0);
  c.memory_share = 0.5;
  attribute_window(crowded, infos, c);
  EXPECT_NEAR(alone.channels[1].energy_j, 1.0, 1e-9);
  EXPECT_NEAR(crowded.channels[1].energy_j, 1.0, 1e-9);
  EXPECT_NEAR(crowded.energy_j, alone.energy_j, 1e-9);
  EXPECT_THAT(crowded.channels[1].attribution, HasSubstr("over 25% of the window"));
}

TEST(RunShare, UnreadableCpuTimeChargesTheWholeReadingWithANote) {
  const std::vector<ChannelInfo> infos{info("estimate:cpu", Component::cpu, 2 * kIdle)};
  auto w = window(infos, {50.0}, 10.0);
  RunShare s;
  s.machine_cpus = 2;
  attribute_window(w, infos, s);
  EXPECT_NEAR(w.energy_j, 50.0, 1e-9);
  ASSERT_FALSE(w.notes.empty());
  EXPECT_THAT(w.notes[0], HasSubstr("charged whole"));
  EXPECT_EQ(w.method, "estimated");
}

TEST(RunShare, ChannelsThatMeasureTheRunAlreadyAreLeftAsRead) {
  auto process = info("estimate:cpu", Component::cpu);
  process.run_scope = true;
  const std::vector<ChannelInfo> infos{process};
  auto w = window(infos, {12.0}, 10.0);
  attribute_window(w, infos, share_of(20.0, 5.0));
  EXPECT_NEAR(w.energy_j, 12.0, 1e-9);
  EXPECT_NEAR(w.machine_energy_j, 12.0, 1e-9);
}

TEST(RunShare, GpusByClaim) {
  auto g = [](int i) {
    auto c = info("nvml:gpu" + std::to_string(i), Component::gpu);
    c.method = Method::counter;
    c.gpu_index = i;
    return c;
  };
  const std::vector<ChannelInfo> infos{g(0), g(1), g(2), g(3)};
  auto w = window(infos, {100.0, 100.0, 100.0, 100.0}, 1.0);
  for (auto& c : w.channels) c.method = Method::counter;
  RunShare s = share_of(1.0, 1.0);
  s.gpus.resize(4);
  s.gpus[0] = {GpuClaim::run, 1.0, "", ""};
  s.gpus[1] = {GpuClaim::other, 1.0, "", ""};
  s.gpus[2] = {GpuClaim::run, 0.75, "per-process utilization", ""};
  s.gpus[3] = {GpuClaim::unknown, 1.0, "", "nvml:gpu3: whether the run used it is unknown"};
  attribute_window(w, infos, s);
  EXPECT_NEAR(w.channels[0].energy_j, 100.0, 1e-9);
  EXPECT_NEAR(w.channels[1].energy_j, 0.0, 1e-9);
  EXPECT_EQ(w.channels[1].attribution, "not the run's GPU");
  EXPECT_NEAR(w.channels[2].energy_j, 75.0, 1e-9);
  EXPECT_EQ(w.channels[2].attribution, "per-process utilization 75%");
  EXPECT_NEAR(w.channels[3].energy_j, 100.0, 1e-9);
  EXPECT_NEAR(w.energy_j, 275.0, 1e-9);
  EXPECT_NEAR(w.machine_energy_j, 400.0, 1e-9);
  EXPECT_THAT(w.notes, ::testing::Contains(HasSubstr("unknown")));
  EXPECT_EQ(w.method, "counter, attributed by GPU processes");
}

// --- cgroups --------------------------------------------------------------------

using powertrain::testing::read_file;
using powertrain::testing::TempDir;
using powertrain::testing::write_file;

TEST(RunCgroups, ASlurmStepUnderCgroupV2) {
  TempDir d;
  const std::string step = "/system.slice/slurmstepd.scope/job_41/step_0/user/task_0";
  write_file(d / "proc/self/cgroup", "0::" + step + "\n");
  const auto dir = d / ("sys/fs/cgroup" + step);
  write_file(d / "sys/fs/cgroup/cgroup.procs", "1\n");
  write_file(d / "sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
  write_file(dir / "cpu.stat", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n");
  write_file(dir / "memory.current", "4096000\n");
  write_file(dir / "memory.stat", "anon 3000000\ninactive_file 96000\n");
  write_file(dir / "cgroup.procs", "101\n102\n");
  auto u = slurm_cgroup(d / "proc", d / "sys");
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->covers(), "the cgroup of Slurm job 41 step 0");
  EXPECT_DOUBLE_EQ(u->cpu_busy_seconds(), 2.5);
  EXPECT_DOUBLE_EQ(u->memory_used_bytes(), 4000000.0);
  EXPECT_EQ(u->pids(), (std::vector<int>{101, 102}));
  // The counter moves: a later read sees the step's later CPU time.
  write_file(dir / "cpu.stat", "usage_usec 4000000\n");
  EXPECT_DOUBLE_EQ(u->cpu_busy_seconds(), 4.0);
}

// Issue 26: a meter of a Slurm trial over several nodes counts every step of
// the job on its node (the program's ranks run in a step of their own).
TEST(RunCgroups, TheWholeSlurmJobWhenAsked) {
  TempDir d;
  const std::string job = "/system.slice/slurmstepd.scope/job_41";
  write_file(d / "proc/self/cgroup", "0::" + job + "/step_0/user/task_0\n");
  write_file(d / "sys/fs/cgroup/cgroup.procs", "1\n");
  write_file(d / "sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
  const auto dir = d / ("sys/fs/cgroup" + job);
  write_file(dir / "cpu.stat", "usage_usec 9000000\n");
  write_file(dir / "step_0/user/task_0/cpu.stat", "usage_usec 1000000\n");
  write_file(dir / "step_0/user/task_0/cgroup.procs", "101\n");
  write_file(dir / "step_1/user/task_0/cgroup.procs", "201\n202\n");
  write_file(dir / "cgroup.procs", "");
  {
    powertrain::testing::ScopedEnv scope("POWERTRAIN_SLURM_CGROUP", "job");
    auto u = slurm_cgroup(d / "proc", d / "sys");
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(u->covers(), "the cgroup of Slurm job 41");
    EXPECT_DOUBLE_EQ(u->cpu_busy_seconds(), 9.0);
    auto pids = u->pids();
    std::sort(pids.begin(), pids.end());
    EXPECT_EQ(pids, (std::vector<int>{101, 201, 202}));
  }
  powertrain::testing::ScopedEnv scope("POWERTRAIN_SLURM_CGROUP", nullptr);
  auto step = slurm_cgroup(d / "proc", d / "sys");
  ASSERT_NE(step, nullptr);
  EXPECT_DOUBLE_EQ(step->cpu_busy_seconds(), 1.0);  // without it: the meter's own step
}

// /proc/PID/stat with the fields ProcessUsage reads: ppid, utime + stime, rss.
std::string proc_stat(int pid, int ppid, int ticks, int rss) {
  std::string s = std::to_string(pid) + " (rank) S " + std::to_string(ppid);
  for (int f = 5; f <= 13; ++f) s += " 0";
  s += " " + std::to_string(ticks) + " 0 0 0";
  for (int f = 18; f <= 23; ++f) s += " 0";
  return s + " " + std::to_string(rss) + " 0 0\n";
}

// A Slurm without cgroups (proctrack/linuxproc): a node's meter is charged with
// the job's processes there, which srun started under slurmstepd, outside the
// meter's tree: found by SLURM_JOB_ID and the node's SLURMD_NODENAME, each with
// its children; another job's processes and those of another slurmd on the same
// host stay out, and a task that ends keeps the time it used.
TEST(RunCgroups, WithoutSlurmCgroupsAJobsProcessesAreFoundByItsJobId) {
  TempDir d;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  write_file(d / "proc/self/cgroup", "0::/user.slice\n");
  write_file(d / "proc/10/stat", proc_stat(10, 1, 5, 1));  // the meter
  const std::string node1("SLURMD_NODENAME=node1\0", 22);
  write_file(d / "proc/10/environ", std::string("SLURM_JOB_ID=41\0PATH=/bin\0", 26) + node1);
  write_file(d / "proc/20/stat", proc_stat(20, 2, 300, 1));  // a rank, slurmstepd's child
  write_file(d / "proc/20/environ", node1 + std::string("HOME=/h\0SLURM_JOB_ID=41\0", 24));
  write_file(d / "proc/21/stat", proc_stat(21, 20, 100, 1));  // its data loader
  write_file(d / "proc/30/stat", proc_stat(30, 2, 9000, 1));  // another job's rank
  write_file(d / "proc/30/environ", std::string("SLURM_JOB_ID=411\0", 17));
  write_file(d / "proc/40/stat", proc_stat(40, 1, 7000, 1));  // no environment to read
  write_file(d / "proc/50/stat", proc_stat(50, 2, 8000, 1));  // the job's rank on another slurmd here
  write_file(d / "proc/50/environ", std::string("SLURM_JOB_ID=41\0SLURMD_NODENAME=node0\0", 38));
  powertrain::testing::ScopedEnv scope("POWERTRAIN_SLURM_CGROUP", "job");
  powertrain::testing::ScopedEnv job("SLURM_JOB_ID", "41");
  powertrain::testing::ScopedEnv node("SLURMD_NODENAME", "node1");
  auto u = run_usage(10, nullptr, d / "proc", d / "sys");
  ASSERT_NE(u, nullptr);
  EXPECT_THAT(u->covers(), HasSubstr("Slurm job 41 on this node"));
  EXPECT_DOUBLE_EQ(u->cpu_busy_seconds(), 405 / hz);
  auto pids = u->pids();
  std::sort(pids.begin(), pids.end());
  EXPECT_EQ(pids, (std::vector<int>{10, 20, 21}));
  // The rank and its loader end; slurmstepd reaps them: their time stays counted.
  std::filesystem::remove_all(d / "proc/20");
  std::filesystem::remove_all(d / "proc/21");
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_DOUBLE_EQ(u->cpu_busy_seconds(), 405 / hz);
  // Without the trial-over-nodes setting the meter's own tree is its scope.
  powertrain::testing::ScopedEnv off("POWERTRAIN_SLURM_CGROUP", nullptr);
  EXPECT_DOUBLE_EQ(run_usage(10, nullptr, d / "proc", d / "sys")->cpu_busy_seconds(), 5 / hz);
}

TEST(RunCgroups, ASlurmJobUnderCgroupV1) {
  TempDir d;
  write_file(d / "proc/self/cgroup",
             "11:memory:/slurm/uid_1000/job_7/step_batch\n4:cpu,cpuacct:/slurm/uid_1000/job_7/step_batch\n"
             "0::/user.slice\n");
  const auto cpu = d / "sys/fs/cgroup/cpu,cpuacct/slurm/uid_1000/job_7/step_batch";
  write_file(d / "sys/fs/cgroup/cpu,cpuacct/cgroup.procs", "1\n");
  write_file(d / "sys/fs/cgroup/cpu,cpuacct/cpuacct.usage", "999999999999\n");
  write_file(cpu / "cpuacct.usage", "1500000000\n");
  write_file(cpu / "cgroup.procs", "55\n");
  const auto mem = d / "sys/fs/cgroup/memory/slurm/uid_1000/job_7/step_batch";
  write_file(d / "sys/fs/cgroup/memory/cgroup.procs", "1\n");
  write_file(mem / "memory.usage_in_bytes", "2000000\n");
  write_file(mem / "memory.stat", "cache 100\ntotal_inactive_file 500000\n");
  auto u = slurm_cgroup(d / "proc", d / "sys");
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->covers(), "the cgroup of Slurm job 7 step batch");
  EXPECT_DOUBLE_EQ(u->cpu_busy_seconds(), 1.5);
  EXPECT_DOUBLE_EQ(u->memory_used_bytes(), 1500000.0);
  EXPECT_EQ(u->pids(), std::vector<int>{55});
}

TEST(RunCgroups, OutsideSlurmThereIsNoSlurmCgroup) {
  TempDir d;
  write_file(d / "proc/self/cgroup", "0::/user.slice/user-1000.slice/session-3.scope\n");
  EXPECT_EQ(slurm_cgroup(d / "proc", d / "sys"), nullptr);
}

TEST(RunCgroups, AnUnreadableCounterIsASourceError) {
  TempDir d;
  auto u = cgroup_usage(d / "gone", 2, "a cgroup");
  EXPECT_THROW(u->cpu_busy_seconds(), SourceError);
  auto v1 = cgroup_usage(d / "gone", 1, "a cgroup");
  EXPECT_THROW(v1->cpu_busy_seconds(), SourceError);
  EXPECT_THROW(v1->memory_used_bytes(), SourceError);
}

TEST(RunCgroups, ACgroupOfItsOwnIsRefusedWithAReasonWhereTheTreeIsNotWritable) {
  TempDir d;
  write_file(d / "proc/self/cgroup", "0::/\n");
  std::string why;
  EXPECT_EQ(RunCgroup::create(why, d / "proc", d / "sys"), nullptr);
  EXPECT_FALSE(why.empty());
}

// On a hybrid machine the unified tree has no memory controller: the cgroup
// gives the run's CPU time and its processes give its memory.
TEST(RunCgroups, ACgroupWithoutMemoryTakesTheMemoryOfItsProcesses) {
  TempDir d;
  write_file(d / "proc/self/cgroup", "4:memory:/x\n0::/\n");
  write_file(d / "sys/fs/cgroup/unified/cgroup.procs", "1\n");
  std::string why;
  auto own = RunCgroup::create(why, d / "proc", d / "sys");
  ASSERT_NE(own, nullptr) << why;
  EXPECT_EQ(own->version(), 2);
  write_file(own->dir() / "cpu.stat", "usage_usec 700000\n");
  auto u = run_usage(::getpid(), own.get(), "/proc", d / "sys");
  EXPECT_DOUBLE_EQ(u->cpu_busy_seconds(), 0.7);
  EXPECT_GT(u->memory_used_bytes(), 1e6) << "this test process's own PSS";
}

// A real cgroup of powertrain's own where this machine allows one: a child
// that burns CPU after leaving powertrain's session (setsid) is still counted.
TEST(RunCgroups, ACgroupOfItsOwnCountsDescendantsThatLeftTheTree) {
  std::string why;
  auto own = RunCgroup::create(why);
  if (!own) GTEST_SKIP() << "no cgroup can be made here: " << why;
  auto usage = own->usage();
  const double before = usage->cpu_busy_seconds();
  const pid_t child = ::fork();
  if (child == 0) {
    ::setsid();
    (void)burn(0.4, 1);
    ::_exit(0);
  }
  int status = 0;
  struct rusage ru {};
  ::wait4(child, &status, 0, &ru);
  const double child_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                         1e-6 * static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
  const double used = usage->cpu_busy_seconds() - before;
  // Everything the child ran is in the cgroup (and a little of this process's own).
  EXPECT_GT(child_s, 0.0);
  EXPECT_GE(used, 0.95 * child_s);
  const auto dir = own->dir();
  own.reset();
  EXPECT_FALSE(std::filesystem::exists(dir)) << "the cgroup is removed when the run ends";
}

// A cgroup made for a command (measure) is not entered: powertrain's pid is
// written nowhere until enter() is asked for, and its label says which.
TEST(RunCgroups, ACgroupMadeForACommandIsEnteredOnlyWhenAsked) {
  TempDir d;
  write_file(d / "proc/self/cgroup", "0::/\n");
  write_file(d / "sys/fs/cgroup/cgroup.procs", "1\n");
  write_file(d / "sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
  std::string why;
  auto own = RunCgroup::create(why, d / "proc", d / "sys", /*enter=*/false);
  ASSERT_NE(own, nullptr) << why;
  const std::string name = "powertrain-" + std::to_string(::getpid());
  EXPECT_EQ(own->dir(), d / "sys/fs/cgroup" / name);
  EXPECT_FALSE(own->entered());
  EXPECT_FALSE(std::filesystem::exists(own->dir() / "cgroup.procs")) << "powertrain was moved into it";
  EXPECT_EQ(own->label(), "the cgroup " + name + " the command was started in (powertrain outside it)");
  write_file(own->dir() / "cpu.stat", "usage_usec 250000\n");
  auto usage = own->usage();
  EXPECT_DOUBLE_EQ(usage->cpu_busy_seconds(), 0.25);
  EXPECT_EQ(usage->covers(), own->label());

  ASSERT_TRUE(own->enter(why)) << why;
  EXPECT_TRUE(own->entered());
  EXPECT_EQ(read_file(own->dir() / "cgroup.procs"), std::to_string(::getpid()) + "\n");
  EXPECT_EQ(own->label(), "powertrain's own cgroup " + name);
}

// The same on this machine where it allows a cgroup: made, powertrain stays
// where it is, and the cgroup goes when the run ends.
TEST(RunCgroups, ACgroupMadeForACommandLeavesPowertrainWhereItIs) {
  std::string why;
  auto own = RunCgroup::create(why, "/proc", "/sys", /*enter=*/false);
  if (!own) GTEST_SKIP() << "no cgroup can be made here: " << why;
  const std::string name = own->dir().filename().string();
  EXPECT_TRUE(std::filesystem::is_directory(own->dir()));
  EXPECT_EQ(read_file("/proc/self/cgroup").find("/" + name), std::string::npos) << read_file("/proc/self/cgroup");
  const auto dir = own->dir();
  own.reset();
  EXPECT_FALSE(std::filesystem::exists(dir)) << "the cgroup is removed when the run ends";
}

TEST(ReservedCpus, SlurmAllocationFirstThenThreadsThenTheWholeMachine) {
  TempDir d;
  write_file(d / "proc/self/cgroup", "0::/\n");
  {
    ScopedEnv job("SLURM_JOB_ID", "41"), cpus("SLURM_CPUS_ON_NODE", "4");
    const auto r = reserved_cpus(64, 2, (d / "proc").string(), (d / "sys").string());
    EXPECT_DOUBLE_EQ(r.cpus, 4.0);
    EXPECT_EQ(r.basis, "Slurm allocation");
  }
  ScopedEnv job("SLURM_JOB_ID", nullptr);
  const auto threads = reserved_cpus(64, 2, (d / "proc").string(), (d / "sys").string());
  EXPECT_DOUBLE_EQ(threads.cpus, 2.0);
  EXPECT_EQ(threads.basis, "threads");
  const auto all = reserved_cpus(64, 0, (d / "proc").string(), (d / "sys").string());
  EXPECT_DOUBLE_EQ(all.cpus, 64.0);
  EXPECT_EQ(all.basis, "whole machine");
}

TEST(ReservedCpus, ACgroupQuotaV1AndV2) {
  TempDir d;
  write_file(d / "proc/self/cgroup", "0::/docker/abc\n");
  write_file(d / "sys/fs/cgroup/docker/abc/cpu.max", "150000 100000\n");
  ScopedEnv job("SLURM_JOB_ID", nullptr);
  const auto v2 = reserved_cpus(8, 0, (d / "proc").string(), (d / "sys").string());
  EXPECT_DOUBLE_EQ(v2.cpus, 1.5);
  EXPECT_EQ(v2.basis, "cgroup quota");
  TempDir e;
  write_file(e / "proc/self/cgroup", "4:cpu,cpuacct:/kube/pod1\n");
  write_file(e / "sys/fs/cgroup/cpu/kube/pod1/cpu.cfs_quota_us", "200000\n");
  write_file(e / "sys/fs/cgroup/cpu/kube/pod1/cpu.cfs_period_us", "100000\n");
  const auto v1 = reserved_cpus(8, 0, (e / "proc").string(), (e / "sys").string());
  EXPECT_DOUBLE_EQ(v1.cpus, 2.0);
}

// --- the tracker, on this machine's real estimate -------------------------------

// Burns one thread for `seconds` inside a window of a tracker charged to this
// process; returns the window.
WindowResult burn_window(Tracker& tracker, const std::string& name, double seconds) {
  tracker.begin(name);
  (void)burn(seconds, 1);
  return tracker.end(name);
}

// The invariant on the real estimate: the same single-thread work
// alone and beside a process that keeps another core busy costs the run about
// the same, while what the meters read grows.
TEST(RunShareOnThisMachine, TheSameWorkAloneAndBesideANoisyNeighbour) {
  ProbeOptions o;
  o.disabled = {"nvml", "rapl", "perf", "rails"};
  auto probe = probe_sources(o);
  if (probe.meters.empty()) GTEST_SKIP() << "no estimate here";
  TrackerOptions t;
  t.interval = std::chrono::milliseconds(20);
  Tracker tracker(std::move(probe.meters), t);
  RunScopeOptions scope;
  scope.pid = ::getpid();
  scope.threads = 1;
  scope.own_cgroup = false;  // the process tree: this test process
  try {
    (void)attribute_run(tracker, scope);
  } catch (const std::exception& e) {
    GTEST_SKIP() << "cannot read this machine's CPU time: " << e.what();
  }
  tracker.start();
  const auto alone = burn_window(tracker, "alone", 1.5);
  const pid_t neighbour = ::fork();
  if (neighbour == 0) {
    (void)burn(30.0, 1);
    ::_exit(0);
  }
  const auto beside = burn_window(tracker, "beside", 1.5);
  ::kill(neighbour, SIGKILL);
  ::waitpid(neighbour, nullptr, 0);
  tracker.stop();
  ASSERT_TRUE(alone.cpu && beside.cpu);
  if (beside.cpu->others_s() < 0.5) GTEST_SKIP() << "the neighbour did not get a CPU";
  EXPECT_THAT(beside.method, HasSubstr("attributed by CPU-time share"));
  // Per CPU-second of the run's own work, so that a slower CPU under contention
  // (the same work taking longer) does not count as attribution error.
  const double alone_j = alone.energy_j / alone.cpu->measured_s;
  const double beside_j = beside.energy_j / beside.cpu->measured_s;
  EXPECT_NEAR(beside_j / alone_j, 1.0, 0.15) << "alone " << alone.energy_j << " J, beside " << beside.energy_j << " J";
  // What the meters read grows with the neighbour (when the first window was
  // really alone: other tests may share this machine).
  if (alone.cpu->others_s() < 0.1 * alone.cpu->measured_s)
    EXPECT_GT(beside.machine_energy_j / beside.cpu->measured_s, 1.2 * alone.machine_energy_j / alone.cpu->measured_s);
}

}  // namespace
}  // namespace powertrain::energy

namespace powertrain::energy {
namespace {

TEST(UnmeasuredGpus, AmdAndIntelDiscreteCardsAndNvidiaWithoutNvmlAreNamed) {
  powertrain::testing::TempDir d;
  using powertrain::testing::write_file;
  write_file(d / "sys/class/drm/card0/device/vendor", "0x1002\n");
  write_file(d / "sys/class/drm/card0/device/class", "0x030000\n");
  write_file(d / "sys/class/drm/card0-DP-1/status", "connected\n");
  write_file(d / "sys/class/drm/card1/device/vendor", "0x8086\n");
  write_file(d / "sys/class/drm/card1/device/class", "0x030000\n");  // integrated: inside RAPL's package
  write_file(d / "sys/class/drm/card2/device/vendor", "0x10de\n");
  write_file(d / "sys/class/drm/card2/device/class", "0x030200\n");
  const auto with_nvml = unmeasured_gpus((d / "sys").string(), true);
  ASSERT_EQ(with_nvml.size(), 1u);
  EXPECT_THAT(with_nvml[0], HasSubstr("AMD GPU (card0)"));
  const auto without = unmeasured_gpus((d / "sys").string(), false);
  ASSERT_EQ(without.size(), 2u);
  EXPECT_THAT(without[1], HasSubstr("NVIDIA GPU (card2) that NVML does not measure"));
}

TEST(UnmeasuredGpus, AreSaidInTheMethodAndTheNotes) {
  ChannelInfo cpu;
  cpu.id = "estimate:cpu";
  cpu.idle_power_w = 1.48;
  const std::vector<ChannelInfo> infos{cpu};
  WindowResult w;
  w.duration_s = 1.0;
  ChannelEnergy c;
  c.channel_id = "estimate:cpu";
  c.energy_j = 3.0;
  w.channels.push_back(c);
  RunShare s;
  s.machine_cpus = 2;
  s.machine_cpu_s = 1.0;
  s.run_cpu_s = 1.0;
  s.unmeasured_gpu = "GPU energy is missing from every figure: the machine has an AMD GPU (card0)";
  attribute_window(w, infos, s);
  EXPECT_THAT(w.method, HasSubstr("GPU not measured"));
  EXPECT_THAT(w.notes, ::testing::Contains(HasSubstr("AMD GPU")));
}

}  // namespace
}  // namespace powertrain::energy
