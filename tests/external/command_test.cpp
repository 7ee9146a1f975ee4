#include <gtest/gtest.h>

#include <algorithm>

#include "powertrain/error.h"
#include "powertrain/external/command.h"
#include "scoped_env.h"

namespace px = powertrain::external;
namespace prun = powertrain::run;
using powertrain::ConfigError;
using powertrain::testing::ScopedEnv;

namespace {

prun::RunConfig with_command(std::vector<std::string> argv) {
  prun::RunConfig c;
  c.command.argv = std::move(argv);
  c.batch_size = 32;
  c.learning_rate = 0.001;
  c.seed = 7;
  c.checkpoint = "/art/pretrain-seed7.pt";
  c.freeze_encoder = true;
  c.tasks = "a,b";
  return c;
}

std::string env_of(const std::vector<std::pair<std::string, std::string>>& env, const std::string& name) {
  std::string v = "<unset>";
  for (const auto& [k, val] : env)
    if (k == name) v = val;  // the last one wins, as in the child
  return v;
}

}  // namespace

TEST(Command, ExpandsEveryPlaceholder) {
  const auto c = with_command({"python3", "train.py", "--bs={batch_size}", "--lr", "{learning_rate}", "{seed}",
                               "{checkpoint}", "{encoder_checkpoint}", "{freeze_encoder}", "{tasks}", "{{literal}}"});
  const auto argv = px::expand_argv(c);
  const std::vector<std::string> want{"python3", "train.py", "--bs=32", "--lr", "0.001", "7",
                                      "/art/pretrain-seed7.pt", "/art/pretrain-seed7.encoder.pt", "true", "a,b",
                                      "{literal}"};
  EXPECT_EQ(argv, want);
}

TEST(Command, EveryDocumentedPlaceholderHasAValue) {
  const auto values = px::placeholder_values(prun::RunConfig{});
  for (const auto& name : px::placeholder_names()) EXPECT_TRUE(values.count(name)) << name;
  EXPECT_EQ(values.size(), px::placeholder_names().size());
}

TEST(Command, UnknownPlaceholderAndUnmatchedBracesAreConfigErrors) {
  try {
    px::validate(with_command({"python3", "{batchsize}"}).command);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown placeholder {batchsize}"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("{batch_size}"), std::string::npos) << e.what();
  }
  EXPECT_THROW(px::validate(with_command({"python3", "{seed"}).command), ConfigError);
  EXPECT_THROW(px::validate(with_command({"python3", "seed}"}).command), ConfigError);
  EXPECT_THROW(px::validate(with_command({}).command), ConfigError);
  EXPECT_THROW(px::validate(with_command({""}).command), ConfigError);
  auto bad_env = with_command({"python3"});
  bad_env.command.env = {{"A=B", "1"}};
  EXPECT_THROW(px::validate(bad_env.command), ConfigError);
}

TEST(Command, EnvironmentCarriesTheSettingsAndTheUsersVariables) {
  auto c = with_command({"python3"});
  c.command.env = {{"OMP_NUM_THREADS", "1"}, {"RUN_TAG", "bs{batch_size}"}, {"POWERTRAIN_SEED", "99"}};
  const auto env = px::program_environment(c);
  EXPECT_EQ(env_of(env, "POWERTRAIN_PROTOCOL"), "1");
  EXPECT_EQ(env_of(env, "POWERTRAIN_BATCH_SIZE"), "32");
  EXPECT_EQ(env_of(env, "POWERTRAIN_LEARNING_RATE"), "0.001");
  EXPECT_EQ(env_of(env, "POWERTRAIN_FREEZE_ENCODER"), "1");
  EXPECT_EQ(env_of(env, "POWERTRAIN_ENCODER_CHECKPOINT"), "/art/pretrain-seed7.encoder.pt");
  EXPECT_EQ(env_of(env, "OMP_NUM_THREADS"), "1");
  EXPECT_EQ(env_of(env, "RUN_TAG"), "bs32");
  EXPECT_EQ(env_of(env, "POWERTRAIN_SEED"), "99");  // the user's variable comes last and wins
}

TEST(Command, PythonPlaceholderFollowsPowertrainPython) {
  ::setenv("POWERTRAIN_PYTHON", "/opt/my/python", 1);
  EXPECT_EQ(px::expand_argv(with_command({"{python}", "t.py"})).front(), "/opt/my/python");
  ::unsetenv("POWERTRAIN_PYTHON");
  EXPECT_FALSE(px::python_interpreter().empty());
}

TEST(Command, DisplayQuotesArgumentsWithSpaces) {
  EXPECT_EQ(px::display(with_command({"python3", "my script.py", "--lr", "{learning_rate}"}).command),
            "python3 'my script.py' --lr {learning_rate}");
}

