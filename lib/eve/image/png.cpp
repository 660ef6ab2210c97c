// PNG through libpng's progressive-free read API with setjmp error handling. The setjmp
// frame holds only trivially destructible locals; everything that owns memory lives in
// the caller's context object.
#include <png.h>

#include <csetjmp>
#include <cstring>

#include "eve/image/codec.h"

namespace eve::image {
namespace {

struct PngContext {
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  uint64_t max_pixels = 0;
  bool truncated = false, too_large = false;
  char message[256] = {0};
  uint32_t width = 0, height = 0;
  PixelBuffer pixels;
  std::vector<png_bytep> rows;
  std::vector<uint8_t> wide;  // 16-bit grey rows (big-endian) before clipping to RGB8
  bool grey16 = false;
  bool header_only = false;
};

void on_read(png_structp png, png_bytep out, png_size_t n) {
  auto* ctx = static_cast<PngContext*>(png_get_io_ptr(png));
  if (ctx->size - ctx->pos < n) {
    ctx->truncated = true;
    png_error(png, "file ends early");
  }
  std::memcpy(out, ctx->data + ctx->pos, n);
  ctx->pos += n;
}

void on_error(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<PngContext*>(png_get_error_ptr(png));
  std::snprintf(ctx->message, sizeof ctx->message, "%s", msg);
  png_longjmp(png, 1);
}

// Ancillary-chunk complaints (bad sRGB profiles and the like) do not affect the pixels.
void on_warning(png_structp, png_const_charp) {}

// Returns false on any libpng error (message in ctx). No non-trivial locals here.
bool read_png(PngContext* ctx) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, on_error, on_warning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, ctx, on_read);
  png_read_info(png, info);
  ctx->width = png_get_image_width(png, info);
  ctx->height = png_get_image_height(png, info);
  if (static_cast<uint64_t>(ctx->width) * ctx->height > ctx->max_pixels) {
    ctx->too_large = true;
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  if (ctx->header_only) {
    png_destroy_read_struct(&png, &info, nullptr);
    return true;
  }
  // Every colour type becomes RGB8 as Pillow's Image.convert("RGB") makes it: grey is
  // replicated, palettes are looked up, alpha (an alpha channel or a tRNS chunk) is dropped
  // without compositing, 16-bit colour keeps its high byte, and 16-bit grey (Pillow's mode
  // "I") is clipped to 0..255 rather than scaled.
  const int color = png_get_color_type(png, info);
  const int depth = png_get_bit_depth(png, info);
  ctx->grey16 = color == PNG_COLOR_TYPE_GRAY && depth == 16;
  if (depth == 16 && !ctx->grey16) png_set_strip_16(png);
  // Expanding a palette also turns its tRNS chunk into an alpha channel; stripped below.
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if ((color == PNG_COLOR_TYPE_GRAY && !ctx->grey16) || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const size_t channels_out = ctx->grey16 ? 2 : 3;  // bytes per pixel of the rows libpng gives
  if (png_get_rowbytes(png, info) != static_cast<png_size_t>(ctx->width) * channels_out) {
    std::snprintf(ctx->message, sizeof ctx->message, "unexpected row layout after conversion");
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  ctx->pixels.resize(static_cast<size_t>(ctx->width) * ctx->height * 3);
  uint8_t* rows_at = ctx->pixels.data();
  if (ctx->grey16) {
    ctx->wide.resize(static_cast<size_t>(ctx->width) * ctx->height * 2);
    rows_at = ctx->wide.data();
  }
  ctx->rows.resize(ctx->height);
  for (uint32_t y = 0; y < ctx->height; ++y) ctx->rows[y] = rows_at + static_cast<size_t>(y) * ctx->width * channels_out;
  png_read_image(png, ctx->rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

void run_png(PngContext& ctx, std::string_view bytes, uint64_t max_pixels) {
  ctx.data = reinterpret_cast<const uint8_t*>(bytes.data());
  ctx.size = bytes.size();
  ctx.max_pixels = max_pixels;
  if (read_png(&ctx)) {
    if (ctx.grey16) {
      uint8_t* out = ctx.pixels.data();
      for (size_t i = 0; i + 1 < ctx.wide.size(); i += 2, out += 3) {
        const unsigned v = (static_cast<unsigned>(ctx.wide[i]) << 8) | ctx.wide[i + 1];
        out[0] = out[1] = out[2] = static_cast<uint8_t>(v > 255 ? 255 : v);
      }
      ctx.wide = {};
    }
    return;
  }
  if (ctx.too_large)
    throw ImageError(Failure::too_large, "PNG of " + std::to_string(ctx.width) + "x" +
                                             std::to_string(ctx.height) + " exceeds the limit of " +
                                             std::to_string(max_pixels) + " pixels");
  if (ctx.truncated) throw ImageError(Failure::truncated, "PNG: file ends early");
  throw ImageError(Failure::corrupt, std::string("PNG: ") + (ctx.message[0] ? ctx.message : "cannot decode"));
}

}  // namespace

void probe_png(std::string_view bytes, int& width, int& height) {
  PngContext ctx;
  ctx.header_only = true;
  run_png(ctx, bytes, UINT64_MAX);
  width = static_cast<int>(ctx.width);
  height = static_cast<int>(ctx.height);
}

Image decode_png(std::string_view bytes, const DecodeOptions& opt, DecodeInfo* info) {
  PngContext ctx;
  run_png(ctx, bytes, opt.max_pixels);
  Image img;
  img.width = static_cast<int>(ctx.width);
  img.height = static_cast<int>(ctx.height);
  img.pixels = std::move(ctx.pixels);
  if (info) {
    info->format = Format::png;
    info->original_width = img.width;
    info->original_height = img.height;
    info->orientation = 1;
    info->scale_denom = 1;
    info->plain_jpeg = false;
  }
  return img;
}

}  // namespace eve::image
