#include "fixtures.h"

#include <turbojpeg.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include "temp_dir.h"

namespace powertrain::testing {

namespace fs = std::filesystem;

std::string idx_bytes(const std::vector<std::uint32_t>& dims, const std::vector<std::uint8_t>& data, std::uint8_t type) {
  std::string out;
  out.push_back(0);
  out.push_back(0);
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(dims.size()));
  for (auto d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((d >> shift) & 0xff));
  out.append(data.begin(), data.end());
  return out;
}

void write_gz(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  gzFile f = gzopen(path.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("gzopen failed for " + path.string());
  if (!bytes.empty() && gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) != static_cast<int>(bytes.size())) {
    gzclose(f);
    throw std::runtime_error("gzwrite failed for " + path.string());
  }
  gzclose(f);
}

void write_fashion_fixture(const fs::path& dir, std::uint32_t n_train, std::uint32_t n_test) {
  auto write = [&](const std::string& prefix, std::uint32_t n) {
    std::vector<std::uint8_t> images(static_cast<std::size_t>(n) * 784), labels(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      labels[i] = static_cast<std::uint8_t>(i % 10);
      std::fill_n(images.begin() + static_cast<std::ptrdiff_t>(i) * 784, 784, static_cast<std::uint8_t>(labels[i] * 20));
      images[static_cast<std::size_t>(i) * 784] = static_cast<std::uint8_t>(i % 256);
    }
    write_gz(dir / (prefix + "-images-idx3-ubyte.gz"), idx_bytes({n, 28, 28}, images));
    write_gz(dir / (prefix + "-labels-idx1-ubyte.gz"), idx_bytes({n}, labels));
  };
  write("train", n_train);
  write("t10k", n_test);
}

std::string jpeg_bytes(int width, int height, const std::vector<std::uint8_t>& rgb, int quality) {
  tjhandle h = tjInitCompress();
  if (h == nullptr) throw std::runtime_error("tjInitCompress failed");
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  if (tjCompress2(h, rgb.data(), width, 0, height, TJPF_RGB, &buf, &size, TJSAMP_444, quality, 0) != 0) {
    std::string msg = tjGetErrorStr2(h);
    tjDestroy(h);
    throw std::runtime_error("tjCompress2 failed: " + msg);
  }
  std::string out(reinterpret_cast<const char*>(buf), size);
  tjFree(buf);
  tjDestroy(h);
  return out;
}

const std::vector<std::string>& celeba_attribute_names() {
  static const std::vector<std::string> names{
      "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive",      "Bags_Under_Eyes",     "Bald",
      "Bangs",            "Big_Lips",        "Big_Nose",        "Black_Hair",          "Blond_Hair",
      "Blurry",           "Brown_Hair",      "Bushy_Eyebrows",  "Chubby",              "Double_Chin",
      "Eyeglasses",       "Goatee",          "Gray_Hair",       "Heavy_Makeup",        "High_Cheekbones",
      "Male",             "Mouth_Slightly_Open", "Mustache",    "Narrow_Eyes",         "No_Beard",
      "Oval_Face",        "Pale_Skin",       "Pointy_Nose",     "Receding_Hairline",   "Rosy_Cheeks",
      "Sideburns",        "Smiling",         "Straight_Hair",   "Wavy_Hair",           "Wearing_Earrings",
      "Wearing_Hat",      "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie",   "Young"};
  return names;
}

CelebAFixture write_celeba_fixture(const fs::path& dir, int n_images) {
  constexpr int kW = 178, kH = 218;
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(kW) * kH * 3);
  for (int y = 0; y < kH; ++y)
    for (int x = 0; x < kW; ++x) {
      auto* p = &rgb[(static_cast<std::size_t>(y) * kW + x) * 3];
      const bool left = x < kW / 2;
      p[0] = left ? 220 : 20;
      p[1] = 30;
      p[2] = left ? 20 : 220;
    }
  const std::string jpeg = jpeg_bytes(kW, kH, rgb);
  CelebAFixture fx;
  const auto& names = celeba_attribute_names();
  std::string attr = std::to_string(n_images) + "\n";
  for (const auto& n : names) attr += n + " ";
  attr += "\n";
  std::string part;
  for (int i = 0; i < n_images; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "%06d.jpg", i + 1);
    fx.files.push_back(name);
    write_file(dir / "img_align_celeba" / name, jpeg);
    std::vector<int> a;
    std::string line = name;
    for (std::size_t k = 0; k < names.size(); ++k) {
      const int v = (i + static_cast<int>(k)) % 3 == 0 ? 1 : -1;
      a.push_back(v);
      char cell[8];
      std::snprintf(cell, sizeof cell, " %2d", v);  // the published files right-align values
      line += cell;
    }
    fx.attrs.push_back(a);
    attr += line + "\n";
    const int p = i % 4 == 2 ? 1 : i % 4 == 3 ? 2 : 0;
    fx.partition.push_back(p);
    part += std::string(name) + " " + std::to_string(p) + "\n";
  }
  write_file(dir / "list_attr_celeba.txt", attr);
  write_file(dir / "list_eval_partition.txt", part);
  return fx;
}

void write_pamap2_subject(const fs::path& dir, int id, const std::vector<DatSegment>& segments, const DatValue& value) {
  std::string text;
  double t = 5.0;
  char buf[64];
  for (const auto& seg : segments) {
    t += seg.gap_before_s;
    for (int r = 0; r < seg.rows; ++r) {
      std::snprintf(buf, sizeof buf, "%.2f %d", t, seg.activity);
      text += buf;
      for (int col = 2; col < 54; ++col) {
        const double v = value(r, seg.activity, col);
        if (std::isnan(v)) text += " NaN";
        else {
          std::snprintf(buf, sizeof buf, " %.6g", v);
          text += buf;
        }
      }
      text += "\n";
      t += 0.01;
    }
  }
  write_file(dir / "Protocol" / ("subject" + std::to_string(id) + ".dat"), text);
}

}  // namespace powertrain::testing