// Issue 26: a distributed command is started through its launcher, with the
// program's own Python running torchrun.
TEST(CommandDistributed, PythonScriptRunsUnderTorchrunOfItsOwnPython) {
  auto c = with_command({"/venv/bin/python3", "ddp.py", "--bs", "{batch_size}"});
  c.command.nproc_per_node = 4;
  const std::vector<std::string> want{"/venv/bin/python3", "-m", "torch.distributed.run", "--nnodes=1",
                                      "--nproc_per_node=4", "--standalone", "ddp.py", "--bs", "32"};
  EXPECT_EQ(px::expand_argv(c), want);
  c.command.argv = {"python", "-m", "pkg.train"};
  const auto module = px::expand_argv(c);
  EXPECT_EQ(std::vector<std::string>(module.end() - 2, module.end()), (std::vector<std::string>{"-m", "pkg.train"}));
}

TEST(CommandDistributed, AnythingElseGoesThroughNoPython) {
  ScopedEnv py("POWERTRAIN_PYTHON", "/opt/py");
  auto c = with_command({"./train.sh", "{seed}"});
  c.command.nproc_per_node = 2;
  const std::vector<std::string> want{"/opt/py", "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
                                      "--standalone", "--no-python", "./train.sh", "7"};
  EXPECT_EQ(px::expand_argv(c), want);
  // A Python started with its own flags is not `python script`: kept whole.
  c.command.argv = {"python3", "-u", "t.py"};
  EXPECT_EQ(px::expand_argv(c)[6], "--no-python");
}

TEST(CommandDistributed, SeveralNodesMeetAtTheRendezvousAndSrunStartsTasks) {
  ScopedEnv port("POWERTRAIN_MASTER_PORT", "29123");
  ScopedEnv host("POWERTRAIN_RDZV_HOST", "node0");
  auto c = with_command({"python3", "t.py", "--port", "{master_port}", "{nnodes}x{nproc_per_node}", "{rdzv_endpoint}"});
  c.command.nproc_per_node = 2;
  c.command.nnodes = 3;
  const std::vector<std::string> want{"python3", "-m", "torch.distributed.run", "--nnodes=3", "--nproc_per_node=2",
                                      "--rdzv-backend=c10d", "--rdzv-endpoint=node0:29123", "--rdzv-id=29123",
                                      "t.py", "--port", "29123", "3x2", "node0:29123"};
  EXPECT_EQ(px::expand_argv(c), want);
  c.command.launcher = "srun";
  const std::vector<std::string> srun{"srun", "--nodes=3", "--ntasks-per-node=2", "--kill-on-bad-exit=1",
                                      "python3", "t.py", "--port", "29123", "3x2", "node0:29123"};
  EXPECT_EQ(px::expand_argv(c), srun);
}

TEST(CommandDistributed, ThePowertrainTaskOfASlurmStepIsNamedForThePackage) {
  ScopedEnv job("SLURM_JOB_ID", "7"), step("SLURM_STEP_ID", "0"), proc("SLURM_PROCID", "1");
  const auto env = px::program_environment(with_command({"python3", "t.py"}));
  EXPECT_EQ(env_of(env, "POWERTRAIN_SLURM_TASK"), "7.0.1");
  step.unset();
  EXPECT_EQ(env_of(px::program_environment(with_command({"python3", "t.py"})), "POWERTRAIN_SLURM_TASK"), "<unset>");
}

TEST(CommandDistributed, PortsAndSettingsAreChecked) {
  ScopedEnv unset("POWERTRAIN_MASTER_PORT", nullptr);
  auto c = with_command({"python3", "t.py"});
  EXPECT_EQ(px::master_port(1), px::master_port(1));  // one port per powertrain process
  EXPECT_GT(px::master_port(1), 0);
  {
    ScopedEnv slurm("SLURM_JOB_ID", "123456");
    EXPECT_EQ(px::master_port(2), 20000 + 123456 % 20000);  // every node derives the same one
    ScopedEnv bad("POWERTRAIN_MASTER_PORT", "70000");
    EXPECT_THROW(px::master_port(1), ConfigError);
  }
  c.command.nnodes = 2;
  EXPECT_THROW(px::validate(c.command), ConfigError);  // nodes without processes per node
  c.command.nproc_per_node = 2;
  px::validate(c.command);
  c.command.launcher = "mpirun";
  EXPECT_THROW(px::validate(c.command), ConfigError);
  // One-process commands are unchanged.
  EXPECT_EQ(px::expand_argv(with_command({"python3", "t.py"})), (std::vector<std::string>{"python3", "t.py"}));
}
