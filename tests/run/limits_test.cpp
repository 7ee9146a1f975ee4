// run::validate: numbers a run cannot sensibly take are one-line ConfigErrors
// before anything runs (issue 12, items 11, 13 and 14).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "powertrain/error.h"
#include "powertrain/run/environment.h"
#include "powertrain/run/records.h"

namespace powertrain::run {
namespace {

std::string error_of(const std::function<void(RunConfig&)>& change) {
  RunConfig c;
  change(c);
  try {
    validate(c);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(RunLimits, DefaultsAndSaneValuesPass) {
  EXPECT_EQ(error_of([](RunConfig&) {}), "");
  EXPECT_EQ(error_of([](RunConfig& c) {
              c.learning_rate = 1e5;  // diverges, as a test may want
              c.batch_size = kMaxBatchSize;
              c.threads = max_threads();
              c.patience = 0;
              c.subset = 1.0;
            }),
            "");
}

TEST(RunLimits, OutOfRangeAndNonFiniteAreRefused) {
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  const std::vector<std::pair<std::function<void(RunConfig&)>, std::string>> cases = {
      {[](RunConfig& c) { c.learning_rate = 1e300; }, "learning_rate"},
      {[&](RunConfig& c) { c.learning_rate = nan; }, "learning_rate"},
      {[](RunConfig& c) { c.learning_rate = 0; }, "learning_rate"},
      {[&](RunConfig& c) { c.min_delta = nan; }, "min_delta"},
      {[&](RunConfig& c) { c.min_delta = inf; }, "min_delta"},
      {[&](RunConfig& c) { c.momentum = nan; }, "momentum"},
      {[](RunConfig& c) { c.weight_decay = -1; }, "weight_decay"},
      {[](RunConfig& c) { c.batch_size = std::numeric_limits<std::int64_t>::max(); }, "batch_size"},
      {[](RunConfig& c) { c.batch_size = 0; }, "batch_size"},
      {[](RunConfig& c) { c.max_epochs = 0; }, "max_epochs"},
      {[](RunConfig& c) { c.patience = -1; }, "patience"},
      {[&](RunConfig& c) { c.target_metric = nan; }, "target"},
      {[](RunConfig& c) { c.seed = std::numeric_limits<std::uint64_t>::max(); }, "seed"},
      {[](RunConfig& c) { c.threads = 100000; }, "threads"},
      {[](RunConfig& c) { c.threads = max_threads() + 1; }, "threads"},
      {[](RunConfig& c) { c.threads = -1; }, "threads"},
      {[](RunConfig& c) { c.subset = 0; }, "subset"},
  };
  for (const auto& [change, part] : cases) {
    const auto err = error_of(change);
    EXPECT_NE(err.find(part), std::string::npos) << part << ": '" << err << "'";
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  }
}

TEST(RunLimits, ThreadsAreCappedAtAMultipleOfTheCpus) {
  EXPECT_EQ(max_threads(), kThreadsPerCpu * available_cpus());
  EXPECT_GE(max_threads(), kThreadsPerCpu);
}

}  // namespace
}  // namespace powertrain::run
