#include "eve/train/loader.h"

#include <filesystem>
#include <numeric>

#include "eve/core/error.h"
#include "eve/core/rng.h"
#include "eve/image/codec.h"
#include "eve/image/preprocess.h"
#include "eve/io/jsonl.h"

namespace eve::train {

namespace {

// RNG streams (eve::Rng's stream argument) of the loader.
constexpr uint64_t kOrderStream = 0x6f72646572ull;     // "order"
constexpr uint64_t kAugmentStream = 0x6175676dull;     // "augm"

}  // namespace

std::vector<int64_t> parse_token_ids(const io::json& v, const std::string& where, int vocab_size) {
  if (!v.is_array() || v.empty())
    throw Error("ids must be a non-empty list of integers", where);
  std::vector<int64_t> ids;
  ids.reserve(v.size());
  for (const auto& x : v) {
    if (!x.is_number_integer()) throw Error("ids must be a non-empty list of integers", where);
    const int64_t id = x.get<int64_t>();
    if (id < 0 || (vocab_size > 0 && id >= vocab_size))
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                      std::to_string(vocab_size) + ")",
                  where, {}, "encode the records with the tokenizer given by --tokenizer");
    ids.push_back(id);
  }
  return ids;
}

Error empty_split(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return Error("the split has no records (the file is empty)", path, {},
               "check the split's record count in " + (dir.empty() ? std::string(".") : dir) +
                   "/manifest.json (\"splits\") and that eve-tokenize encode was given the right file");
}

std::vector<Sample> read_pair_samples(const std::string& dir, const std::string& split,
                                          int vocab_size) {
  const std::string path = dir + "/" + split + ".jsonl";
  io::JsonlReader reader(path);
  std::vector<Sample> out;
  io::json r;
  while (reader.next(r)) {
    const std::string where = reader.where();
    auto img = r.find("image");
    if (img == r.end() || !img->is_string())
      throw Error("record has no string field \"image\"", where, {},
                  "pre-training reads caption pairs written by eve-prep pairs");
    if (r.contains("ids")) {
      out.push_back({{img->get<std::string>()}, parse_token_ids(r["ids"], where, vocab_size), where});
    } else if (r.contains("ids_list") && r["ids_list"].is_array()) {
      for (const auto& ids : r["ids_list"])
        out.push_back({{img->get<std::string>()}, parse_token_ids(ids, where, vocab_size), where});
    } else {
      throw Error("record has no token ids (\"ids\" or \"ids_list\")", where, {},
                  "run the records through eve-tokenize encode first");
    }
  }
  if (out.empty()) throw empty_split(path);
  return out;
}

std::vector<int64_t> epoch_order(int64_t samples, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(samples));
  std::iota(order.begin(), order.end(), 0);
  Rng rng(seed, kOrderStream, static_cast<uint64_t>(epoch));
  rng.shuffle(order);
  return order;
}

void check_batching(const LoaderOptions& o, size_t samples, const std::string& unit) {
  if (o.world < 1 || o.rank < 0 || o.rank >= o.world) throw Error("loader: bad rank/world");
  if (o.global_batch < o.world || o.global_batch % o.world != 0)
    throw UsageError("the batch (" + std::to_string(o.global_batch) +
                     " samples per micro-batch) must be a multiple of the world size (" +
                     std::to_string(o.world) + ")");
  if (static_cast<int64_t>(samples) < o.global_batch)
    throw UsageError("the dataset has " + std::to_string(samples) + " " + unit +
                     ", fewer than one batch of " + std::to_string(o.global_batch));
}

Loader::Loader(std::vector<Sample> samples, LoaderOptions options)
    : samples_(std::move(samples)), o_(std::move(options)), store_(o_.dir) {
  check_batching(o_, samples_.size(), "samples");
  if (!samples_.empty()) images_per_sample_ = samples_.front().images.size();
  for (const auto& s : samples_) {
    if (s.images.size() != images_per_sample_ || s.images.empty())
      throw Error("every sample needs " + std::to_string(images_per_sample_) + " image(s), this one has " +
                      std::to_string(s.images.size()),
                  s.where);
    for (const auto& key : s.images)
      if (!store_.contains(key))
        throw Error("image \"" + key + "\" is not in the image store of " + o_.dir, s.where);
  }
  pool_ = std::make_unique<ThreadPool>(std::max(1, o_.threads));
}

Loader::~Loader() {
  for (auto& p : pending_)
    for (auto& f : p.items)
      if (f.valid()) f.wait();
}

int64_t Loader::batches_per_epoch() const {
  return static_cast<int64_t>(samples_.size()) / o_.global_batch;
}

void Loader::seek(int64_t epoch, int64_t index) {
  for (auto& p : pending_)
    for (auto& f : p.items)
      if (f.valid()) f.wait();
  pending_.clear();
  next_epoch_ = epoch;
  next_index_ = index;
}

