#include "sqlite.h"

#include <unistd.h>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::store::sql {

// --- Query ------------------------------------------------------------------

Query::Query(Connection& conn, sqlite3_stmt* stmt, std::string_view purpose)
    : conn_(conn), stmt_(stmt), purpose_(purpose) {}

Query::~Query() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void Query::fail() const { conn_.fail(purpose_); }

Query& Query::bind(int i, std::int64_t v) {
  if (sqlite3_bind_int64(stmt_, i, v) != SQLITE_OK) fail();
  return *this;
}

Query& Query::bind(int i, double v) {
  int rc = std::isnan(v) ? sqlite3_bind_null(stmt_, i) : sqlite3_bind_double(stmt_, i, v);
  if (rc != SQLITE_OK) fail();
  return *this;
}

Query& Query::bind(int i, std::string_view v) {
  // SQLITE_TRANSIENT: SQLite copies the text, so temporaries are safe to bind.
  if (sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8) != SQLITE_OK)
    fail();
  return *this;
}

Query& Query::bind(int i, std::nullptr_t) {
  if (sqlite3_bind_null(stmt_, i) != SQLITE_OK) fail();
  return *this;
}

Query& Query::bind(int i, const std::optional<double>& v) {
  return v ? bind(i, *v) : bind(i, nullptr);
}

Query& Query::bind(int i, const std::optional<std::int64_t>& v) {
  return v ? bind(i, *v) : bind(i, nullptr);
}

bool Query::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail();
}

void Query::run() {
  while (step()) {
  }
}

void Query::require_row() {
  if (!step()) conn_.fail(purpose_, "no row");
}

bool Query::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

std::int64_t Query::int64(int col) const { return sqlite3_column_int64(stmt_, col); }

double Query::real(int col) const {
  if (is_null(col)) return std::nan("");
  return sqlite3_column_double(stmt_, col);
}

std::optional<double> Query::opt_real(int col) const {
  if (is_null(col)) return std::nullopt;
  return sqlite3_column_double(stmt_, col);
}

std::optional<std::int64_t> Query::opt_int64(int col) const {
  if (is_null(col)) return std::nullopt;
  return sqlite3_column_int64(stmt_, col);
}

std::string Query::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  if (p == nullptr) return {};
  return std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)));
}

// --- Connection ---------------------------------------------------------------

namespace {

// A read-only connection to a database this process cannot write (the file or
// its folder: another user's, a read-only folder or file system) opens it
// immutable: SQLite then needs no -wal/-shm files, so it neither fails to
// create them nor leaves them behind owned by this user, where the owner's
// next writer could not use them. When a writer's -wal and -shm are there,
// the normal read-only open reads through them (and creates nothing).
bool open_immutable(const std::string& filename, int flags) {
  if ((flags & SQLITE_OPEN_READONLY) == 0 || filename.empty() || filename == ":memory:") return false;
  std::string dir = filename.substr(0, filename.rfind('/') == std::string::npos ? 0 : filename.rfind('/') + 1);
  if (dir.empty()) dir = ".";
  if (::access(filename.c_str(), W_OK) == 0 && ::access(dir.c_str(), W_OK) == 0) return false;
  return ::access((filename + "-wal").c_str(), F_OK) != 0 || ::access((filename + "-shm").c_str(), F_OK) != 0;
}

// "file:PATH?immutable=1", PATH percent-encoded where a URI needs it.
std::string immutable_uri(const std::string& filename) {
  std::string uri = filename.front() == '/' ? "file://" : "file:";  // an absolute path after an empty authority
  for (unsigned char c : filename) {
    if (c == '%' || c == '?' || c == '#' || c < 0x20 || c >= 0x7f) {
      uri += fmt::format("%{:02X}", c);
    } else {
      uri += static_cast<char>(c);
    }
  }
  return uri + "?immutable=1";
}

}  // namespace

