// The input streams of eve-embed and eve-rank --rerank: images from dataset dirs, tar
// archives, image files and path lists; token-id texts from JSONL records (embed.h says
// which source is which and how rows get their ids). Torch-free.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace eve::io {
class ImageStore;
class TarReader;
class LineReader;
class JsonlReader;
}  // namespace eve::io

namespace eve::search {

struct ImageItem {
  std::string id;    // the row id as JSON text
  std::string name;  // for messages
  std::string path;  // a file to read, or
  const io::ImageStore* store = nullptr;  // a key of a dataset dir, or
  std::string key;
  std::string bytes;  // bytes read already (tar members)
  // Set when the source already knows the item cannot be used: "<reason>: <message>", with
  // reason duplicate-key or name-not-utf8; load_image returns it as it is.
  std::string problem;
};

// The image sources of `specs` restricted to one split: every dataset dir D becomes D's split
// file D/<split>.jsonl, a source that yields the images its records name (fields "image" and
// "images"), each once, in record order. A spec that is not a dataset dir, or a dir without
// that split, throws eve::UsageError naming it.
std::vector<std::string> split_image_sources(const std::vector<std::string>& specs, const std::string& split);

class ImageSources {
 public:
  // specs: dataset dirs, split files of a dataset dir (D/<split>.jsonl, as above), .tar
  // archives, image files, or files of image paths ("-": stdin).
  explicit ImageSources(std::vector<std::string> specs);
  ~ImageSources();
  // The next image; with need_data false the item may come without its bytes (it is only
  // counted). False at the end of the last source.
  bool next(ImageItem& item, bool need_data = true);

 private:
  bool open_next();
  std::vector<std::string> specs_;
  size_t spec_ = 0;
  enum class Kind { none, store, tar, list, file } kind_ = Kind::none;
  std::vector<std::unique_ptr<io::ImageStore>> stores_;  // kept alive for pending reads
  std::vector<std::string> keys_;
  size_t key_ = 0;
  std::unique_ptr<io::TarReader> tar_;
  std::map<std::string, std::string> tar_ids_;  // id -> the first member with it, this tar
  std::unique_ptr<io::LineReader> list_;
};

// Reads the item's bytes (when needed), decodes them and writes the evaluation transform
// (3 x res x res floats) to `out`. Returns "" on success, else "<reason>: <message>" with
// reason one of image::failure_name()'s ("missing" for a file that cannot be read).
std::string load_image(const ImageItem& item, int res, float* out);

struct TextItem {
  std::string id;               // the row id as JSON text
  std::string group;            // the id field's value as JSON text, one for all rows of a record
  std::vector<int64_t> tokens;  // as in the record
  std::string where;            // "file:line" for messages
};

class TextSource {
 public:
  // id_field "" = the default fields; tokens must lie in [0, vocab_size). `id_option` is the
  // flag that named id_field, for the message when a record lacks it.
  TextSource(const std::string& path, std::string id_field, int64_t vocab_size,
             std::string id_option = "--id-field");
  ~TextSource();
  bool next(TextItem& item);

 private:
  std::unique_ptr<io::JsonlReader> reader_;
  std::string id_field_, id_option_;
  int64_t vocab_;
  int64_t rows_ = 0;
  std::deque<TextItem> pending_;
};

// Zero-shot class prompts: one JSONL record {"class": NAME, "texts": [prompt, ...]} per line
// of `classes_path` (a class name per line; blank lines ignored, surrounding spaces dropped),
// each template with every "{}" replaced by the name, in the order given. eve-tokenize encode
// turns "texts" into "ids_list" and carries "class" through, ready for eve-embed --group-by
// class. Throws UsageError for a template without "{}", eve::Error naming the file and line
// for a repeated class, and for a file without classes.
std::string class_prompts(const std::string& classes_path, const std::vector<std::string>& templates);

}  // namespace eve::search