Loader::Decoded Loader::decode(int64_t epoch, int64_t position, int64_t sample) const {
  const Sample& s = samples_[static_cast<size_t>(sample)];
  const size_t plane = static_cast<size_t>(3) * o_.augment.res * o_.augment.res;
  Decoded d;
  d.sample = sample;
  d.pixels.resize(plane * s.images.size());
  for (size_t k = 0; k < s.images.size(); ++k) {
    image::Image img;
    try {
      img = image::decode(store_.read(s.images[k]));
    } catch (const image::ImageError& e) {
      throw Error(std::string("image \"") + s.images[k] + "\" cannot be decoded (" + e.what() + ")", s.where);
    }
    if (epoch < 0) {
      image::eval_transform(img, o_.augment.res, d.pixels.data() + k * plane);
      continue;
    }
    // Each image of a sample gets its own draw: stream (epoch, image), index position.
    Rng rng(o_.seed, kAugmentStream + static_cast<uint64_t>(epoch) + (static_cast<uint64_t>(k) << 40),
                  static_cast<uint64_t>(position));
    image::to_chw_normalized(image::augment(img, o_.augment, rng), d.pixels.data() + k * plane);
  }
  d.ids = s.ids;
  if (static_cast<int>(d.ids.size()) > o_.max_text_len) d.ids.resize(static_cast<size_t>(o_.max_text_len));
  return d;
}

void Loader::fill() {
  const int64_t local = o_.global_batch / o_.world;
  while (static_cast<int>(pending_.size()) < std::max(1, o_.prefetch)) {
    if (next_epoch_ != order_epoch_) {
      order_ = epoch_order(samples(), o_.seed, next_epoch_);
      order_epoch_ = next_epoch_;
    }
    Pending p{next_epoch_, next_index_, {}};
    const int64_t start = slice_start(next_index_, o_.global_batch, o_.rank, o_.world);
    for (int64_t i = 0; i < local; ++i) {
      const int64_t pos = start + i, sample = order_[static_cast<size_t>(pos)], epoch = next_epoch_;
      p.items.push_back(pool_->submit([this, epoch, pos, sample] { return decode(epoch, pos, sample); }));
    }
    pending_.push_back(std::move(p));
    if (++next_index_ == batches_per_epoch()) {
      next_index_ = 0;
      ++next_epoch_;
    }
  }
}

Batch Loader::collect(Pending& p) {
  const int64_t b = static_cast<int64_t>(p.items.size()), R = o_.augment.res, T = o_.max_text_len;
  const int64_t plane = 3 * R * R;
  Batch out;
  out.epoch = p.epoch;
  out.index = p.index;
  out.images = torch::empty({b, 3, R, R});
  if (images_per_sample_ > 1) out.images2 = torch::empty({b, 3, R, R});
  out.samples = torch::empty({b}, torch::kInt64);
  out.ids = torch::full({b, T}, static_cast<int64_t>(o_.pad_id), torch::kInt64);
  out.mask = torch::zeros({b, T}, torch::kInt64);
  for (auto& f : p.items) f.wait();  // every task done before any error propagates
  float* img = out.images.data_ptr<float>();
  float* img2 = out.images2.defined() ? out.images2.data_ptr<float>() : nullptr;
  int64_t* ids = out.ids.data_ptr<int64_t>();
  int64_t* mask = out.mask.data_ptr<int64_t>();
  for (int64_t i = 0; i < b; ++i) {
    Decoded d = p.items[static_cast<size_t>(i)].get();
    std::copy(d.pixels.begin(), d.pixels.begin() + plane, img + i * plane);
    if (img2) std::copy(d.pixels.begin() + plane, d.pixels.begin() + 2 * plane, img2 + i * plane);
    out.samples[i] = d.sample;
    for (size_t t = 0; t < d.ids.size(); ++t) {
      ids[i * T + static_cast<int64_t>(t)] = d.ids[t];
      mask[i * T + static_cast<int64_t>(t)] = 1;
    }
  }
  return out;
}

Batch Loader::next() {
  fill();
  Pending p = std::move(pending_.front());
  pending_.pop_front();
  Batch out = collect(p);
  out.first = slice_start(p.index, o_.global_batch, o_.rank, o_.world);
  fill();  // keep the queue full while the model works on this batch
  return out;
}

Batch Loader::load(const std::vector<int64_t>& samples) {
  Pending p{-1, 0, {}};
  for (int64_t sample : samples) {
    if (sample < 0 || sample >= this->samples()) throw Error("loader: sample index out of range");
    p.items.push_back(pool_->submit([this, sample] { return decode(-1, 0, sample); }));
  }
  return collect(p);
}

}  // namespace eve::train
