// Safe output files (issue 12, items 1, 2, 3 and 10).
#include "powertrain/io/output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "powertrain/error.h"
#include "temp_dir.h"

namespace powertrain::io {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::TempDir;
using testing::write_file;

OutputRule report_rule(bool force = false) {
  return OutputRule{"test report", [](std::string_view head) { return head.rfind("REPORT", 0) == 0; }, 64 * 1024,
                    force};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const IoError& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Item 1: the old writer used the fixed name FILE.tmp and followed a link planted there.
TEST(SafeOutput, PlantedLinkAtTheOldTemporaryNameIsNotFollowed) {
  TempDir dir;
  write_file(dir / "secret", "do not touch\n");
  fs::create_symlink(dir / "secret", dir / "x.json.tmp");
  write_output(dir / "x.json", "REPORT new\n", report_rule());
  EXPECT_EQ(read_file(dir / "secret"), "do not touch\n");
  EXPECT_EQ(read_file(dir / "x.json"), "REPORT new\n");
  EXPECT_TRUE(fs::is_symlink(dir / "x.json.tmp"));
  EXPECT_EQ(names_in(dir.path()), (std::vector<std::string>{"secret", "x.json", "x.json.tmp"}));  // no temporary left
}

TEST(SafeOutput, LinkOwnedByAnotherUserIsNotFollowed) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a link another owner";
  TempDir dir;
  write_file(dir / "secret", "do not touch\n");
  fs::create_symlink(dir / "secret", dir / "x.json");
  ASSERT_EQ(::lchown((dir / "x.json").c_str(), 12345, 12345), 0);
  const auto err = error_of([&] { write_output(dir / "x.json", "REPORT\n", report_rule(true)); });
  EXPECT_NE(err.find("symbolic link owned by another user"), std::string::npos) << err;
  EXPECT_EQ(read_file(dir / "secret"), "do not touch\n");
}

TEST(SafeOutput, OwnLinkIsFollowedAndKept) {
  TempDir dir;
  fs::create_directories(dir / "real");
  write_file(dir / "real" / "r.txt", "REPORT old\n");
  fs::create_symlink(dir / "real" / "r.txt", dir / "r.txt");
  write_output(dir / "r.txt", "REPORT new\n", report_rule());
  EXPECT_TRUE(fs::is_symlink(dir / "r.txt"));
  EXPECT_EQ(read_file(dir / "real" / "r.txt"), "REPORT new\n");
}

TEST(SafeOutput, NewFileGetsTheUsualModeAndReplacedFileKeepsItsMode) {
  TempDir dir;
  write_output(dir / "a", "REPORT\n", report_rule());
  struct stat st {};
  ASSERT_EQ(::stat((dir / "a").c_str(), &st), 0);
  const mode_t mask = ::umask(022);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask);
  ASSERT_EQ(::chmod((dir / "a").c_str(), 0640), 0);
  write_output(dir / "a", "REPORT 2\n", report_rule());
  ASSERT_EQ(::stat((dir / "a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

// Item 2: special files are written, never replaced.
TEST(SafeOutput, CharacterDeviceIsWrittenDirectly) {
  write_output("/dev/null", "REPORT\n", report_rule());
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  if (::access("/dev/full", W_OK) == 0) {
    const auto err = error_of([] { write_output("/dev/full", "REPORT\n", OutputRule{}); });
    EXPECT_NE(err.find("No space left"), std::string::npos) << err;
    ASSERT_EQ(::stat("/dev/full", &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
  }
}

TEST(SafeOutput, NamedPipeIsWrittenDirectly) {
  TempDir dir;
  const auto fifo = dir / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto reader = std::async(std::launch::async, [&] { return read_file(fifo); });
  write_output(fifo, "REPORT through the pipe\n", report_rule());
  EXPECT_EQ(reader.get(), "REPORT through the pipe\n");
  struct stat st {};
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST(SafeOutput, DescriptorNamesWriteThroughTheDescriptor) {
  TempDir dir;
  const int fd = ::open((dir / "log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "before\n", 7), 7);
  write_output("/dev/fd/" + std::to_string(fd), "REPORT\n", report_rule());
  ::close(fd);
  EXPECT_EQ(read_file(dir / "log"), "before\nREPORT\n");
  EXPECT_NE(error_of([] { write_output("/dev/fd/987654", "x", OutputRule{}); }).find("not open"), std::string::npos);
}

TEST(SafeOutput, DatabaseIsNeverReplaced) {
  TempDir dir;
  write_file(dir / "results.db", std::string("SQLite format 3\0rest of the database", 37));
  for (bool force : {false, true}) {
    const auto err = error_of([&] { write_output(dir / "results.db", "REPORT\n", report_rule(force)); });
    EXPECT_NE(err.find("is a SQLite database"), std::string::npos) << err;
  }
  // Even for a writer that replaces any regular file.
  EXPECT_FALSE(error_of([&] { write_output(dir / "results.db", "x", OutputRule{}); }).empty());
  EXPECT_EQ(read_file(dir / "results.db").substr(0, 15), "SQLite format 3");
}

TEST(SafeOutput, ForeignFileNeedsForce) {
  TempDir dir;
  write_file(dir / "notes.txt", "my notes\n");
  const auto err = error_of([&] { write_output(dir / "notes.txt", "REPORT\n", report_rule()); });
  EXPECT_NE(err.find("exists and is not a test report"), std::string::npos) << err;
  EXPECT_NE(err.find("--force"), std::string::npos) << err;
  EXPECT_EQ(read_file(dir / "notes.txt"), "my notes\n");
  EXPECT_NE(error_of([&] { check_output(dir / "notes.txt", report_rule()); }), "");
  write_output(dir / "notes.txt", "REPORT\n", report_rule(true));
  EXPECT_EQ(read_file(dir / "notes.txt"), "REPORT\n");
  // A previous output and an empty file are replaced without asking.
  write_output(dir / "notes.txt", "REPORT 2\n", report_rule());
  EXPECT_EQ(read_file(dir / "notes.txt"), "REPORT 2\n");
  write_file(dir / "empty", "");
  write_output(dir / "empty", "REPORT\n", report_rule());
  EXPECT_EQ(read_file(dir / "empty"), "REPORT\n");
}

TEST(SafeOutput, DirectoryAndMissingFolderAreOneLineErrors) {
  TempDir dir;
  EXPECT_NE(error_of([&] { write_output(dir.path(), "x", OutputRule{}); }).find("is a directory"), std::string::npos);
  EXPECT_NE(error_of([&] { check_output(dir / "nope" / "x", OutputRule{}); }).find("does not exist"), std::string::npos);
  EXPECT_NE(error_of([&] { check_output("", OutputRule{}); }), "");
}

TEST(SafeOutput, CheckReplaceableRefusesLinksAndSpecialFiles) {
  TempDir dir;
  fs::create_symlink("/etc/passwd", dir / "report.html");
  EXPECT_NE(error_of([&] { check_replaceable(dir / "report.html", OutputRule{}); }).find("not a regular file"),
            std::string::npos);
  ASSERT_EQ(::mkfifo((dir / "f").c_str(), 0600), 0);
  EXPECT_NE(error_of([&] { check_replaceable(dir / "f", OutputRule{}); }), "");
  EXPECT_EQ(error_of([&] { check_replaceable(dir / "missing", report_rule()); }), "");
}

// Item 10: appending to a CSV file that is not ours.
TEST(CsvAppend, WritesTheHeaderOnceThenRows) {
  TempDir dir;
  append_csv(dir / "e.csv", "a,b", "1,2\n");
  append_csv(dir / "e.csv", "a,b", "3,4\n");
  EXPECT_EQ(read_file(dir / "e.csv"), "a,b\n1,2\n3,4\n");
  write_file(dir / "empty.csv", "");
  append_csv(dir / "empty.csv", "a,b", "1,2\n");
  EXPECT_EQ(read_file(dir / "empty.csv"), "a,b\n1,2\n");
}

TEST(CsvAppend, RefusesForeignHeaderBinaryAndMissingNewline) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a,b,c\n1,2,3\n", "first line"},
      {std::string("a,b\n\x01\x00\xff\n", 8), "binary"},
      {"a,b\n1,2", "newline"},
      {std::string("SQLite format 3\0...", 19), "SQLite"},
  };
  for (const auto& [content, why] : cases) {
    write_file(dir / "x.csv", content);
    const auto err = error_of([&] { append_csv(dir / "x.csv", "a,b", "5,6\n"); });
    EXPECT_NE(err.find(why), std::string::npos) << err;
    EXPECT_NE(error_of([&] { check_csv_append(dir / "x.csv", "a,b"); }), "") << why;
    EXPECT_EQ(read_file(dir / "x.csv"), content) << why;
  }
  EXPECT_EQ(error_of([&] { check_csv_append(dir / "new.csv", "a,b"); }), "");
  EXPECT_FALSE(fs::exists(dir / "new.csv"));
}

TEST(CsvAppend, FullDeviceLeavesNoEmptyFile) {
  // A stream gets header and rows; /dev/full fails without replacing anything.
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
  EXPECT_NE(error_of([] { append_csv("/dev/full", "a,b", "1,2\n"); }).find("No space left"), std::string::npos);
}

TEST(CsvAppend, ConcurrentAppendersWriteOneHeader) {
  TempDir dir;
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] { append_csv(dir / "c.csv", "n", std::to_string(i) + "\n"); });
  for (auto& t : threads) t.join();
  const auto text = read_file(dir / "c.csv");
  EXPECT_EQ(text.rfind("n\n", 0), 0u);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 9);
  EXPECT_EQ(text.find("n\n", 1), std::string::npos);
}

// Item 3: names from specs and databases as file names.
TEST(SafeFileName, KeepsHarmlessNamesAndMapsTheRest) {
  EXPECT_EQ(safe_file_name("grid-quick"), "grid-quick");
  EXPECT_EQ(safe_file_name("my study 2"), "my study 2");
  for (std::string_view bad : {"../../../../tmp/escaped", "/abs/path", "..", ".", "", ".hidden", "a/b", "a\nb",
                               "\x1b[31mred"}) {
    const auto s = safe_file_name(bad);
    EXPECT_FALSE(s.empty()) << bad;
    EXPECT_EQ(s.find('/'), std::string::npos) << s;
    EXPECT_NE(s.front(), '.') << s;
    for (char c : s) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << s;
    EXPECT_EQ(fs::path(s).filename().string(), s);
  }
  EXPECT_NE(safe_file_name("a/b"), safe_file_name("a_b"));
  EXPECT_NE(safe_file_name("a/b"), safe_file_name("a\nb"));
  EXPECT_EQ(safe_file_name("a/b"), safe_file_name("a/b"));
  EXPECT_LE(safe_file_name(std::string(5000, 'x')).size(), 120u);
}

}  // namespace
}  // namespace powertrain::io
