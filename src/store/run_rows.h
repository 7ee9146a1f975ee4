#pragma once
// The runs aggregate's writes and reads that other aggregates make inside
// their own transactions (internal to src/store; defined in runs.cpp). Each
// takes the caller's open transaction as proof that it runs inside one (db.h).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "powertrain/run/records.h"
#include "sqlite.h"

namespace powertrain::store::run_rows {

/// Inserts a run (status running); returns its id.
std::int64_t insert(sql::Connection& conn, const sql::Transaction& tx, const run::RunConfig& config,
                    const run::Environment& environment);
/// Makes run `run_id` an attempt of trial `trial_id`.
void link_to_trial(sql::Connection& conn, const sql::Transaction& tx, std::int64_t run_id, std::int64_t trial_id,
                   const std::string& purpose);
/// Stores the summary of a running run. Throws StoreError if summary.status is
/// running, or the run is missing or finished already.
void finish(sql::Connection& conn, const sql::Transaction& tx, std::int64_t run_id, const run::RunSummary& summary);
/// Ends a running run with `status` (interrupted or failed) and `message`,
/// finished now; a run that is not running is left as it is.
void end(sql::Connection& conn, const sql::Transaction& tx, std::int64_t run_id, std::string_view status,
         std::string_view message, const std::string& purpose);
/// Marks a running run interrupted with `message` (finished_at stays unset:
/// nobody saw when its process stopped); a run that is not running is left alone.
void interrupt(sql::Connection& conn, const sql::Transaction& tx, std::int64_t run_id, std::string_view message,
               const std::string& purpose);
/// A run interrupted by another process (not finished) runs again: its own
/// process is about to finish it (Claims::complete_claimed_trial).
void reopen_interrupted(sql::Connection& conn, const sql::Transaction& tx, std::int64_t run_id,
                        const std::string& purpose);
/// The run's epochs in order, each with its channels in the order stored.
std::vector<run::EpochRecord> read_epochs(sql::Connection& conn, const sql::Transaction& tx, std::int64_t run_id,
                                          const std::string& purpose);

}  // namespace powertrain::store::run_rows
