// The page as a browser shows it: headless Chromium loads report.html with no
// console errors (the page's Content-Security-Policy turns any external
// reference into one), every figure image decodes, and the screenshot is not
// blank.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include "powertrain/report/report.h"
#include "report_fixtures.h"
#include "temp_dir.h"

namespace powertrain::report {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::TempDir;
using testing::write_file;

constexpr const char* kChromium = "/usr/bin/chromium";

struct Run {
  int exit_code = -1;
  std::string out, err;
};

// Runs chromium headless on `url` with `extra` flags, a fresh profile and no network.
Run chromium(const std::string& url, const std::vector<std::string>& extra, const fs::path& scratch) {
  const fs::path profile = scratch / "profile";
  fs::create_directories(profile);
  std::vector<std::string> args = {kChromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                   "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                   "--disable-sync", "--user-data-dir=" + profile.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(url);
  const fs::path out = scratch / "chromium.out", err = scratch / "chromium.err";
  const pid_t pid = fork();
  if (pid == 0) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int in = ::open("/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(kChromium, argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  Run r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

// Lines of chromium's log that carry a console message (errors, CSP violations).
std::vector<std::string> console_lines(const std::string& log) {
  std::vector<std::string> out;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line))
    if (line.find(":CONSOLE") != std::string::npos || line.find("Uncaught") != std::string::npos) out.push_back(line);
  return out;
}

// --- a minimal PNG decoder: 8-bit RGB/RGBA/grey, non-interlaced ---------------

struct Image {
  std::uint32_t width = 0, height = 0;
  int channels = 0;
  std::vector<std::uint8_t> pixels;  // width * height * channels
};

std::uint32_t be32(const std::string& s, std::size_t at) {
  return (std::uint32_t(std::uint8_t(s[at])) << 24) | (std::uint32_t(std::uint8_t(s[at + 1])) << 16) |
         (std::uint32_t(std::uint8_t(s[at + 2])) << 8) | std::uint32_t(std::uint8_t(s[at + 3]));
}

std::optional<Image> decode_png(const std::string& png, std::string& why) {
  if (png.size() < 8 || png.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) {
    why = "not a PNG";
    return std::nullopt;
  }
  Image img;
  int depth = 0, colour = 0, interlace = 0;
  std::string idat;
  for (std::size_t at = 8; at + 12 <= png.size();) {
    const std::uint32_t len = be32(png, at);
    const std::string type = png.substr(at + 4, 4);
    if (at + 12 + len > png.size()) break;
    if (type == "IHDR") {
      img.width = be32(png, at + 8);
      img.height = be32(png, at + 12);
      depth = std::uint8_t(png[at + 16]);
      colour = std::uint8_t(png[at + 17]);
      interlace = std::uint8_t(png[at + 20]);
    } else if (type == "IDAT") {
      idat += png.substr(at + 8, len);
    }
    at += 12 + len;
  }
  img.channels = colour == 6 ? 4 : colour == 2 ? 3 : colour == 0 ? 1 : colour == 4 ? 2 : 0;
  if (depth != 8 || img.channels == 0 || interlace != 0) {
    why = "unsupported PNG format";
    return std::nullopt;
  }
  const std::size_t stride = std::size_t(img.width) * img.channels;
  std::vector<std::uint8_t> raw((stride + 1) * img.height);
  uLongf raw_len = raw.size();
  if (uncompress(raw.data(), &raw_len, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) != Z_OK ||
      raw_len != raw.size()) {
    why = "cannot inflate IDAT";
    return std::nullopt;
  }
  img.pixels.resize(stride * img.height);
  const int bpp = img.channels;
  for (std::uint32_t y = 0; y < img.height; ++y) {
    const std::uint8_t filter = raw[y * (stride + 1)];
    const std::uint8_t* in = &raw[y * (stride + 1) + 1];
    std::uint8_t* out = &img.pixels[y * stride];
    const std::uint8_t* prev = y > 0 ? &img.pixels[(y - 1) * stride] : nullptr;
    for (std::size_t x = 0; x < stride; ++x) {
      const int a = x >= std::size_t(bpp) ? out[x - bpp] : 0;
      const int b = prev ? prev[x] : 0;
      const int c = prev && x >= std::size_t(bpp) ? prev[x - bpp] : 0;
      int v = in[x];
      switch (filter) {
        case 0: break;
        case 1: v += a; break;
        case 2: v += b; break;
        case 3: v += (a + b) / 2; break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          v += (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default: why = "bad filter"; return std::nullopt;
      }
      out[x] = static_cast<std::uint8_t>(v);
    }
  }
  return img;
}

TEST(PngDecoder, DecodesChromiumsOutputFormatsItUnderstands) {
  std::string why;
  EXPECT_FALSE(decode_png("not a png", why));
  EXPECT_EQ(why, "not a PNG");
}

class Browser : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kChromium)) GTEST_SKIP() << kChromium << " is not installed";
  }
};

