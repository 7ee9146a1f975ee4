#include "jpeg.h"

#include <turbojpeg.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <thread>

#include "io.h"
#include "powertrain/error.h"

namespace powertrain::data::detail {

namespace {

/// Resampling weights of one axis: output i reads inputs [first[i], first[i]+count[i]).
struct AxisWeights {
  std::vector<int> first, count;
  std::vector<float> weights;  ///< count[i] entries per output, at offset[i]
  std::vector<int> offset;
};

AxisWeights axis_weights(int in, int out) {
  AxisWeights w;
  const double scale = static_cast<double>(in) / out;
  const double support = std::max(scale, 1.0);  // triangle radius in input pixels
  w.first.resize(out);
  w.count.resize(out);
  w.offset.resize(out);
  for (int i = 0; i < out; ++i) {
    const double center = (i + 0.5) * scale;
    int lo = std::max(0, static_cast<int>(std::floor(center - support)));
    int hi = std::min(in, static_cast<int>(std::ceil(center + support)));
    double total = 0;
    const auto start = w.weights.size();
    for (int j = lo; j < hi; ++j) {
      const double x = std::abs((j + 0.5 - center) / support);
      const double v = x < 1.0 ? 1.0 - x : 0.0;
      w.weights.push_back(static_cast<float>(v));
      total += v;
    }
    if (total <= 0) {  // cannot happen for in >= 1, but never divide by zero
      w.weights.resize(start);
      lo = std::min(in - 1, static_cast<int>(center));
      hi = lo + 1;
      w.weights.push_back(1.0f);
      total = 1.0;
    }
    for (auto k = start; k < w.weights.size(); ++k) w.weights[k] = static_cast<float>(w.weights[k] / total);
    w.first[i] = lo;
    w.count[i] = hi - lo;
    w.offset[i] = static_cast<int>(start);
  }
  return w;
}

}  // namespace

JpegDecoder::JpegDecoder() : handle_(tjInitDecompress()) {
  if (handle_ == nullptr) throw DataError(std::string("cannot initialize libjpeg-turbo: ") + tjGetErrorStr2(nullptr));
}

JpegDecoder::~JpegDecoder() { tjDestroy(static_cast<tjhandle>(handle_)); }

void JpegDecoder::decode(const std::uint8_t* jpeg, std::size_t bytes, const ImageFit& fit, float* dst,
                         const std::string& origin) {
  auto h = static_cast<tjhandle>(handle_);
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(h, jpeg, static_cast<unsigned long>(bytes), &width, &height, &subsamp, &colorspace) != 0)
    throw DataError(origin + ": not a readable JPEG (" + tjGetErrorStr2(h) + ")");
  if (width <= 0 || height <= 0) throw DataError(origin + ": JPEG has no pixels");

  // The smallest DCT-scaled size whose crop still covers the target: decoding
  // at 1/2 or 1/4 is several times cheaper than decoding at full size.
  int num_factors = 0;
  tjscalingfactor* factors = tjGetScalingFactors(&num_factors);
  int sw = width, sh = height;
  for (int i = 0; i < num_factors; ++i) {
    const auto& f = factors[i];
    if (f.num > f.denom) continue;
    const int w = TJSCALED(width, f), hh = TJSCALED(height, f);
    const bool covers = fit.center_crop ? std::min(w, hh) >= fit.size : (w >= fit.size && hh >= fit.size);
    if (covers && static_cast<long>(w) * hh < static_cast<long>(sw) * sh) {
      sw = w;
      sh = hh;
    }
  }
  rgb_.resize(static_cast<std::size_t>(sw) * sh * 3);
  if (tjDecompress2(h, jpeg, static_cast<unsigned long>(bytes), rgb_.data(), sw, 0, sh, TJPF_RGB, 0) != 0 &&
      tjGetErrorCode(h) == TJERR_FATAL)
    throw DataError(origin + ": JPEG does not decode (" + tjGetErrorStr2(h) + ")");

  int cx = 0, cy = 0, cw = sw, ch = sh;
  if (fit.center_crop) {
    const int side = std::min(sw, sh);
    cx = (sw - side) / 2;
    cy = (sh - side) / 2;
    cw = ch = side;
  }
  const int s = fit.size;
  const AxisWeights wx = axis_weights(cw, s), wy = axis_weights(ch, s);
  // Horizontal pass: [ch rows, s cols, 3] floats.
  rows_.assign(static_cast<std::size_t>(ch) * s * 3, 0.0f);
  for (int y = 0; y < ch; ++y) {
    const std::uint8_t* src = rgb_.data() + (static_cast<std::size_t>(cy + y) * sw + cx) * 3;
    float* out = rows_.data() + static_cast<std::size_t>(y) * s * 3;
    for (int i = 0; i < s; ++i) {
      float r = 0, g = 0, b = 0;
      const float* wt = wx.weights.data() + wx.offset[i];
      const std::uint8_t* p = src + static_cast<std::size_t>(wx.first[i]) * 3;
      for (int k = 0; k < wx.count[i]; ++k, p += 3) {
        r += wt[k] * p[0];
        g += wt[k] * p[1];
        b += wt[k] * p[2];
      }
      out[i * 3 + 0] = r;
      out[i * 3 + 1] = g;
      out[i * 3 + 2] = b;
    }
  }
  // Vertical pass into planar CHW, scaled to [0, 1].
  const std::size_t plane = static_cast<std::size_t>(s) * s;
  for (int j = 0; j < s; ++j) {
    const float* wt = wy.weights.data() + wy.offset[j];
    for (int i = 0; i < s; ++i) {
      float acc[3] = {0, 0, 0};
      for (int k = 0; k < wy.count[j]; ++k) {
        const float* p = rows_.data() + (static_cast<std::size_t>(wy.first[j] + k) * s + i) * 3;
        acc[0] += wt[k] * p[0];
        acc[1] += wt[k] * p[1];
        acc[2] += wt[k] * p[2];
      }
      for (int c = 0; c < 3; ++c)
        dst[c * plane + static_cast<std::size_t>(j) * s + i] = std::clamp(acc[c] / 255.0f, 0.0f, 1.0f);
    }
  }
}

void decode_jpeg_files(const std::vector<std::filesystem::path>& files, const ImageFit& fit, int threads,
                       float* dst) {
  if (files.empty()) return;
  unsigned n_threads = threads > 0 ? static_cast<unsigned>(threads) : std::max(1u, std::thread::hardware_concurrency());
  n_threads = static_cast<unsigned>(std::min<std::size_t>(n_threads, files.size()));
  const std::size_t per_image = 3 * static_cast<std::size_t>(fit.size) * fit.size;
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    try {
      JpegDecoder decoder;
      std::string bytes;
      for (std::size_t i = next++; i < files.size() && !failed; i = next++) {
        bytes = read_text_file(files[i]);
        decoder.decode(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), fit, dst + i * per_image,
                       files[i].string());
      }
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < n_threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace powertrain::data::detail
