#pragma once
// The results store: one SQLite database (WAL mode) that keeps studies,
// trials, runs, epochs with their energy per channel, power timelines and
// measured commands. See docs/store.md for the schema and the guarantees.
//
// A Store owns the one connection and is all of the store's aggregates at
// once, each in its own file pair with its own SQL:
//   studies.h       studies and their trials
//   claims.h        which process runs a trial (claims, leases, trial ends)
//   runs.h          runs, epochs, timelines, runs over several nodes
//   imports.h       result files of Slurm tasks, Slurm tasks, cluster energy
//   measurements.h  measured commands
// Code that needs one aggregate takes it (`store::Runs&`) and is handed a Store.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include "powertrain/store/claims.h"
#include "powertrain/store/imports.h"
#include "powertrain/store/measurements.h"
#include "powertrain/store/records.h"
#include "powertrain/store/runs.h"
#include "powertrain/store/studies.h"
#include "powertrain/store/table.h"

namespace powertrain::store {

/// Schema version this build writes (PRAGMA user_version).
inline constexpr int kSchemaVersion = 10;
/// PRAGMA application_id of a powertrain database ("PWTR").
inline constexpr std::int32_t kApplicationId = 0x50575452;

/// When a committed transaction is safe.
enum class Durability {
  /// synchronous=FULL: the WAL is synced at every commit; a commit survives a
  /// power loss. The default: the store commits about once per epoch.
  full,
  /// synchronous=NORMAL: a commit survives the process being killed but the
  /// latest ones may roll back on a power loss (the database stays consistent).
  normal,
};

struct OpenOptions {
  /// How long a statement waits for another process's lock before it fails.
  std::chrono::milliseconds busy_timeout{30000};
  Durability durability = Durability::full;
  /// Upgrade the schema only up to this version (tests of migrations);
  /// kSchemaVersion for normal use. Read-write opens only.
  int schema_version = kSchemaVersion;
  /// WAL (the default) needs shared memory on one host: readers on other hosts
  /// must not open the file while it is written. false: a rollback journal, for
  /// a file on a network file system that one process writes at a time (the
  /// result file of a Slurm task).
  bool wal = true;
};

/// A connection to a results database. Move-only; not thread-safe: give each
/// thread (and each process, after fork) its own Store. Any number of Stores,
/// in any processes, may use one database at a time: readers never wait, and a
/// writer waits up to busy_timeout for another writer.
///
/// Every method throws StoreError with one line: "<path>: <what it was
/// doing>: <SQLite's message>".
class Store : public Studies, public Claims, public Runs, public Imports, public Measurements {
 public:
  /// Opens the database at `path`, creating it if missing, and upgrades its
  /// schema in one transaction. Throws StoreError if the directory is missing,
  /// the file is not a powertrain database, or its schema is newer than this
  /// build's.
  static Store open(const std::filesystem::path& path, const OpenOptions& options = {});
  /// Opens an existing database for reading only (reports). Throws StoreError
  /// if it is missing, not a powertrain database, or at another schema version.
  static Store open_readonly(const std::filesystem::path& path, const OpenOptions& options = {});

  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  ~Store();

  const std::filesystem::path& path() const;
  bool read_only() const;
  /// The file keeps a write-ahead log (OpenOptions::wal), rather than a rollback journal.
  bool wal() const;
  /// The database's PRAGMA user_version.
  int schema_version() const;

  /// Runs one read-only SQL statement with `?` parameters and returns its rows
  /// (tests and ad-hoc inspection; powertrain's own reads are the aggregates'
  /// methods). Throws StoreError for a statement that would write.
  table::Table query(std::string_view sql, const std::vector<Value>& params = {}) const;

 private:
  explicit Store(std::unique_ptr<detail::Db> db);
  std::unique_ptr<detail::Db> owned_;
};

}  // namespace powertrain::store
