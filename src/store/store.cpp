#include "powertrain/store/store.h"

#include <unistd.h>

#include <limits>
#include <system_error>

#include <fmt/format.h>

#include "db.h"
#include "powertrain/error.h"
#include "rows.h"
#include "schema.h"
#include "sqlite.h"

namespace powertrain::store {
namespace fs = std::filesystem;

namespace {

struct Header {
  std::int64_t application_id = 0;
  std::int64_t user_version = 0;
  std::int64_t objects = 0;  // tables, indexes, views, triggers
};

// Reads the header fields that tell a powertrain database from anything else.
// The first read of a file is where SQLite finds out it is not a database.
Header read_header(sql::Connection& conn) {
  static constexpr std::string_view kSql =
      "SELECT (SELECT application_id FROM pragma_application_id), "
      "(SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_schema)";
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(conn.get(), kSql.data(), static_cast<int>(kSql.size()), &raw, nullptr);
  sql::StmtHandle stmt(raw);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(raw);
    if (rc == SQLITE_ROW) {
      return {sqlite3_column_int64(raw, 0), sqlite3_column_int64(raw, 1),
              sqlite3_column_int64(raw, 2)};
    }
  }
  if ((rc & 0xff) == SQLITE_NOTADB) {
    throw StoreError(fmt::format("{}: not a powertrain database (not an SQLite file)", conn.label()));
  }
  conn.fail("read database header");
}

// true: an empty database that open() may initialize.
bool identify(sql::Connection& conn, const Header& h) {
  if (h.application_id == kApplicationId) return false;
  if (h.application_id == 0 && h.user_version == 0 && h.objects == 0) return true;
  if (h.application_id != 0) {
    throw StoreError(fmt::format("{}: not a powertrain database (application_id {:#010x})",
                                 conn.label(), static_cast<std::uint32_t>(h.application_id)));
  }
  throw StoreError(
      fmt::format("{}: not a powertrain database (an SQLite database of something else)", conn.label()));
}

void set_busy_timeout(sql::Connection& conn, const OpenOptions& options) {
  auto ms = options.busy_timeout.count();
  if (ms < 0 || ms > std::numeric_limits<int>::max()) conn.fail("open", "busy timeout out of range");
  if (sqlite3_busy_timeout(conn.get(), static_cast<int>(ms)) != SQLITE_OK) conn.fail("set busy timeout");
}

constexpr int kOpenFlags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;

std::string journal_advice(const fs::path& path) {
  return fmt::format(
      "it holds the journal of a write that never finished ({}-journal), which only a user who may write the "
      "database and its folder can roll back: run `powertrain collect {}` as such a user (or give this user write "
      "access), then read it again",
      path.string(), path.string());
}

// A database this user may not write (opened immutable, which ignores
// journals) whose rollback journal is there and not empty: what it holds may
// be half a transaction. Said rather than read.
void refuse_unrecoverable_journal(const fs::path& path) {
  const std::string file = path.string();
  std::string dir = path.parent_path().string();
  if (dir.empty()) dir = ".";
  if (::access(file.c_str(), W_OK) == 0 && ::access(dir.c_str(), W_OK) == 0) return;
  std::error_code ec;
  const auto journal = fs::path(file + "-journal");
  if (fs::is_regular_file(journal, ec) && fs::file_size(journal, ec) > 0 && !ec)
    throw StoreError(fmt::format("{}: cannot be read as it is: {}", file, journal_advice(path)));
}

// Rolls a hot journal back through a writable connection of its own (SQLite
// does it on the first read of a connection that may write).
void roll_back_hot_journal(const fs::path& path, const OpenOptions& options) {
  const std::string label = path.string();
  try {
    sql::Connection conn(label, SQLITE_OPEN_READWRITE | kOpenFlags, label);
    set_busy_timeout(conn, options);
    (void)read_header(conn);
  } catch (const StoreError& e) {
    throw StoreError(fmt::format("{}: cannot be read as it is: {} ({})", label, journal_advice(path), e.what()));
  }
}

}  // namespace

