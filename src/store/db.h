#pragma once
// The one connection every aggregate of a Store shares, and the store's
// transaction discipline (internal to src/store).
//
// Transactions:
// - Every public method that writes runs all its statements in ONE
//   sql::Transaction (BEGIN IMMEDIATE): after a crash a write is there whole
//   or not at all, and the write lock is taken up front, so a write never
//   fails half-way because another process wrote first.
// - A public read of more than one statement takes a read transaction
//   (Transaction::Mode::read): its statements see one snapshot.
// - Helpers that run inside a transaction of their caller take a
//   `const sql::Transaction&` as the proof that one is open; they never begin
//   or commit one themselves. Only public methods open transactions.
#include <filesystem>
#include <string>
#include <string_view>

#include "sqlite.h"

/// SQL for "now" as the store writes times: ISO 8601 UTC with milliseconds.
#define PT_NOW "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

namespace powertrain::store::detail {

/// An open database: its path, whether it was opened read-only, and the
/// connection (with its cache of prepared statements).
struct Db {
  Db(const std::filesystem::path& p, bool ro, int flags) : path(p), read_only(ro), conn(p.string(), flags, p.string()) {}

  std::filesystem::path path;
  bool read_only;
  sql::Connection conn;

  /// Throws StoreError "<path>: <purpose>: the database was opened read-only".
  void require_writable(std::string_view purpose) const {
    if (read_only) conn.fail(purpose, "the database was opened read-only");
  }
};

}  // namespace powertrain::store::detail
