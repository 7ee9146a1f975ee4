// slurm::run_tool, on the one process spawner (external::run_to_end): what
// sbatch, squeue and sacct print, their exit codes, a tool not installed, and
// an environment that carries no containment token (sbatch exports it).
#include <gtest/gtest.h>

#include <string>

#include "powertrain/slurm/slurm.h"

namespace powertrain::slurm {
namespace {

TEST(RunTool, OutputErrorAndExitCodeAreTheTools) {
  const auto r = run_tool({"/bin/sh", "-c", "echo out; echo err >&2; exit 4"});
  EXPECT_TRUE(r.started);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_EQ(r.exit_code, 4);
}

TEST(RunTool, AToolThatIsNotInstalledIsNotStarted) {
  const auto r = run_tool({"powertrain-no-such-tool"});
  EXPECT_FALSE(r.started);
  // Even one that exits 127 with nothing to say was started.
  const auto quiet = run_tool({"/bin/sh", "-c", "exit 127"});
  EXPECT_TRUE(quiet.started);
  EXPECT_EQ(quiet.exit_code, 127);
}

TEST(RunTool, ItsEnvironmentCarriesNoContainmentToken) {
  // sbatch passes its environment on to the jobs it submits.
  const auto r = run_tool({"/usr/bin/env"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("POWERTRAIN_CHILD_TOKEN="), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PATH="), std::string::npos);
}

TEST(RunTool, LargeOutputOnBothStreamsIsReadWhole) {
  // More than a pipe holds on each stream: neither may block the other.
  const auto r = run_tool({"/bin/sh", "-c", "head -c 200000 /dev/zero; head -c 300000 /dev/zero >&2"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.size(), 200000u);
  EXPECT_EQ(r.err.size(), 300000u);
}

}  // namespace
}  // namespace powertrain::slurm