Store::Store(std::unique_ptr<detail::Db> db)
    : Studies(db.get()), Claims(db.get()), Runs(db.get()), Imports(db.get()), Measurements(db.get()),
      owned_(std::move(db)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

Store Store::open(const fs::path& path, const OpenOptions& options) {
  const std::string label = path.string();
  if (label.empty()) throw StoreError("results database: the path is empty");
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw StoreError(fmt::format("{}: cannot create the database: directory {} does not exist",
                                 label, dir.string()));
  }
  if (fs::is_directory(path, ec)) {
    throw StoreError(fmt::format("{}: is a directory, not a powertrain database", label));
  }
  auto db = std::make_unique<detail::Db>(path, false, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | kOpenFlags);
  auto& conn = db->conn;
  if (sqlite3_db_readonly(conn.get(), "main") == 1) {
    conn.fail("open", "cannot write the file (permissions?); reports can open it read-only");
  }
  set_busy_timeout(conn, options);
  Header h = read_header(conn);
  identify(conn, h);
  // Refuse a newer schema before changing anything in the file.
  schema::check_version(conn, static_cast<int>(h.user_version), false);

  // WAL: readers never block the writer and see only committed transactions;
  // the setting is stored in the file, so read-only opens get it too.
  // A result file on a network file system takes a rollback journal instead.
  const char* journal = options.wal ? "wal" : "delete";
  if (conn.scalar_text("PRAGMA journal_mode", "read journal mode") != journal) {
    std::string mode = conn.scalar_text(fmt::format("PRAGMA journal_mode = {}", journal), "set the journal mode");
    if (mode != journal) conn.fail("set the journal mode", fmt::format("journal mode stays '{}'", mode));
  }
  conn.exec(options.durability == Durability::full ? "PRAGMA synchronous = FULL"
                                                   : "PRAGMA synchronous = NORMAL",
            "set durability");
  conn.exec("PRAGMA foreign_keys = ON", "enable foreign keys");
  schema::migrate(conn, options.schema_version);
  return Store(std::move(db));
}

Store Store::open_readonly(const fs::path& path, const OpenOptions& options) {
  const std::string label = path.string();
  if (label.empty()) throw StoreError("results database: the path is empty");
  std::error_code ec;
  if (!fs::exists(path, ec)) throw StoreError(fmt::format("{}: no such database file", label));
  if (fs::is_directory(path, ec)) {
    throw StoreError(fmt::format("{}: is a directory, not a powertrain database", label));
  }
  refuse_unrecoverable_journal(path);
  auto db = std::make_unique<detail::Db>(path, true, SQLITE_OPEN_READONLY | kOpenFlags);
  set_busy_timeout(db->conn, options);
  Header h;
  try {
    h = read_header(db->conn);
  } catch (const StoreError&) {
    // A write that never finished left its rollback journal: a reader cannot
    // roll it back, a writer can (what SQLite does on any writer's first read).
    if (sqlite3_extended_errcode(db->conn.get()) != SQLITE_READONLY_ROLLBACK) throw;
    db.reset();
    roll_back_hot_journal(path, options);
    db = std::make_unique<detail::Db>(path, true, SQLITE_OPEN_READONLY | kOpenFlags);
    set_busy_timeout(db->conn, options);
    h = read_header(db->conn);
  }
  auto& conn = db->conn;
  if (identify(conn, h)) {
    throw StoreError(fmt::format("{}: not a powertrain database (empty)", label));
  }
  schema::check_version(conn, static_cast<int>(h.user_version), true);
  return Store(std::move(db));
}

const fs::path& Store::path() const { return owned_->path; }
bool Store::read_only() const { return owned_->read_only; }
bool Store::wal() const {
  return owned_->conn.scalar_text("PRAGMA journal_mode", "read the journal mode") == "wal";
}

int Store::schema_version() const {
  return static_cast<int>(owned_->conn.scalar_int("PRAGMA user_version", "read schema version"));
}

table::Table Store::query(std::string_view sql_text, const std::vector<Value>& params) const {
  return rows::select(owned_->conn, sql_text, params);
}

}  // namespace powertrain::store
