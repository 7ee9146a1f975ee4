#include "powertrain/store/claims.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "db.h"
#include "powertrain/error.h"
#include "rows.h"
#include "run_rows.h"

namespace powertrain::store {
using rows::trial_status_of;
using sql::Transaction;

std::int64_t Claims::start_trial(std::int64_t trial_id, const run::RunConfig& config,
                                 const run::Environment& environment) {
  const std::string purpose = fmt::format("start trial {}", trial_id);
  db().require_writable(purpose);
  auto& conn = db().conn;
  Transaction tx(conn, purpose);
  {
    auto q = conn.cached("SELECT status FROM trials WHERE id = ?", purpose);
    q.bind(1, trial_id);
    if (!q.step()) conn.fail(purpose, "no such trial");
    auto status = trial_status_of(q.text(0));
    if (status == TrialStatus::running) conn.fail(purpose, "it is running already (in another process?)");
    if (is_done(status)) conn.fail(purpose, fmt::format("it is done already ({})", to_string(status)));
  }
  std::int64_t run_id = run_rows::insert(conn, tx, config, environment);
  auto q = conn.cached(
      "UPDATE trials SET status = 'running', run_id = ?, attempts = attempts + 1, "
      "started_at = " PT_NOW ", finished_at = NULL, message = '' WHERE id = ?",
      purpose);
  q.bind(1, run_id).bind(2, trial_id);
  q.run();
  run_rows::link_to_trial(conn, tx, run_id, trial_id, purpose);
  tx.commit();
  return run_id;
}

void Claims::complete_trial(std::int64_t trial_id, const run::RunSummary& summary) {
  const std::string purpose = fmt::format("complete trial {}", trial_id);
  db().require_writable(purpose);
  auto& conn = db().conn;
  if (summary.status == run::RunStatus::running) {
    conn.fail(purpose, "the summary's status is still 'running'");
  }
  Transaction tx(conn, purpose);
  std::int64_t run_id = 0;
  {
    auto q = conn.cached("SELECT status, run_id FROM trials WHERE id = ?", purpose);
    q.bind(1, trial_id);
    if (!q.step()) conn.fail(purpose, "no such trial");
    if (q.text(0) != "running" || q.is_null(1)) {
      conn.fail(purpose, fmt::format("it is not running (status {})", q.text(0)));
    }
    run_id = q.int64(1);
  }
  run_rows::finish(conn, tx, run_id, summary);
  auto q = conn.cached("UPDATE trials SET status = ?, message = ?, finished_at = " PT_NOW " WHERE id = ?",
                       purpose);
  q.bind(1, to_string(trial_status(summary.status))).bind(2, summary.message).bind(3, trial_id);
  q.run();
  tx.commit();
}

void Claims::end_trial(std::int64_t trial_id, TrialStatus status, std::string_view message) {
  const std::string purpose = fmt::format("mark trial {} {}", trial_id, to_string(status));
  db().require_writable(purpose);
  auto& conn = db().conn;
  Transaction tx(conn, purpose);
  std::optional<std::int64_t> run_id;
  {
    auto q = conn.cached("SELECT run_id FROM trials WHERE id = ?", purpose);
    q.bind(1, trial_id);
    if (!q.step()) conn.fail(purpose, "no such trial");
    run_id = q.opt_int64(0);
  }
  if (run_id) run_rows::end(conn, tx, *run_id, to_string(status), message, purpose);
  auto q = conn.cached("UPDATE trials SET status = ?, message = ?, finished_at = " PT_NOW " WHERE id = ?",
                       purpose);
  q.bind(1, to_string(status)).bind(2, message).bind(3, trial_id);
  q.run();
  tx.commit();
}

void Claims::mark_trial_failed(std::int64_t trial_id, std::string_view message) {
  end_trial(trial_id, TrialStatus::failed, message);
}

void Claims::mark_trial_interrupted(std::int64_t trial_id, std::string_view message) {
  end_trial(trial_id, TrialStatus::interrupted, message);
}

int Claims::reset_interrupted(std::int64_t study_id, double now_s) {
  const std::string purpose = fmt::format("reset interrupted trials of study {}", study_id);
  db().require_writable(purpose);
  auto& conn = db().conn;
  static constexpr std::string_view kMessage = "the process running it ended before it finished";
  Transaction tx(conn, purpose);
  // The running trials whose holder is gone.
  std::vector<std::pair<std::int64_t, std::optional<std::int64_t>>> gone;
  {
    auto q = conn.cached("SELECT id, run_id, owner, lease_until FROM trials WHERE study_id = ? AND status = 'running'",
                         purpose);
    q.bind(1, study_id);
    while (q.step()) {
      const bool unclaimed = q.is_null(2);
      const bool expired = !q.is_null(3) && q.real(3) < now_s;
      if (unclaimed || expired || owner_is_gone(q.text(2))) gone.emplace_back(q.int64(0), q.opt_int64(1));
    }
  }
  for (const auto& [trial_id, run_id] : gone) {
    if (run_id) run_rows::interrupt(conn, tx, *run_id, kMessage, purpose);
    auto q = conn.cached(
        "UPDATE trials SET status = 'interrupted', message = ?, finished_at = NULL, owner = NULL, lease_until = NULL "
        "WHERE id = ?",
        purpose);
    q.bind(1, kMessage).bind(2, trial_id);
    q.run();
  }
  tx.commit();
  return static_cast<int>(gone.size());
}

Claims::Claim Claims::claim_trial(std::int64_t trial_id, const run::RunConfig& config,
                                  const run::Environment& environment, std::string_view owner, double lease_s,
                                  double now_s) {
  const std::string purpose = fmt::format("claim trial {}", trial_id);
  db().require_writable(purpose);
  auto& conn = db().conn;
  Transaction tx(conn, purpose);  // BEGIN IMMEDIATE: one claimer at a time
  Claim c;
  {
    auto q = conn.cached("SELECT status, run_id, owner, lease_until FROM trials WHERE id = ?", purpose);
    q.bind(1, trial_id);
    if (!q.step()) conn.fail(purpose, "no such trial");
    const auto status = trial_status_of(q.text(0));
    if (is_done(status)) {
      c.outcome = ClaimOutcome::done;
      return c;
    }
    if (status == TrialStatus::running) {
      const std::string holder = q.is_null(2) ? "" : q.text(2);
      const bool expired = !q.is_null(3) && q.real(3) < now_s;
      const bool gone = q.is_null(2) || expired || owner_is_gone(holder);
      if (!gone) return c;  // busy
      c.taken_from = holder.empty() ? "a process that left no claim" : holder;
      if (auto old_run = q.opt_int64(1)) {
        run_rows::interrupt(conn, tx, *old_run,
                            fmt::format("its process ({}) stopped holding the trial; another took it over",
                                        c.taken_from),
                            purpose);
      }
    }
  }
  c.run_id = run_rows::insert(conn, tx, config, environment);
  auto q = conn.cached(
      "UPDATE trials SET status = 'running', run_id = ?, attempts = attempts + 1, started_at = " PT_NOW
      ", finished_at = NULL, message = '', owner = ?, lease_until = ? WHERE id = ?",
      purpose);
  q.bind(1, c.run_id).bind(2, owner).bind(3, now_s + lease_s).bind(4, trial_id);
  q.run();
  run_rows::link_to_trial(conn, tx, c.run_id, trial_id, purpose);
  tx.commit();
  c.outcome = ClaimOutcome::claimed;
  return c;
}

bool Claims::renew_claim(std::int64_t trial_id, std::int64_t run_id, double lease_s, double now_s) {
  const std::string purpose = fmt::format("renew the claim on trial {}", trial_id);
  db().require_writable(purpose);
  auto& conn = db().conn;
  Transaction tx(conn, purpose);
  auto q = conn.cached("UPDATE trials SET lease_until = ? WHERE id = ? AND run_id = ? AND status = 'running'", purpose);
  q.bind(1, now_s + lease_s).bind(2, trial_id).bind(3, run_id);
  q.run();
  const bool ours = sqlite3_changes(conn.get()) == 1;
  tx.commit();
  return ours;
}

bool Claims::complete_claimed_trial(std::int64_t trial_id, std::int64_t run_id, const run::RunSummary& summary) {
  const std::string purpose = fmt::format("complete trial {} (run {})", trial_id, run_id);
  db().require_writable(purpose);
  auto& conn = db().conn;
  if (summary.status == run::RunStatus::running) conn.fail(purpose, "the summary's status is still 'running'");
  Transaction tx(conn, purpose);
  bool ours = false;
  {
    auto q = conn.cached("SELECT status, run_id FROM trials WHERE id = ?", purpose);
    q.bind(1, trial_id);
    if (!q.step()) conn.fail(purpose, "no such trial");
    ours = q.text(0) == "running" && !q.is_null(1) && q.int64(1) == run_id;
  }
  // Our run is ours whatever happened to the trial: it gets the true summary,
  // also when another process took the trial over meanwhile (it then stays
  // apart from the trial's result).
  run_rows::reopen_interrupted(conn, tx, run_id, purpose);
  run_rows::finish(conn, tx, run_id, summary);
  if (ours) {
    auto q = conn.cached(
        "UPDATE trials SET status = ?, message = ?, finished_at = " PT_NOW ", owner = NULL, lease_until = NULL "
        "WHERE id = ?",
        purpose);
    q.bind(1, to_string(trial_status(summary.status))).bind(2, summary.message).bind(3, trial_id);
    q.run();
  }
  tx.commit();
  return ours;
}

double Claims::wall_clock_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

namespace {

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

// Field 22 of /proc/PID/stat (start time in clock ticks since boot): with the
// pid, it names a process uniquely on one host across pid reuse.
std::string start_time_of(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return "";
  const auto close = line.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return "";
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i)
    if (i == 22) return field;
  return "";
}

}  // namespace

std::string Claims::this_process_owner() {
  const long pid = static_cast<long>(::getpid());
  return fmt::format("{} {} {}", host_name(), pid, start_time_of(pid));
}

bool Claims::owner_is_gone(std::string_view owner) {
  std::istringstream in{std::string(owner)};
  std::string host, start;
  long pid = 0;
  if (!(in >> host >> pid) || pid <= 0 || host != host_name()) return false;
  in >> start;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return true;
  const auto now_start = start_time_of(pid);
  return !start.empty() && !now_start.empty() && now_start != start;  // the pid was reused
}

}  // namespace powertrain::store
