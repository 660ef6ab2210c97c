#include "eve/text/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdio>
#include <unordered_map>

#include "eve/core/error.h"

namespace sentencepiece::logging {
// Exported by libsentencepiece but missing from the installed headers.
void SetMinLogLevel(int v);
int GetMinLogLevel();
}  // namespace sentencepiece::logging

namespace eve::text {

struct SentencePieceTokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& path)
    : impl_(std::make_unique<Impl>()), path_(resolve_sentencepiece_model(path)) {
  const std::string& model_path = path_;
  auto status = impl_->sp.Load(model_path);
  if (!status.ok()) {
    // The library's status names its own source lines; a missing file or one that is not a
    // model gets eve's one-line error from the library-free reader instead.
    read_sentencepiece_pieces(model_path);
    throw Error("cannot load sentencepiece model: " + status.ToString(), model_path);
  }
  info_ = tokenizer_info_from_pieces(
      vocab_size(), [this](std::string_view piece) { return piece_to_id(piece); }, model_path);
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

namespace {

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& texts) : texts_(texts) {}
  bool done() const override { return i_ >= texts_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return texts_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& texts_;
  size_t i_ = 0;
};

}  // namespace

std::string train_sentencepiece(const std::vector<std::string>& texts,
                                const SentencePieceTrainConfig& config) {
  if (config.model_type != "bpe" && config.model_type != "unigram")
    throw UsageError("unknown model type '" + config.model_type + "' (expected bpe or unigram)");
  if (texts.empty())
    throw Error("no training text", {}, {}, "the inputs are empty or every text cleaned to nothing");
  char coverage[32];
  std::snprintf(coverage, sizeof coverage, "%.6g", config.character_coverage);
  std::unordered_map<std::string, std::string> args = {
      {"model_type", config.model_type},
      {"vocab_size", std::to_string(config.vocab_size)},
      {"character_coverage", coverage},
      {"num_threads", std::to_string(std::max(1, config.threads))},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"pad_id", "0"},
      {"unk_id", "1"},
      {"bos_id", "2"},
      {"eos_id", "3"},
      {"pad_piece", "[PAD]"},
      {"unk_piece", "[UNK]"},
      {"bos_piece", "[CLS]"},
      {"eos_piece", "[SEP]"},
      {"control_symbols", "[MASK]"},
  };
  const int old_level = sentencepiece::logging::GetMinLogLevel();
  if (config.quiet) sentencepiece::logging::SetMinLogLevel(2);
  VectorIterator it(texts);
  std::string model;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  sentencepiece::logging::SetMinLogLevel(old_level);
  if (!status.ok()) {
    std::string msg = status.ToString();
    bool vocab = msg.find("ocab") != std::string::npos;
    throw Error("sentencepiece training failed: " + msg, {}, {},
                vocab ? "try a smaller --vocab-size or more text" : std::string());
  }
  return model;
}

}  // namespace eve::text
