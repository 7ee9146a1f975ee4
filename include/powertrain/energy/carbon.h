#pragma once
// Carbon: energy x PUE x grid carbon intensity.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace powertrain::energy {

struct CarbonRegion {
  std::string code;  ///< ISO 3166-1 alpha-3, or WORLD / EU
  std::string name;
  double intensity_g_per_kwh = 0.0;
};

/// A table of annual average grid intensities. Lines starting with '#' are
/// comments (the bundled table names its source and year there).
class CarbonTable {
 public:
  /// The table compiled into the binary (share/carbon-intensity.csv).
  static CarbonTable bundled();
  /// Loads a CSV file with the columns code,name,gco2e_per_kwh. Throws
  /// ConfigError naming the file and line when it is malformed, IoError when unreadable.
  static CarbonTable load(const std::filesystem::path& path);
  /// Parses CSV text; `origin` names it in errors.
  static CarbonTable parse(std::string_view text, const std::string& origin);

  /// Case-insensitive look-up by code or by name.
  std::optional<CarbonRegion> find(std::string_view code_or_name) const;
  const std::vector<CarbonRegion>& regions() const { return regions_; }
  /// The comment lines of the file (source and year).
  const std::string& provenance() const { return provenance_; }

 private:
  std::vector<CarbonRegion> regions_;
  std::string provenance_;
};

struct CarbonOptions {
  double pue = 1.0;                           ///< power usage effectiveness, >= 1
  std::optional<double> intensity_g_per_kwh;  ///< a value the user knows; wins over the table
  std::string region = "WORLD";               ///< code or name in the table
  std::optional<std::filesystem::path> table; ///< a table of the user's instead of the bundled one
};

/// Throws ConfigError for PUE < 1, intensity < 0, or an unknown region.
void validate(const CarbonOptions& options);

struct Carbon {
  double energy_kwh = 0.0;  ///< measured/estimated energy, before PUE
  double pue = 1.0;
  double intensity_g_per_kwh = 0.0;
  std::string intensity_source;  ///< "user value" or "WORLD World (table: ...)"
  double emissions_kg = 0.0;     ///< energy_kwh x pue x intensity / 1000
};

/// Resolves the intensity and computes emissions for `energy_j`.
Carbon carbon_of(double energy_j, const CarbonOptions& options);

}  // namespace powertrain::energy
