#include "eve/search/embed.h"

#include <torch/torch.h>

#include <cstdio>
#include <future>
#include <map>
#include <memory>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/progress.h"
#include "eve/core/signals.h"
#include "eve/core/threads.h"
#include "eve/io/dtype.h"
#include "eve/io/file.h"
#include "eve/io/npy.h"
#include "eve/model/bundle.h"
#include "eve/model/retrieval_encoder.h"
#include "eve/model/runtime.h"
#include "eve/search/embed_inputs.h"

namespace eve::search {
namespace {

// Which inputs this run embeds and where their rows go.
class PartPlan {
 public:
  explicit PartPlan(const EmbedOptions& o)
      : o_(o), parts_(o.part_size > 0 || o.shard_count > 1) {}
  bool parts() const { return parts_; }
  // The part of input number i (-1: the single output).
  int64_t part_of(int64_t i) const { return parts_ ? i / o_.part_size : -1; }
  bool ours(int64_t part) const { return !parts_ || part % o_.shard_count == o_.shard_index; }
  bool finished(int64_t part) {
    auto it = finished_.find(part);
    if (it != finished_.end()) return it->second;
    bool done = io::file_exists(embed_output_path(o_.out, part, false)) &&
                io::file_exists(embed_output_path(o_.out, part, true));
    return finished_[part] = done;
  }
  bool wanted(int64_t part) { return ours(part) && !finished(part); }

 private:
  const EmbedOptions& o_;
  bool parts_;
  std::map<int64_t, bool> finished_;
};

// One open output part: the matrix streams to disk, the ids wait in memory. A NaN or
// infinity from the model is an error naming the part, row, column and input; the part is
// then not written (earlier parts stay, finished).
class PartWriter {
 public:
  PartWriter(const EmbedOptions& o, int64_t part, int64_t cols)
      : o_(o), part_(part),
        npy_(embed_output_path(o.out, part, false), o.half ? io::DType::f16 : io::DType::f32, cols) {}
  int64_t part() const { return part_; }
  void append(const torch::Tensor& rows, const std::vector<std::string>& ids) {
    torch::Tensor t = (o_.half ? rows.to(torch::kHalf) : rows).contiguous();
    const io::DType dtype = o_.half ? io::DType::f16 : io::DType::f32;
    const int64_t at = io::first_non_finite(dtype, t.data_ptr(), static_cast<size_t>(t.numel()));
    if (at >= 0) {
      const int64_t row = at / t.size(1), col = at % t.size(1);
      throw Error(io::non_finite_message("embedding", npy_.rows() + row, col,
                                         t[row][col].item<float>()) +
                      " for input " + ids[static_cast<size_t>(row)],
                  embed_output_path(o_.out, part_, false), {},
                  "the model " + o_.model + " gives it; this part is not written");
    }
    npy_.append_rows(t.data_ptr(), static_cast<size_t>(t.size(0)));
    for (const auto& id : ids) {
      ids_ += id;
      ids_ += '\n';
    }
  }
  int64_t finish() {
    io::write_file_atomic(embed_output_path(o_.out, part_, true), ids_);
    npy_.finish();
    return npy_.rows();
  }

