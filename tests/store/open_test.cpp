// Opening databases: schema creation, settings, and the files that are refused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include "powertrain/error.h"
#include "powertrain/store/store.h"
#include "samples.h"
#include "temp_dir.h"

namespace powertrain::store {
namespace {

using powertrain::testing::RawDb;
using powertrain::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The message of the StoreError `f` throws; fails the test if it throws none.
template <typename F>
std::string store_error(F&& f) {
  try {
    f();
  } catch (const StoreError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no StoreError";
  return {};
}

TEST(StoreOpen, CreatesSchemaAtCurrentVersion) {
  TempDir dir;
  auto path = dir / "results.db";
  {
    auto store = Store::open(path);
    EXPECT_EQ(store.schema_version(), kSchemaVersion);
    EXPECT_FALSE(store.read_only());
    EXPECT_EQ(store.path(), path);
  }
  RawDb raw(path);
  EXPECT_EQ(raw.integer("PRAGMA user_version"), kSchemaVersion);
  EXPECT_EQ(raw.integer("PRAGMA application_id"), kApplicationId);
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");  // stored in the file
  for (const char* table : {"studies", "trials", "runs", "epochs", "epoch_channels", "timeline",
                            "timeline_channels", "measurements", "trial_results", "timeline_w"}) {
    EXPECT_EQ(raw.integer(std::string("SELECT count(*) FROM sqlite_schema WHERE name = '") + table + "'"), 1)
        << table;
  }
}

TEST(StoreOpen, ConnectionSettings) {
  TempDir dir;
  auto store = Store::open(dir / "r.db");
  auto row = store.query(
      "SELECT (SELECT foreign_keys FROM pragma_foreign_keys), (SELECT synchronous FROM pragma_synchronous)");
  ASSERT_EQ(row.rows.size(), 1u);
  EXPECT_EQ(std::get<std::int64_t>(row.rows[0][0].value), 1);
  EXPECT_EQ(std::get<std::int64_t>(row.rows[0][1].value), 2);  // FULL

  auto normal = Store::open(dir / "n.db", {.durability = Durability::normal});
  auto n = normal.query("SELECT synchronous FROM pragma_synchronous");
  EXPECT_EQ(std::get<std::int64_t>(n.rows[0][0].value), 1);  // NORMAL
}

TEST(StoreOpen, ReopenKeepsData) {
  TempDir dir;
  std::int64_t id = 0;
  {
    auto store = Store::open(dir / "r.db");
    id = store.create_study("grid-1", "grid", "lr = [0.1]", {});
  }
  auto store = Store::open(dir / "r.db");
  ASSERT_TRUE(store.find_study("grid-1"));
  EXPECT_EQ(store.find_study("grid-1")->id, id);
}

TEST(StoreOpen, MissingDirectoryIsOneLine) {
  TempDir dir;
  auto path = dir / "nowhere" / "results.db";
  auto msg = store_error([&] { Store::open(path); });
  EXPECT_THAT(msg, StartsWith(path.string() + ": "));
  EXPECT_THAT(msg, HasSubstr("does not exist"));
  EXPECT_EQ(msg.find('\n'), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir / "nowhere"));
}

TEST(StoreOpen, NonDatabaseFileIsRefusedUntouched) {
  TempDir dir;
  auto path = dir / "notes.txt";
  std::string content(4096, 'x');
  powertrain::testing::write_file(path, content);
  auto msg = store_error([&] { Store::open(path); });
  EXPECT_EQ(msg, path.string() + ": not a powertrain database (not an SQLite file)");
  EXPECT_EQ(powertrain::testing::read_file(path), content);
  EXPECT_FALSE(std::filesystem::exists(path.string() + "-wal"));

  auto ro = store_error([&] { Store::open_readonly(path); });
  EXPECT_EQ(ro, path.string() + ": not a powertrain database (not an SQLite file)");
}

TEST(StoreOpen, OtherSqliteDatabaseIsRefused) {
  TempDir dir;
  auto path = dir / "other.db";
  {
    RawDb raw(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    raw.exec("CREATE TABLE notes (x TEXT)");
  }
  EXPECT_THAT(store_error([&] { Store::open(path); }), HasSubstr("not a powertrain database"));
  {
    RawDb raw(path);
    raw.exec("PRAGMA application_id = 1234");
    EXPECT_EQ(raw.text("PRAGMA journal_mode"), "delete");  // left as it was
  }
  EXPECT_THAT(store_error([&] { Store::open(path); }), HasSubstr("application_id 0x000004d2"));
}

TEST(StoreOpen, DirectoryIsRefused) {
  TempDir dir;
  EXPECT_THAT(store_error([&] { Store::open(dir.path()); }), HasSubstr("is a directory"));
  EXPECT_THAT(store_error([&] { Store::open_readonly(dir.path()); }), HasSubstr("is a directory"));
}

TEST(StoreOpen, EmptyFileBecomesDatabase) {
  TempDir dir;
  auto path = dir / "empty.db";
  powertrain::testing::write_file(path, "");
  EXPECT_THAT(store_error([&] { Store::open_readonly(path); }), HasSubstr("not a powertrain database (empty)"));
  auto store = Store::open(path);
  EXPECT_EQ(store.schema_version(), kSchemaVersion);
}

TEST(StoreOpen, NewerSchemaIsRefused) {
  TempDir dir;
  auto path = dir / "r.db";
  Store::open(path);
  {
    RawDb raw(path);
    raw.exec("PRAGMA user_version = 99");
  }
  auto msg = store_error([&] { Store::open(path); });
  EXPECT_THAT(msg, StartsWith(path.string() + ": database schema version 99 is newer"));
  EXPECT_THAT(msg, HasSubstr("(" + std::to_string(kSchemaVersion) + ")"));
  EXPECT_THAT(store_error([&] { Store::open_readonly(path); }), HasSubstr("is newer"));
  RawDb raw(path);
  EXPECT_EQ(raw.integer("PRAGMA user_version"), 99);
}

TEST(StoreOpen, ReadOnly) {
  TempDir dir;
  auto path = dir / "r.db";
  EXPECT_EQ(store_error([&] { Store::open_readonly(path); }), path.string() + ": no such database file");
  EXPECT_FALSE(std::filesystem::exists(path));
  {
    auto w = Store::open(path);
    w.create_study("s", "train", "", {});
  }
  auto ro = Store::open_readonly(path);
  EXPECT_TRUE(ro.read_only());
  EXPECT_EQ(ro.list_studies().size(), 1u);
  auto msg = store_error([&] { ro.create_study("t", "grid", "", {}); });
  EXPECT_EQ(msg, path.string() + ": create study 't': the database was opened read-only");
  EXPECT_THAT(store_error([&] { ro.begin_run({}, {}); }), HasSubstr("read-only"));
}

TEST(StoreOpen, ReadOnlyOfOlderSchemaAsksForUpgrade) {
  TempDir dir;
  auto path = dir / "r.db";
  Store::open(path, {.schema_version = 1});
  EXPECT_THAT(store_error([&] { Store::open_readonly(path); }),
              HasSubstr("schema version 1 is older than this powertrain's"));
}

// Issue 24: a writer that died inside a transaction of a rollback-journal
// database (a Slurm result file, a database made with wal off) leaves a hot
// journal. Reading it must roll the write back, not fail with "attempt to
// write a readonly database".
void leave_hot_journal(const std::filesystem::path& path) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) ::_exit(2);
    // A tiny page cache: the transaction's pages spill into the file, the
    // originals into the journal.
    const char* sql =
        "PRAGMA cache_size = 2; BEGIN IMMEDIATE; UPDATE studies SET name = 'half written'; "
        "CREATE TABLE junk (x BLOB); "
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) "
        "INSERT INTO junk SELECT randomblob(2000) FROM n;";
    if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) ::_exit(3);
    ::_exit(0);  // dies inside the transaction
  }
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  ASSERT_TRUE(std::filesystem::exists(path.string() + "-journal"));
}

TEST(StoreOpen, AHotJournalIsRolledBackWhenReading) {
  TempDir dir;
  auto path = dir / "r.db";
  Store::open(path, {.wal = false}).create_study("kept", "grid", "", {});
  leave_hot_journal(path);
  auto store = Store::open_readonly(path);
  const auto studies = store.list_studies();
  ASSERT_EQ(studies.size(), 1u);
  EXPECT_EQ(studies[0].study.name, "kept");
  EXPECT_FALSE(std::filesystem::exists(path.string() + "-journal"));
  EXPECT_EQ(store.query("SELECT count(*) FROM sqlite_schema WHERE name = 'junk'").rows.at(0).at(0).value,
            Value(std::int64_t{0}));
}

TEST(StoreOpen, MovedStoreWorks) {
  TempDir dir;
  auto a = Store::open(dir / "r.db");
  Store b = std::move(a);
  b.create_study("s", "grid", "", {});
  EXPECT_EQ(b.list_studies().size(), 1u);
}

}  // namespace
}  // namespace powertrain::store
