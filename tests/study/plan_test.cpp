#include <gtest/gtest.h>

#include <set>

#include <nlohmann/json.hpp>

#include "powertrain/study/plan.h"
#include "powertrain/study/spec.h"

namespace ps = powertrain::study;

TEST(Plan, GridIsTheCartesianProductSeedsOutermost) {
  const auto s = ps::parse_spec("seeds = [3, 4]\n[grid]\nbatch_sizes = [8, 16]\nlearning_rates = [0.1, 0.01, 0.001]\n", "g.toml",
                                "grid");
  const auto plan = ps::plan_trials(s);
  ASSERT_EQ(plan.size(), 12u);
  EXPECT_EQ(plan[0].spec.config.seed, 3u);
  EXPECT_EQ(plan[0].spec.config.batch_size, 8);
  EXPECT_DOUBLE_EQ(plan[0].spec.config.learning_rate, 0.1);
  EXPECT_DOUBLE_EQ(plan[1].spec.config.learning_rate, 0.01);
  EXPECT_EQ(plan[3].spec.config.batch_size, 16);
  EXPECT_EQ(plan[6].spec.config.seed, 4u);
  EXPECT_EQ(plan[0].label, "bs=8 lr=0.1 seed=3");
  std::set<std::string> keys;
  for (const auto& t : plan) keys.insert(t.spec.key);
  EXPECT_EQ(keys.size(), plan.size()) << "keys are unique";
}

TEST(Plan, KeysAreCanonical) {
  // Same experiment, different layout, order, number formats and comments.
  const auto a = ps::parse_spec(R"(
[workload.data]
max_samples = 300
image_size = 16
[grid]
batch_sizes = [16]
learning_rates = [0.01]
)",
                                "a.toml", "grid");
  const auto b = ps::parse_spec(R"(# a comment
[grid]
learning_rates = [1e-2]
batch_sizes = [16]
[workload]
data = { image_size = "16", max_samples = 300 }
[execution]
cooldown_s = 5   # execution settings are not part of a key
)",
                                "b.toml", "grid");
  const auto pa = ps::plan_trials(a);
  const auto pb = ps::plan_trials(b);
  ASSERT_EQ(pa.size(), 1u);
  ASSERT_EQ(pb.size(), 1u);
  EXPECT_EQ(pa[0].spec.key, pb[0].spec.key);
  EXPECT_EQ(ps::plan_fingerprint(a), ps::plan_fingerprint(b));
  // The key is sorted compact JSON that names every experiment field.
  const auto j = nlohmann::json::parse(pa[0].spec.key);
  EXPECT_EQ(j.dump(), pa[0].spec.key);
  for (const char* k : {"batch_size", "learning_rate", "seed", "dataset", "model", "optimizer", "max_epochs", "patience",
                        "min_delta", "device", "threads", "data", "data_seed", "phase"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["data"]["max_samples"], "300");
  EXPECT_FALSE(j.contains("data_dir"));
  EXPECT_FALSE(j.contains("checkpoint"));
}

TEST(Plan, KeysDifferWhenTheExperimentDiffers) {
  powertrain::run::RunConfig c;
  const auto base = ps::canonical_key(c, 0, "", 0, "", {});
  auto seed = c;
  seed.seed = 1;
  auto lr = c;
  lr.learning_rate = 0.02;
  auto data = c;
  data.data_options = {{"max_samples", "100"}};
  auto where = c;
  where.data_dir = "/elsewhere";
  where.checkpoint = "/tmp/x.pt";
  EXPECT_NE(base, ps::canonical_key(seed, 0, "", 0, "", {}));
  EXPECT_NE(base, ps::canonical_key(lr, 0, "", 0, "", {}));
  EXPECT_NE(base, ps::canonical_key(data, 0, "", 0, "", {}));
  EXPECT_NE(base, ps::canonical_key(c, 1, "", 0, "", {}));
  EXPECT_NE(base, ps::canonical_key(c, 0, "scratch", 1, "", {}));
  EXPECT_NE(base, ps::canonical_key(c, 0, "", 0, "", {"1"}));
  EXPECT_EQ(base, ps::canonical_key(where, 0, "", 0, "", {})) << "where files live is not part of a key";
  const auto s1 = ps::parse_spec("[grid]\nbatch_sizes=[16]\nlearning_rates=[0.1]\n", "a.toml", "grid");
  const auto s2 = ps::parse_spec("[grid]\nbatch_sizes=[16, 32]\nlearning_rates=[0.1]\n", "a.toml", "grid");
  EXPECT_NE(ps::plan_fingerprint(s1), ps::plan_fingerprint(s2));
}

TEST(Plan, PretrainPlanReusesTheSeedsEncoder) {
  const auto s = ps::parse_spec(R"(
kind = "pretrain"
seeds = [0, 1]
[pretrain]
source = { classes = [0, 1, 2] }
steps = [ { classes = [3, 4] }, { classes = [5, 6] } ]
)",
                                "p.toml");
  const auto plan = ps::plan_trials(s);
  ASSERT_EQ(plan.size(), 2u * (1 + 2 * 3));
  EXPECT_EQ(plan[0].spec.phase, "pretrain");
  EXPECT_EQ(plan[0].encoder_from, -1);
  EXPECT_EQ(plan[1].spec.phase, "scratch");
  EXPECT_EQ(plan[1].encoder_from, -1);
  EXPECT_EQ(plan[2].spec.phase, "finetune");
  EXPECT_EQ(plan[2].encoder_from, 0);
  EXPECT_FALSE(plan[2].spec.config.freeze_encoder);
  EXPECT_EQ(plan[3].spec.phase, "frozen");
  EXPECT_TRUE(plan[3].spec.config.freeze_encoder);
  EXPECT_EQ(plan[3].spec.step, 1);
  EXPECT_EQ(plan[4].spec.step, 2);
  EXPECT_EQ(plan[4].classes, (std::vector<std::string>{"5", "6"}));
  EXPECT_EQ(plan[7].spec.phase, "pretrain");
  EXPECT_EQ(plan[9].encoder_from, 7);
  EXPECT_TRUE(plan[2].spec.config.init_encoder.empty()) << "the runner sets the path";
  std::set<std::string> keys;
  for (const auto& t : plan) keys.insert(t.spec.key);
  EXPECT_EQ(keys.size(), plan.size());
}

TEST(Plan, MultitaskPlanTrainsEachTaskThenTheSharedModel) {
  const auto s = ps::parse_spec("kind = \"multitask\"\n[multitask]\ntasks = [\"top\", \"footwear\", \"bag\"]\n", "m.toml");
  const auto plan = ps::plan_trials(s);
  ASSERT_EQ(plan.size(), 4u);
  EXPECT_EQ(plan[0].spec.phase, "single");
  EXPECT_EQ(plan[0].spec.task, "top");
  EXPECT_EQ(plan[0].spec.config.tasks, "top");
  EXPECT_EQ(plan[3].spec.phase, "multi");
  EXPECT_EQ(plan[3].spec.config.tasks, "top,footwear,bag");
  EXPECT_EQ(plan[3].spec.task, "top,footwear,bag");
}

TEST(Plan, ArtifactsGoBesideTheDatabase) {
  auto s = ps::parse_spec("name = \"n\"\n", "a.toml", "grid");
  EXPECT_EQ(ps::artifacts_dir(s, "/x/r.db"), std::filesystem::path("/x/r.db.artifacts/n"));
  s.execution.artifacts_dir = "/y";
  EXPECT_EQ(ps::artifacts_dir(s, "/x/r.db"), std::filesystem::path("/y/n"));
}
