#pragma once
// The run settings as one table: a row per setting of a run (a RunConfig
// field, or one of its Command's), saying everything the places that name a
// setting need. They walk the table instead of spelling settings out:
//
//   study/spec.cpp      the [workload] and [training] keys of a study spec
//   cli/train.cpp       the flags of `powertrain train` (and its --config keys)
//   store/json.cpp      the stored JSON of a run's configuration, trial keys
//   study/plan.cpp      the canonical keys of a study's trials
//   external/command.cpp  {placeholders} and POWERTRAIN_* variables of a command
//   python/powertrain/_settings.py  the Python package's config() (generated;
//                       tests/run/settings_test.cpp fails when it differs)
//   docs/studies.md, docs/external.md, README.md  (the same test checks that
//                       they list every key, placeholder and flag)
//   validate()          the one range check, for every entry point
//
// A new setting is one row in settings.cpp plus the code that uses its field.
// A row present only when set (Presence::when_set) leaves the stored JSON and
// the trial keys of runs that do not set it as they were, so that a database's
// trials are not run again under new keys.
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "powertrain/run/records.h"

namespace powertrain::run {

enum class SettingType {
  integer,          ///< int, int64 or uint64 field
  number,           ///< double
  optional_number,  ///< std::optional<double>: unset is "none"
  boolean,
  text,
  text_list,        ///< comma-separated text (a TOML array of strings)
};

/// A pointer to a setting's field inside one RunConfig.
using SettingField =
    std::variant<int*, std::int64_t*, std::uint64_t*, double*, std::optional<double>*, bool*, std::string*>;

/// A setting's value apart from its field's C++ type: integers as int64 (a
/// uint64 above 2^63 - 1 reads negative, and so out of range), numbers as
/// double, text and lists as a string, an unset optional number as monostate.
using SettingValue = std::variant<std::monostate, std::int64_t, double, bool, std::string>;

/// When a setting is in a run's stored JSON, its trial keys and its command's environment.
enum class Presence {
  always,
  when_set,     ///< only when it differs from the default
  with_command, ///< only for the user's own program (command.argv not empty)
  distributed,  ///< only for a distributed program (command.nproc_per_node > 0)
};

/// The values an integer or number may take; the bounds are inclusive unless open.
struct SettingRange {
  double low = -std::numeric_limits<double>::infinity();
  double high = std::numeric_limits<double>::infinity();
  bool low_open = false;
  bool high_open = false;
  int (*high_of)() = nullptr;   ///< a bound known only at run time (threads: max_threads())
  std::string_view high_note;   ///< what the bound is, e.g. "4 per available CPU"
  std::string_view zero_means;  ///< how 0 reads, e.g. "all CPUs"
};

struct Setting {
  /// The field's name: its JSON and trial-key name, its {placeholder} and,
  /// upper-cased, its POWERTRAIN_<NAME> variable.
  std::string_view name;
  SettingType type;
  SettingField (*field)(RunConfig&);
  std::string_view help;         ///< one line: flag help and docs
  std::string_view toml_key;     ///< dotted spec key, e.g. "training.max_epochs"; empty: not in specs
  std::string_view flags;        ///< CLI11 names in `powertrain train`, e.g. "--lr,--learning-rate"; empty: none
  SettingRange range;            ///< integers and numbers: refused outside it
  std::string_view choices;      ///< text: the values it may take, comma-separated (empty: any)
  bool non_empty = false;        ///< text that must not be empty
  Presence presence = Presence::always;
  bool trial_key = true;         ///< defines the experiment (paths of files do not)
  bool placeholder = false;      ///< {name} in a command, POWERTRAIN_<NAME> in its environment
  bool swept = false;            ///< a grid sweeps it and a search chooses it: no [training] key there
  bool builtin_only = false;     ///< the built-in trainer's: a spec with workload.command refuses it
  std::string_view default_doc;  ///< the docs' default when the field's own does not say it
};

/// Every run setting, in documentation order.
const std::vector<Setting>& settings();
/// The row named `name`. Throws ConfigError for a name that is none.
const Setting& setting(std::string_view name);

/// The setting's value in `c`.
SettingValue get(const Setting& s, const RunConfig& c);
/// Stores `v` (of the setting's type, in range: see range_error) into `c`.
void set(const Setting& s, RunConfig& c, const SettingValue& v);
/// Why `v` is not a value of `s`, as the end of a sentence that starts with
/// the setting's name ("must be between 1 and 100000, got 0"); nullopt: fine.
std::optional<std::string> range_error(const Setting& s, const SettingValue& v);
/// The range in words: "between 1 and 100000", "in (0, 1]", "sgd or adam" ("": any).
std::string range_text(const Setting& s);
/// Whether the setting is in the JSON, trial keys and environment of `c` (Presence).
bool present(const Setting& s, const RunConfig& c);
/// The value as a command's placeholder gets it: integers in decimal, numbers
/// in their shortest round-trip form, booleans "true"/"false", unset "".
std::string text(const Setting& s, const RunConfig& c);
/// "integer", "float", "boolean", "string", "array of strings" (the docs' types).
std::string_view type_name(SettingType t);
/// The default as the docs write it: 64, 0.001, "sgd" (quoted), [] or none.
std::string default_text(const Setting& s);

}  // namespace powertrain::run
