// The table of run settings (run/settings.h) on its own: every row is
// complete, ranges are refused in one line, and what is kept outside C++ (the
// docs, the Python package's generated table) lists every row.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/run/settings.h"

namespace powertrain::run {
namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::filesystem::path source_dir() { return POWERTRAIN_TEST_SOURCE_DIR; }

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

TEST(Settings, EveryRowIsCompleteAndNamedOnce) {
  std::set<std::string_view> names, keys, flags;
  for (const auto& s : settings()) {
    SCOPED_TRACE(std::string(s.name));
    EXPECT_TRUE(names.insert(s.name).second) << "two rows named " << s.name;
    EXPECT_FALSE(s.help.empty());
    ASSERT_NE(s.field, nullptr);
    if (!s.toml_key.empty()) {
      EXPECT_TRUE(keys.insert(s.toml_key).second);
      const auto section = s.toml_key.substr(0, s.toml_key.find('.'));
      EXPECT_TRUE(section == "workload" || section == "training") << s.toml_key;
      EXPECT_EQ(s.toml_key.substr(s.toml_key.find('.') + 1), s.name) << "a key is its setting's name";
    }
    if (!s.flags.empty()) {
      EXPECT_EQ(s.flags.rfind("--", 0), 0u);
      EXPECT_TRUE(flags.insert(s.flags).second);
    }
    // Where it is refused, the range reads as words.
    if (s.type == SettingType::integer || !s.choices.empty()) {
      EXPECT_FALSE(range_text(s).empty());
    }
    EXPECT_FALSE(default_text(s).empty());
    EXPECT_EQ(&setting(s.name), &s);
  }
  EXPECT_THROW(setting("batchsize"), ConfigError);
}

TEST(Settings, EveryRowReadsBackWhatIsSet) {
  for (const auto& s : settings()) {
    SCOPED_TRACE(std::string(s.name));
    RunConfig c;
    SettingValue v;
    switch (s.type) {
      case SettingType::integer: v = std::int64_t{1}; break;
      case SettingType::number: v = 0.5; break;
      case SettingType::optional_number: v = 0.25; break;
      case SettingType::boolean: v = true; break;
      case SettingType::text:
      case SettingType::text_list: v = std::string("x"); break;
    }
    set(s, c, v);
    EXPECT_EQ(get(s, c), v);
    if (s.type == SettingType::optional_number) {
      set(s, c, std::monostate{});
      EXPECT_TRUE(std::holds_alternative<std::monostate>(get(s, c)));
    }
  }
}

TEST(Settings, DefaultsPassTheOneValidation) {
  EXPECT_NO_THROW(validate(RunConfig{}));
  for (const auto& s : settings()) EXPECT_EQ(range_error(s, get(s, RunConfig{})), std::nullopt) << s.name;
}

// Every bound of every row: a value just past it is refused in one line that
// names the setting and its range; the bound itself (closed) passes.
TEST(Settings, EveryBoundIsCheckedInOneLine) {
  int checked = 0;
  auto refused = [&](const Setting& s, const SettingValue& v, const std::string& shown) {
    RunConfig c;
    set(s, c, v);
    try {
      validate(c);
      ADD_FAILURE() << s.name << " accepted " << shown;
    } catch (const ConfigError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg, fmt::format("{} must be {}, got {}", s.name, range_text(s), shown));
      EXPECT_EQ(msg.find('\n'), std::string::npos);
      ++checked;
    }
  };
  for (const auto& s : settings()) {
    SCOPED_TRACE(std::string(s.name));
    const auto& r = s.range;
    const double high = r.high_of ? r.high_of() : r.high;
    if (s.type == SettingType::integer) {
      if (std::isfinite(r.low)) {
        const auto lo = static_cast<std::int64_t>(r.low);
        refused(s, lo - 1, std::to_string(lo - 1));
        EXPECT_EQ(range_error(s, lo), std::nullopt);
      }
      if (std::isfinite(high)) {
        const auto hi = static_cast<std::int64_t>(high);
        refused(s, hi + 1, std::to_string(hi + 1));
        EXPECT_EQ(range_error(s, hi), std::nullopt);
      }
    } else if (s.type == SettingType::number || s.type == SettingType::optional_number) {
      refused(s, std::nan(""), "nan");
      refused(s, std::numeric_limits<double>::infinity(), "inf");
      if (std::isfinite(r.low)) {
        if (r.low_open) refused(s, r.low, fmt::format("{}", r.low));
        else EXPECT_EQ(range_error(s, r.low), std::nullopt);
        refused(s, r.low - 1, fmt::format("{}", r.low - 1));
      }
      if (std::isfinite(high)) {
        if (r.high_open) refused(s, high, fmt::format("{}", high));
        else EXPECT_EQ(range_error(s, high), std::nullopt);
        refused(s, high * 2 + 1, fmt::format("{}", high * 2 + 1));
      }
    } else if (!s.choices.empty()) {
      refused(s, std::string("nonsense"), "'nonsense'");
    }
    if (s.non_empty) {
      RunConfig c;
      set(s, c, std::string());
      try {
        validate(c);
        ADD_FAILURE() << s.name << " accepted an empty value";
      } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()), fmt::format("{} must not be empty", s.name));
      }
    }
  }
  EXPECT_GT(checked, 30);
}

