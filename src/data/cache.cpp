#include "cache.h"

#include <algorithm>

#include <unistd.h>
#include <zlib.h>

#include <cstring>

#include "powertrain/error.h"

namespace powertrain::data::detail {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'P', 'T', 'C', 'A', 'C', 'H', 'E', '\n'};
constexpr std::size_t kMaxNormChannels = 8;

/// On-disk header; the rest of the 4 KiB holds the key text.
struct RawHeader {
  char magic[8];
  std::uint32_t version;
  std::uint32_t header_bytes;
  std::uint64_t key_hash;
  std::uint64_t file_bytes;
  std::uint32_t channels, height, width, tasks;
  std::uint64_t rows[3];
  std::uint64_t x_offset[3];
  std::uint64_t y_offset[3];
  std::uint32_t norm_channels;
  std::uint32_t key_bytes;
  double mean[kMaxNormChannels];
  double std[kMaxNormChannels];
  std::uint32_t label_crc;
  std::uint32_t pixel_crc;   ///< crc32 of every split's x
  std::uint32_t header_crc;  ///< crc32 of the 4 KiB header with this field zero
};
static_assert(sizeof(RawHeader) < kCacheHeaderBytes);

constexpr std::uint64_t kPage = 4096;
std::uint64_t align_up(std::uint64_t v) { return (v + kPage - 1) / kPage * kPage; }

std::uint32_t header_crc(const std::uint8_t* header) {
  std::vector<std::uint8_t> copy(header, header + kCacheHeaderBytes);
  std::memset(copy.data() + offsetof(RawHeader, header_crc), 0, sizeof(std::uint32_t));
  return static_cast<std::uint32_t>(crc32(0L, copy.data(), static_cast<uInt>(copy.size())));
}

// crc32 of a region of any size (zlib takes 32-bit lengths).
uLong crc_of(uLong crc, const std::uint8_t* p, std::uint64_t bytes) {
  constexpr std::uint64_t kChunk = 1u << 30;
  while (bytes > 0) {
    const auto n = std::min(bytes, kChunk);
    crc = crc32(crc, p, static_cast<uInt>(n));
    p += n;
    bytes -= n;
  }
  return crc;
}

std::uint32_t label_crc(const std::uint8_t* base, const CacheLayout& l) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (int s = 0; s < 3; ++s) crc = crc_of(crc, base + l.y_offset[s], l.rows[s] * l.tasks * sizeof(float));
  return static_cast<std::uint32_t>(crc);
}

// Reading the pixels once costs about a second per GB, against minutes of
// JPEG decoding to rebuild: worth it, since a flipped byte can be a NaN pixel.
std::uint32_t pixel_crc(const std::uint8_t* base, const CacheLayout& l) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const std::uint64_t per_row = std::uint64_t{l.channels} * l.height * l.width * sizeof(float);
  for (int s = 0; s < 3; ++s) crc = crc_of(crc, base + l.x_offset[s], l.rows[s] * per_row);
  return static_cast<std::uint32_t>(crc);
}

}  // namespace

CacheLayout CacheLayout::plan(std::uint32_t channels, std::uint32_t height, std::uint32_t width, std::uint32_t tasks,
                              const std::array<std::uint64_t, 3>& rows) {
  CacheLayout l;
  l.channels = channels;
  l.height = height;
  l.width = width;
  l.tasks = tasks;
  l.rows = rows;
  std::uint64_t at = kCacheHeaderBytes;
  for (int s = 0; s < 3; ++s) {
    l.x_offset[s] = at;
    at = align_up(at + rows[s] * channels * height * width * sizeof(float));
    l.y_offset[s] = at;
    at = align_up(at + rows[s] * tasks * sizeof(float));
  }
  l.file_bytes = at;
  return l;
}

