#include "powertrain/energy/carbon.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::energy {

std::string_view bundled_carbon_table();  // generated from share/carbon-intensity.csv

namespace {

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t\r");
  auto e = s.find_last_not_of(" \t\r");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

CarbonTable CarbonTable::bundled() { return parse(bundled_carbon_table(), "bundled carbon table"); }

CarbonTable CarbonTable::load(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw IoError("cannot read carbon table " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path.string());
}

CarbonTable CarbonTable::parse(std::string_view text, const std::string& origin) {
  CarbonTable t;
  std::istringstream in{std::string(text)};
  std::string line;
  int line_no = 0;
  bool header_seen = false;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string s = trim(line);
    if (s.empty()) continue;
    if (s[0] == '#') {
      t.provenance_ += trim(s.substr(1)) + "\n";
      continue;
    }
    std::vector<std::string> cols;
    std::stringstream ls(s);
    std::string col;
    while (std::getline(ls, col, ',')) cols.push_back(trim(col));
    if (!header_seen) {
      if (cols.size() != 3 || cols[0] != "code" || cols[2] != "gco2e_per_kwh")
        throw ConfigError(fmt::format("{}:{}: expected the header 'code,name,gco2e_per_kwh'", origin, line_no));
      header_seen = true;
      continue;
    }
    if (cols.size() != 3 || cols[0].empty())
      throw ConfigError(fmt::format("{}:{}: expected 3 columns code,name,gco2e_per_kwh", origin, line_no));
    double v = 0;
    const auto& num = cols[2];
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
    if (ec != std::errc() || p != num.data() + num.size() || !(v >= 0) || v > 5000)
      throw ConfigError(fmt::format("{}:{}: '{}' is not an intensity in gCO2e/kWh (0 to 5000)", origin, line_no, num));
    t.regions_.push_back({cols[0], cols[1], v});
  }
  if (t.regions_.empty()) throw ConfigError(origin + ": no regions in the carbon table");
  return t;
}

std::optional<CarbonRegion> CarbonTable::find(std::string_view key) const {
  for (const auto& r : regions_)
    if (iequals(r.code, key) || iequals(r.name, key)) return r;
  return std::nullopt;
}

namespace {
CarbonTable table_for(const CarbonOptions& o) { return o.table ? CarbonTable::load(*o.table) : CarbonTable::bundled(); }
}  // namespace

void validate(const CarbonOptions& o) {
  if (!(o.pue >= 1.0) || o.pue > 5.0) throw ConfigError(fmt::format("PUE {} is out of range (1 to 5)", o.pue));
  if (o.intensity_g_per_kwh) {
    if (!(*o.intensity_g_per_kwh >= 0) || *o.intensity_g_per_kwh > 5000)
      throw ConfigError(fmt::format("carbon intensity {} is out of range (0 to 5000 gCO2e/kWh)", *o.intensity_g_per_kwh));
    if (o.table) table_for(o);  // still reject a malformed table the user named
    return;
  }
  auto t = table_for(o);
  if (!t.find(o.region)) throw ConfigError("region '" + o.region + "' is not in the carbon table");
}

Carbon carbon_of(double energy_j, const CarbonOptions& o) {
  Carbon c;
  c.energy_kwh = energy_j / 3.6e6;
  c.pue = o.pue;
  if (o.intensity_g_per_kwh) {
    c.intensity_g_per_kwh = *o.intensity_g_per_kwh;
    c.intensity_source = "user value";
  } else {
    auto t = table_for(o);
    auto r = t.find(o.region);
    if (!r) throw ConfigError("region '" + o.region + "' is not in the carbon table");
    c.intensity_g_per_kwh = r->intensity_g_per_kwh;
    c.intensity_source = fmt::format("{} {} ({})", r->code, r->name,
                                     o.table ? o.table->string() : "bundled table: Ember 2023 annual average");
  }
  c.emissions_kg = c.energy_kwh * c.pue * c.intensity_g_per_kwh / 1000.0;
  return c;
}

}  // namespace powertrain::energy
