// Golden-output tests: `results` (console, CSV, JSON) and `report` of a fixed
// database of the example studies must print exactly what they printed when
// the expected files were written. They guard refactoring of the upper floors
// (study kinds, tables, store): a change of behaviour shows as a diff here.
//
// The database is tests/fixtures/example-studies.sql, a dump of the quick
// grid, pretrain, multitask, external-grid and search examples (run on a
// 2-core CPU, energy estimated; the power timeline thinned to every tenth
// sample to keep the file small). Opening it for writing first upgrades an
// older schema, so the fixture stays as recorded when the schema moves on.
//
// The expected outputs are in tests/fixtures/golden/. When a change of output
// is intended, rewrite them with
//   POWERTRAIN_UPDATE_GOLDEN=1 ctest --test-dir build -R GoldenOutputs
// and review the diff of tests/fixtures/golden/ before committing it.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "powertrain/store/store.h"
#include "run_cli.h"
#include "temp_dir.h"

namespace powertrain {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::run_powertrain;
using testing::TempDir;
using testing::write_file;

const fs::path kFixtures = fs::path(POWERTRAIN_TEST_SOURCE_DIR) / "tests" / "fixtures";

// Loads the SQL dump into a new database file, then opens it once with the
// store, which upgrades its schema as a user's `study` or `train` would.
void load_fixture(const fs::path& db) {
  const std::string sql = read_file(kFixtures / "example-studies.sql");
  sqlite3* conn = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &conn), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(conn, sql.c_str(), nullptr, nullptr, &error);
  const std::string message = error ? error : "";
  sqlite3_free(error);
  sqlite3_close(conn);
  ASSERT_EQ(rc, SQLITE_OK) << message;
  store::Store::open(db);
}

// `text` with each embedded image (data:image/...;base64,...) cut to a
// placeholder. (std::regex recurses per character and overflows the stack on
// a page of figures.)
std::string without_embedded_images(const std::string& text) {
  static const std::string kStart = "data:image/";
  static const std::string kBase64 = ";base64,";
  std::string out;
  std::size_t pos = 0;
  for (;;) {
    const auto start = text.find(kStart, pos);
    const auto marker = start == std::string::npos ? start : text.find(kBase64, start);
    if (marker == std::string::npos) break;
    auto end = marker + kBase64.size();
    while (end < text.size() && (std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '+' ||
                                 text[end] == '/' || text[end] == '='))
      ++end;
    out.append(text, pos, start - pos);
    out += "data:image/(figure)";
    pos = end;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

// `text` with the test's temporary folder named "$TMP", so that outputs naming
// the database's path compare across runs.
std::string without_temp_dir(std::string text, const std::string& temp) {
  for (auto at = text.find(temp); at != std::string::npos; at = text.find(temp, at)) text.replace(at, temp.size(), "$TMP");
  return text;
}

// `text` with the time a report was generated ("generated 2026-12-07 09:18
// UTC") as "generated (time)".
std::string without_generation_time(std::string text) {
  static const std::string kWord = "generated ";
  static const std::string kShape = "dddd-dd-dd dd:dd UTC";
  for (auto at = text.find(kWord); at != std::string::npos; at = text.find(kWord, at + 1)) {
    const auto from = at + kWord.size();
    if (from + kShape.size() > text.size()) break;
    bool fits = true;
    for (std::size_t i = 0; i < kShape.size() && fits; ++i)
      fits = kShape[i] == 'd' ? std::isdigit(static_cast<unsigned char>(text[from + i])) != 0
                              : text[from + i] == kShape[i];
    if (fits) text.replace(from, kShape.size(), "(time)");
  }
  return text;
}

// Every file under `dir` (images left out: their bytes are gnuplot's), sorted
// by path, each after a "=== path" line. Figures embedded in report.html are
// cut out for the same reason.
std::string concatenate(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const auto ext = entry.path().extension();
    if (ext == ".svg" || ext == ".png") continue;
    files.push_back(fs::relative(entry.path(), dir));
  }
  std::sort(files.begin(), files.end());
  std::string out;
  for (const auto& file : files) {
    std::string text = read_file(dir / file);
    if (file.extension() == ".html") text = without_generation_time(without_embedded_images(text));
    out += "=== " + file.generic_string() + "\n" + text;
    if (!text.empty() && text.back() != '\n') out += "\n";
  }
  return out;
}

// Compares `actual` with the expected file (or rewrites it when asked). On a
// difference, names the first line that differs and keeps the actual output
// beside the test's temporary files for a full diff.
void expect_golden(const std::string& name, const std::string& actual) {
  const fs::path expected_path = kFixtures / "golden" / name;
  if (std::getenv("POWERTRAIN_UPDATE_GOLDEN")) {
    write_file(expected_path, actual);
    return;
  }
  ASSERT_TRUE(fs::exists(expected_path)) << expected_path << " is missing (POWERTRAIN_UPDATE_GOLDEN=1 writes it)";
  const std::string expected = read_file(expected_path);
  if (expected == actual) return;
  std::istringstream e(expected), a(actual);
  std::string el, al;
  int line = 0;
  while (true) {
    const bool more_e = static_cast<bool>(std::getline(e, el));
    const bool more_a = static_cast<bool>(std::getline(a, al));
    ++line;
    if (!more_e && !more_a) break;
    if (!more_e || !more_a || el != al) break;
  }
  const fs::path kept = fs::temp_directory_path() / ("powertrain-golden-actual-" + name);
  write_file(kept, actual);
  ADD_FAILURE() << name << " differs from " << expected_path << " at line " << line << ":\n  expected: " << el
                << "\n  actual:   " << al << "\nwhole actual output kept in " << kept;
}

class GoldenOutputs : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::powertrain_binary().empty()) GTEST_SKIP() << "POWERTRAIN_BINARY is not set (run through ctest)";
    load_fixture(db());
  }
  fs::path db() const { return dir / "examples.db"; }
  TempDir dir;
};

TEST_F(GoldenOutputs, ResultsOnTheConsole) {
  const auto plain = run_powertrain({"results", db().string()});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  expect_golden("results.txt", without_temp_dir(plain.out, dir.path().string()));
  const auto trials = run_powertrain({"results", db().string(), "--trials"});
  ASSERT_EQ(trials.exit_code, 0) << trials.err;
  expect_golden("results-trials.txt", without_temp_dir(trials.out, dir.path().string()));
}

TEST_F(GoldenOutputs, ResultsExportedAsCsvAndJson) {
  const fs::path csv = dir / "csv";
  const fs::path json = dir / "results.json";
  const auto r = run_powertrain({"results", db().string(), "--csv", csv.string(), "--json", json.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_golden("results-csv.txt", without_temp_dir(concatenate(csv), dir.path().string()));
  expect_golden("results.json", without_temp_dir(read_file(json), dir.path().string()));
}

TEST_F(GoldenOutputs, ReportTablesFigureDataAndPage) {
  if (!fs::exists("/usr/bin/gnuplot")) GTEST_SKIP() << "gnuplot is not installed (scripts/setup installs gnuplot-nox)";
  const fs::path out = dir / "report";
  const auto r = run_powertrain({"report", db().string(), "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_golden("report.txt", without_temp_dir(concatenate(out), dir.path().string()));
}

}  // namespace
}  // namespace powertrain