Connection::Connection(const std::string& filename, int flags, std::string label)
    : label_(std::move(label)) {
  sqlite3* raw = nullptr;
  const bool immutable = open_immutable(filename, flags);
  int rc = immutable ? sqlite3_open_v2(immutable_uri(filename).c_str(), &raw, flags | SQLITE_OPEN_URI, nullptr)
                     : sqlite3_open_v2(filename.c_str(), &raw, flags, nullptr);
  db_.reset(raw);  // sqlite3_open_v2 may allocate a handle even when it fails
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    throw StoreError(fmt::format("{}: cannot open database: {}", label_, msg));
  }
  sqlite3_extended_result_codes(raw, 1);
}

void Connection::fail(std::string_view purpose) const {
  throw StoreError(fmt::format("{}: {}: {}", label_, purpose, sqlite3_errmsg(db_.get())));
}

void Connection::fail(std::string_view purpose, std::string_view message) const {
  throw StoreError(fmt::format("{}: {}: {}", label_, purpose, message));
}

void Connection::exec(std::string_view sql, std::string_view purpose) {
  // sqlite3_exec needs a terminated string; run statement by statement instead.
  const char* tail = sql.data();
  const char* end = sql.data() + sql.size();
  while (tail < end) {
    sqlite3_stmt* raw = nullptr;
    const char* next = nullptr;
    if (sqlite3_prepare_v2(db_.get(), tail, static_cast<int>(end - tail), &raw, &next) != SQLITE_OK)
      fail(purpose);
    StmtHandle stmt(raw);
    if (next == tail) break;
    tail = next;
    if (!stmt) continue;  // whitespace or a comment
    Query(*this, stmt.get(), purpose).run();
  }
}

Query Connection::cached(std::string_view sql, std::string_view purpose) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                           SQLITE_PREPARE_PERSISTENT, &raw, nullptr) != SQLITE_OK)
      fail(purpose);
    it = cache_.emplace(std::string(sql), StmtHandle(raw)).first;
  }
  return Query(*this, it->second.get(), purpose);
}

Query Connection::once(std::string_view sql, std::string_view purpose, StmtHandle& owner) {
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  if (sqlite3_prepare_v2(db_.get(), sql.data(), static_cast<int>(sql.size()), &raw, &tail) != SQLITE_OK)
    fail(purpose);
  owner.reset(raw);
  if (!raw) fail(purpose, "no SQL statement");
  // Anything after the statement must be blanks or comments.
  const char* end = sql.data() + sql.size();
  while (tail < end) {
    sqlite3_stmt* extra = nullptr;
    const char* next = nullptr;
    if (sqlite3_prepare_v2(db_.get(), tail, static_cast<int>(end - tail), &extra, &next) != SQLITE_OK)
      fail(purpose);
    if (extra) {
      sqlite3_finalize(extra);
      fail(purpose, "more than one SQL statement");
    }
    if (next == tail) break;
    tail = next;
  }
  return Query(*this, raw, purpose);
}

std::int64_t Connection::scalar_int(std::string_view sql, std::string_view purpose) {
  StmtHandle owner;
  auto q = once(sql, purpose, owner);
  q.require_row();
  return q.int64(0);
}

std::string Connection::scalar_text(std::string_view sql, std::string_view purpose) {
  StmtHandle owner;
  auto q = once(sql, purpose, owner);
  q.require_row();
  return q.text(0);
}

// --- Transaction --------------------------------------------------------------

Transaction::Transaction(Connection& conn, std::string_view purpose, Mode mode)
    : conn_(conn), purpose_(purpose) {
  conn_.cached(mode == Mode::write ? "BEGIN IMMEDIATE" : "BEGIN", purpose_).run();
  open_ = true;
}

Transaction::~Transaction() {
  if (open_) {
    // Never throws: a failed rollback leaves SQLite to roll back when the
    // connection closes or the next transaction begins.
    sqlite3_exec(conn_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

void Transaction::commit() {
  conn_.cached("COMMIT", purpose_).run();
  open_ = false;
}

}  // namespace powertrain::store::sql
