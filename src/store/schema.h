#pragma once
// The store's schema as an ordered list of migrations.
#include <span>
#include <string_view>

#include "sqlite.h"

namespace powertrain::store::schema {

/// One step: the SQL that takes a database from version - 1 to version.
struct Migration {
  int version;
  std::string_view description;
  std::string_view sql;
  /// It edits a table's definition in sqlite_schema: the schema cookie is
  /// bumped after it so that every connection rereads the definitions.
  bool edits_schema = false;
};

/// Every migration, in order; the last one's version is kSchemaVersion.
std::span<const Migration> migrations();

/// Brings the database up to `target` in one BEGIN IMMEDIATE transaction: reads
/// user_version inside it (another process may have just migrated), applies
/// the missing steps, sets user_version. A failing step leaves the database as
/// it was. A database at `target` already is only read (no write lock).
/// Throws StoreError if the database is newer than this build.
void migrate(sql::Connection& conn, int target);

/// Throws StoreError unless `version` is one this build reads and writes.
void check_version(sql::Connection& conn, int version, bool read_only);

}  // namespace powertrain::store::schema
