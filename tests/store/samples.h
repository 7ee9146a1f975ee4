#pragma once
// Sample records and raw SQLite helpers shared by the store tests.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "powertrain/store/json.h"
#include "powertrain/store/records.h"
#include "powertrain/run/records.h"

namespace powertrain::testing {

inline run::RunConfig sample_config(double lr = 0.01, std::int64_t batch = 64, std::uint64_t seed = 1) {
  run::RunConfig c;
  c.dataset = "synthetic-images";
  c.model = "image-cnn";
  c.learning_rate = lr;
  c.batch_size = batch;
  c.seed = seed;
  c.max_epochs = 5;
  c.target_metric = 0.85;
  c.tasks = "a,b";
  c.data_options = {{"window", "128"}, {"max_samples", "2000"}};
  return c;
}

inline store::TrialSpec trial_spec(std::string key, run::RunConfig config = {}, std::string phase = "",
                                   int step = 0, std::string task = "") {
  store::TrialSpec t;
  t.key = std::move(key);
  t.config = std::move(config);
  t.phase = std::move(phase);
  t.step = step;
  t.task = std::move(task);
  return t;
}

inline run::Environment environment_on(std::string host) {
  run::Environment e;
  e.host = std::move(host);
  return e;
}

inline run::Environment sample_environment() {
  run::Environment e;
  e.host = "node-7";
  e.os = "Linux-6.1";
  e.cpu_model = "AMD EPYC";
  e.cpu_count = 16;
  e.gpu = "NVIDIA H100";
  e.torch_version = "2.1.0";
  e.commit = "abc123";
  e.threads = 8;
  e.sampling = "interval 100 ms";
  return e;
}

inline run::EpochRecord sample_epoch(int epoch, int channels = 3) {
  run::EpochRecord e;
  e.epoch = epoch;
  e.duration_s = 10.0 + epoch;
  e.train_duration_s = 8.0;
  e.eval_duration_s = 2.0 + epoch;
  e.energy_j = 1000.0 * epoch;
  e.train_energy_j = 800.0 * epoch;
  e.eval_energy_j = 200.0 * epoch;
  e.method = "counter+estimated";
  e.samples_per_s = 1234.5;
  e.train_loss = 1.0 / epoch;
  e.val_loss = 1.5 / epoch;
  e.val_metric = 0.5 + 0.01 * epoch;
  for (int i = 0; i < channels; ++i) {
    energy::ChannelEnergy ch;
    ch.channel_id = "ch" + std::to_string(channels - i);  // not in name order: order must be kept
    ch.device = "device " + std::to_string(i);
    ch.component = i == 0 ? energy::Component::gpu : energy::Component::cpu;
    ch.method = i == 0 ? energy::Method::counter : energy::Method::estimated;
    ch.in_total = i != 2;
    ch.energy_j = 100.0 * epoch + i;
    ch.avg_power_w = 50.0 + i;
    ch.peak_power_w = 70.0 + i;
    e.channels.push_back(ch);
  }
  return e;
}

/// The summary of a run that converged after 3 epochs.
inline run::RunSummary converged_summary() {
  run::RunSummary s;
  s.status = run::RunStatus::converged;
  s.epochs = 3;
  s.best_epoch = 2;
  s.duration_s = 36.5;
  s.energy_j = 6100.25;
  s.energy_to_target_j = 2000.0;
  s.time_to_target_s = 12.0;
  s.best_val_metric = 0.91;
  s.test_metric = 0.9;
  s.method = "counter+estimated";
  s.message = "";
  return s;
}

inline void expect_config_eq(const run::RunConfig& a, const run::RunConfig& b) {
  EXPECT_EQ(store::config_json(a), store::config_json(b));
}

/// A raw connection for checks that bypass the store.
class RawDb {
 public:
  explicit RawDb(const std::filesystem::path& path, int flags = SQLITE_OPEN_READWRITE) {
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sqlite3_errmsg(db_));
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error(msg + " in: " + sql);
    }
  }
  std::int64_t integer(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string(sqlite3_errmsg(db_)) + " in: " + sql);
    }
    std::int64_t v = -1;
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
  }
  std::string text(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string(sqlite3_errmsg(db_)) + " in: " + sql);
    }
    std::string v;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0)) {
      v = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    return v;
  }

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace powertrain::testing
