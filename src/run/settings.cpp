// The table of run settings (powertrain/run/settings.h) and the one validation.
#include "powertrain/run/settings.h"

#include <cmath>
#include <type_traits>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::run {
namespace {

#define PT_FIELD(member) [](RunConfig& c) -> SettingField { return &c.member; }

static_assert(kThreadsPerCpu == 4, "the threads row's high_note says 4 per available CPU");

std::vector<Setting> make_settings() {
  using T = SettingType;
  const double big = static_cast<double>(kMaxEpochs);
  // Rows with a placeholder come in the order docs/external.md lists them
  // (external::placeholder_names puts the derived ones among them).
  return {
      {.name = "batch_size", .type = T::integer, .field = PT_FIELD(batch_size), .help = "Batch size",
       .toml_key = "training.batch_size", .flags = "--batch-size",
       .range = {.low = 1, .high = static_cast<double>(kMaxBatchSize)}, .placeholder = true, .swept = true},
      {.name = "learning_rate", .type = T::number, .field = PT_FIELD(learning_rate), .help = "Learning rate",
       .toml_key = "training.learning_rate", .flags = "--lr,--learning-rate",
       .range = {.low = 0, .high = kMaxLearningRate, .low_open = true}, .placeholder = true, .swept = true},
      {.name = "seed", .type = T::integer, .field = PT_FIELD(seed),
       .help = "Seed of initialization, shuffling and data subsets (a spec: its seeds or repeats)", .flags = "--seed",
       .range = {.low = 0}, .placeholder = true},
      {.name = "max_epochs", .type = T::integer, .field = PT_FIELD(max_epochs), .help = "Epoch limit of a run",
       .toml_key = "training.max_epochs", .flags = "--max-epochs", .range = {.low = 1, .high = big},
       .placeholder = true},
      {.name = "device", .type = T::text, .field = PT_FIELD(device), .help = "cpu, cuda or cuda:N",
       .toml_key = "training.device", .flags = "--device", .non_empty = true, .placeholder = true},
      {.name = "threads", .type = T::integer, .field = PT_FIELD(threads), .help = "LibTorch threads (0: all cores)",
       .toml_key = "training.threads", .flags = "--threads",
       .range = {.low = 0, .high_of = max_threads, .high_note = "4 per available CPU", .zero_means = "all CPUs"},
       .placeholder = true},
      {.name = "tasks", .type = T::text_list, .field = PT_FIELD(tasks),
       .help = "Label subset for multi-label data, comma-separated (e.g. CelebA attributes)",
       .toml_key = "workload.tasks", .flags = "--tasks", .placeholder = true},
      {.name = "init_encoder", .type = T::text, .field = PT_FIELD(init_encoder),
       .help = "Start from this encoder checkpoint", .flags = "--init-encoder", .placeholder = true},
      {.name = "freeze_encoder", .type = T::boolean, .field = PT_FIELD(freeze_encoder),
       .help = "Keep the initial encoder fixed", .flags = "--freeze-encoder", .placeholder = true},
      {.name = "checkpoint", .type = T::text, .field = PT_FIELD(checkpoint),
       .help = "Save the best model here (and its encoder beside it)", .flags = "--checkpoint", .trial_key = false,
       .placeholder = true},
      {.name = "resume_from", .type = T::text, .field = PT_FIELD(resume_from),
       .help = "State file of an earlier segment of the same setup to continue from", .presence = Presence::when_set,
       .trial_key = false, .placeholder = true},
      {.name = "save_state", .type = T::text, .field = PT_FIELD(save_state),
       .help = "Where to write the run's state when it stops at max_epochs", .presence = Presence::when_set,
       .trial_key = false, .placeholder = true},
      {.name = "data_dir", .type = T::text, .field = PT_FIELD(data_dir),
       .help = "Dataset root (default: the dataset's standard location)", .toml_key = "workload.data_dir",
       .flags = "--data-dir", .trial_key = false, .placeholder = true, .builtin_only = true},
      {.name = "optimizer", .type = T::text, .field = PT_FIELD(optimizer), .help = "sgd (with momentum) or adam",
       .toml_key = "training.optimizer", .flags = "--optimizer", .choices = "sgd,adam", .non_empty = true,
       .placeholder = true},
      {.name = "momentum", .type = T::number, .field = PT_FIELD(momentum), .help = "SGD momentum",
       .toml_key = "training.momentum", .flags = "--momentum", .range = {.low = 0, .high = 1, .high_open = true},
       .placeholder = true},
      {.name = "weight_decay", .type = T::number, .field = PT_FIELD(weight_decay), .help = "Weight decay (L2)",
       .toml_key = "training.weight_decay", .flags = "--weight-decay", .range = {.low = 0}, .placeholder = true},
      {.name = "nesterov", .type = T::boolean, .field = PT_FIELD(nesterov),
       .help = "SGD with Nesterov momentum (with a momentum above 0)", .toml_key = "training.nesterov",
       .flags = "--nesterov", .presence = Presence::when_set, .placeholder = true},
      {.name = "subset", .type = T::number, .field = PT_FIELD(subset), .help = "Fraction of the training split used",
       .toml_key = "workload.subset", .flags = "--subset", .range = {.low = 0, .high = 1, .low_open = true},
       .placeholder = true, .builtin_only = true},
      {.name = "nproc_per_node", .type = T::integer, .field = PT_FIELD(command.nproc_per_node),
       .help = "Processes per node of a distributed command, started through the launcher",
       .toml_key = "workload.nproc_per_node", .flags = "--nproc-per-node",
       .range = {.low = 0, .high = 1024, .zero_means = "one process"}, .presence = Presence::distributed,
       .placeholder = true, .default_doc = "0 (one process)"},
      {.name = "nnodes", .type = T::integer, .field = PT_FIELD(command.nnodes),
       .help = "Nodes a distributed command spans (with nproc_per_node)", .toml_key = "workload.nnodes",
       .flags = "--nnodes", .range = {.low = 1, .high = 4096}, .presence = Presence::distributed,
       .placeholder = true},
      // Settings without a placeholder.
      {.name = "dataset", .type = T::text, .field = PT_FIELD(dataset),
       .help = "fashion-mnist, celeba, pamap2, synthetic-images, synthetic-sensors", .toml_key = "workload.dataset",
       .flags = "--dataset", .builtin_only = true},
      {.name = "model", .type = T::text, .field = PT_FIELD(model), .help = "image-cnn or sensor-cnn",
       .toml_key = "workload.model", .flags = "--model", .builtin_only = true},
      {.name = "patience", .type = T::integer, .field = PT_FIELD(patience),
       .help = "Epochs without a validation gain of min_delta before a run has converged",
       .toml_key = "training.patience", .flags = "--patience",
       .range = {.low = 0, .high = big, .zero_means = "no early stopping"}},
      {.name = "min_delta", .type = T::number, .field = PT_FIELD(min_delta),
       .help = "Smallest validation-metric gain that counts", .toml_key = "training.min_delta", .flags = "--min-delta",
       .range = {.low = 0}},
      {.name = "target_metric", .type = T::optional_number, .field = PT_FIELD(target_metric),
       .help = "Validation metric whose first reaching is reported (time and energy to target)",
       .toml_key = "training.target_metric", .flags = "--target"},
      {.name = "stop_at_target", .type = T::boolean, .field = PT_FIELD(stop_at_target),
       .help = "End the run at the first epoch at or above target_metric (a search's segments)",
       .presence = Presence::when_set},
      {.name = "workdir", .type = T::text, .field = PT_FIELD(command.workdir), .help = "Working directory of the command",
       .toml_key = "workload.workdir", .flags = "--workdir", .presence = Presence::with_command,
       .default_doc = "the spec's folder (train: the current one)"},
      {.name = "launcher", .type = T::text, .field = PT_FIELD(command.launcher),
       .help = "torchrun (python -m torch.distributed.run, the default) or srun, with nproc_per_node",
       .toml_key = "workload.launcher", .flags = "--launcher", .choices = "torchrun,srun",
       .presence = Presence::distributed, .default_doc = "\"torchrun\""},
  };
}

#undef PT_FIELD

SettingField field_of(const Setting& s, const RunConfig& c) {
  // The table's accessors take a mutable config; reading through them does not write.
  return s.field(const_cast<RunConfig&>(c));
}

std::string number_text(double v) { return fmt::format("{}", v); }  // shortest round-trip form

std::string bound_text(const Setting& s, double v) {
  return s.type == SettingType::integer ? std::to_string(static_cast<std::int64_t>(v)) : number_text(v);
}

double high_of(const SettingRange& r) { return r.high_of ? static_cast<double>(r.high_of()) : r.high; }

std::vector<std::string_view> choice_list(std::string_view choices) {
  std::vector<std::string_view> out;
  while (!choices.empty()) {
    const auto comma = choices.find(',');
    out.push_back(choices.substr(0, comma));
    choices = comma == std::string_view::npos ? std::string_view{} : choices.substr(comma + 1);
  }
  return out;
}

bool in_range(const SettingRange& r, double v) {
  const double high = high_of(r);
  return std::isfinite(v) && (r.low_open ? v > r.low : v >= r.low) && (r.high_open ? v < high : v <= high);
}

}  // namespace

