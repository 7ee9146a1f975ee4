#pragma once
// Thin RAII layer over the SQLite C API. Every failure becomes a StoreError
// "<label>: <purpose>: <SQLite's message>".
#include <sqlite3.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace powertrain::store::sql {

struct DbCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using DbHandle = std::unique_ptr<sqlite3, DbCloser>;
using StmtHandle = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

class Connection;

/// A prepared statement in use: bind, step, read columns. Resets the
/// statement and clears its bindings when it goes out of scope, so a cached
/// statement is always ready for its next use.
class Query {
 public:
  Query(Connection& conn, sqlite3_stmt* stmt, std::string_view purpose);
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  // Parameters are 1-based, as in SQLite. NaN binds as NULL (SQLite has no NaN).
  Query& bind(int i, std::int64_t v);
  Query& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
  Query& bind(int i, double v);
  Query& bind(int i, std::string_view v);
  Query& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Query& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Query& bind(int i, std::nullptr_t);
  Query& bind(int i, const std::optional<double>& v);
  Query& bind(int i, const std::optional<std::int64_t>& v);

  /// true: a row is ready; false: done. Throws StoreError.
  bool step();
  /// Steps a statement that returns no rows.
  void run();
  /// Steps once and requires a row.
  void require_row();

  bool is_null(int col) const;
  std::int64_t int64(int col) const;
  int int32(int col) const { return static_cast<int>(int64(col)); }
  /// NULL reads as NaN.
  double real(int col) const;
  /// NULL reads as nullopt.
  std::optional<double> opt_real(int col) const;
  std::optional<std::int64_t> opt_int64(int col) const;
  /// NULL reads as "".
  std::string text(int col) const;

  sqlite3_stmt* get() const { return stmt_; }

 private:
  [[noreturn]] void fail() const;
  Connection& conn_;
  sqlite3_stmt* stmt_;
  std::string_view purpose_;
};

/// An open database connection with a cache of prepared statements.
class Connection {
 public:
  /// `label` starts every error message (the database path).
  Connection(const std::string& filename, int flags, std::string label);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* get() const { return db_.get(); }
  const std::string& label() const { return label_; }

  /// Runs one or more statements that return nothing.
  void exec(std::string_view sql, std::string_view purpose);
  /// A cached prepared statement for `sql` (prepared on first use).
  Query cached(std::string_view sql, std::string_view purpose);
  /// A statement prepared for one use; `owner` keeps it alive.
  Query once(std::string_view sql, std::string_view purpose, StmtHandle& owner);
  /// Value of the first column of the first row of `sql`, an integer.
  std::int64_t scalar_int(std::string_view sql, std::string_view purpose);
  std::string scalar_text(std::string_view sql, std::string_view purpose);

  /// Throws StoreError with SQLite's latest message on this connection.
  [[noreturn]] void fail(std::string_view purpose) const;
  /// Throws StoreError with a message of ours.
  [[noreturn]] void fail(std::string_view purpose, std::string_view message) const;

 private:
  // Destroyed in reverse order: statements are finalized before the connection closes.
  DbHandle db_;
  std::string label_;
  std::map<std::string, StmtHandle, std::less<>> cache_;
};

/// BEGIN IMMEDIATE ... COMMIT; rolls back if destroyed before commit(). IMMEDIATE
/// takes the write lock up front (waiting up to the busy timeout), so a
/// transaction never fails half-way because another process wrote first.
/// A read transaction (plain BEGIN) gives several SELECTs one snapshot.
class Transaction {
 public:
  enum class Mode { write, read };
  Transaction(Connection& conn, std::string_view purpose, Mode mode = Mode::write);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Connection& conn_;
  std::string_view purpose_;
  bool open_ = false;
};

}  // namespace powertrain::store::sql
