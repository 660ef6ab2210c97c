#include "eve/search/embed_inputs.h"

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "eve/core/error.h"
#include "eve/image/codec.h"
#include "eve/image/preprocess.h"
#include "eve/io/file.h"
#include "eve/io/image_store.h"
#include "eve/io/jsonl.h"
#include "eve/io/tar.h"

namespace fs = std::filesystem;

namespace eve::search {
namespace {

std::string json_string(const std::string& s) {
  return io::json(s).dump(-1, ' ', false, io::json::error_handler_t::replace);
}

// Gives the item its id, or, for a name that is not valid UTF-8 (no id could name it in
// .ids.jsonl without losing bytes), the problem name-not-utf8.
void set_id(ImageItem& it, const std::string& id, const char* what) {
  if (io::is_valid_utf8(id)) {
    it.id = json_string(id);
    return;
  }
  it.problem = std::string("name-not-utf8: the ") + what + " '" + io::shown_name(id) +
               "' is not valid UTF-8, so no id can name it";
  it.name = io::shown_name(it.name);
}

bool ends_with_ci(const std::string& s, const char* suffix) {
  size_t n = std::char_traits<char>::length(suffix);
  if (s.size() < n) return false;
  for (size_t i = 0; i < n; ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - n + i])) != suffix[i]) return false;
  return true;
}

bool is_image_member(const std::string& name) {
  return ends_with_ci(name, ".jpg") || ends_with_ci(name, ".jpeg") || ends_with_ci(name, ".png");
}

// Whether a file starts like a JPEG or PNG.
bool looks_like_image(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char head[8] = {};
  size_t n = std::fread(head, 1, sizeof head, f);
  std::fclose(f);
  return image::detect_format(std::string_view(head, n)) != image::Format::unknown;
}

// A records file beside images.idx: the split file of a dataset dir.
bool is_split_file(const std::string& spec) {
  if (spec == "-" || !ends_with_ci(spec, ".jsonl")) return false;
  const std::string dir = fs::path(spec).parent_path().string();
  return io::file_exists(spec) && io::file_exists(io::image_index_path(dir.empty() ? "." : dir, "images"));
}

// The store keys that a split file's records name, each once, in record order; a key the
// store lacks is an error naming the record.
std::vector<std::string> split_keys(const std::string& spec, const io::ImageStore& store) {
  std::vector<std::string> keys;
  std::set<std::string> seen;
  io::JsonlReader reader(spec);
  io::json rec;
  auto add = [&](const io::json& v) {
    if (!v.is_string()) throw Error("an image field must hold store keys (strings)", spec, reader.where());
    const std::string& key = v.get_ref<const std::string&>();
    if (!store.contains(key)) {
      throw Error("image \"" + key + "\" is not in the dataset dir's images.idx", spec, reader.where());
    }
    if (seen.insert(key).second) keys.push_back(key);
  };
  while (reader.next(rec)) {
    if (auto it = rec.find("image"); it != rec.end()) add(*it);
    if (auto it = rec.find("images"); it != rec.end() && it->is_array()) {
      for (const auto& v : *it) add(v);
    }
  }
  return keys;
}

}  // namespace

std::vector<std::string> split_image_sources(const std::vector<std::string>& specs, const std::string& split) {
  if (specs.empty()) throw UsageError("--split goes with --images (dataset dirs)");
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& s : specs) {
    if (s == "-" || !fs::is_directory(s, ec) || !io::file_exists(io::image_index_path(s, "images"))) {
      throw UsageError("--split selects records of a dataset dir; this is not one", s == "-" ? "<stdin>" : s);
    }
    const std::string file = (fs::path(s) / (split + ".jsonl")).string();
    if (!io::file_exists(file)) throw UsageError("the dataset dir has no split " + split + " (no " + file + ")", s);
    out.push_back(file);
  }
  return out;
}

ImageSources::ImageSources(std::vector<std::string> specs) : specs_(std::move(specs)) {}
ImageSources::~ImageSources() = default;

