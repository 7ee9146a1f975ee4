#include "powertrain/external/protocol.h"

#include <cmath>
#include <limits>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "powertrain/error.h"
#include "powertrain/io/text.h"

namespace powertrain::external {
namespace {

using json = nlohmann::json;

[[noreturn]] void malformed(std::string_view line, const std::string& why) {
  constexpr std::size_t kShown = 120;
  // Cut on a character's boundary, shown as valid UTF-8 with control
  // characters (a NUL would end the message) escaped.
  const auto cut = io::utf8_prefix(line, kShown);
  std::string shown = io::printable(io::valid_utf8(cut));
  if (line.size() > cut.size()) shown += "...";
  throw WorkloadError(fmt::format("malformed event '{}': {}", shown, why));
}

// JSON has no NaN or infinity: they come as the strings "nan", "inf" and
// "-inf". A present null is NaN too ("no value"); a missing required key is malformed.
std::optional<double> special(const json& v) {
  if (!v.is_string()) return std::nullopt;
  const auto s = v.get<std::string>();
  if (s == "nan" || s == "NaN") return std::nan("");
  if (s == "inf" || s == "Infinity" || s == "+inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf" || s == "-Infinity") return -std::numeric_limits<double>::infinity();
  return std::nullopt;
}

double number(const json& j, const char* key, std::string_view line, bool required) {
  if (!j.contains(key)) {
    if (required) malformed(line, fmt::format("\"{}\" is missing", key));
    return std::nan("");
  }
  const auto& v = j[key];
  if (v.is_null()) return std::nan("");
  if (auto x = special(v)) return *x;
  if (!v.is_number()) malformed(line, fmt::format("\"{}\" is not a number", key));
  return v.get<double>();
}

std::int64_t integer(const json& j, const char* key, std::string_view line) {
  if (!j.contains(key) || !j[key].is_number_integer()) malformed(line, fmt::format("\"{}\" must be an integer", key));
  // Above 2^63 - 1 nlohmann keeps an unsigned number, which would wrap.
  if (j[key].is_number_unsigned() && j[key].get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
    malformed(line, fmt::format("\"{}\" is out of range", key));
  return j[key].get<std::int64_t>();
}

// An integer that must lie in [lo, hi] (an epoch number, a count).
std::int64_t integer_in(const json& j, const char* key, std::string_view line, std::int64_t lo, std::int64_t hi) {
  const auto v = integer(j, key, line);
  if (v < lo || v > hi) malformed(line, fmt::format("\"{}\" is {}, outside {}..{}", key, v, lo, hi));
  return v;
}

std::vector<double> numbers(const json& j, const char* key, std::string_view line) {
  std::vector<double> out;
  if (!j.contains(key) || j[key].is_null()) return out;
  if (!j[key].is_array()) malformed(line, fmt::format("\"{}\" is not a list of numbers", key));
  for (const auto& v : j[key]) {
    if (v.is_null()) out.push_back(std::nan(""));
    else if (auto x = special(v)) out.push_back(*x);
    else if (v.is_number()) out.push_back(v.get<double>());
    else malformed(line, fmt::format("\"{}\" is not a list of numbers", key));
  }
  return out;
}

std::string text(const json& j, const char* key, std::string_view line) {
  if (!j.contains(key) || j[key].is_null()) return {};
  if (!j[key].is_string()) malformed(line, fmt::format("\"{}\" is not a string", key));
  return j[key].get<std::string>();
}

}  // namespace

Event parse_event(std::string_view line) {
  json j;
  try {
    j = json::parse(line);
  } catch (const json::parse_error&) {
    malformed(line, "not JSON");
  }
  if (!j.is_object()) malformed(line, "not a JSON object");
  if (!j.contains("event") || !j["event"].is_string()) malformed(line, "no \"event\" name");
  const auto name = j["event"].get<std::string>();
  Event e;
  if (j.contains("mono_ns") && !j["mono_ns"].is_null()) e.mono_ns = integer(j, "mono_ns", line);
  if (name == "hello") {
    e.kind = EventKind::hello;
    if (j.contains("protocol") && !j["protocol"].is_null() && integer(j, "protocol", line) != kProtocolVersion)
      malformed(line, fmt::format("protocol {} is not supported (powertrain speaks {})", j["protocol"].dump(),
                                  kProtocolVersion));
    e.framework = text(j, "framework", line);
  } else if (name == "epoch_start") {
    e.kind = EventKind::epoch_start;
    e.epoch = static_cast<int>(integer_in(j, "epoch", line, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
  } else if (name == "phase") {
    e.kind = EventKind::phase;
    const auto p = text(j, "phase", line);
    if (p != "train" && p != "eval") malformed(line, "\"phase\" must be \"train\" or \"eval\"");
    e.eval_phase = p == "eval";
  } else if (name == "progress") {
    e.kind = EventKind::progress;
    e.progress.step = j.contains("step") ? integer(j, "step", line) : 0;
    e.progress.steps = j.contains("steps") ? integer(j, "steps", line) : 0;
    e.has_loss = j.contains("loss") && !j["loss"].is_null();
    e.progress.running_loss = number(j, "loss", line, false);
  } else if (name == "epoch_end") {
    e.kind = EventKind::epoch_end;
    e.epoch = static_cast<int>(integer_in(j, "epoch", line, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
    e.metrics.val_metric = number(j, "val_metric", line, true);
    e.metrics.val_loss = number(j, "val_loss", line, false);
    e.metrics.train_loss = number(j, "train_loss", line, false);
    // A count of training samples: never negative, and below what any epoch trains.
    if (j.contains("samples") && !j["samples"].is_null())
      e.metrics.samples = integer_in(j, "samples", line, 0, kMaxEpochSamples);
    e.metrics.val_task_metrics = numbers(j, "val_task_metrics", line);
  } else if (name == "test") {
    e.kind = EventKind::test;
    e.test_metric = number(j, "metric", line, true);
    e.test_task_metrics = numbers(j, "task_metrics", line);
  } else if (name == "checkpoint") {
    e.kind = EventKind::checkpoint;
    e.path = text(j, "path", line);
    e.checkpoint_kind = text(j, "kind", line);
    if (e.path.empty()) malformed(line, "\"path\" is missing");
  } else if (name == "end") {
    e.kind = EventKind::end;
  } else {
    malformed(line, fmt::format("unknown event \"{}\"", name));
  }
  return e;
}

std::string epoch_reply(int epoch, const run::EpochVerdict& v) {
  json j = {{"reply", "epoch_end"},
            {"epoch", epoch},
            {"action", v.stop ? "stop" : "continue"},
            {"best", v.best},
            {"reason", v.reason}};
  return j.dump();
}

}  // namespace powertrain::external
