#pragma once
// JPEG decoding with libjpeg-turbo into float CHW buffers of a fixed square size.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace powertrain::data::detail {

/// How decoded images are fitted into size x size.
struct ImageFit {
  int size = 64;             ///< output side in pixels
  bool center_crop = true;   ///< crop a centered square first; false: squeeze
};

/// One decompressor (not thread-safe; one per thread).
class JpegDecoder {
 public:
  JpegDecoder();
  ~JpegDecoder();
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  /// Decodes `jpeg` as RGB (using libjpeg-turbo's DCT scaling where the result
  /// stays at least as large as the target), crops, resamples with a triangle
  /// filter widened by the downscale factor (antialiased bilinear) and writes
  /// float32 [3, size, size] in [0, 1] to `dst`. Throws DataError naming `origin`.
  void decode(const std::uint8_t* jpeg, std::size_t bytes, const ImageFit& fit, float* dst,
              const std::string& origin);

 private:
  void* handle_;
  std::vector<std::uint8_t> rgb_;
  std::vector<float> rows_;
};

/// Decodes files[i] into dst + i * 3 * size * size with `threads` threads (0:
/// hardware threads). Throws DataError for the first file that is missing or
/// does not decode.
void decode_jpeg_files(const std::vector<std::filesystem::path>& files, const ImageFit& fit, int threads,
                       float* dst);

}  // namespace powertrain::data::detail