bool ImageSources::open_next() {
  tar_.reset();
  tar_ids_.clear();
  list_.reset();
  keys_.clear();
  key_ = 0;
  kind_ = Kind::none;
  if (spec_ >= specs_.size()) return false;
  const std::string& s = specs_[spec_++];
  std::error_code ec;
  if (s != "-" && fs::is_directory(s, ec)) {
    if (!io::file_exists(io::image_index_path(s, "images")))
      throw Error("not a dataset dir: no images.idx", s, {},
                  "give a dataset dir written by eve-prep, tar shards, image files or a list of paths");
    stores_.push_back(std::make_unique<io::ImageStore>(s));
    keys_ = stores_.back()->keys();
    kind_ = Kind::store;
  } else if (is_split_file(s)) {
    const std::string dir = fs::path(s).parent_path().string();
    stores_.push_back(std::make_unique<io::ImageStore>(dir.empty() ? "." : dir));
    keys_ = split_keys(s, *stores_.back());
    kind_ = Kind::store;
  } else if (s != "-" && ends_with_ci(s, ".tar")) {
    io::TarReadOptions topt;
    topt.allow_non_utf8_names = true;  // such a member is a bad image, not a bad archive
    tar_ = std::make_unique<io::TarReader>(s, topt);
    kind_ = Kind::tar;
  } else if (s != "-" && looks_like_image(s)) {
    kind_ = Kind::file;
  } else {
    if (s != "-" && !io::file_exists(s)) throw UsageError("no such file or directory", s);
    list_ = std::make_unique<io::LineReader>(s);
    kind_ = Kind::list;
  }
  return true;
}

bool ImageSources::next(ImageItem& it, bool need_data) {
  it = ImageItem();
  for (;;) {
    switch (kind_) {
      case Kind::none:
        if (!open_next()) return false;
        continue;
      case Kind::store:
        if (key_ < keys_.size()) {
          it.key = keys_[key_++];
          it.store = stores_.back().get();
          it.id = json_string(it.key);
          it.name = specs_[spec_ - 1] + ":" + it.key;
          return true;
        }
        break;
      case Kind::tar: {
        io::TarMember m;
        bool found = false;
        while (tar_->next(m)) {
          if (!is_image_member(m.name)) continue;
          found = true;
          break;
        }
        if (found) {
          std::string key = m.name.substr(0, m.name.rfind('.'));
          it.name = tar_->path() + ":" + m.name;
          set_id(it, key, "member name");
          if (!it.problem.empty()) return true;
          // The first member with an id is kept, as eve-prep keeps the first sample of a key.
          auto [first, fresh] = tar_ids_.emplace(key, m.name);
          if (!fresh) {
            it.problem = "duplicate-key: the id '" + key + "' is " + first->second +
                         "'s, an earlier member of this archive; the first is kept";
            return true;
          }
          if (need_data) it.bytes = tar_->read();
          return true;
        }
        break;
      }
      case Kind::list: {
        std::string line;
        bool found = false;
        while (list_->next(line)) {
          if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
          found = true;
          break;
        }
        if (found) {
          it.path = line;
          it.name = line;
          set_id(it, line, "path");
          return true;
        }
        break;
      }
      case Kind::file:
        it.path = specs_[spec_ - 1];
        it.name = it.path;
        set_id(it, it.path, "path");
        kind_ = Kind::none;
        return true;
    }
    kind_ = Kind::none;
  }
}

std::string load_image(const ImageItem& it, int res, float* out) {
  if (!it.problem.empty()) return it.problem;
  std::string owned;
  std::string_view bytes = it.bytes;
  if (it.store) {
    owned = it.store->read(it.key);
    bytes = owned;
  } else if (!it.path.empty()) {
    try {
      owned = io::read_file(it.path);
    } catch (const Error& e) {
      return std::string(image::failure_name(image::Failure::missing)) + ": " + e.what();
    }
    bytes = owned;
  }
  try {
    image::Image img = image::decode(bytes);
    image::eval_transform(img, res, out);
  } catch (const image::ImageError& e) {
    return std::string(image::failure_name(e.reason())) + ": " + e.what();
  }
  return {};
}

TextSource::TextSource(const std::string& path, std::string id_field, int64_t vocab_size,
                       std::string id_option)
    : reader_(std::make_unique<io::JsonlReader>(path)), id_field_(std::move(id_field)),
      id_option_(std::move(id_option)), vocab_(vocab_size) {}
TextSource::~TextSource() = default;

