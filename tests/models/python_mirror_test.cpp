// bench/train_python.py is the Python side of the training-throughput benchmark:
// it must keep describing the same models as the engine, or the benchmark's
// ratios compare different work.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "powertrain/models/model.h"
#include "run_cli.h"

namespace pm = powertrain::models;
using powertrain::testing::run_program;

namespace {

// The Python whose torch package the build took LibTorch from (scripts/build).
const char* kPython = POWERTRAIN_TEST_PYTHON;

std::string script() { return std::string(POWERTRAIN_TEST_SOURCE_DIR) + "/bench/train_python.py"; }

bool python_has_torch() {
  if (std::string(kPython).empty() || !std::filesystem::exists(kPython)) return false;
  return run_program(kPython, {"-c", "import torch"}).exit_code == 0;
}

}  // namespace

TEST(PythonMirror, SameModelsAsTheEngineAndTheLoopRuns) {
  if (!python_has_torch()) GTEST_SKIP() << "no Python with torch: the build was configured without POWERTRAIN_PYTHON "
                                      "(scripts/build sets it) or '" << kPython << "' cannot import torch";
  struct Case {
    const char* workload;
    const char* model;
    pm::InputSpec spec;
  };
  for (const auto& c : {Case{"image", "image-cnn", {{1, 28, 28}, false, 10}},
                        Case{"sensor", "sensor-cnn", {{18, 256}, false, 12}}}) {
    const auto d = run_program(kPython, {script(), "--workload", c.workload, "--batch", "1", "--samples", "1",
                                         "--threads", "1", "--describe"});
    ASSERT_EQ(d.exit_code, 0) << d.err;
    const auto doc = nlohmann::json::parse(d.out);
    EXPECT_EQ(doc.at("parameters").get<std::int64_t>(), pm::parameter_count(*pm::make_model(c.model, c.spec)))
        << c.workload;
    // A tiny run of the Python loop itself: it trains and reports a rate.
    const auto r = run_program(kPython, {script(), "--workload", c.workload, "--batch", "4", "--samples", "10",
                                         "--threads", "1", "--epochs", "1"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_GT(nlohmann::json::parse(r.out).at("samples_per_s").get<double>(), 0.0) << c.workload;
  }
}
