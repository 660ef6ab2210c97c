#include "eve/image/codec.h"

#include <cstring>

namespace eve::image {

// Format-specific halves (jpeg.cpp, png.cpp).
Image decode_jpeg(std::string_view bytes, const DecodeOptions& opt, DecodeInfo* info);
void probe_jpeg(std::string_view bytes, int& width, int& height);
Image decode_png(std::string_view bytes, const DecodeOptions& opt, DecodeInfo* info);
void probe_png(std::string_view bytes, int& width, int& height);

const char* failure_name(Failure f) {
  switch (f) {
    case Failure::missing: return "missing";
    case Failure::empty: return "empty";
    case Failure::not_an_image: return "not_an_image";
    case Failure::truncated: return "truncated";
    case Failure::corrupt: return "corrupt";
    case Failure::damaged: return "damaged";
    case Failure::too_large: return "too_large";
    case Failure::unsupported: return "unsupported";
  }
  return "unknown";
}

Format detect_format(std::string_view b) {
  if (b.size() >= 3 && static_cast<uint8_t>(b[0]) == 0xFF && static_cast<uint8_t>(b[1]) == 0xD8 &&
      static_cast<uint8_t>(b[2]) == 0xFF)
    return Format::jpeg;
  if (b.size() >= 8 && std::memcmp(b.data(), "\x89PNG\r\n\x1a\n", 8) == 0) return Format::png;
  return Format::unknown;
}

namespace {

Format require_format(std::string_view bytes) {
  if (bytes.empty()) throw ImageError(Failure::empty, "empty file");
  Format f = detect_format(bytes);
  if (f != Format::unknown) return f;
  // Other image containers are recognised so the reason says what to do.
  auto starts = [&](const char* magic, size_t n) {
    return bytes.size() >= n && std::memcmp(bytes.data(), magic, n) == 0;
  };
  if (starts("GIF8", 4) || starts("BM", 2) || (starts("RIFF", 4) && bytes.size() >= 12 &&
                                              std::memcmp(bytes.data() + 8, "WEBP", 4) == 0) ||
      starts("II*\0", 4) || starts("MM\0*", 4))
    throw ImageError(Failure::unsupported, "unsupported image format (only JPEG and PNG are read)");
  throw ImageError(Failure::not_an_image, "not a JPEG or PNG file");
}

}  // namespace

Image decode(std::string_view bytes, const DecodeOptions& options, DecodeInfo* info) {
  return require_format(bytes) == Format::jpeg ? decode_jpeg(bytes, options, info)
                                               : decode_png(bytes, options, info);
}

void probe(std::string_view bytes, int& width, int& height, Format* format) {
  Format f = require_format(bytes);
  if (format) *format = f;
  if (f == Format::jpeg) probe_jpeg(bytes, width, height);
  else probe_png(bytes, width, height);
}

}  // namespace eve::image
