// The sentencepiece wrapper. Linked only into eve-tokenize and its tests: sentencepiece and
// libtorch crash when loaded into one process (two protobuf runtimes).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "eve/text/tokenizer_info.h"

namespace eve::text {

class SentencePieceTokenizer {
 public:
  // Loads a .model file; errors name the path.
  explicit SentencePieceTokenizer(const std::string& model_path);
  ~SentencePieceTokenizer();
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  // Pieces of the (already cleaned) text, without special tokens; thread-safe.
  std::vector<int> encode(std::string_view text) const;
  std::string decode(const std::vector<int>& ids) const;
  int vocab_size() const;
  // -1 when the piece is not in the vocabulary.
  int piece_to_id(std::string_view piece) const;
  std::string id_to_piece(int id) const;

  // The special ids, resolved from the pieces: cls = [CLS] or <s>, sep = [SEP] or </s>,
  // pad = [PAD] or <pad>, mask = [MASK] or <mask>, unk = [UNK] or <unk> (first found).
  // Throws eve::Error naming the model and the pieces looked for when one is missing.
  const TokenizerInfo& info() const { return info_; }
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  TokenizerInfo info_;
};

// What `eve-tokenize train` passes to the sentencepiece trainer.
struct SentencePieceTrainConfig {
  std::string model_type = "bpe";  // bpe or unigram
  int vocab_size = 8000;
  double character_coverage = 1.0;
  int threads = 1;
  bool quiet = true;  // silence sentencepiece's own log on stderr
};

// Trains a model on `texts` (already cleaned) and returns the serialized model. The model
// has [PAD]=0, [UNK]=1, [CLS]=2 (as BOS), [SEP]=3 (as EOS) and [MASK]=4 (a control symbol,
// never produced from text). Throws eve::Error with the trainer's message and a hint.
std::string train_sentencepiece(const std::vector<std::string>& texts,
                                const SentencePieceTrainConfig& config);

}  // namespace eve::text
