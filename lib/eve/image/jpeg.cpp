// JPEG through libjpeg-turbo's TurboJPEG 2.x API, plus the little marker parsing it does
// not do for us (EXIF orientation, Adobe CMYK inversion).
#include <turbojpeg.h>

#include <cstring>
#include <memory>

#include "eve/image/codec.h"

namespace eve::image {
namespace {

struct TjHandle {
  tjhandle h;
  explicit TjHandle(bool compress) : h(compress ? tjInitCompress() : tjInitDecompress()) {
    if (!h) throw Error(std::string("cannot initialise libjpeg-turbo: ") + tjGetErrorStr2(nullptr));
  }
  ~TjHandle() { tjDestroy(h); }
  TjHandle(const TjHandle&) = delete;
  TjHandle& operator=(const TjHandle&) = delete;
};

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// EXIF orientation from a TIFF structure (the APP1 payload after "Exif\0\0"). Returns 1
// when absent or malformed.
int tiff_orientation(const uint8_t* t, size_t n) {
  if (n < 8) return 1;
  bool le;
  if (t[0] == 'I' && t[1] == 'I') le = true;
  else if (t[0] == 'M' && t[1] == 'M') le = false;
  else return 1;
  auto u16 = [&](size_t off) -> uint32_t {
    return le ? (t[off] | t[off + 1] << 8) : (t[off] << 8 | t[off + 1]);
  };
  auto u32 = [&](size_t off) -> uint32_t {
    return le ? (uint32_t{t[off]} | uint32_t{t[off + 1]} << 8 | uint32_t{t[off + 2]} << 16 |
                 uint32_t{t[off + 3]} << 24)
              : (uint32_t{t[off]} << 24 | uint32_t{t[off + 1]} << 16 | uint32_t{t[off + 2]} << 8 |
                 uint32_t{t[off + 3]});
  };
  if (u16(2) != 42) return 1;
  size_t ifd = u32(4);
  if (ifd + 2 > n) return 1;
  size_t count = u16(ifd);
  for (size_t i = 0; i < count; ++i) {
    size_t e = ifd + 2 + i * 12;
    if (e + 12 > n) return 1;
    if (u16(e) == 0x0112) {
      uint32_t type = u16(e + 2);
      uint32_t v = type == 3 ? u16(e + 8) : type == 4 ? u32(e + 8) : 1;
      return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
    }
  }
  return 1;
}

struct Markers {
  int orientation = 1;
  bool adobe = false;
};

// Walks the marker segments before the first scan.
Markers scan_markers(std::string_view bytes) {
  Markers m;
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t n = bytes.size(), i = 2;
  while (i + 4 <= n) {
    if (p[i] != 0xFF) break;
    uint8_t marker = p[i + 1];
    if (marker == 0xFF) { ++i; continue; }
    if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) { i += 2; continue; }
    if (marker == 0xDA || marker == 0xD9) break;
    size_t len = be16(p + i + 2);
    if (len < 2 || i + 2 + len > n) break;
    const uint8_t* seg = p + i + 4;
    size_t seg_len = len - 2;
    if (marker == 0xE1 && seg_len >= 6 && std::memcmp(seg, "Exif\0\0", 6) == 0)
      m.orientation = tiff_orientation(seg + 6, seg_len - 6);
    else if (marker == 0xEE && seg_len >= 5 && std::memcmp(seg, "Adobe", 5) == 0)
      m.adobe = true;
    i += 2 + len;
  }
  return m;
}

// A failed decode counts as truncation when libjpeg says the file ended early or the data
// does not end with an EOI marker (trailing zero padding allowed).
bool looks_truncated(const char* msg, std::string_view bytes) {
  if (std::strstr(msg, "Premature end of JPEG file")) return true;
  size_t n = bytes.size();
  while (n > 0 && bytes[n - 1] == '\0') --n;
  return !(n >= 2 && static_cast<uint8_t>(bytes[n - 2]) == 0xFF && static_cast<uint8_t>(bytes[n - 1]) == 0xD9);
}

int pick_scale_denom(int w, int h, int min_short) {
  if (min_short <= 0) return 1;
  int s = std::min(w, h);
  for (int d : {8, 4, 2})
    if (TJSCALED(s, (tjscalingfactor{1, d})) >= min_short) return d;
  return 1;
}

// Reads the frame header: size and JPEG colour space. Throws ImageError.
void read_header(tjhandle tj, std::string_view bytes, int& width, int& height, int& colorspace) {
  int subsamp = 0;
  if (tjDecompressHeader3(tj, reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<unsigned long>(bytes.size()), &width, &height, &subsamp,
                          &colorspace) != 0) {
    const char* msg = tjGetErrorStr2(tj);
    throw ImageError(looks_truncated(msg, bytes) ? Failure::truncated : Failure::corrupt,
                     std::string("JPEG header: ") + msg);
  }
  if (width <= 0 || height <= 0)
    throw ImageError(looks_truncated("", bytes) ? Failure::truncated : Failure::corrupt,
                     "JPEG header: no frame size (incomplete header)");
}

}  // namespace

