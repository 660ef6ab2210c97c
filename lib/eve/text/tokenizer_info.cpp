#include "eve/text/tokenizer_info.h"

#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <unordered_map>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"

namespace eve::text {

bool TokenizerInfo::operator==(const TokenizerInfo& o) const {
  return vocab_size == o.vocab_size && pad_id == o.pad_id && unk_id == o.unk_id &&
         cls_id == o.cls_id && sep_id == o.sep_id && mask_id == o.mask_id;
}

TokenizerInfo tokenizer_info_from_pieces(int vocab_size,
                                         const std::function<int(std::string_view)>& piece_to_id,
                                         const std::string& file) {
  TokenizerInfo info;
  info.vocab_size = vocab_size;
  struct Role {
    const char* name;
    int* id;
    const char* pieces[2];
  };
  Role roles[] = {{"pad", &info.pad_id, {"[PAD]", "<pad>"}},
                  {"unk", &info.unk_id, {"[UNK]", "<unk>"}},
                  {"cls", &info.cls_id, {"[CLS]", "<s>"}},
                  {"sep", &info.sep_id, {"[SEP]", "</s>"}},
                  {"mask", &info.mask_id, {"[MASK]", "<mask>"}}};
  for (auto& role : roles) {
    *role.id = -1;
    for (const char* piece : role.pieces)
      if ((*role.id = piece_to_id(piece)) >= 0) break;
    if (*role.id < 0)
      throw Error(std::string("the model has no ") + role.name + " token (neither " +
                      role.pieces[0] + " nor " + role.pieces[1] + " is a piece)",
                  file, {}, "train a model with eve-tokenize train");
  }
  return info;
}

namespace {

// Protocol-buffer wire format, as much of it as a ModelProto needs: field 1 of the model
// (repeated, length-delimited) is one SentencePiece message, whose field 1 is its piece.
struct Wire {
  const unsigned char* p;
  const unsigned char* end;
  const std::string& file;

