#include "powertrain/report/gnuplot.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/external/process.h"

namespace powertrain::report {
namespace fs = std::filesystem;

namespace {

bool is_executable_file(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw IoError(fmt::format("cannot write {}", path.string()));
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool valid_name(std::string_view s, bool allow_dot) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || (allow_dot && c == '.');
    if (!ok) return false;
  }
  return true;
}

// Replaces data('NAME') by the quoted file name of the figure's data file NAME
// (gnuplot runs in the figure's directory, so the script stays valid when the
// directory moves).
std::string resolve_data(const Figure& f) {
  std::string out;
  const std::string& s = f.script;
  std::size_t pos = 0;
  while (true) {
    const auto at = s.find("data('", pos);
    if (at == std::string::npos) break;
    const auto end = s.find("')", at + 6);
    if (end == std::string::npos) throw FigureError(fmt::format("figure {}: unterminated data('...')", f.name));
    const std::string name = s.substr(at + 6, end - at - 6);
    bool known = false;
    for (const auto& d : f.data) known = known || d.name == name;
    if (!known) throw FigureError(fmt::format("figure {}: script names unknown data file '{}'", f.name, name));
    out.append(s, pos, at - pos);
    out += gnuplot_quote(f.name + "." + name);
    pos = end + 2;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

// The line of gnuplot's stderr that says what went wrong: the last message
// that is not a warning (gnuplot echoes the command and a caret before it).
std::string first_error_line(const std::string& err) {
  std::istringstream in(err);
  std::string line, last, last_any;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t^") == std::string::npos) continue;
    if (line.find_first_not_of(" \t") != 0) continue;  // echoed command, indented
    last_any = line;
    if (line.find("warning:") == std::string::npos) last = line;
  }
  if (!last.empty()) return last;
  return last_any.empty() ? "no message" : last_any;
}

}  // namespace

GnuplotLocation find_gnuplot() {
  GnuplotLocation loc;
  if (const char* env = std::getenv("POWERTRAIN_GNUPLOT"); env != nullptr && *env != '\0') {
    if (is_executable_file(env)) {
      loc.path = fs::path(env);
    } else {
      loc.reason = fmt::format("gnuplot not found: POWERTRAIN_GNUPLOT={} is not an executable file", env);
    }
    return loc;
  }
  const char* path_env = std::getenv("PATH");
  std::string_view dirs = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    const auto colon = dirs.find(':');
    std::string_view d = dirs.substr(0, colon);
    dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    const fs::path candidate = fs::path(d.empty() ? "." : std::string(d)) / "gnuplot";
    if (is_executable_file(candidate)) {
      loc.path = candidate;
      return loc;
    }
  }
  loc.reason = "gnuplot not found on PATH (install gnuplot-nox, or set POWERTRAIN_GNUPLOT)";
  return loc;
}

std::string gnuplot_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "''";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += ' ';
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

RenderedFigure render(const fs::path& gnuplot, const Figure& f, const fs::path& dir) {
  if (!valid_name(f.name, false)) throw FigureError(fmt::format("invalid figure name '{}'", f.name));
  for (const auto& d : f.data) {
    if (!valid_name(d.name, true)) throw FigureError(fmt::format("figure {}: invalid data file name '{}'", f.name, d.name));
    write_text(dir / (f.name + "." + d.name), d.text);
  }
  RenderedFigure out{dir / (f.name + ".svg"), dir / (f.name + ".png")};
  const std::string body = resolve_data(f);
  // Text from the database goes into titles: noenhanced keeps ^ _ @ { } literal.
  std::string script;
  script += fmt::format(
      "set terminal svg size {},{} font 'Helvetica,12' noenhanced background rgb 'white'\nset output {}\n",
      f.width_px, f.height_px, gnuplot_quote(out.svg.filename().string()));
  script += body;
  script += "\nunset output\nreset\n";
  script += fmt::format(
      "set terminal pngcairo size {},{} font 'Sans,10' noenhanced background rgb 'white'\nset output {}\n",
      f.width_px, f.height_px, gnuplot_quote(out.png.filename().string()));
  script += body;
  script += "\nunset output\n";
  const fs::path script_path = dir / (f.name + ".gp");
  write_text(script_path, script);

  // Absolute: the child changes directory before exec.
  external::ChildSpec spec;
  spec.argv = {fs::absolute(gnuplot).string(), script_path.filename().string()};
  spec.program = spec.argv.front();
  spec.workdir = dir.string();
  external::Finished run;
  try {
    // A figure takes gnuplot well under a second; a minute means it hangs.
    run = external::run_to_end(spec, 60.0);
  } catch (const WorkloadError& e) {
    throw FigureError(e.what());
  }
  if (run.timed_out) throw FigureError(fmt::format("figure {}: gnuplot took more than 60 s and was stopped", f.name));
  const int status = run.wait_status;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string how = WIFEXITED(status) ? fmt::format("exit status {}", WEXITSTATUS(status))
                                              : fmt::format("signal {}", WTERMSIG(status));
    throw FigureError(fmt::format("figure {}: gnuplot failed ({}): {}", f.name, how, first_error_line(run.out + run.err)));
  }
  for (const auto& p : {out.svg, out.png}) {
    std::error_code ec;
    const auto size = fs::file_size(p, ec);
    if (ec || size == 0) throw FigureError(fmt::format("figure {}: gnuplot left {} empty", f.name, p.filename().string()));
  }
  return out;
}

}  // namespace powertrain::report