bool TextSource::next(TextItem& item) {
  while (pending_.empty()) {
    io::json rec;
    if (!reader_->next(rec)) return false;
    const std::string where = reader_->where();
    auto fail = [&](const std::string& what, const std::string& hint = {}) {
      throw Error(what, reader_->path() == "-" ? "<stdin>" : reader_->path(),
                  std::to_string(reader_->line_number()), hint);
    };
    auto tokens_of = [&](const io::json& v, const std::string& field) {
      if (!v.is_array() || v.empty()) fail("\"" + field + "\" must be a non-empty list of token ids");
      std::vector<int64_t> t;
      t.reserve(v.size());
      for (const auto& x : v) {
        if (!x.is_number_integer()) fail("\"" + field + "\" must be a non-empty list of token ids");
        int64_t id = x.get<int64_t>();
        if (id < 0 || id >= vocab_)
          fail("token id " + std::to_string(id) + " in \"" + field + "\" is outside the model's vocabulary of " +
                   std::to_string(vocab_),
               "encode with the tokenizer the model was trained with");
        t.push_back(id);
      }
      return t;
    };
    // The id value (JSON) and whether one was found.
    const io::json* idv = nullptr;
    if (!id_field_.empty()) {
      if (!rec.contains(id_field_)) fail("no id field \"" + id_field_ + "\"", "pick another with " + id_option_);
      idv = &rec[id_field_];
    } else {
      for (const char* f : {"id", "question_id", "identifier", "image"})
        if (rec.contains(f)) {
          idv = &rec[f];
          break;
        }
    }
    const std::string group =
        idv ? idv->dump(-1, ' ', false, io::json::error_handler_t::replace) : std::to_string(rows_);
    if (rec.contains("ids_list")) {
      const io::json& lists = rec["ids_list"];
      if (!lists.is_array()) fail("\"ids_list\" must be a list of token id lists");
      for (size_t k = 0; k < lists.size(); ++k) {
        TextItem t;
        t.tokens = tokens_of(lists[k], "ids_list");
        std::string base = !idv ? std::to_string(rows_) : idv->is_string() ? idv->get<std::string>() : idv->dump();
        t.id = json_string(base + "#" + std::to_string(k));
        t.group = group;
        t.where = where;
        pending_.push_back(std::move(t));
      }
      if (lists.empty()) fail("\"ids_list\" is empty");
      ++rows_;
    } else if (rec.contains("ids")) {
      TextItem t;
      t.tokens = tokens_of(rec["ids"], "ids");
      t.id = group;
      t.group = group;
      t.where = where;
      pending_.push_back(std::move(t));
      ++rows_;
    } else {
      fail("record has no \"ids\" or \"ids_list\"", "encode the texts first: eve-tokenize encode -m tok.model | eve-embed --texts -");
    }
  }
  item = std::move(pending_.front());
  pending_.pop_front();
  return true;
}

std::string class_prompts(const std::string& classes_path, const std::vector<std::string>& templates) {
  if (templates.empty()) throw UsageError("--classes needs at least one --template, e.g. 'a photo of a {}.'");
  for (const auto& t : templates)
    if (t.find("{}") == std::string::npos)
      throw UsageError("--template '" + t + "' has no {} where the class name goes");
  io::LineReader lines(classes_path);
  std::map<std::string, uint64_t> first_line;
  std::string out, line;
  while (lines.next(line)) {
    const size_t a = line.find_first_not_of(" \t\r"), b = line.find_last_not_of(" \t\r");
    if (a == std::string::npos) continue;
    const std::string name = line.substr(a, b - a + 1);
    auto [it, fresh] = first_line.emplace(name, lines.line_number());
    if (!fresh) throw repeated_id_on_line(lines.path() == "-" ? "<stdin>" : lines.path(), lines.line_number(), "class",
                                          json_string(name), it->second);
    io::ordered_json rec;
    rec["class"] = name;
    rec["texts"] = io::ordered_json::array();
    for (const auto& t : templates) {
      std::string prompt;
      size_t from = 0;
      for (size_t at; (at = t.find("{}", from)) != std::string::npos; from = at + 2) prompt += t.substr(from, at - from) + name;
      rec["texts"].push_back(prompt + t.substr(from));
    }
    out += io::to_jsonl_line(rec, lines.where());
  }
  if (out.empty()) throw Error("no class names (one per line)", lines.path() == "-" ? "<stdin>" : lines.path());
  return out;
}

}  // namespace eve::search
