// Decoding JPEG and PNG into RGB8 and encoding JPEG. Every failure is an ImageError
// carrying a short machine-readable reason, so callers can skip damaged inputs and count
// them by reason.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "eve/core/error.h"
#include "eve/image/image.h"

namespace eve::image {

// Why an image could not be used. "missing" is for callers that could not read a file.
enum class Failure { missing, empty, not_an_image, truncated, corrupt, damaged, too_large, unsupported };

// "missing", "empty", "not_an_image", "truncated", "corrupt", "damaged", "too_large",
// "unsupported".
const char* failure_name(Failure f);

class ImageError : public Error {
 public:
  ImageError(Failure reason, std::string what) : Error(std::move(what)), reason_(reason) {}
  Failure reason() const { return reason_; }

 private:
  Failure reason_;
};

enum class Format { unknown, jpeg, png };

// Sniffs the format from the first bytes.
Format detect_format(std::string_view bytes);

struct DecodeOptions {
  // Refuse images with more pixels than this (checked from the header, before decoding).
  uint64_t max_pixels = 100'000'000;
  // When > 0 and the JPEG's shorter side is at least twice this, decode at a reduced DCT
  // scale (1/2, 1/4 or 1/8) that keeps the shorter side >= min_short_side.
  int min_short_side = 0;
  // Rotate/mirror by the EXIF orientation tag.
  bool apply_exif_orientation = true;
};

struct DecodeInfo {
  Format format = Format::unknown;
  int original_width = 0, original_height = 0;  // as stored, before scaling/orientation
  int orientation = 1;                           // EXIF orientation found (1 if none)
  int scale_denom = 1;                           // DCT scale used: 1/scale_denom
  bool plain_jpeg = false;  // YCbCr or grayscale JPEG: its bytes can be kept as they are
};

// Decodes JPEG or PNG bytes to RGB. Grayscale, palette and CMYK become RGB; alpha (an
// alpha channel or a PNG tRNS chunk) is dropped without compositing; 16-bit samples keep
// their high byte, except 16-bit grey, which is clipped to 255 (all as Pillow's
// convert("RGB") does). JPEG warnings about damaged data count as damage. Throws ImageError.
Image decode(std::string_view bytes, const DecodeOptions& options = {}, DecodeInfo* info = nullptr);

// Reads width and height from the header without decoding (orientation not applied).
// Throws ImageError.
void probe(std::string_view bytes, int& width, int& height, Format* format = nullptr);

struct EncodeOptions {
  int quality = 95;
  enum class Subsampling { s444, s422, s420 } subsampling = Subsampling::s420;
};

// Baseline JPEG (JFIF) of an RGB image.
std::string encode_jpeg(const Image& image, const EncodeOptions& options = {});

}  // namespace eve::image