// Where the old checks disagreed, the table chose (see settings.cpp): these pin the choice.
TEST(Settings, RangesWhereTheOldChecksDisagreed) {
  // patience 0 is "no early stopping" (the convergence rule's reading), at most kMaxEpochs.
  EXPECT_EQ(range_error(setting("patience"), std::int64_t{0}), std::nullopt);
  EXPECT_EQ(*range_error(setting("patience"), std::int64_t{-1}),
            "must be between 0 (no early stopping) and 100000, got -1");
  EXPECT_NE(range_error(setting("patience"), std::int64_t{100001}), std::nullopt);
  // nproc_per_node 0 is one process (a command not distributed).
  EXPECT_EQ(range_error(setting("nproc_per_node"), std::int64_t{0}), std::nullopt);
  // The optimizer is sgd or adam everywhere (the spec's rule; `train` took any name).
  EXPECT_EQ(*range_error(setting("optimizer"), std::string("rmsprop")), "must be sgd or adam, got 'rmsprop'");
  // A seed past 2^63 - 1 reads negative: refused as before.
  RunConfig c;
  c.seed = std::numeric_limits<std::uint64_t>::max();
  EXPECT_THROW(validate(c), ConfigError);
  EXPECT_EQ(range_text(setting("threads")),
            fmt::format("between 0 (all CPUs) and {} (4 per available CPU)", max_threads()));
  EXPECT_EQ(range_text(setting("learning_rate")), "in (0, 1000000]");
  EXPECT_EQ(range_text(setting("momentum")), "in [0, 1)");
  EXPECT_EQ(range_text(setting("min_delta")), "a finite number >= 0");
}

TEST(Settings, PresenceKeepsOldDocumentsAsTheyWere) {
  RunConfig c;
  EXPECT_FALSE(present(setting("stop_at_target"), c));
  EXPECT_FALSE(present(setting("resume_from"), c));
  EXPECT_FALSE(present(setting("workdir"), c));
  EXPECT_FALSE(present(setting("nnodes"), c));
  c.stop_at_target = true;
  c.command.argv = {"prog"};
  EXPECT_TRUE(present(setting("stop_at_target"), c));
  EXPECT_TRUE(present(setting("workdir"), c));
  EXPECT_FALSE(present(setting("nnodes"), c));
  c.command.nproc_per_node = 2;
  EXPECT_TRUE(present(setting("nnodes"), c));
  EXPECT_TRUE(present(setting("batch_size"), c));
}

TEST(Settings, TextAndDefaultsAsTheDocsWriteThem) {
  RunConfig c;
  c.learning_rate = 1e-5;
  EXPECT_EQ(text(setting("learning_rate"), c), "1e-05");
  EXPECT_EQ(text(setting("freeze_encoder"), c), "false");
  EXPECT_EQ(text(setting("target_metric"), c), "");
  EXPECT_EQ(default_text(setting("batch_size")), "64");
  EXPECT_EQ(default_text(setting("optimizer")), "\"sgd\"");
  EXPECT_EQ(default_text(setting("tasks")), "[]");
  EXPECT_EQ(default_text(setting("target_metric")), "none");
}

