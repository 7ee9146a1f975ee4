// The Slurm layer without a cluster: sbatch's arguments, squeue and sacct
// output, job files, and taking result files in (each once; a dead task's
// file as interrupted; a live task's file left alone).
#include "powertrain/slurm/slurm.h"

#include <gtest/gtest.h>

#include <cmath>

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "powertrain/error.h"
#include "powertrain/store/store.h"
#include "temp_dir.h"

namespace powertrain::slurm {
namespace {

namespace fs = std::filesystem;
using powertrain::testing::TempDir;

TEST(Sbatch, ArgumentsCarryTheResourcesAndTheDependency) {
  study::SlurmSettings s;
  s.gpus_per_trial = 1;
  s.cpus_per_trial = 8;
  s.memory = "16G";
  s.time_limit = "02:00:00";
  s.exclusive = true;
  s.options = {"--partition=gpu"};
  const auto a = sbatch_args(s, {"--qos=long"}, 4, "powertrain-grid", "/shared/logs", std::string("77"), "/shared/job.sh");
  const std::vector<std::string> want{"--parsable",          "--array=0-3",
                                      "--job-name=powertrain-grid", "--output=/shared/logs/%A_%a.out",
                                      "--gres=gpu:1",        "--cpus-per-task=8",
                                      "--mem=16G",           "--time=02:00:00",
                                      "--exclusive",         "--dependency=afterok:77",
                                      "--kill-on-invalid-dep=yes", "--partition=gpu",
                                      "--qos=long",          "/shared/job.sh"};
  EXPECT_EQ(a, want);
  const auto plain = sbatch_args({}, {}, 1, "j", "/l", std::nullopt, "/s.sh");
  EXPECT_EQ(plain.size(), 5u);
  EXPECT_THROW(sbatch_args({}, {}, 0, "j", "/l", std::nullopt, "/s.sh"), ConfigError);
}

TEST(Sbatch, JobIdFromParsableOutput) {
  EXPECT_EQ(parse_job_id("1234\n"), "1234");
  EXPECT_EQ(parse_job_id("1234;cluster-a\n"), "1234");
  EXPECT_THROW(parse_job_id("sbatch: error: Batch job submission failed\n"), ConfigError);
}

TEST(Squeue, ParsesArrayTasks) {
  const auto m = parse_squeue("12_0|RUNNING|node1|None\n12_1|PENDING|(null)|Dependency\n\n");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m.at("12_0").state, "RUNNING");
  EXPECT_EQ(m.at("12_0").node, "node1");
  EXPECT_EQ(m.at("12_0").reason, "");
  EXPECT_EQ(m.at("12_1").node, "");
  EXPECT_EQ(m.at("12_1").reason, "Dependency");
}

TEST(Sacct, ConsumedEnergy) {
  EXPECT_EQ(parse_consumed_energy("53210\n"), 53210.0);
  EXPECT_EQ(parse_consumed_energy("\n0\n"), 0.0);
  EXPECT_FALSE(parse_consumed_energy(""));
  EXPECT_FALSE(parse_consumed_energy("n/a\n"));
}

TEST(JobFile, RoundTripsAndRefusesGarbage) {
  TempDir dir;
  JobFile j;
  j.study = "grid";
  j.kind = "pretrain";
  j.spec_text = "name = \"grid\"\n";
  j.spec_source = "/x/grid.toml";
  j.db = "/x/r.db";
  j.folder = "/x/r.db.slurm/grid";
  j.disabled_sources = {"nvml"};
  j.trial_nodes = 2;
  j.tasks = group_tasks({{1, "k1", "a"}, {2, "k2", "b"}, {3, "k3", "c"}}, 2);
  ASSERT_EQ(j.tasks.size(), 2u);
  EXPECT_EQ(j.tasks[1][0].trial_id, 3);
  write_job_file(dir / "job.json", j);
  const auto back = read_job_file(dir / "job.json");
  EXPECT_EQ(to_json(back), to_json(j));
  EXPECT_EQ(back.trial_nodes, 2);
  auto doc = to_json(j);
  doc.erase("trial_nodes");  // a job file from before trials over nodes: one node
  EXPECT_EQ(job_from_json(doc).trial_nodes, 1);
  doc["trial_nodes"] = 0;
  EXPECT_THROW(job_from_json(doc), ConfigError);
  EXPECT_THROW(job_from_json(nlohmann::json{{"study", "x"}}), ConfigError);
  EXPECT_THROW(group_tasks({}, 0), ConfigError);
}

// A search's segment travels in the job file with what its task's own result
// file lacks: the earlier segments' epochs (a metric not known stays NaN)
// and the best energy to the target when it went out.
TEST(JobFile, CarriesASearchSegmentWithItsEarlierEpochs) {
  TempDir dir;
  JobFile j;
  j.study = "s";
  j.kind = "search";
  TaskTrial t;
  t.trial_id = 7;
  t.key = "seg1";
  t.label = "bs=16 lr=0.01 epochs 2-4";
  t.phase = "search";
  SegmentJob seg;
  seg.segment = {{16, 0.01, 2}, 1, 2, 4};
  run::EpochRecord e;
  e.epoch = 1;
  e.energy_j = 12.5;
  e.val_metric = 0.61;
  e.val_loss = std::nan("");
  e.method = "estimated";
  seg.earlier_epochs["seg0"] = {e};
  seg.best_j = 30.0;
  t.segment = seg;
  j.tasks = {{t}, {TaskTrial{8, "plain", "", "", {}}}};
  write_job_file(dir / "job.json", j);
  const auto back = read_job_file(dir / "job.json");
  EXPECT_EQ(to_json(back), to_json(j));
  ASSERT_TRUE(back.tasks[0][0].segment.has_value());
  EXPECT_FALSE(back.tasks[1][0].segment.has_value());
  const auto& b = *back.tasks[0][0].segment;
  EXPECT_EQ(b.segment.setup, (search::Setup{16, 0.01, 2}));
  EXPECT_EQ(b.segment.rung, 1);
  EXPECT_EQ(b.segment.from_epoch, 2);
  EXPECT_EQ(b.segment.to_epoch, 4);
  ASSERT_EQ(b.earlier_epochs.at("seg0").size(), 1u);
  const auto& be = b.earlier_epochs.at("seg0")[0];
  EXPECT_EQ(be.epoch, 1);
  EXPECT_DOUBLE_EQ(be.energy_j, 12.5);
  EXPECT_DOUBLE_EQ(be.val_metric, 0.61);
  EXPECT_TRUE(std::isnan(be.val_loss));
  EXPECT_EQ(be.method, "estimated");
  EXPECT_EQ(b.best_j, 30.0);
  // No setup had reached the target: no best.
  seg.best_j.reset();
  EXPECT_FALSE(segment_from_json(segment_to_json(seg)).best_j.has_value());
}

TEST(Folder, BesideTheDatabaseOrWhereTheSpecSays) {
  study::StudySpec spec;
  spec.name = "../grid";
  EXPECT_EQ(study_folder(spec, "/d/r.db").parent_path(), fs::path("/d/r.db.slurm"));
  spec.execution.slurm.dir = "/scratch/pt";
  EXPECT_EQ(study_folder(spec, "/d/r.db").parent_path(), fs::path("/scratch/pt"));
}

// A result file as a task writes it: the study, its plan's trials, and the
// trial's run with `epochs` epochs, finished (or left running).
void write_result(const fs::path& file, const std::string& key, int epochs, bool finish, const std::string& host) {
  auto s = store::Store::open(file, {.wal = false});
  const auto study = s.create_study("grid", "grid", "", {});
  store::TrialSpec other;
  other.key = "other";
  s.upsert_trial(study, other);
  store::TrialSpec ts;
  ts.key = key;
  ts.config.batch_size = 32;
  const auto trial = s.upsert_trial(study, ts);
  run::Environment env;
  env.host = host;
  const auto run = s.start_trial(trial, ts.config, env);
  for (int e = 1; e <= epochs; ++e) {
    run::EpochRecord r;
    r.epoch = e;
    r.duration_s = 1.0;
    r.energy_j = 10.0 * e;
    r.val_metric = 0.5 + 0.1 * e;
    energy::ChannelEnergy ch;
    ch.channel_id = "estimate:cpu";
    ch.energy_j = 10.0 * e;
    r.channels = {ch};
    s.add_epoch(run, r);
  }
  energy::TimelineSample t;
  t.t_ns = 1'000'000;
  t.power_w = {5.0};
  s.add_timeline(run, std::vector<std::string>{"estimate:cpu"}, {t}, 0);
  if (finish) {
    run::RunSummary sum;
    sum.status = run::RunStatus::converged;
    sum.epochs = epochs;
    sum.energy_j = 10.0 * epochs * (epochs + 1) / 2;
    s.complete_trial(trial, sum);
  }
}

void make_old(const fs::path& p) {
  fs::last_write_time(p, fs::file_time_type::clock::now() - std::chrono::minutes(10));
}

struct MainDb {
  TempDir dir;
  store::Store store = store::Store::open(dir / "main.db");
  std::int64_t study = store.create_study("grid", "grid", "", {});
  std::int64_t trial_a = add("a");
  std::int64_t trial_b = add("b");
  fs::path folder = dir / "main.db.slurm" / "grid";
  fs::path results = folder / "results";
  MainDb() { fs::create_directories(results); }
  std::int64_t add(const std::string& key) {
    store::TrialSpec t;
    t.key = key;
    return store.upsert_trial(study, t);
  }
  // Slurm as the test says: the tasks it still runs.
  std::map<std::string, LiveTask> slurm_runs;
  CollectResult collect_now() {
    return collect(store, store.study(study), folder, 120.0, /*ask_sacct=*/false,
                   [this](const std::vector<std::string>&) { return std::optional(slurm_runs); });
  }
};

TEST(Collect, TakesEachFinishedFileInOnceWithItsEpochsAndTimeline) {
  MainDb m;
  write_result(m.results / "trial-1-50_0-r0.db", "a", 3, true, "node7");
  const auto c = m.collect_now();
  EXPECT_EQ(c.imported, 1);
  EXPECT_EQ(c.interrupted, 0);
  const auto t = m.store.trial(m.trial_a);
  EXPECT_EQ(t.status, store::TrialStatus::converged);
  ASSERT_TRUE(t.run_id);
  EXPECT_EQ(t.attempts, 1);
  EXPECT_EQ(m.store.epochs_of(*t.run_id).size(), 3u);
  EXPECT_EQ(m.store.epochs_of(*t.run_id)[2].channels.size(), 1u);
  EXPECT_EQ(m.store.timeline_of(*t.run_id).size(), 1u);
  EXPECT_EQ(m.store.run(*t.run_id).environment.host, "node7");
  EXPECT_EQ(m.store.cluster_energy_of(*t.run_id).first, "50_0");
  EXPECT_EQ(m.store.trial(m.trial_b).status, store::TrialStatus::pending);

  // Again: nothing changes.
  const auto runs = m.store.list_runs().size();
  const auto again = m.collect_now();
  EXPECT_EQ(again.imported, 0);
  EXPECT_EQ(m.store.list_runs().size(), runs);
  EXPECT_EQ(m.store.trial(m.trial_a).attempts, 1);
}

TEST(Collect, ASecondResultOfADoneTrialIsADuplicateNotASecondRun) {
  MainDb m;
  write_result(m.results / "trial-1-50_0-r0.db", "a", 3, true, "n1");
  write_result(m.results / "trial-1-50_0-r1.db", "a", 2, true, "n1");  // a requeued task ran it again
  const auto c = m.collect_now();
  EXPECT_EQ(c.imported, 1);
  EXPECT_EQ(c.duplicates, 1);
  EXPECT_EQ(m.store.list_runs().size(), 1u);
  EXPECT_EQ(m.store.epochs_of(*m.store.trial(m.trial_a).run_id).size(), 3u);
  EXPECT_EQ(m.collect_now().duplicates, 0);  // recorded: not counted again
}

TEST(Collect, ALiveTasksPartialFileIsLeftAloneADeadOnesIsInterrupted) {
  MainDb m;
  const auto live = m.results / ("trial-2-51_1-r0" + std::string(kPartialSuffix));
  write_result(live, "b", 2, false, "n2");
  auto c = m.collect_now();
  EXPECT_EQ(c.running, 1);
  EXPECT_EQ(c.imported, 0);
  EXPECT_EQ(m.store.trial(m.trial_b).status, store::TrialStatus::pending);

  make_old(live);  // nobody wrote it for ten minutes...
  m.slurm_runs["51_1"] = LiveTask{"SUSPENDED", "n2", ""};  // ...but Slurm still holds its task
  c = m.collect_now();
  EXPECT_EQ(c.running, 1);
  EXPECT_EQ(m.store.trial(m.trial_b).status, store::TrialStatus::pending);
  m.slurm_runs.clear();  // gone from squeue: the task is dead
  c = m.collect_now();
  EXPECT_EQ(c.imported, 1);
  EXPECT_EQ(c.interrupted, 1);
  const auto t = m.store.trial(m.trial_b);
  EXPECT_EQ(t.status, store::TrialStatus::interrupted);
  EXPECT_NE(t.message.find("Slurm task stopped without finishing"), std::string::npos) << t.message;
  ASSERT_TRUE(t.run_id);
  EXPECT_EQ(m.store.run(*t.run_id).summary.status, run::RunStatus::interrupted);
  EXPECT_EQ(m.store.epochs_of(*t.run_id).size(), 2u);  // its epochs are kept

  // Resubmitted, it finishes: a second attempt, the trial done.
  write_result(m.results / "trial-2-52_0-r0.db", "b", 4, true, "n3");
  c = m.collect_now();
  EXPECT_EQ(c.imported, 1);
  EXPECT_EQ(m.store.trial(m.trial_b).status, store::TrialStatus::converged);
  EXPECT_EQ(m.store.trial(m.trial_b).attempts, 2);
}

TEST(Collect, AnUnreadableFileIsNamedAndTheOthersStillComeIn) {
  MainDb m;
  std::ofstream(m.results / "trial-1-60_0-r0.db") << "not a database";
  write_result(m.results / "trial-2-60_1-r0.db", "b", 2, true, "n");
  const auto c = m.collect_now();
  EXPECT_EQ(c.unreadable, 1);
  EXPECT_NE(c.unreadable_note.find("trial-1-60_0-r0.db"), std::string::npos) << c.unreadable_note;
  EXPECT_EQ(c.imported, 1);
  EXPECT_EQ(m.store.trial(m.trial_b).status, store::TrialStatus::converged);
}

TEST(Collect, AFinishedFileComesInAfterItsPartialWasTakenForDead) {
  MainDb m;
  const auto partial = m.results / ("trial-1-70_0-r0" + std::string(kPartialSuffix));
  write_result(partial, "a", 2, false, "n");
  make_old(partial);
  EXPECT_EQ(m.collect_now().interrupted, 1);
  // The task was only stalled: it finishes and renames its file.
  fs::remove(partial);
  write_result(m.results / "trial-1-70_0-r0.db", "a", 4, true, "n");
  EXPECT_EQ(m.collect_now().imported, 1);
  EXPECT_EQ(m.store.trial(m.trial_a).status, store::TrialStatus::converged);
}

TEST(Collect, FilesOfOtherStudiesAndStrayFilesAreIgnored) {
  MainDb m;
  write_result(m.results / "trial-9-53_0-r0.db", "not-in-the-plan", 1, true, "n");
  std::ofstream(m.results / "notes.txt") << "x";
  const auto c = m.collect_now();
  EXPECT_EQ(c.imported, 0);
  EXPECT_TRUE(m.store.list_runs().empty());
}

// --- issue 24: what a shared results/ folder may hold ---------------------------

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string journal_mode(const fs::path& p) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(p.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  std::string mode;
  if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    mode = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return mode;
}

TEST(Collect, LinksInTheResultsFolderAreNamedAndWhatTheyPointAtIsNeverWritten) {
  MainDb m;
  // Planted: links with result file names, to an empty file and to another
  // powertrain database (WAL) outside the folder, and to a finished result.
  const auto outside = m.dir / "outside";
  fs::create_directories(outside);
  std::ofstream(outside / "empty.txt").close();
  { auto other = store::Store::open(outside / "other.db"); }
  ASSERT_EQ(journal_mode(outside / "other.db"), "wal");
  write_result(outside / "result.db", "a", 3, true, "n");
  make_old(outside / "empty.txt");
  make_old(outside / "other.db");
  fs::create_symlink(outside / "empty.txt", m.results / ("trial-1-80_0-r0" + std::string(kPartialSuffix)));
  fs::create_symlink(outside / "other.db", m.results / ("trial-2-80_1-r0" + std::string(kPartialSuffix)));
  fs::create_symlink(outside / "result.db", m.results / "trial-1-81_0-r0.db");
  write_result(m.results / "trial-2-82_0-r0.db", "b", 2, true, "n");  // a real one

  const auto c = m.collect_now();
  EXPECT_EQ(fs::file_size(outside / "empty.txt"), 0u);
  EXPECT_EQ(journal_mode(outside / "other.db"), "wal");
  EXPECT_EQ(c.unreadable, 3);
  EXPECT_NE(c.unreadable_note.find("symbolic link"), std::string::npos) << c.unreadable_note;
  EXPECT_EQ(c.imported, 1);  // only the real one
  EXPECT_EQ(m.store.trial(m.trial_a).status, store::TrialStatus::pending);
  EXPECT_EQ(m.store.trial(m.trial_b).status, store::TrialStatus::converged);
}

TEST(Collect, AFifoWithAResultFileNameIsNamedNotWaitedFor) {
  MainDb m;
  const auto fifo = m.results / "trial-1-83_0-r0.db";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  write_result(m.results / "trial-2-83_1-r0.db", "b", 2, true, "n");
  // Before the fix, collect blocked in open(): a writer that comes after 10 s
  // lets it go on, and the test fails on the time.
  std::atomic<bool> done{false};
  std::thread unblock([&] {
    for (int i = 0; i < 100 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!done) {
      const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
      if (fd >= 0) ::close(fd);
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  const auto c = m.collect_now();
  done = true;
  unblock.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(c.unreadable, 1);
  EXPECT_NE(c.unreadable_note.find("FIFO"), std::string::npos) << c.unreadable_note;
  EXPECT_EQ(c.imported, 1);
}

TEST(Collect, ADeadTasksHotJournalIsRolledBackInACopyNeverInTheFile) {
  MainDb m;
  const auto partial = m.results / ("trial-1-84_0-r0" + std::string(kPartialSuffix));
  write_result(partial, "a", 2, false, "n");
  // The task died inside a write: its file holds half of it, its journal the rest.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(partial.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) ::_exit(2);
    const char* sql =
        "PRAGMA cache_size = 2; BEGIN IMMEDIATE; DELETE FROM epochs; CREATE TABLE junk (x BLOB); "
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) "
        "INSERT INTO junk SELECT randomblob(2000) FROM n;";
    ::_exit(sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK ? 0 : 3);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_EQ(st, 0);
  const auto journal = fs::path(partial.string() + "-journal");
  ASSERT_TRUE(fs::exists(journal));
  make_old(partial);
  const auto file_before = bytes_of(partial), journal_before = bytes_of(journal);

  const auto c = m.collect_now();
  EXPECT_EQ(c.imported, 1) << c.unreadable_note;
  EXPECT_EQ(c.interrupted, 1);
  EXPECT_EQ(bytes_of(partial), file_before);  // never written
  ASSERT_TRUE(fs::exists(journal));
  EXPECT_EQ(bytes_of(journal), journal_before);
  const auto t = m.store.trial(m.trial_a);
  ASSERT_TRUE(t.run_id);
  EXPECT_EQ(m.store.epochs_of(*t.run_id).size(), 2u);  // as before the half-done write
}

TEST(Collect, ImplausibleValuesInAResultFileAreNamedNotTakenIn) {
  MainDb m;
  const auto planted = m.results / "trial-1-85_0-r0.db";
  write_result(planted, "a", 3, true, "n");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(planted.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE runs SET energy_j = -1e300", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  const auto nan_energy = m.results / "trial-2-85_1-r0.db";
  write_result(nan_energy, "b", 2, true, "n");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(nan_energy.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE epochs SET energy_j = 9e999 WHERE epoch = 2", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  const auto c = m.collect_now();
  EXPECT_EQ(c.imported, 0);
  EXPECT_EQ(c.unreadable, 2);
  EXPECT_NE(c.unreadable_note.find("-1e+300"), std::string::npos) << c.unreadable_note;
  EXPECT_EQ(m.store.trial(m.trial_a).status, store::TrialStatus::pending);
  EXPECT_TRUE(m.store.list_runs().empty());
}

TEST(ResultCopy, RefusesWhatIsNotAPlainSqliteFile) {
  TempDir dir;
  std::ofstream(dir / "empty.db").close();
  std::ofstream(dir / "text.db") << "not a database at all";
  fs::create_directories(dir / "folder.db");
  fs::create_symlink(dir / "text.db", dir / "link.db");
  for (const char* name : {"empty.db", "text.db", "folder.db", "link.db", "missing.db"})
    EXPECT_THROW(ResultCopy{dir / name}, Error) << name;
}

}  // namespace
}  // namespace powertrain::slurm