const std::vector<Setting>& settings() {
  static const std::vector<Setting> table = make_settings();
  return table;
}

const Setting& setting(std::string_view name) {
  for (const auto& s : settings())
    if (s.name == name) return s;
  throw ConfigError(fmt::format("'{}' is not a run setting", name));
}

SettingValue get(const Setting& s, const RunConfig& c) {
  return std::visit(
      [](auto* f) -> SettingValue {
        using F = std::remove_pointer_t<decltype(f)>;
        if constexpr (std::is_same_v<F, std::optional<double>>) {
          if (!f->has_value()) return std::monostate{};
          return **f;
        } else if constexpr (std::is_same_v<F, bool> || std::is_same_v<F, double> || std::is_same_v<F, std::string>) {
          return *f;
        } else {
          return static_cast<std::int64_t>(*f);
        }
      },
      field_of(s, c));
}

void set(const Setting& s, RunConfig& c, const SettingValue& v) {
  std::visit(
      [&v](auto* f) {
        using F = std::remove_pointer_t<decltype(f)>;
        if constexpr (std::is_same_v<F, std::optional<double>>) {
          if (std::holds_alternative<std::monostate>(v)) f->reset();
          else if (const auto* i = std::get_if<std::int64_t>(&v)) *f = static_cast<double>(*i);
          else *f = std::get<double>(v);
        } else if constexpr (std::is_same_v<F, double>) {
          if (const auto* i = std::get_if<std::int64_t>(&v)) *f = static_cast<double>(*i);
          else *f = std::get<double>(v);
        } else if constexpr (std::is_same_v<F, bool> || std::is_same_v<F, std::string>) {
          *f = std::get<F>(v);
        } else {
          *f = static_cast<F>(std::get<std::int64_t>(v));
        }
      },
      s.field(c));
}