// The docs cannot fall behind the table: every spec key is in a table of
// docs/studies.md or docs/external.md with its type, every placeholder in
// docs/external.md, every flag in the README.
TEST(Settings, TheDocsListEveryRow) {
  const auto studies = read_file(source_dir() / "docs" / "studies.md");
  const auto external = read_file(source_dir() / "docs" / "external.md");
  const auto readme = read_file(source_dir() / "README.md");
  ASSERT_FALSE(studies.empty());
  ASSERT_FALSE(external.empty());
  for (const auto& s : settings()) {
    SCOPED_TRACE(std::string(s.name));
    if (!s.toml_key.empty()) {
      const auto row = fmt::format("| `{}` | {} |", s.toml_key, type_name(s.type));
      EXPECT_TRUE(studies.find(row) != std::string::npos || external.find(row) != std::string::npos)
          << "docs/studies.md or docs/external.md lacks the row " << row;
    }
    if (s.placeholder) {
      EXPECT_NE(external.find(fmt::format("`{{{}}}`", s.name)), std::string::npos)
          << "docs/external.md lacks the placeholder {" << s.name << "}";
    }
    if (!s.flags.empty()) {
      const auto flag = s.flags.substr(0, s.flags.find(','));
      EXPECT_NE(readme.find(fmt::format("`{}", flag)), std::string::npos) << "README.md lacks " << flag;
    }
  }
}

// The Python package's settings (python/powertrain/_settings.py), as the
// table makes them: every row with a placeholder, its POWERTRAIN_* variable
// and its type.
std::string python_settings() {
  std::string rows, fields;
  for (const auto& s : settings()) {
    if (!s.placeholder) continue;
    std::string kind, hint;
    switch (s.type) {
      case SettingType::integer: kind = "integer", hint = "Optional[int]"; break;
      case SettingType::number:
      case SettingType::optional_number: kind = "float", hint = "Optional[float]"; break;
      case SettingType::boolean: kind = "boolean", hint = "Optional[bool]"; break;
      case SettingType::text: kind = "string", hint = "Optional[str]"; break;
      case SettingType::text_list: kind = "list", hint = "Optional[List[str]]"; break;
    }
    rows += fmt::format("    (\"{}\", \"POWERTRAIN_{}\", \"{}\"),\n", s.name, upper(s.name), kind);
    fields += fmt::format("    {}: {} = None\n    \"\"\"{}.\"\"\"\n", s.name, hint, s.help);
  }
  return fmt::format(
      "\"\"\"The run settings powertrain passes to a program in POWERTRAIN_* variables.\n"
      "\n"
      "Generated from powertrain's table of run settings (src/run/settings.cpp); do\n"
      "not edit. tests/run/settings_test.cpp fails when this file and the table\n"
      "differ, and writes it afresh when run with POWERTRAIN_WRITE_SETTINGS=1.\n"
      "\"\"\"\n"
      "from __future__ import annotations\n"
      "\n"
      "from dataclasses import dataclass\n"
      "from typing import List, Optional\n"
      "\n"
      "# (setting, environment variable, type: integer, float, boolean, string or list)\n"
      "SETTINGS = (\n{})\n"
      "\n"
      "\n"
      "@dataclass(frozen=True)\n"
      "class Settings:\n"
      "    \"\"\"The run settings of a trial; each None where it was not given.\"\"\"\n"
      "\n"
      "{}",
      rows, fields);
}

TEST(Settings, ThePythonPackageHasEveryRow) {
  const auto path = source_dir() / "python" / "powertrain" / "_settings.py";
  const auto expected = python_settings();
  if (const char* w = std::getenv("POWERTRAIN_WRITE_SETTINGS"); w && std::string(w) == "1") {
    std::ofstream(path, std::ios::binary) << expected;
  }
  EXPECT_EQ(read_file(path), expected)
      << path.string() << " differs from the table of run settings: run this test with POWERTRAIN_WRITE_SETTINGS=1";
}

}  // namespace
}  // namespace powertrain::run
