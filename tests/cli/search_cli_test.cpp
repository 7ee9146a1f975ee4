// End-to-end tests of `powertrain search`: a search of tiny synthetic images
// run to its end, printed by `results` and drawn by `report`; a grid spec
// searched over its lists; bad input; and a search killed with SIGKILL
// mid-way that resumes to its end from the store.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "powertrain/store/store.h"
#include "run_cli.h"
#include "temp_dir.h"

namespace pst = powertrain::store;
namespace fs = std::filesystem;
using powertrain::testing::count_lines;
using powertrain::testing::read_file;
using powertrain::testing::run_powertrain;
using powertrain::testing::TempDir;
using powertrain::testing::write_file;

namespace {

// 4 setups of tiny images; rungs end at epochs 1, 2 and 4. No target: the
// choice is the cheapest setup within the tolerance of the best metric.
const std::string kSearch = R"(name = "tiny-search"
kind = "search"
[workload]
dataset = "synthetic-images"
[workload.data]
train_samples = 192
eval_samples = 64
image_size = 16
num_classes = 4
[training]
max_epochs = 4
patience = 2
min_delta = 0.0
threads = 1
[search]
batch_sizes = [16, 64]
learning_rates = [0.01, 0.1]
min_epochs = 1
eta = 2
)";

// `text` with the first `from` replaced by `to`.
std::string with(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class SearchCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (powertrain::testing::powertrain_binary().empty()) GTEST_SKIP() << "POWERTRAIN_BINARY is not set";
  }
  TempDir dir;
};

// What must hold of a search's segments in the store: each trial once, the
// latest run of every one with a result, its epochs numbered from where the
// setup's earlier segment ended, no epoch twice.
struct Segments {
  std::size_t trials = 0;
  std::size_t done = 0;
};
Segments check_segments(const fs::path& db, const std::string& study) {
  Segments out;
  auto store = pst::Store::open_readonly(db);
  const auto s = store.find_study(study);
  if (!s) return out;
  EXPECT_EQ(s->kind, "search");
  std::set<std::string> keys;
  for (const auto& r : store.results_of(s->id)) {
    ++out.trials;
    EXPECT_TRUE(keys.insert(r.trial.key).second) << "duplicate trial " << r.trial.key;
    EXPECT_EQ(r.trial.phase, "search");
    if (!pst::is_done(r.trial.status)) continue;
    ++out.done;
    EXPECT_TRUE(r.run.has_value()) << r.trial.key;
    if (!r.run) continue;
    const auto epochs = store.epochs_of(r.run->id);
    EXPECT_FALSE(epochs.empty()) << r.trial.key;
    if (epochs.empty()) continue;
    std::set<int> seen;
    for (std::size_t i = 0; i < epochs.size(); ++i) {
      EXPECT_TRUE(seen.insert(epochs[i].epoch).second) << "epoch " << epochs[i].epoch << " twice in " << r.trial.key;
      if (i > 0) {
        EXPECT_EQ(epochs[i].epoch, epochs[i - 1].epoch + 1) << r.trial.key;
      }
    }
    // A segment ends at its rung's last epoch (the run's max_epochs) unless the rule stopped it.
    if (r.trial.status == pst::TrialStatus::max_epochs) {
      EXPECT_EQ(epochs.back().epoch, r.run->config.max_epochs) << r.trial.key;
    }
    if (r.trial.step == 0) {
      EXPECT_EQ(epochs.front().epoch, 1) << r.trial.key;
    } else {
      EXPECT_GT(epochs.front().epoch, 1) << "continued, not restarted: " << r.trial.key;
    }
  }
  return out;
}

}  // namespace

