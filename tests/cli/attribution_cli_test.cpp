// End to end: the run's own energy beside the machine's (docs/measurement.md,
// "The run's own energy"): measure and train record both, a launcher's GPUs
// are kept as unknown rather than dropped, and --gpus names them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "powertrain/store/store.h"
#include "run_cli.h"
#include "scoped_env.h"
#include "temp_dir.h"

namespace powertrain {
namespace {

using powertrain::testing::ScopedEnv;

using ::testing::HasSubstr;
using testing::read_file;
using testing::run_powertrain;
using testing::TempDir;
using testing::write_file;

class AttributionCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::powertrain_binary().empty()) GTEST_SKIP() << "POWERTRAIN_BINARY is not set (run through ctest)";
  }
  nlohmann::json measure(const std::vector<std::string>& args) {
    std::vector<std::string> a{"measure", "--json", "-o", (dir_ / "m.json").string()};
    a.insert(a.end(), args.begin(), args.end());
    auto r = run_powertrain(a);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(read_file(dir_ / "m.json"));
  }
  TempDir dir_;
};

TEST_F(AttributionCli, MeasureChargesTheCommandItsShareBesideANoisyNeighbour) {
  // A neighbour outside the measured command keeps a core busy.
  const int neighbour = testing::spawn_powertrain({"burn", "--seconds", "30", "--threads", "1"},
                                                  (dir_ / "neighbour.log").string());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto doc = measure({"--", testing::powertrain_binary(), "burn", "--seconds", "1.5", "--threads", "1"});
  ::kill(neighbour, SIGKILL);
  ::waitpid(neighbour, nullptr, 0);
  EXPECT_THAT(doc["attribution"].get<std::string>(), HasSubstr("CPU time from"));
  EXPECT_GT(doc["machine_energy_j"].get<double>(), doc["energy_j"].get<double>());
  EXPECT_GT(doc["energy_j"].get<double>(), 0.0);
  EXPECT_THAT(doc["method"].get<std::string>(), HasSubstr("attributed by CPU-time share"));
  for (const auto& c : doc["channels"]) {
    EXPECT_TRUE(c.contains("machine_energy_j")) << c.dump();
    EXPECT_LE(c["energy_j"].get<double>(), c["machine_energy_j"].get<double>() + 1e-9) << c.dump();
  }
}

#ifdef FAKE_NVML_PATH
// `measure -- srun ...` (or docker run): the GPU's processes are not the
// command's descendants. The GPU stays in as unknown, with a note, and
// --gpus names it as the command's.
TEST_F(AttributionCli, ALaunchersGpusAreKeptAsUnknownAndGpusNamesThem) {
  write_file(dir_ / "nvml.txt", "gpu 0 name=NVIDIA_H100 watts=300 refresh_ms=10 pids=4000001\n");
  ScopedEnv lib("POWERTRAIN_NVML_LIBRARY", FAKE_NVML_PATH), script("FAKE_NVML_SCRIPT", (dir_ / "nvml.txt").string().c_str());
  const auto srun = dir_ / "bin/srun";  // a launcher by name; its work is a stand-in
  write_file(srun, "#!/bin/sh\nsleep 0.4\n");
  std::filesystem::permissions(srun, std::filesystem::perms::owner_all);

  const auto gpu = [](const nlohmann::json& doc) {
    for (const auto& c : doc["channels"])
      if (c["component"] == "gpu") return c;
    return nlohmann::json();
  };
  const auto launched = measure({"--", srun.string()});
  const auto g = gpu(launched);
  ASSERT_FALSE(g.is_null()) << launched.dump();
  EXPECT_TRUE(g["used_by_command"].is_null()) << g.dump();
  EXPECT_THAT(g["use_note"].get<std::string>(), HasSubstr("--gpus"));
  EXPECT_GT(launched["energy_j"].get<double>(), 0.9 * g["energy_j"].get<double>());

  const auto named = measure({"--gpus", "0", "--", srun.string()});
  EXPECT_EQ(gpu(named)["used_by_command"], true);

  // A plain command whose tree is not on the GPU: the GPU is another's, left
  // out (where NVML's host process ids compare with ours).
  std::error_code ec;
  if (std::filesystem::read_symlink("/proc/self/ns/pid", ec).string() != "pid:[4026531836]") return;
  const auto plain = measure({"--", "sleep", "0.4"});
  EXPECT_EQ(gpu(plain)["used_by_command"], false);
  EXPECT_GT(plain["excluded_gpu_energy_j"].get<double>(), 50.0);
}
#endif

TEST_F(AttributionCli, TrainStoresTheRunsOwnEnergyBesideTheMachines) {
  const auto db = dir_ / "r.db";
  auto r = run_powertrain({"train", "--dataset", "synthetic-images", "--data", "max_samples=64", "--batch-size", "16",
                           "--max-epochs", "2", "--threads", "1", "--quiet", "--db", db.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto store = store::Store::open_readonly(db);
  const auto runs = store.list_runs();
  ASSERT_EQ(runs.size(), 1u);
  const auto& s = runs[0].summary;
  EXPECT_GT(s.energy_j, 0.0);
  EXPECT_GE(s.machine_energy_j, s.energy_j);
  EXPECT_THAT(s.method, HasSubstr("attributed by CPU-time share"));
  EXPECT_THAT(runs[0].environment.attribution, HasSubstr("1 of"));
  EXPECT_THAT(runs[0].environment.attribution, HasSubstr("CPUs reserved (threads)"));
  double own = 0, machine = 0;
  for (const auto& e : store.epochs_of(runs[0].id)) {
    own += e.energy_j;
    machine += e.machine_energy_j;
    EXPECT_GE(e.machine_energy_j, e.energy_j);
    for (const auto& c : e.channels) EXPECT_GE(c.machine_energy_j + 1e-9, c.energy_j);
  }
  EXPECT_NEAR(own, s.energy_j, 1e-6 * s.energy_j);
  EXPECT_NEAR(machine, s.machine_energy_j, 1e-6 * s.machine_energy_j);
}

TEST_F(AttributionCli, WithoutACgroupOfItsOwnTheRunSaysWhereItsCpuTimeCameFrom) {
  ScopedEnv off("POWERTRAIN_NO_CGROUP", "1");
  const auto db = dir_ / "r.db";
  auto r = run_powertrain({"train", "--dataset", "synthetic-images", "--data", "max_samples=32", "--batch-size", "16",
                           "--max-epochs", "1", "--threads", "1", "--quiet", "--db", db.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto store = store::Store::open_readonly(db);
  EXPECT_THAT(store.list_runs().at(0).environment.attribution,
              HasSubstr("CPU time from the process tree (no cgroup: POWERTRAIN_NO_CGROUP is set)"));
}

}  // namespace
}  // namespace powertrain
