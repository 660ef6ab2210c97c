// The sentencepiece wrapper. Linked only into eve-tokenize and its tests: sentencepiece and
// libtorch crash when loaded into one process (two protobuf runtimes).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace eve::text {

class SentencePieceTokenizer {
 public:
  // Loads a .model file; errors name the path.
  explicit SentencePieceTokenizer(const std::string& model_path);
  ~SentencePieceTokenizer();
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::vector<int> encode(std::string_view text) const;
  std::string decode(const std::vector<int>& ids) const;
  int vocab_size() const;
  // -1 when the piece is not in the vocabulary.
  int piece_to_id(std::string_view piece) const;
  std::string id_to_piece(int id) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace eve::text