std::string range_text(const Setting& s) {
  if (s.type == SettingType::text || s.type == SettingType::text_list) {
    const auto choices = choice_list(s.choices);
    std::string out;
    for (std::size_t i = 0; i < choices.size(); ++i)
      out += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + std::string(choices[i]);
    return out;
  }
  if (s.type == SettingType::boolean) return "true or false";
  const auto& r = s.range;
  const double high = high_of(r);
  const bool low = std::isfinite(r.low), has_high = std::isfinite(high);
  if (s.type == SettingType::integer) {
    const std::string lo = bound_text(s, r.low) + (r.low == 0 && !r.zero_means.empty() ? fmt::format(" ({})", r.zero_means) : "");
    const std::string hi = has_high ? bound_text(s, high) + (r.high_note.empty() ? "" : fmt::format(" ({})", r.high_note)) : "";
    if (low && has_high) return fmt::format("between {} and {}", lo, hi);
    if (low) return fmt::format("at least {}", lo);
    if (has_high) return fmt::format("at most {}", hi);
    return "an integer";
  }
  if (low && has_high)
    return fmt::format("in {}{}, {}{}", r.low_open ? '(' : '[', number_text(r.low), number_text(high), r.high_open ? ')' : ']');
  if (low) return fmt::format("a finite number {} {}", r.low_open ? ">" : ">=", number_text(r.low));
  if (has_high) return fmt::format("a finite number {} {}", r.high_open ? "<" : "<=", number_text(high));
  return "a finite number";
}