std::shared_ptr<MappedFile> open_cache(const fs::path& path, std::uint64_t key_hash, const CacheLayout& expected,
                                       CacheNorm& norm, std::string& reason) {
  reason.clear();
  std::error_code ec;
  if (!fs::exists(path, ec)) return nullptr;
  const auto size = fs::file_size(path, ec);
  if (ec || size < kCacheHeaderBytes) {
    reason = "cache file is truncated (" + std::to_string(ec ? 0 : size) + " bytes)";
    return nullptr;
  }
  std::shared_ptr<MappedFile> map;
  try {
    map = MappedFile::open(path);
  } catch (const IoError& e) {
    reason = e.what();
    return nullptr;
  }
  RawHeader h{};
  std::memcpy(&h, map->data(), sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) {
    reason = "cache file has no valid header";
  } else if (h.version != kCacheVersion) {
    reason = "cache format version " + std::to_string(h.version) + ", expected " + std::to_string(kCacheVersion);
  } else if (h.header_bytes != kCacheHeaderBytes || h.header_crc != header_crc(map->data())) {
    reason = "cache header is corrupt (checksum mismatch)";
  } else if (h.key_hash != key_hash) {
    reason = "cache was built for other options";
  } else if (h.file_bytes != map->size()) {
    reason = "cache file is truncated (" + std::to_string(map->size()) + " of " + std::to_string(h.file_bytes) +
             " bytes)";
  } else {
    CacheLayout got;
    got.channels = h.channels;
    got.height = h.height;
    got.width = h.width;
    got.tasks = h.tasks;
    for (int s = 0; s < 3; ++s) {
      got.rows[s] = h.rows[s];
      got.x_offset[s] = h.x_offset[s];
      got.y_offset[s] = h.y_offset[s];
    }
    got.file_bytes = h.file_bytes;
    if (!(got == expected)) {
      reason = "cache dimensions differ from the requested ones";
    } else if (h.norm_channels > kMaxNormChannels) {
      reason = "cache header is corrupt (normalization)";
    } else if (h.label_crc != label_crc(map->data(), expected)) {
      reason = "cache labels are corrupt (checksum mismatch)";
    } else if (h.pixel_crc != pixel_crc(map->data(), expected)) {
      reason = "cache pixels are corrupt (checksum mismatch)";
    }
  }
  if (!reason.empty()) return nullptr;
  norm.mean.assign(h.mean, h.mean + h.norm_channels);
  norm.std.assign(h.std, h.std + h.norm_channels);
  return map;
}

CacheWriter::CacheWriter(fs::path path, const CacheLayout& layout) : path_(std::move(path)), layout_(layout) {
  std::error_code ec;
  fs::create_directories(path_.parent_path(), ec);
  if (ec) throw IoError("cannot create cache directory " + path_.parent_path().string() + ": " + ec.message());
  tmp_ = path_;
  tmp_ += ".tmp-" + std::to_string(::getpid());
  map_ = MappedFile::create(tmp_, layout_.file_bytes);
}

CacheWriter::~CacheWriter() {
  map_.reset();
  if (!committed_) {
    std::error_code ec;
    fs::remove(tmp_, ec);
  }
}

float* CacheWriter::x(int split) const { return reinterpret_cast<float*>(map_->data() + layout_.x_offset[split]); }
float* CacheWriter::y(int split) const { return reinterpret_cast<float*>(map_->data() + layout_.y_offset[split]); }

void CacheWriter::commit(std::uint64_t key_hash, const std::string& key_text, const CacheNorm& norm) {
  if (norm.mean.size() > kMaxNormChannels || norm.std.size() != norm.mean.size())
    throw IoError("cache cannot hold normalization of " + std::to_string(norm.mean.size()) + " channels");
  std::uint8_t* base = map_->data();
  std::memset(base, 0, kCacheHeaderBytes);
  RawHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kCacheVersion;
  h.header_bytes = kCacheHeaderBytes;
  h.key_hash = key_hash;
  h.file_bytes = layout_.file_bytes;
  h.channels = layout_.channels;
  h.height = layout_.height;
  h.width = layout_.width;
  h.tasks = layout_.tasks;
  for (int s = 0; s < 3; ++s) {
    h.rows[s] = layout_.rows[s];
    h.x_offset[s] = layout_.x_offset[s];
    h.y_offset[s] = layout_.y_offset[s];
  }
  h.norm_channels = static_cast<std::uint32_t>(norm.mean.size());
  for (std::size_t c = 0; c < norm.mean.size(); ++c) {
    h.mean[c] = norm.mean[c];
    h.std[c] = norm.std[c];
  }
  const std::size_t room = kCacheHeaderBytes - sizeof(RawHeader);
  h.key_bytes = static_cast<std::uint32_t>(std::min(room, key_text.size()));
  h.label_crc = label_crc(base, layout_);
  h.pixel_crc = pixel_crc(base, layout_);
  std::memcpy(base, &h, sizeof h);
  std::memcpy(base + sizeof h, key_text.data(), h.key_bytes);
  const std::uint32_t crc = header_crc(base);
  std::memcpy(base + offsetof(RawHeader, header_crc), &crc, sizeof crc);
  map_->sync();
  map_.reset();
  std::error_code ec;
  fs::rename(tmp_, path_, ec);
  if (ec) throw IoError("cannot move cache into place at " + path_.string() + ": " + ec.message());
  committed_ = true;
}

}  // namespace powertrain::data::detail
