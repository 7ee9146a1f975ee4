#include <gtest/gtest.h>

#include <algorithm>

#include "powertrain/error.h"
#include "powertrain/external/command.h"

namespace px = powertrain::external;
namespace prun = powertrain::run;
using powertrain::ConfigError;

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
