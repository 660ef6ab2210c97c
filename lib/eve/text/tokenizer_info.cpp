#include "eve/text/tokenizer_info.h"

#include <unordered_map>

#include "eve/core/error.h"
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

TokenizerInfo read_tokenizer_info(const std::string& path) {
  return tokenizer_info_from_json(io::read_json(path), path);
}

std::string tokenizer_info_path(const std::string& model_path) {
  const std::string ext = ".model";
  if (model_path.size() > ext.size() &&
      model_path.compare(model_path.size() - ext.size(), ext.size(), ext) == 0)
    return model_path.substr(0, model_path.size() - ext.size()) + ".json";
  return model_path + ".json";
}

}  // namespace eve::text
