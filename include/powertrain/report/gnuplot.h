#pragma once
// Figures drawn by gnuplot, run as a subprocess on a generated script and data
// files. Every figure is written twice: SVG (inlined in the page) and PNG.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "powertrain/error.h"

namespace powertrain::report {

/// gnuplot failed on a figure (exit status, signal, or an empty output file).
class FigureError : public Error {
 public:
  using Error::Error;
};

/// Where gnuplot is, or why it is not there.
struct GnuplotLocation {
  std::optional<std::filesystem::path> path;  ///< an executable file; none when missing
  std::string reason;  ///< one line when path is none, e.g. "gnuplot not found on PATH"
};

/// $POWERTRAIN_GNUPLOT when set (it must name an executable file; no PATH
/// fallback, so tests can hide gnuplot), else the first `gnuplot` on $PATH.
GnuplotLocation find_gnuplot();

/// A data file of a figure: a name (letters, digits, '-', '_', '.') and its text.
struct DataFile {
  std::string name;
  std::string text;
};

/// One figure: what it shows and the gnuplot commands that draw it.
struct Figure {
  std::string name;     ///< file stem, unique in a report: letters, digits, '-', '_'
  std::string title;    ///< shown above the figure in the page
  std::string caption;  ///< one or two sentences under it in the page
  int width_px = 900;
  int height_px = 520;
  /// Plot commands without terminal or output. Data files are referred to as
  /// data('NAME'): render() replaces that with the quoted absolute path.
  std::string script;
  std::vector<DataFile> data;
};

/// Files a rendered figure left in its directory.
struct RenderedFigure {
  std::filesystem::path svg;
  std::filesystem::path png;
};

/// Writes the data files and the script into `dir`, runs gnuplot on it
/// (stdin from /dev/null) and returns NAME.svg and NAME.png in `dir`. Throws
/// FigureError with gnuplot's first error line if it exits non-zero, is killed,
/// or leaves an empty file; IoError if the files cannot be written.
RenderedFigure render(const std::filesystem::path& gnuplot, const Figure& figure, const std::filesystem::path& dir);

/// `s` as a gnuplot single-quoted string literal (quotes doubled, line breaks
/// and other control characters replaced by spaces).
std::string gnuplot_quote(std::string_view s);

}  // namespace powertrain::report
