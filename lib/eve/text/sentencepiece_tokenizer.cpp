#include "eve/text/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include "eve/core/error.h"

namespace eve::text {

struct SentencePieceTokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path)
    : impl_(std::make_unique<Impl>()) {
  auto status = impl_->sp.Load(model_path);
  if (!status.ok())
    throw Error("cannot load sentencepiece model: " + status.ToString(), model_path);
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  auto status = impl_->sp.Encode(text, &ids);
  if (!status.ok()) throw Error("sentencepiece encode failed: " + status.ToString());
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int>& ids) const {
  std::string out;
  auto status = impl_->sp.Decode(ids, &out);
  if (!status.ok()) throw Error("sentencepiece decode failed: " + status.ToString());
  return out;
}

int SentencePieceTokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }

int SentencePieceTokenizer::piece_to_id(std::string_view piece) const {
  int id = impl_->sp.PieceToId(piece);
  if (id == impl_->sp.unk_id() && impl_->sp.IdToPiece(id) != piece) return -1;
  return id;
}

std::string SentencePieceTokenizer::id_to_piece(int id) const {
  if (id < 0 || id >= vocab_size()) throw Error("token id " + std::to_string(id) + " out of range");
  return impl_->sp.IdToPiece(id);
}

}  // namespace eve::text
