#include "eve/train/text_loader.h"

#include <algorithm>

#include "eve/core/error.h"
#include "eve/io/jsonl.h"

namespace eve::train {

std::vector<Sample> read_image_samples(const std::string& dir, const std::string& split) {
  const std::string path = dir + "/" + split + ".jsonl";
  io::JsonlReader reader(path);
  std::vector<Sample> out;
  io::json r;
  while (reader.next(r)) {
    auto img = r.find("image");
    if (img == r.end() || !img->is_string())
      throw Error("record has no string field \"image\"", reader.where(), {},
                  "the image stage reads the caption pairs written by eve-prep pairs");
    out.push_back({{img->get<std::string>()}, {}, reader.where()});
  }
  if (out.empty()) throw empty_split(path);
  return out;
}

namespace {

// The token id lists of one record: "ids" (one) or every entry of "ids_list".
std::vector<std::vector<int64_t>> record_texts(const io::json& record, const std::string& where,
                                               int vocab_size) {
  const auto one = record.find("ids");
  const auto list = record.find("ids_list");
  if (one == record.end() && (list == record.end() || !list->is_array()))
    throw Error("record has no token ids (\"ids\" or \"ids_list\")", where, {},
                "run the records through eve-tokenize encode first");
  std::vector<std::vector<int64_t>> texts;
  if (one != record.end()) texts.push_back(parse_token_ids(*one, where, vocab_size));
  else
    for (const auto& ids : *list) texts.push_back(parse_token_ids(ids, where, vocab_size));
  return texts;
}

}  // namespace

std::vector<TextSample> read_text_samples(const std::string& dir, const std::string& split,
                                          int vocab_size) {
  const std::string path = dir + "/" + split + ".jsonl";
  io::JsonlReader reader(path);
  std::vector<TextSample> out;
  io::json r;
  while (reader.next(r))
    for (auto& ids : record_texts(r, reader.where(), vocab_size)) out.push_back({std::move(ids), reader.where()});
  if (out.empty()) throw empty_split(path);
  return out;
}

TextLoader::TextLoader(std::vector<TextSample> samples, LoaderOptions options)
    : samples_(std::move(samples)), o_(std::move(options)) {
  check_batching(o_, samples_.size(), "texts");
  if (o_.max_text_len < 1) throw Error("text loader: max_text_len must be at least 1");
}

int64_t TextLoader::batches_per_epoch() const {
  return static_cast<int64_t>(samples_.size()) / o_.global_batch;
}

void TextLoader::seek(int64_t epoch, int64_t index) {
  epoch_ = epoch;
  index_ = index;
}

Batch TextLoader::next() {
  if (epoch_ != order_epoch_) {
    order_ = epoch_order(samples(), o_.seed, epoch_);
    order_epoch_ = epoch_;
  }
  const int64_t b = o_.global_batch / o_.world, T = o_.max_text_len;
  Batch out;
  out.epoch = epoch_;
  out.index = index_;
  out.first = slice_start(index_, o_.global_batch, o_.rank, o_.world);
  out.samples = torch::empty({b}, torch::kInt64);
  out.ids = torch::full({b, T}, static_cast<int64_t>(o_.pad_id), torch::kInt64);
  out.mask = torch::zeros({b, T}, torch::kInt64);
  auto samples = out.samples.accessor<int64_t, 1>();
  auto ids = out.ids.accessor<int64_t, 2>();
  auto mask = out.mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const int64_t sample = order_[static_cast<size_t>(out.first + i)];
    const std::vector<int64_t>& s = samples_[static_cast<size_t>(sample)].ids;
    samples[i] = sample;
    const int64_t n = std::min<int64_t>(T, static_cast<int64_t>(s.size()));
    for (int64_t t = 0; t < n; ++t) {
      ids[i][t] = s[static_cast<size_t>(t)];
      mask[i][t] = 1;
    }
  }
  if (++index_ == batches_per_epoch()) {
    index_ = 0;
    ++epoch_;
  }
  return out;
}

}  // namespace eve::train