  [[noreturn]] void bad(const char* what) const {
    throw Error(std::string("not a sentencepiece model (") + what + ")", file, {},
                "pass the .model file eve-tokenize train wrote, or the one released with the checkpoint");
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) bad("truncated varint");
      const unsigned char b = *p++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    bad("varint too long");
  }
  // Skips a field of wire type `type`, or returns its payload when length-delimited.
  std::string_view field(uint32_t type) {
    switch (type) {
      case 0: varint(); return {};
      case 1: skip(8); return {};
      case 5: skip(4); return {};
      case 2: {
        const uint64_t n = varint();
        if (n > static_cast<uint64_t>(end - p)) bad("field longer than the file");
        std::string_view out(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
        p += n;
        return out;
      }
      default: bad("unknown wire type");
    }
  }
  void skip(size_t n) {
    if (n > static_cast<size_t>(end - p)) bad("truncated field");
    p += n;
  }
};

}  // namespace

std::vector<std::string> read_sentencepiece_pieces(const std::string& path) {
  const std::string bytes = io::read_file(path);
  Wire top{reinterpret_cast<const unsigned char*>(bytes.data()),
           reinterpret_cast<const unsigned char*>(bytes.data()) + bytes.size(), path};
  std::vector<std::string> pieces;
  while (top.p < top.end) {
    const uint64_t key = top.varint();
    std::string_view payload = top.field(static_cast<uint32_t>(key & 7));
    if ((key >> 3) != 1) continue;
    if ((key & 7) != 2) top.bad("a piece that is not a message");
    Wire msg{reinterpret_cast<const unsigned char*>(payload.data()),
             reinterpret_cast<const unsigned char*>(payload.data()) + payload.size(), path};
    std::string piece;
    bool found = false;
    while (msg.p < msg.end) {
      const uint64_t k = msg.varint();
      std::string_view v = msg.field(static_cast<uint32_t>(k & 7));
      if ((k >> 3) == 1 && (k & 7) == 2) {
        piece.assign(v);
        found = true;
      }
    }
    if (!found) top.bad("a piece without its text");
    pieces.push_back(std::move(piece));
  }
  if (pieces.empty()) top.bad("no pieces");
  return pieces;
}

TokenizerInfo read_sentencepiece_info(const std::string& path) {
  const std::vector<std::string> pieces = read_sentencepiece_pieces(path);
  std::unordered_map<std::string_view, int> ids;
  for (size_t i = 0; i < pieces.size(); ++i) ids.emplace(pieces[i], static_cast<int>(i));
  return tokenizer_info_from_pieces(
      static_cast<int>(pieces.size()),
      [&](std::string_view piece) {
        auto it = ids.find(piece);
        return it == ids.end() ? -1 : it->second;
      },
      path);
}

nlohmann::ordered_json to_json(const TokenizerInfo& info) {
  nlohmann::ordered_json j;
  j["vocab_size"] = info.vocab_size;
  j["pad_id"] = info.pad_id;
  j["unk_id"] = info.unk_id;
  j["cls_id"] = info.cls_id;
  j["sep_id"] = info.sep_id;
  j["mask_id"] = info.mask_id;
  return j;
}

TokenizerInfo tokenizer_info_from_json(const nlohmann::json& j, const std::string& file) {
  if (!j.is_object()) throw Error("expected a JSON object with the tokenizer ids", file);
  auto get = [&](const char* key) {
    auto it = j.find(key);
    if (it == j.end()) throw Error("missing key", file, key);
    if (!it->is_number_integer()) throw Error("expected an integer", file, key);
    return it->get<int>();
  };
  TokenizerInfo info;
  info.vocab_size = get("vocab_size");
  if (info.vocab_size <= 0) throw Error("must be positive", file, "vocab_size");
  std::pair<const char*, int*> ids[] = {{"pad_id", &info.pad_id},   {"unk_id", &info.unk_id},
                                        {"cls_id", &info.cls_id},   {"sep_id", &info.sep_id},
                                        {"mask_id", &info.mask_id}};
  for (auto& [key, dst] : ids) {
    *dst = get(key);
    if (*dst < 0 || *dst >= info.vocab_size)
      throw Error("id " + std::to_string(*dst) + " outside the vocabulary (size " +
                      std::to_string(info.vocab_size) + ")",
                  file, key);
  }
  return info;
}

namespace {

// "tok.json" -> "tok.model" (the pair eve-tokenize train writes); other names + ".model".
std::string tokenizer_model_beside(const std::string& json_path) {
  std::string stem = json_path;
  if (stem.size() > 5 && stem.compare(stem.size() - 5, 5, ".json") == 0) stem.resize(stem.size() - 5);
  return stem + ".model";
}

enum class TokFile { missing, directory, json, other };

// What kind of file `path` is, from its first non-blank byte ('{': JSON; sentencepiece
// models start with a protobuf tag byte, never '{').
TokFile sniff(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return TokFile::missing;
  if (S_ISDIR(st.st_mode)) return TokFile::directory;
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) return TokFile::other;
  int c;
  while ((c = std::fgetc(f.get())) == ' ' || c == '\n' || c == '\r' || c == '\t') {
  }
  return c == '{' ? TokFile::json : TokFile::other;
}

// A bundle directory's tokenizer file.
std::string bundle_tokenizer_path(const std::string& dir) {
  return dir + (dir.empty() || dir.back() == '/' ? "" : "/") + "tokenizer.model";
}

std::string bundle_tokenizer(const std::string& dir) {
  const std::string model = bundle_tokenizer_path(dir);
  if (!io::file_exists(model))
    throw Error("is a directory without tokenizer.model", dir, {},
                "pass the tokenizer's .model or tok.json file, or a bundle directory");
  log::info("{} is a bundle: its tokenizer.model is used", dir);
  return model;
}

}  // namespace

TokenizerInfo read_tokenizer_info(const std::string& path) {
  switch (sniff(path)) {
    case TokFile::directory:
      return read_sentencepiece_info(bundle_tokenizer(path));
    case TokFile::other:  // the sentencepiece model: its ids are what its tok.json records
      return read_sentencepiece_info(path);
    case TokFile::missing:
    case TokFile::json:
      break;
  }
  return tokenizer_info_from_json(io::read_json(path), path);
}

std::string sentencepiece_model_of(const std::string& path) {
  switch (sniff(path)) {
    case TokFile::directory: {
      const std::string model = bundle_tokenizer_path(path);
      return io::file_exists(model) ? model : std::string();
    }
    case TokFile::other:
      return path;
    case TokFile::json: {
      const std::string model = tokenizer_model_beside(path);
      return io::file_exists(model) ? model : std::string();
    }
    default:
      return {};
  }
}

std::string resolve_sentencepiece_model(const std::string& path) {
  switch (sniff(path)) {
    case TokFile::directory:
      return bundle_tokenizer(path);
    case TokFile::json: {
      const std::string model = tokenizer_model_beside(path);
      throw Error("this is JSON (a tokenizer's tok.json?), not a sentencepiece model", path, {},
                  "pass the sentencepiece model" +
                      (io::file_exists(model) && model != path ? " beside it: " + model : std::string()));
    }
    default:
      return path;
  }
}

std::string tokenizer_info_path(const std::string& model_path) {
  const std::string ext = ".model";
  if (model_path.size() > ext.size() &&
      model_path.compare(model_path.size() - ext.size(), ext.size(), ext) == 0)
    return model_path.substr(0, model_path.size() - ext.size()) + ".json";
  return model_path + ".json";
}

}  // namespace eve::text
