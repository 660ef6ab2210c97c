#include "eve/text/tokenizer_info.h"

#include "eve/core/error.h"
#include "eve/io/jsonl.h"

namespace eve::text {

bool TokenizerInfo::operator==(const TokenizerInfo& o) const {
  return vocab_size == o.vocab_size && pad_id == o.pad_id && unk_id == o.unk_id &&
         cls_id == o.cls_id && sep_id == o.sep_id && mask_id == o.mask_id;
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