 private:
  const EmbedOptions& o_;
  int64_t part_;
  io::NpyRowWriter npy_;
  std::string ids_;
};

// Pool jobs that write into a batch: waited for before the batch goes away, also when an
// error unwinds the stack.
struct Jobs {
  std::vector<std::future<std::string>> v;
  Jobs() = default;
  Jobs(Jobs&&) = default;
  Jobs& operator=(Jobs&& other) {
    wait();
    v = std::move(other.v);
    return *this;
  }
  ~Jobs() { wait(); }
  void wait() {
    for (auto& j : v)
      if (j.valid()) j.wait();
  }
};

// A batch of inputs of one part, on its way through decode and the model.
template <class Item>
struct Batch {
  int64_t part = 0;
  std::vector<Item> items;
  torch::Tensor pixels;  // images: [n,3,R,R]
  Jobs jobs;             // images: "" or the failure, per item
};

// Reads the next batch of wanted inputs (never crossing a part); inputs of other shards'
// or finished parts are passed over without their data.
template <class Source, class Item>
bool read_batch(Source& src, PartPlan& plan, int64_t& index, int batch_size, Batch<Item>& b) {
  b = Batch<Item>();
  Item item;
  while (static_cast<int>(b.items.size()) < batch_size) {
    const int64_t part = plan.part_of(index);
    if (!b.items.empty() && part != b.part) break;
    const bool want = plan.wanted(part);
    bool got;
    if constexpr (std::is_same_v<Item, ImageItem>) got = src.next(item, want);
    else got = src.next(item);
    if (!got) break;
    ++index;
    if (!want) continue;
    b.part = part;
    b.items.push_back(std::move(item));
  }
  return !b.items.empty();
}

// The driver shared by images and texts: `start` launches a batch's preparation, `finish`
// waits for it and returns the embeddings of its good rows plus their ids.
template <class Source, class Item, class Start, class Finish>
EmbedReport embed_stream(Source& src, const EmbedOptions& o, int64_t cols, const char* unit,
                         Start start, Finish finish) {
  PartPlan plan(o);
  EmbedReport rep;
  if (!plan.parts() && plan.finished(-1)) {
    log::info("embed: {} and its ids exist already; nothing to do (remove them to redo)",
              embed_output_path(o.out, -1, false));
    rep.parts_skipped = 1;
    return rep;
  }
  Progress progress("embed", 0, unit);
  std::unique_ptr<PartWriter> writer;
  auto close = [&] {
    if (!writer) return;
    rep.rows += writer->finish();
    ++rep.parts_written;
    writer.reset();
  };
  int64_t index = 0;
  Batch<Item> cur, next;
  bool have = read_batch(src, plan, index, o.batch_size, cur);
  if (have) start(cur);
  while (have) {
    signals::throw_if_stopped();
    bool have_next = read_batch(src, plan, index, o.batch_size, next);
    if (have_next) start(next);  // prepared on the pool while the model runs on `cur`
    std::vector<std::string> ids;
    torch::Tensor emb = finish(cur, ids);
    if (!writer || writer->part() != cur.part) {
      close();
      writer = std::make_unique<PartWriter>(o, cur.part, cols);
    }
    writer->append(emb, ids);
    progress.add(cur.items.size());
    cur = std::move(next);
    have = have_next;
  }
  close();
  if (!plan.parts() && rep.parts_written == 0) {  // empty input: an empty matrix
    PartWriter(o, -1, cols).finish();
    rep.parts_written = 1;
  }
  for (int64_t p = 0; plan.parts() && p <= plan.part_of(index > 0 ? index - 1 : 0); ++p)
    if (plan.ours(p) && plan.finished(p)) ++rep.parts_skipped;
  progress.finish(fmt::format("{} rows in {} part(s), {} part(s) already done", rep.rows,
                              rep.parts_written, rep.parts_skipped));
  return rep;
}

}  // namespace

void parse_shard(const std::string& text, int& index, int& count) {
  auto slash = text.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    size_t a = 0, b = 0;
    index = std::stoi(text.substr(0, slash), &a);
    count = std::stoi(text.substr(slash + 1), &b);
    if (a != slash || b != text.size() - slash - 1) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw UsageError("--shard must be I/N, e.g. 0/4, not \"" + text + "\"");
  }
  if (count < 1 || index < 0 || index >= count)
    throw UsageError("--shard " + text + ": need 0 <= I < N");
}

std::string embed_output_path(const std::string& out, int64_t part, bool ids) {
  std::string stem = out;
  if (stem.size() > 4 && stem.compare(stem.size() - 4, 4, ".npy") == 0) stem.resize(stem.size() - 4);
  if (part >= 0) {
    char num[32];
    std::snprintf(num, sizeof num, "-%05lld", static_cast<long long>(part));
    stem += num;
  }
  return stem + (ids ? ".ids.jsonl" : ".npy");
}

int default_embed_batch(bool texts, bool official) { return texts && official ? 256 : 64; }