TEST_F(Browser, ReportRendersWithoutConsoleErrorsAndIsNotBlank) {
  TempDir dir;
  testing::make_full_db(dir / "results.db");
  ReportOptions o;
  o.db = dir / "results.db";
  o.out_dir = dir / "out";
  if (fs::exists("/usr/bin/gnuplot")) o.gnuplot = GnuplotLocation{fs::path("/usr/bin/gnuplot"), ""};
  const auto r = write_report(o);
  const std::string url = "file://" + fs::absolute(r.html).string();

  const fs::path shot = dir / "shot.png";
  const auto run = chromium(url, {"--enable-logging=stderr", "--v=0", "--hide-scrollbars", "--window-size=1200,2000",
                                  "--screenshot=" + shot.string()},
                            dir.path());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto console = console_lines(run.err);
  EXPECT_TRUE(console.empty()) << console.front();

  ASSERT_TRUE(fs::exists(shot)) << run.err;
  // To look at the page and the screenshot: POWERTRAIN_REPORT_KEEP=DIR keeps them there.
  if (const char* keep = std::getenv("POWERTRAIN_REPORT_KEEP")) {
    fs::create_directories(keep);
    fs::copy(dir / "out", keep, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    fs::copy_file(shot, fs::path(keep) / "screenshot.png", fs::copy_options::overwrite_existing);
    fs::copy_file(dir / "results.db", fs::path(keep) / "results.db", fs::copy_options::overwrite_existing);
  }
  std::string why;
  const auto img = decode_png(read_file(shot), why);
  ASSERT_TRUE(img) << why;
  EXPECT_EQ(img->width, 1200u);
  EXPECT_EQ(img->height, 2000u);
  // Not one colour: many distinct colours and a good share of pixels unlike the first.
  std::set<std::uint32_t> colours;
  std::size_t different = 0;
  const auto px = [&](std::size_t i) {
    std::uint32_t v = 0;
    for (int c = 0; c < std::min(img->channels, 3); ++c) v = (v << 8) | img->pixels[i * img->channels + c];
    return v;
  };
  const std::size_t n = std::size_t(img->width) * img->height;
  for (std::size_t i = 0; i < n; ++i) {
    const auto v = px(i);
    if (colours.size() < 5000) colours.insert(v);
    different += v != px(0);
  }
  EXPECT_GT(colours.size(), 50u);
  EXPECT_GT(different, n / 20);

  // Every figure decodes: a copy of the page without its CSP runs a probe that
  // counts images that failed to load, and Chromium dumps the resulting DOM.
  std::string html = read_file(r.html);
  const auto csp = html.find("<meta http-equiv=\"Content-Security-Policy\"");
  ASSERT_NE(csp, std::string::npos);
  html.erase(csp, html.find('>', csp) + 1 - csp);
  const std::string probe =
      "<script>window.addEventListener('load', function () {"
      "var imgs = document.images, broken = 0;"
      "for (var i = 0; i < imgs.length; ++i) if (!imgs[i].complete || imgs[i].naturalWidth === 0) ++broken;"
      "document.body.setAttribute('data-probe', 'images=' + imgs.length + ' broken=' + broken);});</script>";
  html.insert(html.find("</body>"), probe);
  write_file(dir / "probe.html", html);
  const auto dom = chromium("file://" + (dir / "probe.html").string(), {"--dump-dom", "--virtual-time-budget=5000"},
                            dir.path());
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  const auto at = dom.out.find("data-probe=\"images=");
  ASSERT_NE(at, std::string::npos) << dom.out.substr(0, 300);
  const std::string probe_text = dom.out.substr(at, dom.out.find('"', at + 12) - at);
  EXPECT_NE(probe_text.find(" broken=0"), std::string::npos) << probe_text;
  EXPECT_EQ(probe_text.find("images=0 "), std::string::npos) << probe_text;
}

}  // namespace
}  // namespace powertrain::report
