// What programs that cannot load sentencepiece (everything linking libtorch) need to know
// about a tokenizer: its vocabulary size and special token ids. `eve-tokenize train` writes
// it beside the model as a JSON sidecar and `eve-tokenize info --tokenizer tok.model` prints it.
//
// The JSON object has exactly these keys, all integers:
//   {"vocab_size": V, "pad_id": P, "unk_id": U, "cls_id": C, "sep_id": S, "mask_id": M}
//
// Models trained by `eve-tokenize train` always have pad=0, unk=1, cls=2, sep=3, mask=4
// (pieces [PAD], [UNK], [CLS], [SEP], [MASK]); other sentencepiece models (for example the
// one released with EVE) get their ids from their pieces, see sentencepiece_tokenizer.h.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace eve::text {

struct TokenizerInfo {
  int vocab_size = 0;
  int pad_id = 0;
  int unk_id = 1;
  int cls_id = 2;
  int sep_id = 3;
  int mask_id = 4;

  bool is_special(int id) const {
    return id == pad_id || id == unk_id || id == cls_id || id == sep_id || id == mask_id;
  }
  bool operator==(const TokenizerInfo& o) const;
};

// The ids of models trained by eve-tokenize.
constexpr int kPadId = 0, kUnkId = 1, kClsId = 2, kSepId = 3, kMaskId = 4;

// The special ids resolved from a model's pieces: pad = [PAD] or <pad>, unk = [UNK] or
// <unk>, cls = [CLS] or <s>, sep = [SEP] or </s>, mask = [MASK] or <mask> (the first found).
// `piece_to_id` returns -1 for a piece not in the vocabulary. Throws eve::Error naming
// `file` and the pieces looked for when a role has neither.
TokenizerInfo tokenizer_info_from_pieces(int vocab_size,
                                         const std::function<int(std::string_view)>& piece_to_id,
                                         const std::string& file);

// The pieces of a sentencepiece .model file (a serialised ModelProto), read without the
// sentencepiece library (which torch programs cannot load): index = token id. Throws
// eve::Error naming the file when it is not such a model.
std::vector<std::string> read_sentencepiece_pieces(const std::string& path);
// tokenizer_info_from_pieces over read_sentencepiece_pieces.
TokenizerInfo read_sentencepiece_info(const std::string& path);

nlohmann::ordered_json to_json(const TokenizerInfo& info);
// Throws eve::Error naming `file` and the key when a key is missing, not an integer, or an
// id is outside [0, vocab_size).
TokenizerInfo tokenizer_info_from_json(const nlohmann::json& j, const std::string& file);
// The tokenizer's ids from whichever of its files the user names: tok.json (what
// eve-tokenize train writes), the sentencepiece model itself (its ids read from its pieces,
// which is what tok.json records), or a bundle directory (its tokenizer.model). Anything
// else is an error saying which file to pass.
TokenizerInfo read_tokenizer_info(const std::string& path);
// The sentencepiece model to load for `path`: the file itself, or a bundle directory's
// tokenizer.model. A tok.json, or a directory without tokenizer.model, is an error naming
// the file to pass instead.
std::string resolve_sentencepiece_model(const std::string& path);
// The sentencepiece model that goes with the tokenizer file `path` names (the file itself,
// "tok.model" beside "tok.json", or a bundle's tokenizer.model); "" when there is none.
std::string sentencepiece_model_of(const std::string& path);
// Where the sidecar of a model lives: "tok.model" -> "tok.json", anything else + ".json".
std::string tokenizer_info_path(const std::string& model_path);

}  // namespace eve::text