std::optional<std::string> range_error(const Setting& s, const SettingValue& v) {
  const auto bad = [&](const std::string& shown) { return fmt::format("must be {}, got {}", range_text(s), shown); };
  switch (s.type) {
    case SettingType::integer: {
      const auto x = std::get<std::int64_t>(v);
      if (!in_range(s.range, static_cast<double>(x))) return bad(std::to_string(x));
      return std::nullopt;
    }
    case SettingType::optional_number:
      if (std::holds_alternative<std::monostate>(v)) return std::nullopt;
      [[fallthrough]];
    case SettingType::number: {
      const double x = std::holds_alternative<std::int64_t>(v) ? static_cast<double>(std::get<std::int64_t>(v))
                                                               : std::get<double>(v);
      if (!in_range(s.range, x)) return bad(number_text(x));
      return std::nullopt;
    }
    case SettingType::boolean: return std::nullopt;
    case SettingType::text:
    case SettingType::text_list: {
      const auto& x = std::get<std::string>(v);
      if (x.empty()) {
        if (s.non_empty) return std::string("must not be empty");
        return std::nullopt;
      }
      if (s.choices.empty()) return std::nullopt;
      for (const auto c : choice_list(s.choices))
        if (c == x) return std::nullopt;
      return bad(fmt::format("'{}'", x));
    }
  }
  return std::nullopt;
}

bool present(const Setting& s, const RunConfig& c) {
  switch (s.presence) {
    case Presence::always: return true;
    case Presence::when_set: {
      static const RunConfig defaults;
      return get(s, c) != get(s, defaults);
    }
    case Presence::with_command: return !c.command.empty();
    case Presence::distributed: return !c.command.empty() && c.command.distributed();
  }
  return true;
}

std::string text(const Setting& s, const RunConfig& c) {
  return std::visit(
      [](auto* f) -> std::string {
        using F = std::remove_pointer_t<decltype(f)>;
        if constexpr (std::is_same_v<F, std::optional<double>>) return f->has_value() ? number_text(**f) : "";
        else if constexpr (std::is_same_v<F, double>) return number_text(*f);
        else if constexpr (std::is_same_v<F, bool>) return *f ? "true" : "false";
        else if constexpr (std::is_same_v<F, std::string>) return *f;
        else return std::to_string(*f);
      },
      field_of(s, c));
}

std::string_view type_name(SettingType t) {
  switch (t) {
    case SettingType::integer: return "integer";
    case SettingType::number:
    case SettingType::optional_number: return "float";
    case SettingType::boolean: return "boolean";
    case SettingType::text: return "string";
    case SettingType::text_list: return "array of strings";
  }
  return "string";
}

std::string default_text(const Setting& s) {
  if (!s.default_doc.empty()) return std::string(s.default_doc);
  static const RunConfig defaults;
  switch (s.type) {
    case SettingType::optional_number:
      return std::holds_alternative<std::monostate>(get(s, defaults)) ? "none" : text(s, defaults);
    case SettingType::text: return fmt::format("\"{}\"", text(s, defaults));
    case SettingType::text_list: {
      const auto t = text(s, defaults);
      return t.empty() ? "[]" : fmt::format("\"{}\"", t);
    }
    default: return text(s, defaults);
  }
}

void validate(const RunConfig& c) {
  for (const auto& s : settings())
    if (auto why = range_error(s, get(s, c))) throw ConfigError(fmt::format("{} {}", s.name, *why));
}

}  // namespace powertrain::run
