// A table as JSON.
#include "powertrain/table/print.h"

namespace powertrain::table {

namespace {

nlohmann::json json_value(const Value& v) {
  if (std::holds_alternative<std::monostate>(v)) return nullptr;
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* i = std::get_if<std::int64_t>(&v)) return *i;
  return std::get<std::string>(v);
}

}  // namespace

nlohmann::json to_json(const Table& t) {
  nlohmann::json j;
  j["name"] = t.name;
  j["title"] = t.title;
  nlohmann::json cols = nlohmann::json::array();
  for (const auto& c : t.columns) {
    cols.push_back(c.name);
    if (c.has_sd) cols.push_back(c.name + "_sd");
  }
  j["columns"] = cols;
  j["rows"] = nlohmann::json::array();
  for (const auto& row : t.rows) {
    nlohmann::json r = nlohmann::json::object();
    for (std::size_t i = 0; i < t.columns.size(); ++i) {
      r[t.columns[i].name] = json_value(row[i].value);
      if (t.columns[i].has_sd) r[t.columns[i].name + "_sd"] = json_value(row[i].sd);
    }
    j["rows"].push_back(std::move(r));
  }
  j["notes"] = t.notes;
  return j;
}

}  // namespace powertrain::table