void probe_jpeg(std::string_view bytes, int& width, int& height) {
  TjHandle tj(false);
  int cs = 0;
  read_header(tj.h, bytes, width, height, cs);
}

Image decode_jpeg(std::string_view bytes, const DecodeOptions& opt, DecodeInfo* info) {
  TjHandle tj(false);
  const auto* buf = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto size = static_cast<unsigned long>(bytes.size());
  int w = 0, h = 0, cs = 0;
  read_header(tj.h, bytes, w, h, cs);
  if (static_cast<uint64_t>(w) * static_cast<uint64_t>(h) > opt.max_pixels)
    throw ImageError(Failure::too_large, "JPEG of " + std::to_string(w) + "x" + std::to_string(h) +
                                             " exceeds the limit of " +
                                             std::to_string(opt.max_pixels) + " pixels");
  Markers markers = scan_markers(bytes);
  const int denom = pick_scale_denom(w, h, opt.min_short_side);
  const tjscalingfactor sf{1, denom};
  const int sw = TJSCALED(w, sf), sh = TJSCALED(h, sf);
  const bool cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
  const int flags = TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;

  Image img = Image::uninitialized(sw, sh);
  std::vector<uint8_t> cmyk_buf;
  unsigned char* dst = img.pixels.data();
  if (cmyk) {
    cmyk_buf.resize(static_cast<size_t>(sw) * sh * 4);
    dst = cmyk_buf.data();
  }
  if (tjDecompress2(tj.h, buf, size, dst, sw, 0, sh, cmyk ? TJPF_CMYK : TJPF_RGB, flags) != 0) {
    const char* msg = tjGetErrorStr2(tj.h);
    const bool warning = tjGetErrorCode(tj.h) == TJERR_WARNING;
    Failure f = looks_truncated(msg, bytes) ? Failure::truncated : warning ? Failure::damaged : Failure::corrupt;
    throw ImageError(f, std::string(warning ? "JPEG data damaged: " : "JPEG: ") + msg);
  }
  if (cmyk) {
    // Adobe writes CMYK inverted (255 = no ink); Pillow reads it as "CMYK;I" and converts
    // with r = (255-c)*(255-k)/255 on the ink values.
    const size_t n = static_cast<size_t>(sw) * sh;
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* s = &cmyk_buf[i * 4];
      uint8_t* d = &img.pixels[i * 3];
      int k = markers.adobe ? 255 - s[3] : s[3];
      int nk = 255 - k;
      for (int c = 0; c < 3; ++c) {
        int ink = markers.adobe ? 255 - s[c] : s[c];
        int t = ink * nk + 128;
        int m = (t + (t >> 8)) >> 8;  // ink*nk/255 rounded
        d[c] = static_cast<uint8_t>(nk - m);
      }
    }
  }
  int orientation = markers.orientation;
  if (opt.apply_exif_orientation && orientation != 1) img = apply_orientation(img, orientation);
  if (info) {
    info->format = Format::jpeg;
    info->original_width = w;
    info->original_height = h;
    info->orientation = orientation;
    info->scale_denom = denom;
    info->plain_jpeg = !cmyk;
  }
  return img;
}

std::string encode_jpeg(const Image& image, const EncodeOptions& options) {
  if (image.empty()) throw Error("cannot encode an empty image as JPEG");
  if (options.quality < 1 || options.quality > 100)
    throw UsageError("JPEG quality must be in 1..100, got " + std::to_string(options.quality));
  TjHandle tj(true);
  int samp = options.subsampling == EncodeOptions::Subsampling::s444   ? TJSAMP_444
             : options.subsampling == EncodeOptions::Subsampling::s422 ? TJSAMP_422
                                                                        : TJSAMP_420;
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  if (tjCompress2(tj.h, image.pixels.data(), image.width, 0, image.height, TJPF_RGB, &out, &out_size,
                  samp, options.quality, 0) != 0) {
    std::string msg = tjGetErrorStr2(tj.h);
    if (out) tjFree(out);
    throw Error("JPEG encode failed: " + msg);
  }
  std::string result(reinterpret_cast<const char*>(out), out_size);
  tjFree(out);
  return result;
}

}  // namespace eve::image
