// End-to-end tests of the files the CLI writes (issue 12): planted links,
// special files, files that are not previous outputs, study names as paths,
// and CSV files that are not ours.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>

#include <nlohmann/json.hpp>

#include "../report/report_fixtures.h"
#include "run_cli.h"
#include "temp_dir.h"

namespace powertrain {
namespace {

namespace fs = std::filesystem;
using testing::count_lines;
using testing::read_file;
using testing::run_powertrain;
using testing::TempDir;
using testing::write_file;

class OutputFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::powertrain_binary().empty()) GTEST_SKIP() << "POWERTRAIN_BINARY is not set (run through ctest)";
  }
  TempDir dir;
};

// A one-line error ("powertrain: ...") and a non-zero exit.
void expect_one_line_error(const testing::CliResult& r, const std::string& part) {
  EXPECT_NE(r.exit_code, 0) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
}

// The files under `root`, relative, sorted.
std::vector<std::string> files_under(const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (!e.is_directory()) out.push_back(e.path().lexically_relative(root).string());
  std::sort(out.begin(), out.end());
  return out;
}

// What a writer sends through the named pipe `fifo`, read without blocking
// for ever: a binary that replaces the pipe instead of writing it never opens it.
std::string read_pipe(const fs::path& fifo, std::chrono::seconds limit) {
  const int fd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return "";
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 100);
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) text.append(buf, static_cast<std::size_t>(n));
    if (n == 0 && !text.empty()) break;  // the writer closed it
  }
  ::close(fd);
  return text;
}

// Item 1: measure wrote FILE.tmp, following a link planted there.
TEST_F(OutputFiles, MeasureDoesNotFollowALinkAtTheOldTemporaryName) {
  write_file(dir / "secret", "secret\n");
  fs::create_symlink(dir / "secret", dir / "r.json.tmp");
  fs::create_symlink(dir / "secret", dir / "t.csv.tmp");
  const auto r = run_powertrain({"measure", "--json", "-o", (dir / "r.json").string(), "--timeline",
                                 (dir / "t.csv").string(), "--", "true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(dir / "secret"), "secret\n");
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "r.json"))["schema"], "powertrain.measure/1");
  EXPECT_EQ(read_file(dir / "t.csv").rfind("t_s", 0), 0u);
  EXPECT_EQ(files_under(dir.path()), (std::vector<std::string>{"r.json", "r.json.tmp", "secret", "t.csv", "t.csv.tmp"}));
}

