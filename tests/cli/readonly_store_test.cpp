// `results` and `report` on a database this user cannot write (issue 12,
// item 5): they work, and leave no -wal/-shm files behind. Run as root
// without the capabilities that bypass file permissions (setpriv), so that
// the permission bits apply as they do to another user.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "../report/report_fixtures.h"
#include "run_cli.h"
#include "temp_dir.h"

namespace powertrain {
namespace {

namespace fs = std::filesystem;
using testing::run_program;
using testing::TempDir;

class ReadOnlyStore : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::powertrain_binary().empty()) GTEST_SKIP() << "POWERTRAIN_BINARY is not set (run through ctest)";
    if (::geteuid() != 0 || !fs::exists("/usr/bin/setpriv")) GTEST_SKIP() << "needs root and setpriv";
    folder = dir / "shared";
    fs::create_directories(folder);
    testing::make_full_db(db());
    ASSERT_FALSE(fs::exists(db().string() + "-wal"));
    ::chmod(db().c_str(), 0444);
  }
  void TearDown() override { ::chmod(folder.c_str(), 0755); }
  fs::path db() const { return folder / "results.db"; }
  // powertrain as a user the permission bits apply to.
  testing::CliResult run_unprivileged(std::vector<std::string> args) const {
    std::vector<std::string> all{"--bounding-set=-dac_override,-dac_read_search",
                                 "--inh-caps=-dac_override,-dac_read_search", testing::powertrain_binary()};
    all.insert(all.end(), args.begin(), args.end());
    return run_program("/usr/bin/setpriv", all);
  }
  bool side_files() const {
    return fs::exists(db().string() + "-wal") || fs::exists(db().string() + "-shm") ||
           fs::exists(db().string() + "-journal");
  }
  TempDir dir;
  fs::path folder;
};

TEST_F(ReadOnlyStore, ResultsAndReportWorkInAReadOnlyFolder) {
  ::chmod(folder.c_str(), 0555);
  auto r = run_unprivileged({"results", db().string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("study 'grid'"), std::string::npos) << r.out;
  ::setenv("POWERTRAIN_GNUPLOT", "/nonexistent/gnuplot", 1);
  r = run_unprivileged({"report", db().string(), "--out", (dir / "report").string()});
  ::unsetenv("POWERTRAIN_GNUPLOT");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "report" / "report.html"));
  EXPECT_FALSE(side_files());
}

TEST_F(ReadOnlyStore, ReadingSomeoneElsesDatabaseLeavesNoSideFiles) {
  // The folder is writable (as a shared one would be), the database is not.
  const auto r = run_unprivileged({"results", db().string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("study 'grid'"), std::string::npos) << r.out;
  EXPECT_FALSE(side_files()) << "-wal/-shm owned by the reader would stop the owner's next writer";
}

}  // namespace
}  // namespace powertrain
