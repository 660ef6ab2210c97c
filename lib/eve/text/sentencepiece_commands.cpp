#include "eve/text/sentencepiece_commands.h"

#include <mutex>

#include "eve/core/log.h"
#include "eve/core/threads.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/text/sentencepiece_tokenizer.h"

namespace eve::text {

TrainResult run_train(const TrainOptions& opts) {
  if (opts.output.empty()) throw UsageError("--out is required");
  if (opts.inputs.empty()) throw UsageError("no training input given");
  io::prepare_output(opts.output);  // before the training, not after it
  if (opts.vocab_size < 6)
    throw UsageError("--vocab-size must be at least 6 (5 special tokens and one piece)");
  TrainResult result;
  std::vector<std::string> texts;
  for (const auto& file : expand_training_inputs(opts.inputs)) {
    const bool jsonl = is_jsonl_path(file);
    LineStats stats = process_lines(
        {file}, opts.threads, opts.bad, /*skip_blank=*/true,
        [&](std::string_view line) {
          std::string joined;
          for (auto& t : training_texts(line, jsonl, opts)) {
            joined += t;
            joined.push_back('\0');
          }
          return joined;
        },
        [&](std::string_view chunk) {
          for (size_t b = 0, e; b < chunk.size(); b = e + 1) {
            e = chunk.find('\0', b);
            texts.emplace_back(chunk.substr(b, e - b));
          }
        });
    result.lines.records += stats.records;
    result.lines.skipped += stats.skipped;
    for (const auto& [k, n] : stats.reasons) result.lines.reasons[k] += n;
  }
  result.texts = texts.size();
  log::info("training a {} model with {} pieces on {} texts", opts.model_type, opts.vocab_size,
            texts.size());
  SentencePieceTrainConfig config;
  config.model_type = opts.model_type;
  config.vocab_size = opts.vocab_size;
  config.character_coverage = opts.character_coverage;
  config.threads = resolve_threads(opts.threads);
  config.quiet = opts.quiet_library;
  std::string model = train_sentencepiece(texts, config);

  io::AtomicWriter writer(opts.output);
  writer.write(model);
  writer.commit();
  result.info = SentencePieceTokenizer(opts.output).info();
  result.info_path = tokenizer_info_path(opts.output);
  io::write_file_atomic(result.info_path, to_json(result.info).dump(2) + "\n");
  return result;
}

LineStats run_encode(const EncodeOptions& opts, const Sink& sink) {
  if (opts.model.empty()) throw UsageError("--tokenizer is required");
  SentencePieceTokenizer tok(opts.model);
  RecordEncoder encoder(opts, tok.info(), [&tok](const std::string& text) {
    return tok.encode(text);
  });
  if (opts.plain)
    return process_lines(opts.inputs, opts.threads, opts.bad, /*skip_blank=*/false,
                         [&](std::string_view l) { return encoder.encode_plain_line(l); }, sink);
  return process_lines(opts.inputs, opts.threads, opts.bad, /*skip_blank=*/true,
                       [&](std::string_view l) { return encoder.encode_json_line(l); }, sink);
}

LineStats run_decode(const DecodeOptions& opts, const Sink& sink) {
  if (opts.model.empty()) throw UsageError("--tokenizer is required");
  SentencePieceTokenizer tok(opts.model);
  RecordDecoder decoder(
      opts, tok.info(), [&tok](const std::vector<int>& ids) { return tok.decode(ids); },
      [&tok](int id) { return tok.id_to_piece(id); });
  if (opts.plain)
    return process_lines(opts.inputs, opts.threads, opts.bad, /*skip_blank=*/false,
                         [&](std::string_view l) { return decoder.decode_plain_line(l); }, sink);
  return process_lines(opts.inputs, opts.threads, opts.bad, /*skip_blank=*/true,
                       [&](std::string_view l) { return decoder.decode_json_line(l); }, sink);
}

TokenizerInfo model_info(const std::string& model_path) {
  return SentencePieceTokenizer(model_path).info();
}

}  // namespace eve::text