EmbedReport run_embed(const EmbedOptions& opts, const cli::CommonOptions& common) {
  EmbedOptions o = opts;
  if (o.model.empty()) throw UsageError("--model is required");
  if (o.images.empty() == o.texts.empty()) throw UsageError("give either --images or --texts");
  if (o.out.empty() || o.out == "-")
    throw UsageError("--out must name a file", {}, {}, "embeddings are .npy files, not a stream");
  if (o.batch_size < 0) throw UsageError("--batch-size must be at least 1");
  if (o.part_size < 0) throw UsageError("--part-size must not be negative");
  if (o.shard_count > 1 && o.part_size == 0)
    throw UsageError("--shard needs --part-size", {}, {}, "shards are made of whole parts");
  io::prepare_output(o.out);  // a directory named as the output is an error, not a sibling
  io::prepare_output(embed_output_path(o.out, -1, false));
  const std::string device = nn::init_runtime(common);
  model::Bundle bundle = model::load_bundle(o.model);
  model::RetrievalEncoder enc(bundle.model, torch::Device(device), o.model);
  const int64_t cols = enc.dim();
  if (o.batch_size == 0) o.batch_size = default_embed_batch(!o.texts.empty(), bundle.config.official());
  if (bundle.config.official())
    log::info("embed: compat official: {}, {} per pass, CLS before the final LayerNorm, {}", 
              o.texts.empty() ? "images" : "texts", o.batch_size, model::inference_routing(bundle.config));

  if (!o.texts.empty()) {
    TextSource src(o.texts, o.id_field, bundle.config.vocab_size);
    EmbedReport rep = embed_stream<TextSource, TextItem>(
        src, o, cols, "texts", [](Batch<TextItem>&) {},
        [&](Batch<TextItem>& b, std::vector<std::string>& ids) {
          std::vector<const std::vector<int64_t>*> toks;
          for (const auto& t : b.items) {
            toks.push_back(&t.tokens);
            ids.push_back(t.id);
          }
          return enc.texts(toks);
        });
    rep.truncated = enc.truncated();
    if (rep.truncated)
      log::warn("embed: {} texts were longer than the model's {} tokens and were cut (last id kept)",
                rep.truncated, bundle.config.max_text_len);
    return rep;
  }

  const int res = enc.image_res();
  const int64_t plane = 3 * int64_t{res} * res;
  ThreadPool pool(resolve_threads(common.threads));
  ImageSources src(o.images);
  EmbedReport rep;
  int64_t seen = 0, logged = 0;
  auto start = [&](Batch<ImageItem>& b) {
    const int64_t n = static_cast<int64_t>(b.items.size());
    b.pixels = torch::empty({n, 3, res, res}, torch::kFloat32);
    float* base = b.pixels.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      const ImageItem* it = &b.items[i];
      float* out = base + i * plane;
      b.jobs.v.push_back(pool.submit([it, res, out] { return load_image(*it, res, out); }));
    }
  };
  auto finish = [&](Batch<ImageItem>& b, std::vector<std::string>& ids) {
    std::vector<int64_t> good;
    for (size_t i = 0; i < b.jobs.v.size(); ++i) {
      std::string err = b.jobs.v[i].get();
      ++seen;
      if (err.empty()) {
        good.push_back(static_cast<int64_t>(i));
        ids.push_back(b.items[i].id);
        continue;
      }
      ++rep.bad;
      ++rep.bad_by_reason[err.substr(0, err.find(':'))];
      if (logged++ < 20) log::warn("embed: skipped {}: {}", b.items[i].name, err);
    }
    for (auto& it : b.items) it.bytes = std::string();  // tar member bytes are done with
    if (good.empty()) return torch::empty({0, cols}, torch::kFloat32);
    torch::Tensor px = static_cast<int64_t>(good.size()) == b.pixels.size(0)
                           ? b.pixels
                           : b.pixels.index_select(0, torch::tensor(good, torch::kLong));
    return enc.images(px);
  };
  EmbedReport r = embed_stream<ImageSources, ImageItem>(src, o, cols, "img", start, finish);
  r.bad = rep.bad;
  r.bad_by_reason = rep.bad_by_reason;
  if (r.bad > 0) {
    std::string summary;
    for (const auto& [reason, n] : r.bad_by_reason)
      summary += fmt::format("{}{} {}", summary.empty() ? "" : ", ", n, reason);
    log::warn("embed: skipped {} of {} images ({}); the .ids.jsonl files list the rows written", r.bad,
              seen, summary);
    double frac = static_cast<double>(r.bad) / static_cast<double>(seen);
    if (frac > o.max_bad)
      throw TooManyBadInputs(fmt::format("{} of {} images were bad ({:.4f} > --max-bad {})", r.bad, seen,
                                         frac, o.max_bad));
  }
  return r;
}

}  // namespace eve::search