TEST_F(SearchCli, SearchesPrintsItsChoiceAndReportsIt) {
  write_file(dir / "spec.toml", kSearch);
  const auto db = (dir / "r.db").string();
  const auto r = run_powertrain({"search", (dir / "spec.toml").string(), "--db", db, "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("The search's choice"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Setups of the search"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("none yet"), std::string::npos) << "a setup is chosen\n" << r.out;
  EXPECT_NE(r.err.find("search 'tiny-search' in " + db), std::string::npos) << r.err;
  const auto seg = check_segments(db, "tiny-search");
  EXPECT_GE(seg.trials, 5u);  // rungs of 4, 2 and 1 setups, less those that stopped themselves
  EXPECT_LE(seg.trials, 7u);
  EXPECT_EQ(seg.done, seg.trials);

  const auto results = run_powertrain({"results", db});
  ASSERT_EQ(results.exit_code, 0) << results.err;
  EXPECT_NE(results.out.find("study 'tiny-search' (search)"), std::string::npos) << results.out;
  EXPECT_NE(results.out.find("The search's choice"), std::string::npos) << results.out;
  EXPECT_NE(results.out.find("Setups of the search"), std::string::npos) << results.out;

  // The report, with gnuplot where there is one (the page has the section either way).
  const bool gnuplot = fs::exists("/usr/bin/gnuplot");
  ::setenv("POWERTRAIN_GNUPLOT", gnuplot ? "/usr/bin/gnuplot" : "/nonexistent/gnuplot", 1);
  const auto report = run_powertrain({"report", db, "--out", (dir / "report").string()});
  ::unsetenv("POWERTRAIN_GNUPLOT");
  ASSERT_EQ(report.exit_code, 0) << report.err;
  const auto html = read_file(dir / "report" / "report.html");
  EXPECT_NE(html.find("search study"), std::string::npos);
  EXPECT_NE(html.find("<figure id=\"fig-study1-curves\">"), std::string::npos);
  EXPECT_NE(html.find("Setups of the search"), std::string::npos);
  EXPECT_NE(html.find("Use bs="), std::string::npos) << "the headline names the chosen setup";
  EXPECT_TRUE(fs::exists(dir / "report" / "tables" / "study1-search-setups.csv"));
  if (gnuplot) {
    EXPECT_GT(fs::file_size(dir / "report" / "figures" / "study1-curves.svg"), 1000u);
  }
}

TEST_F(SearchCli, AGridSpecIsSearchedOverItsListsUnderItsNameWithSearch) {
  write_file(dir / "grid.toml", R"(name = "small-grid"
kind = "grid"
[workload]
dataset = "synthetic-images"
[workload.data]
train_samples = 128
eval_samples = 32
image_size = 16
num_classes = 4
[training]
max_epochs = 2
threads = 1
[grid]
batch_sizes = [16, 64]
learning_rates = [0.01, 0.1]
[search]
min_epochs = 1
eta = 2
)");
  const auto db = dir / "r.db";
  const auto r = run_powertrain({"search", (dir / "grid.toml").string(), "--db", db.string(), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("The search's choice"), std::string::npos) << r.out;
  auto store = pst::Store::open_readonly(db);
  const auto s = store.find_study("small-grid-search");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->kind, "search");
  EXPECT_FALSE(store.find_study("small-grid").has_value()) << "the grid itself is not run";
  // The grid's four setups are the space: each has a first segment.
  int first_segments = 0;
  for (const auto& t : store.trials_of(s->id)) first_segments += t.step == 0;
  EXPECT_EQ(first_segments, 4);
}

TEST_F(SearchCli, BadInputIsOneLineAndWritesNothing) {
  const auto spec = dir / "spec.toml";
  const auto db = dir / "r.db";
  const auto refused = [&](const std::string& text, const std::vector<std::string>& extra, const std::string& says) {
    SCOPED_TRACE(says);
    write_file(spec, text);
    std::vector<std::string> args{"search", spec.string(), "--db", db.string(), "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = run_powertrain(args);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_FALSE(fs::exists(db)) << "nothing written";
  };
  refused(with(kSearch, "eta = 2\n", "eta = 2\nrungs = 3\n"), {}, "unknown key 'search.rungs'");
  refused(with(kSearch, "eta = 2", "eta = 1"), {}, "'search.eta' must be more than 1");
  refused(with(kSearch, "learning_rates = [0.01, 0.1]", "learning_rates = [0.01, 0.1]\nlearning_rate_range = [0.001, 0.1]"),
          {}, "give either 'search.learning_rates' or 'search.learning_rate_range', not both");
  refused(kSearch, {"--slots", "2"}, "--slots goes with --slurm");
  refused(kSearch, {"--slurm", "--slots", "0"}, "--slots must be at least 1");
  refused(R"(name = "pre"
kind = "pretrain"
[workload]
dataset = "synthetic-images"
[pretrain]
steps = [{classes = [0, 1]}]
)",
          {}, "this is a pretrain study; this command runs search studies");
}

// Killed (SIGKILL) during its second segment, and again during a segment
// that continues an earlier one; each time the same command goes on from the
// store, and the search ends as an uninterrupted one would: every segment
// with a result, no epoch of a segment twice, the choice printed.
TEST_F(SearchCli, ResumesAfterKill9) {
  // Epochs of about a second, so that a poll sees a segment run.
  const auto text = with(kSearch, "train_samples = 192", "train_samples = 8000");
  write_file(dir / "spec.toml", text);
  const auto db = dir / "r.db";
  const std::vector<std::string> args{"search", (dir / "spec.toml").string(), "--db", db.string()};
  const auto log = dir / "child.out";

  // Polls the store until `when` holds of the search's trials (or the child ended).
  const auto kill_when = [&](pid_t pid, const std::function<bool(const std::vector<pst::Trial>&)>& when) {
    for (int i = 0; i < 6000; ++i) {  // 5 minutes at most
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) return false;  // it ended first
      if (!fs::exists(db)) continue;
      try {
        auto store = pst::Store::open_readonly(db);
        const auto s = store.find_study("tiny-search");
        if (s && when(store.trials_of(s->id))) {
          ::kill(pid, SIGKILL);
          EXPECT_EQ(wait_exit(pid), 128 + SIGKILL);
          return true;
        }
      } catch (const std::exception&) {  // the child holds a write transaction
      }
    }
    ::kill(pid, SIGKILL);
    wait_exit(pid);
    ADD_FAILURE() << "the search never got there\n" << read_file(log);
    return false;
  };
  const auto done = [](const pst::Trial& t) { return pst::is_done(t.status); };
  const auto running = [](const pst::Trial& t) { return t.status == pst::TrialStatus::running; };

  // 1. During the second segment: the first one has ended, the next one runs.
  const pid_t first = powertrain::testing::spawn_powertrain(args, log.string());
  ASSERT_TRUE(kill_when(first, [&](const std::vector<pst::Trial>& ts) {
    return std::count_if(ts.begin(), ts.end(), done) == 1 && std::count_if(ts.begin(), ts.end(), running) == 1;
  })) << "the first segment should take longer than a poll\n" << read_file(log);
  {
    const auto seg = check_segments(db, "tiny-search");
    EXPECT_EQ(seg.done, 1u);
  }

  // 2. Resumed, and killed again while a continued segment (rung 1) runs.
  const pid_t second = powertrain::testing::spawn_powertrain(args, log.string());
  EXPECT_TRUE(kill_when(second, [&](const std::vector<pst::Trial>& ts) {
    return std::any_of(ts.begin(), ts.end(), [&](const pst::Trial& t) { return t.step >= 1 && running(t); });
  })) << "a continued segment should take longer than a poll\n" << read_file(log);
  {
    const auto seg = check_segments(db, "tiny-search");
    EXPECT_GE(seg.done, 4u) << "the first rung is in";
  }

  // 3. To the end.
  const auto r = run_powertrain(args);
  ASSERT_EQ(r.exit_code, 0) << r.err << read_file(log);
  const auto seg = check_segments(db, "tiny-search");
  EXPECT_GE(seg.trials, 5u);
  EXPECT_LE(seg.trials, 7u);
  EXPECT_EQ(seg.done, seg.trials) << "every segment has a result";
  EXPECT_NE(r.out.find("The search's choice"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("chosen setup"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("none yet"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(chosen)"), std::string::npos) << r.out;

  // Finished: running it again trains nothing.
  const auto again = run_powertrain(args);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("0 segments run now"), std::string::npos) << again.err;
}

// A search of the user's own program (tests/external/programs/segment_trainer.py):
// continued setups are continued by the program from the state it saved (it
// checks that the state holds the epochs before its first one, and exits
// otherwise), and the setup that reaches the target first is chosen.
TEST(SearchExternalCli, AProgramOfTheUsersIsSearchedAndContinuedFromItsOwnState) {
  TempDir dir;
  const std::string program = std::string(POWERTRAIN_TEST_SOURCE_DIR) + "/tests/external/programs/segment_trainer.py";
  const std::string py = std::string(POWERTRAIN_TEST_PYTHON).empty() ? "python3" : POWERTRAIN_TEST_PYTHON;
  write_file(dir / "search.toml",
             "name = \"ext-search\"\nkind = \"search\"\n[workload]\ncommand = [\"" + py + "\", \"" + program +
                 "\", \"{start_epoch}\", \"{resume_from}\", \"{save_state}\"]\n"
                 "env = { FAKE_CURVE_FROM_LR = \"1\" }\n"
                 "[training]\nmax_epochs = 8\npatience = 3\nmin_delta = 0.0\ntarget_metric = 0.9\n"
                 "[search]\nbatch_sizes = [16]\nlearning_rates = [0.003, 0.01, 0.03, 0.1]\nmin_epochs = 1\neta = 2\n");
  const auto db = (dir / "r.db").string();
  const auto r = run_powertrain({"search", (dir / "search.toml").string(), "--db", db, "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("bs=16 lr=0.1"), std::string::npos) << r.out;
  auto store = pst::Store::open_readonly(db);
  const auto study = store.find_study("ext-search");
  ASSERT_TRUE(study);
  int continued = 0;
  for (const auto& res : store.results_of(study->id)) {
    ASSERT_TRUE(res.run.has_value());
    EXPECT_TRUE(pst::is_done(res.trial.status)) << res.trial.key << ": " << res.trial.message;
    EXPECT_NE(res.trial.status, pst::TrialStatus::failed) << res.trial.message;
    const auto epochs = store.epochs_of(res.run->id);
    ASSERT_FALSE(epochs.empty());
    if (res.trial.step > 0) {
      ++continued;
      EXPECT_GT(epochs.front().epoch, 1) << "the program continued, it did not start again";
    }
  }
  EXPECT_GE(continued, 1);
  // lr=0.1 reaches 0.9 in its second epoch and stops there: its energy to the target is measured.
  EXPECT_NE(r.out.find("at epoch 2"), std::string::npos) << r.out;
}

namespace {

std::string test_python() {
  return std::string(POWERTRAIN_TEST_PYTHON).empty() ? "python3" : POWERTRAIN_TEST_PYTHON;
}

// A search spec over tests/external/programs/segment_trainer.py with `env` for it.
std::string segment_trainer_search(const std::string& name, const std::string& env) {
  const std::string program = std::string(POWERTRAIN_TEST_SOURCE_DIR) + "/tests/external/programs/segment_trainer.py";
  return "name = \"" + name + "\"\nkind = \"search\"\n[workload]\ncommand = [\"" + test_python() + "\", \"" + program +
         "\", \"{start_epoch}\", \"{resume_from}\", \"{save_state}\"]\n"
         "env = { FAKE_CURVE_FROM_LR = \"1\", " + env + " }\n"
         "[training]\nmax_epochs = 8\npatience = 3\nmin_delta = 0.0\ntarget_metric = 0.9\n"
         "[search]\nbatch_sizes = [16]\nlearning_rates = [0.003, 0.01, 0.03, 0.1]\nmin_epochs = 1\neta = 2\n";
}

}  // namespace

// A program that saves no state (error path: the scripted program with
// FAKE_NO_STATE): its continued segments train the setup again from epoch 1,
// with a note in the trial's message, instead of failing.
TEST(SearchExternalCli, AProgramThatSavesNoStateIsTrainedAgainFromEpochOneWithANote) {
  TempDir dir;
  write_file(dir / "search.toml", segment_trainer_search("no-state", "FAKE_NO_STATE = \"1\""));
  const auto db = (dir / "r.db").string();
  const auto r = run_powertrain({"search", (dir / "search.toml").string(), "--db", db});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("trained again from epoch 1: the program saved no state"), std::string::npos) << r.err;
  // Which setup is chosen follows the measured energy of these millisecond
  // epochs, which a loaded machine reorders: only the restart is asserted.
  auto store = pst::Store::open_readonly(db);
  const auto study = store.find_study("no-state");
  ASSERT_TRUE(study);
  int restarted = 0;
  for (const auto& res : store.results_of(study->id)) {
    EXPECT_NE(res.trial.status, pst::TrialStatus::failed) << res.trial.key << ": " << res.trial.message;
    if (res.trial.step == 0) continue;
    ++restarted;
    ASSERT_TRUE(res.run.has_value());
    const auto epochs = store.epochs_of(res.run->id);
    ASSERT_FALSE(epochs.empty());
    EXPECT_EQ(epochs.front().epoch, 1) << "trained again from epoch 1";
    EXPECT_NE(res.trial.message.find("trained again from epoch 1"), std::string::npos) << res.trial.message;
  }
  EXPECT_GE(restarted, 1);
  EXPECT_NE(r.out.find("none"), std::string::npos) << "no setup failed\n" << r.out;
}

// Setups that failed are named next to the choice: it is a choice among fewer.
TEST(SearchExternalCli, FailedSetupsAreCountedNextToTheChoice) {
  TempDir dir;
  write_file(dir / "search.toml", segment_trainer_search("one-fails", "FAKE_CRASH_LR = \"0.003\""));
  const auto db = (dir / "r.db").string();
  const auto r = run_powertrain({"search", (dir / "search.toml").string(), "--db", db, "--quiet"});
  // Issue 24: a search with a failed segment is not finished (exit 1); the
  // segment runs again when the search runs again.
  ASSERT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("1 failed (they run again when the same command runs again)"), std::string::npos) << r.err;
  const auto choice = r.out.find("The search's choice");
  ASSERT_NE(choice, std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 of 4: the choice is among the others", choice), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 of the 4 setups failed", choice), std::string::npos) << r.out;
  // Run again: the failed segment is tried once more (it crashes again here).
  const auto again = run_powertrain({"search", (dir / "search.toml").string(), "--db", db, "--quiet"});
  EXPECT_EQ(again.exit_code, 1) << again.err;
  EXPECT_NE(again.err.find("1 segments run now, 1 failed"), std::string::npos) << again.err;
}

// --- The project's example scripts, searched with continued segments ---------
//
// Each search trains two setups for epoch 1, the better one on to epoch 2 and
// then 3, each segment a new process that continues the state the last one
// saved. The continued setup is then trained once more, uninterrupted, as a
// one-trial grid: its epochs 1-3 must be the search's epochs 1-3.

namespace {

bool python_has(const std::string& modules) {
  const std::string cmd = "'" + test_python() + "' -c 'import " + modules + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

struct ExampleSearch {
  std::string script;       // under examples/
  std::string extra_args;   // TOML array items after the common ones
  std::vector<std::string> learning_rates;
};

std::string example_spec(const std::string& name, const std::string& kind, const ExampleSearch& ex,
                          const std::string& lrs) {
  const std::string script = std::string(POWERTRAIN_TEST_SOURCE_DIR) + "/examples/" + ex.script;
  std::string text = "name = \"" + name + "\"\nkind = \"" + kind + "\"\n[workload]\ncommand = [\"" + test_python() +
                     "\", \"" + script +
                     "\", \"--batch-size\", \"{batch_size}\", \"--lr\", \"{learning_rate}\", \"--seed\", \"{seed}\", "
                     "\"--max-epochs\", \"{max_epochs}\", \"--threads\", \"1\", " + ex.extra_args + "]\n"
                     "env = { OMP_NUM_THREADS = \"1\" }\n"
                     "[training]\nmax_epochs = 3\npatience = 3\nmin_delta = 0.0\nthreads = 1\n";
  text += kind == "search" ? "[search]\nbatch_sizes = [32]\nlearning_rates = [" + lrs + "]\nmin_epochs = 1\neta = 2\n"
                           : "[grid]\nbatch_sizes = [32]\nlearning_rates = [" + lrs + "]\n";
  return text + "[execution]\ntimeout_s = 300\nidle_timeout_s = 120\n";
}

void search_continues_like_one_run(const ExampleSearch& ex) {
  TempDir dir;
  const auto db = (dir / "r.db").string();
  std::string lrs;
  for (const auto& lr : ex.learning_rates) lrs += (lrs.empty() ? "" : ", ") + lr;
  write_file(dir / "search.toml", example_spec("ex-search", "search", ex, lrs));
  const auto r = run_powertrain({"search", (dir / "search.toml").string(), "--db", db, "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;

  // The search's epochs of the setup it continued to epoch 3, by epoch.
  std::map<int, powertrain::run::EpochRecord> searched;
  double lr = 0.0;
  {
    auto store = pst::Store::open_readonly(db);
    const auto study = store.find_study("ex-search");
    ASSERT_TRUE(study);
    for (const auto& res : store.results_of(study->id)) {
      ASSERT_TRUE(res.run.has_value()) << res.trial.key;
      EXPECT_NE(res.trial.status, pst::TrialStatus::failed) << res.trial.message;
      EXPECT_EQ(res.trial.message.find("trained again"), std::string::npos) << res.trial.message;
      const auto epochs = store.epochs_of(res.run->id);
      ASSERT_FALSE(epochs.empty()) << res.trial.key;
      EXPECT_EQ(epochs.front().epoch, res.trial.step + 1) << "segment " << res.trial.step << " starts at its epoch";
      if (res.trial.step == 2) lr = res.run->config.learning_rate;
    }
    ASSERT_GT(lr, 0.0) << "a setup was continued to epoch 3\n" << r.out;
    for (const auto& res : store.results_of(study->id))
      if (res.run->config.learning_rate == lr)
        for (const auto& e : store.epochs_of(res.run->id)) searched[e.epoch] = e;
  }
  ASSERT_EQ(searched.size(), 3u);

  // The same setup uninterrupted.
  write_file(dir / "grid.toml", example_spec("ex-grid", "grid", ex, fmt::format("{}", lr)));
  const auto g = run_powertrain({"sweep", (dir / "grid.toml").string(), "--db", db, "--quiet"});
  ASSERT_EQ(g.exit_code, 0) << g.err << g.out;
  auto store = pst::Store::open_readonly(db);
  const auto grid = store.find_study("ex-grid");
  ASSERT_TRUE(grid);
  const auto results = store.results_of(grid->id);
  ASSERT_EQ(results.size(), 1u);
  const auto whole = store.epochs_of(results.front().run->id);
  ASSERT_EQ(whole.size(), 3u);
  for (const auto& e : whole) {
    SCOPED_TRACE(fmt::format("epoch {}", e.epoch));
    EXPECT_NEAR(searched[e.epoch].val_metric, e.val_metric, 1e-4);
    EXPECT_NEAR(searched[e.epoch].val_loss, e.val_loss, 1e-3 * std::abs(e.val_loss));
  }
}

}  // namespace

TEST(ExampleSearchCli, TheFashionMnistScriptContinuesFromItsSavedState) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  search_continues_like_one_run({"fashion-mnist-pytorch/train.py", "\"--max-samples\", \"300\"", {"0.01", "0.05"}});
}

TEST(ExampleSearchCli, TheTransformersScriptContinuesFromTheTrainersCheckpoint) {
  if (!python_has("transformers, accelerate")) GTEST_SKIP() << "transformers is not installed (scripts/setup)";
  search_continues_like_one_run(
      {"hf-transformers/train.py", "\"--max-samples\", \"256\", \"--output-dir\", \"hf-out\"", {"0.001", "0.003"}});
}

TEST(ExampleSearchCli, TheLightningScriptContinuesFromItsCheckpoint) {
  if (!python_has("lightning")) GTEST_SKIP() << "lightning is not installed (scripts/setup)";
  if (!fs::exists("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  search_continues_like_one_run({"lightning/train.py", "\"--max-samples\", \"300\"", {"0.01", "0.05"}});
}

// Issue 24: a search whose remaining segments another process runs exited 0
// ("run the same command again later"), so a script took it for finished.
// Now it exits 75; the process that finishes the search exits 0.
TEST(SearchExternalCli, ASearchLeftWaitingOnAnotherProcessIsNotExit0) {
  TempDir dir;
  const std::string program = std::string(POWERTRAIN_TEST_SOURCE_DIR) + "/tests/external/programs/segment_trainer.py";
  const std::string py = std::string(POWERTRAIN_TEST_PYTHON).empty() ? "python3" : POWERTRAIN_TEST_PYTHON;
  // The first segment to start holds while the hold file is there; the others run at once.
  write_file(dir / "hold.py", R"(import os, sys, time
hold = os.environ["HOLD_FILE"]
try:
    os.close(os.open(hold + ".claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    while os.path.exists(hold):
        time.sleep(0.05)
except FileExistsError:
    pass
os.execv(sys.executable, [sys.executable] + sys.argv[1:])
)");
  const auto hold = dir / "hold";
  write_file(hold, "");
  write_file(dir / "search.toml",
             "name = \"shared\"\nkind = \"search\"\n[workload]\ncommand = [\"" + py + "\", \"" +
                 (dir / "hold.py").string() + "\", \"" + program +
                 "\", \"{start_epoch}\", \"{resume_from}\", \"{save_state}\"]\n"
                 "env = { FAKE_CURVE_FROM_LR = \"1\", HOLD_FILE = \"" + hold.string() + "\" }\n"
                 "[training]\nmax_epochs = 4\npatience = 3\nmin_delta = 0.0\n"
                 "[search]\nbatch_sizes = [16]\nlearning_rates = [0.003, 0.01, 0.03, 0.1]\nmin_epochs = 1\neta = 2\n");
  const auto db = (dir / "r.db").string();
  const std::vector<std::string> args{"search", (dir / "search.toml").string(), "--db", db, "--quiet"};
  const pid_t first = powertrain::testing::spawn_powertrain(args, dir / "first.log");
  for (int i = 0; i < 400 && !std::filesystem::exists(hold.string() + ".claimed"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  ASSERT_TRUE(std::filesystem::exists(hold.string() + ".claimed")) << read_file(dir / "first.log");

  const auto second = run_powertrain(args);
  EXPECT_EQ(second.exit_code, 75) << second.err;
  EXPECT_NE(second.err.find("run elsewhere"), std::string::npos) << second.err;

  std::filesystem::remove(hold);
  int st = 0;
  ASSERT_EQ(::waitpid(first, &st, 0), first);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st << ": " << read_file(dir / "first.log");
}
