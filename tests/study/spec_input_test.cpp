// Specs that used to pass validation and then fail every trial, a directory
// taken for a spec, and study names as paths (issue 12, items 3, 7 and 13).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "powertrain/error.h"
#include "powertrain/run/environment.h"
#include "powertrain/study/plan.h"
#include "powertrain/study/spec.h"
#include "temp_dir.h"

namespace powertrain::study {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::string& text) {
  try {
    (void)parse_spec(text, "spec.toml", "grid");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(SpecInput, DirectoryIsNotAnEmptySpec) {
  testing::TempDir dir;
  try {
    (void)load_spec(dir.path(), "grid");
    FAIL() << "a directory was read as a spec";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)load_spec(dir / "missing.toml", "grid"), IoError);
}

TEST(SpecInput, NumbersEveryTrialWouldFailOnAreRefused) {
  EXPECT_NE(error_of("[grid]\nlearning_rates = [0.01, 1e300]\n").find("'grid.learning_rates' must be positive and at most"),
            std::string::npos);
  EXPECT_NE(error_of("[training]\nmin_delta = nan\n").find("'training.min_delta' must be a finite number"), std::string::npos);
  EXPECT_NE(error_of("[training]\nmin_delta = inf\n").find("min_delta"), std::string::npos);
  EXPECT_NE(error_of("[training]\nmomentum = nan\n").find("momentum"), std::string::npos);
  EXPECT_NE(error_of("[training]\ntarget_metric = nan\n").find("target_metric"), std::string::npos);
  EXPECT_NE(error_of("[grid]\nbatch_sizes = [16, 99999999999]\n").find("'grid.batch_sizes' must be between 1 and"),
            std::string::npos);
  EXPECT_NE(error_of("[training]\nmax_epochs = 1000000000000\n").find("between 1 and 100000"), std::string::npos);
  const auto threads = error_of("[training]\nthreads = " + std::to_string(run::max_threads() + 1) + "\n");
  EXPECT_NE(threads.find("'training.threads' must be between 0 (all CPUs) and"), std::string::npos) << threads;
  EXPECT_EQ(error_of("[training]\nthreads = " + std::to_string(run::max_threads()) + "\n"), "");
}

TEST(SpecInput, ArtifactsStayInsideTheirFolderWhateverTheName) {
  for (const std::string name : {"../../../../tmp/escaped", "/abs/path", "..", "a/b", "ok-name"}) {
    StudySpec spec;
    spec.name = name;
    const auto dir = artifacts_dir(spec, "/data/r.db");
    EXPECT_EQ(dir.parent_path(), fs::path("/data/r.db.artifacts")) << name << " -> " << dir;
    EXPECT_NE(dir.filename(), "..");
    spec.execution.artifacts_dir = "/scratch/art";
    const auto dir2 = artifacts_dir(spec, "/data/r.db");
    EXPECT_EQ(dir2.parent_path(), fs::path("/scratch/art")) << name << " -> " << dir2;
  }
  StudySpec spec;
  spec.name = "grid-quick";
  EXPECT_EQ(artifacts_dir(spec, "r.db"), fs::path("r.db.artifacts/grid-quick"));  // unchanged for plain names
}

}  // namespace
}  // namespace powertrain::study