// Item 2: device nodes, pipes and "-" are written, not replaced.
TEST_F(OutputFiles, MeasureWritesDevicesPipesAndStandardOutputDirectly) {
  // Device nodes of our own (as /dev/null and /dev/full), so that a failure replaces nothing of the system's.
  const auto null_dev = dir / "null", full_dev = dir / "full";
  if (::mknod(null_dev.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0 &&
      ::mknod(full_dev.c_str(), S_IFCHR | 0666, makedev(1, 7)) == 0) {
    auto r = run_powertrain({"measure", "-o", null_dev.string(), "--", "true"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    r = run_powertrain({"measure", "-o", full_dev.string(), "--", "true"});
    expect_one_line_error(r, "No space left on device");
    struct stat st {};
    for (const auto& p : {null_dev, full_dev}) {
      ASSERT_EQ(::lstat(p.c_str(), &st), 0);
      EXPECT_TRUE(S_ISCHR(st.st_mode)) << p;
    }
  }
  const auto fifo = dir / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto reader = std::async(std::launch::async, [&] { return read_pipe(fifo, std::chrono::seconds(30)); });
  auto r = run_powertrain({"measure", "-o", fifo.string(), "--", "true"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(reader.get().rfind("powertrain: `true` exited with 0", 0), 0u);
  struct stat st {};
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));

  r = run_powertrain({"measure", "--json", "-o", "-", "--", "true"}, dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["schema"], "powertrain.measure/1");
  EXPECT_FALSE(fs::exists(dir / "-"));
}

TEST_F(OutputFiles, MeasureRefusesADatabaseAndAForeignFileUnlessForced) {
  const auto db = dir / "results.db";
  testing::make_full_db(db);
  const auto db_size = fs::file_size(db);
  auto r = run_powertrain({"measure", "-o", db.string(), "--", "touch", (dir / "ran").string()});
  expect_one_line_error(r, "is a SQLite database");
  r = run_powertrain({"measure", "--force", "--timeline", db.string(), "--", "touch", (dir / "ran").string()});
  expect_one_line_error(r, "is a SQLite database");
  EXPECT_EQ(fs::file_size(db), db_size);
  EXPECT_FALSE(fs::exists(dir / "ran"));  // refused before the command ran

  write_file(dir / "notes.txt", "my notes\n");
  r = run_powertrain({"measure", "-o", (dir / "notes.txt").string(), "--", "true"});
  expect_one_line_error(r, "--force");
  EXPECT_EQ(read_file(dir / "notes.txt"), "my notes\n");
  r = run_powertrain({"measure", "--force", "-o", (dir / "notes.txt").string(), "--", "true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // A previous report, text or JSON, is replaced without asking.
  r = run_powertrain({"measure", "--json", "-o", (dir / "notes.txt").string(), "--", "true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_powertrain({"measure", "-o", (dir / "notes.txt").string(), "--", "true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(dir / "notes.txt").rfind("powertrain: `true`", 0), 0u);
}

// Item 10: rows appended under a foreign header, to binary data, or onto an unfinished line.
TEST_F(OutputFiles, MeasureCsvRefusesAFileThatIsNotItsCsv) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a,b,c\n1,2,3\n", "first line"},
      {std::string("\x7f" "ELF\x02\x01\x00\x00binary", 14), "binary"},
  };
  for (const auto& [content, why] : cases) {
    write_file(dir / "e.csv", content);
    const auto r = run_powertrain({"measure", "--csv", (dir / "e.csv").string(), "--", "touch", (dir / "ran").string()});
    expect_one_line_error(r, why);
    EXPECT_EQ(read_file(dir / "e.csv"), content);
    EXPECT_FALSE(fs::exists(dir / "ran"));
  }
  // Our own CSV whose last line lost its newline.
  ASSERT_EQ(run_powertrain({"measure", "--csv", (dir / "ok.csv").string(), "--", "true"}).exit_code, 0);
  auto text = read_file(dir / "ok.csv");
  text.pop_back();
  write_file(dir / "ok.csv", text);
  const auto r = run_powertrain({"measure", "--csv", (dir / "ok.csv").string(), "--", "true"});
  expect_one_line_error(r, "newline");
  EXPECT_EQ(read_file(dir / "ok.csv"), text);
}

// Item 3: study names from a shared database as file names.
TEST_F(OutputFiles, ResultsCsvKeepsEveryStudyInsideTheFolder) {
  const auto db = dir / "shared.db";
  {
    auto store = store::Store::open(db, {std::chrono::milliseconds(5000), store::Durability::normal});
    testing::add_multitask_study(store, "../../x");
    testing::add_multitask_study(store, "/abs/path");
    testing::add_multitask_study(store, "a/b");
  }
  const auto out = dir / "deep" / "er" / "out";
  fs::create_directories(out);
  const auto r = run_powertrain({"results", db.string(), "--csv", out.string(), "--json", (out / "r.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Everything is in out, nothing beside it.
  EXPECT_EQ(files_under(dir / "deep"), [&] {
    auto v = files_under(out);
    for (auto& f : v) f = "er/out/" + f;
    return v;
  }());
  const auto files = files_under(out);
  // Per study: trials, two multitask tables and the forecasts' accuracy; and the JSON.
  EXPECT_EQ(files.size(), 3 * 4 + 1u) << ::testing::PrintToString(files);
  // The real names stay in the JSON.
  const auto j = nlohmann::json::parse(read_file(out / "r.json"));
  std::vector<std::string> names;
  for (const auto& s : j["studies"]) names.push_back(s["name"]);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"../../x", "/abs/path", "a/b"}));
}

TEST_F(OutputFiles, ResultsExportsReplaceOnlyTheirOwnFiles) {
  const auto db = dir / "r.db";
  {
    auto store = store::Store::open(db, {std::chrono::milliseconds(5000), store::Durability::normal});
    testing::add_multitask_study(store, "mt");
  }
  write_file(dir / "notes.json", "{\"mine\": 1}\n");
  auto r = run_powertrain({"results", db.string(), "--json", (dir / "notes.json").string()});
  expect_one_line_error(r, "--force");
  EXPECT_EQ(read_file(dir / "notes.json"), "{\"mine\": 1}\n");
  r = run_powertrain({"results", db.string(), "--json", db.string(), "--force"});
  expect_one_line_error(r, "is a SQLite database");
  r = run_powertrain({"results", db.string(), "--json", (dir / "notes.json").string(), "--force"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_powertrain({"results", db.string(), "--json", (dir / "notes.json").string()});  // a previous export
  ASSERT_EQ(r.exit_code, 0) << r.err;

  fs::create_directories(dir / "csv");
  write_file(dir / "csv" / "mt_trials.csv", "my,own,table\n");
  r = run_powertrain({"results", db.string(), "--csv", (dir / "csv").string()});
  expect_one_line_error(r, "mt_trials.csv");
  EXPECT_EQ(read_file(dir / "csv" / "mt_trials.csv"), "my,own,table\n");
  r = run_powertrain({"results", db.string(), "--csv", (dir / "csv").string(), "--force"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_powertrain({"results", db.string(), "--csv", (dir / "csv").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(OutputFiles, ReportReplacesOnlyAPreviousReportPage) {
  const auto db = dir / "r.db";
  testing::make_full_db(db);
  ::setenv("POWERTRAIN_GNUPLOT", "/nonexistent/gnuplot", 1);  // tables and page only: fast
  const auto out = dir / "out";
  fs::create_directories(out);
  write_file(out / "report.html", "<html>my own page</html>\n");
  auto r = run_powertrain({"report", db.string(), "--out", out.string()});
  expect_one_line_error(r, "not a powertrain report page");
  EXPECT_EQ(read_file(out / "report.html"), "<html>my own page</html>\n");
  EXPECT_EQ(files_under(out), (std::vector<std::string>{"report.html"}));
  r = run_powertrain({"report", db.string(), "--out", out.string(), "--force"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_powertrain({"report", db.string(), "--out", out.string()});  // over its own page
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // A link or a pipe where a file of the report goes is never replaced, forced or not.
  fs::remove(out / "tables" / "studies.csv");
  fs::create_symlink(dir / "elsewhere", out / "tables" / "studies.csv");
  r = run_powertrain({"report", db.string(), "--out", out.string(), "--force"});
  expect_one_line_error(r, "not a regular file");
  EXPECT_TRUE(fs::is_symlink(out / "tables" / "studies.csv"));
  EXPECT_FALSE(fs::exists(dir / "elsewhere"));
  ::unsetenv("POWERTRAIN_GNUPLOT");
}

}  // namespace
}  // namespace powertrain
