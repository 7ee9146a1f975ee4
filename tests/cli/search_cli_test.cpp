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
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <thread>

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
  EXPECT_EQ(s->kind, pst::StudyKind::search);
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
  EXPECT_EQ(s->kind, pst::StudyKind::search);
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
  refused(kSearch, {"--slurm"}, "a search runs its segments locally for now");
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
