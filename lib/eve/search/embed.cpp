#include "eve/search/embed.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <future>
#include <map>
#include <memory>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/progress.h"
#include "eve/core/sha256.h"
#include "eve/core/signals.h"
#include "eve/core/threads.h"
#include "eve/core/version.h"
#include "eve/io/dtype.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/io/npy.h"
#include "eve/model/bundle.h"
#include "eve/model/retrieval_encoder.h"
#include "eve/model/runtime.h"
#include "eve/search/embed_inputs.h"

#include <dirent.h>

namespace eve::search {
namespace {

using io::ordered_json;

// Why the finished part `part` was not made from `made_from`: "" when it was, else the first
// difference, worded for a message ("no meta file", "model_sha256 was X, now Y").
std::string made_otherwise(const std::string& out, int64_t part, const ordered_json& made_from) {
  const std::string meta = embed_meta_path(out, part);
  if (!io::file_exists(meta)) return "it has no " + meta + " saying how it was made";
  ordered_json m;
  try {
    m = ordered_json::parse(io::read_file(meta));
  } catch (const std::exception&) {
    return meta + " is not valid JSON";
  }
  const ordered_json was = m.is_object() ? m.value("made_from", ordered_json::object()) : ordered_json::object();
  for (const auto& [key, now] : made_from.items()) {
    if (!was.contains(key)) return key + " is not recorded in " + meta;
    if (was[key] != now) return key + " was " + was[key].dump() + ", now " + now.dump();
  }
  for (const auto& [key, v] : was.items())
    if (!made_from.contains(key)) return key + " was " + v.dump() + ", not set now";
  return {};
}

// Which inputs this run embeds and where their rows go. A part is finished when its
// matrix, ids and meta file exist and the meta file says it was made as this run would.
class PartPlan {
 public:
  PartPlan(const EmbedOptions& o, const ordered_json& made_from)
      : o_(o), made_from_(made_from), parts_(o.part_size > 0 || o.shard_count > 1) {}
  bool parts() const { return parts_; }
  // The part of input number i (-1: the single output).
  int64_t part_of(int64_t i) const { return parts_ ? i / o_.part_size : -1; }
  bool ours(int64_t part) const { return !parts_ || part % o_.shard_count == o_.shard_index; }
  bool finished(int64_t part) {
    auto it = finished_.find(part);
    if (it != finished_.end()) return it->second;
    bool done = io::file_exists(embed_output_path(o_.out, part, false)) &&
                io::file_exists(embed_output_path(o_.out, part, true)) &&
                made_otherwise(o_.out, part, made_from_).empty();
    return finished_[part] = done;
  }
  bool wanted(int64_t part) { return ours(part) && !finished(part); }

 private:
  const EmbedOptions& o_;
  const ordered_json& made_from_;
  bool parts_;
  std::map<int64_t, bool> finished_;
};

// One open output part: the matrix streams to disk, the ids wait in memory. A NaN or
// infinity from the model is an error naming the part, row, column and input; the part is
// then not written (earlier parts stay, finished).
class PartWriter {
 public:
  PartWriter(const EmbedOptions& o, const ordered_json& made_from, int64_t part, int64_t cols)
      : o_(o), made_from_(made_from), part_(part), cols_(cols),
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
    ordered_json meta;
    meta["format"] = "eve-embed-meta 1";
    meta["tool"] = version_line("eve-embed");
    meta["modality"] = made_from_.at("modality");
    meta["rows"] = npy_.rows();
    meta["cols"] = cols_;
    meta["dtype"] = o_.half ? "float16" : "float32";
    meta["l2_normalized"] = true;
    meta["bundle"] = o_.model;
    if (part_ >= 0) meta["part"] = part_;
    meta["made_from"] = made_from_;
    io::write_file_atomic(embed_meta_path(o_.out, part_), meta.dump(2) + "\n");
    npy_.finish();  // last: the matrix on disk is what marks the part done
    return npy_.rows();
  }

 private:
  const EmbedOptions& o_;
  const ordered_json& made_from_;
  int64_t part_, cols_;
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
EmbedReport embed_stream(Source& src, const EmbedOptions& o, const ordered_json& made_from, int64_t cols,
                         const char* unit, Start start, Finish finish) {
  PartPlan plan(o, made_from);
  EmbedReport rep;
  if (!plan.parts() && plan.finished(-1)) {
    log::info("embed: {} exists already, made from these inputs, bundle and options; nothing to do",
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
      writer = std::make_unique<PartWriter>(o, made_from, cur.part, cols);
    }
    writer->append(emb, ids);
    progress.add(cur.items.size());
    cur = std::move(next);
    have = have_next;
  }
  close();
  if (!plan.parts() && rep.parts_written == 0) {  // empty input: an empty matrix
    PartWriter(o, made_from, -1, cols).finish();
    rep.parts_written = 1;
  }
  for (int64_t p = 0; plan.parts() && p <= plan.part_of(index > 0 ? index - 1 : 0); ++p)
    if (plan.ours(p) && plan.finished(p)) ++rep.parts_skipped;
  progress.finish(fmt::format("{} rows in {} part(s), {} part(s) already done", rep.rows,
                              rep.parts_written, rep.parts_skipped));
  return rep;
}

// --group-by: the texts' rows summed per group (in float64, so the order of the additions
// hardly matters), then each sum l2-normalised: one row per group, in order of first
// appearance. The classes of a zero-shot run are few, so the sums stay in memory and the
// output is written once at the end.
EmbedReport embed_groups(TextSource& src, const EmbedOptions& o, const ordered_json& made_from, int64_t cols,
                         model::RetrievalEncoder& enc) {
  EmbedReport rep;
  if (PartPlan(o, made_from).finished(-1)) {
    log::info("embed: {} exists already, made from these inputs, bundle and options; nothing to do",
              embed_output_path(o.out, -1, false));
    rep.parts_skipped = 1;
    return rep;
  }
  std::vector<std::string> names;
  std::map<std::string, size_t> index;
  std::vector<torch::Tensor> sums;
  int64_t texts = 0;
  for (bool more = true; more;) {
    signals::throw_if_stopped();
    std::vector<TextItem> batch;
    TextItem item;
    while (static_cast<int>(batch.size()) < o.batch_size && (more = src.next(item))) batch.push_back(std::move(item));
    if (batch.empty()) break;
    std::vector<const std::vector<int64_t>*> toks;
    for (const auto& t : batch) toks.push_back(&t.tokens);
    const torch::Tensor rows = enc.texts(toks).to(torch::kCPU, torch::kDouble);
    for (size_t i = 0; i < batch.size(); ++i) {
      auto [it, fresh] = index.emplace(batch[i].group, names.size());
      if (fresh) {
        names.push_back(batch[i].group);
        sums.push_back(torch::zeros({cols}, torch::kDouble));
      }
      sums[it->second] += rows[static_cast<int64_t>(i)];
    }
    texts += static_cast<int64_t>(batch.size());
  }
  torch::Tensor out = sums.empty() ? torch::empty({0, cols}, torch::kDouble) : torch::stack(sums);
  // A group whose prompts point in opposite directions sums to ~0; PartWriter then reports the
  // non-finite row by name instead of writing it.
  out = (out / out.norm(2, 1, true)).to(torch::kFloat32);
  PartWriter writer(o, made_from, -1, cols);
  writer.append(out, names);
  rep.rows = writer.finish();
  rep.parts_written = 1;
  log::info("embed: {} texts averaged into {} rows by \"{}\"", texts, rep.rows, o.group_by);
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

std::string embed_meta_path(const std::string& out, int64_t part) {
  std::string npy = embed_output_path(out, part, false);
  return npy.substr(0, npy.size() - 4) + ".meta.json";
}

int default_embed_batch(bool texts, bool official) { return texts && official ? 256 : 64; }

namespace {

// The finished outputs already at `out` in the layout this run writes: numbered parts, or
// the single output (-1).
std::vector<int64_t> existing_parts(const std::string& out, bool numbered) {
  std::vector<int64_t> parts;
  const std::string single = embed_output_path(out, -1, false);
  if (!numbered) {
    if (io::file_exists(single) && io::file_exists(embed_output_path(out, -1, true))) parts.push_back(-1);
    return parts;
  }
  const std::string stem = single.substr(0, single.size() - 4);
  const size_t slash = stem.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : stem.substr(0, slash + 1);
  const std::string base = (slash == std::string::npos ? stem : stem.substr(slash + 1)) + "-";
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), &::closedir);
  if (!d) return parts;
  while (const dirent* e = ::readdir(d.get())) {
    const std::string name = e->d_name;
    if (name.size() != base.size() + 9 || name.compare(0, base.size(), base) != 0 ||
        name.compare(name.size() - 4, 4, ".npy") != 0)
      continue;
    const std::string digits = name.substr(base.size(), 5);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const int64_t p = std::stoll(digits);
    if (io::file_exists(embed_output_path(out, p, true))) parts.push_back(p);
  }
  std::sort(parts.begin(), parts.end());
  return parts;
}

// Before any work: finished outputs made from other inputs, another bundle or other options
// are refused (or, with --overwrite, left to be made again).
void check_existing_outputs(const EmbedOptions& o, const ordered_json& made_from) {
  std::vector<std::string> other;
  for (int64_t p : existing_parts(o.out, o.part_size > 0 || o.shard_count > 1)) {
    const std::string why = made_otherwise(o.out, p, made_from);
    if (why.empty()) continue;
    if (!o.overwrite)
      throw UsageError("exists and was not made from these inputs, bundle and options: " + why,
                       embed_output_path(o.out, p, false), {},
                       "pass --overwrite to make it again, or choose another --out");
    other.push_back(embed_output_path(o.out, p, false));
  }
  if (!other.empty())
    log::info("embed: --overwrite: making {} existing output(s) again (first: {})", other.size(), other[0]);
}

}  // namespace

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
  if (!o.group_by.empty()) {
    if (o.texts.empty()) throw UsageError("--group-by averages texts: give --texts");
    if (o.part_size > 0 || o.shard_count > 1)
      throw UsageError("--group-by writes one output: drop --part-size and --shard");
    if (!o.id_field.empty()) throw UsageError("--group-by names the rows by its field: drop --id-field");
  }
  io::prepare_output(o.out);  // a directory named as the output is an error, not a sibling
  io::prepare_output(embed_output_path(o.out, -1, false));
  const std::string device = model::init_runtime(common);
  model::Bundle bundle = model::load_bundle(o.model);
  model::RetrievalEncoder enc(bundle.model, torch::Device(device), o.model);
  const int64_t cols = enc.dim();
  if (o.batch_size == 0) o.batch_size = default_embed_batch(!o.texts.empty(), bundle.config.official());
  if (bundle.config.official())
    log::info("embed: compat official: {}, {} per pass, CLS before the final LayerNorm, {}", 
              o.texts.empty() ? "images" : "texts", o.batch_size, model::inference_routing(bundle.config));

  // Everything that decides the rows' values (see embed.h); the bundle is named by content.
  const bool texts = !o.texts.empty();
  ordered_json made_from;
  made_from["modality"] = texts ? "text" : "image";
  made_from["inputs"] = texts ? ordered_json(o.texts) : ordered_json(o.images);
  if (texts) made_from["id_field"] = o.id_field;
  if (!o.group_by.empty()) made_from["group_by"] = o.group_by;
  made_from["model_sha256"] = sha256_file(o.model + "/model.safetensors");
  if (texts && io::file_exists(o.model + "/tokenizer.model"))
    made_from["tokenizer_sha256"] = sha256_file(o.model + "/tokenizer.model");
  made_from["compat"] = bundle.config.compat;
  made_from["inference_routing"] = model::inference_routing_key(bundle.config);
  made_from["embedding"] = std::string("CLS ") + (bundle.config.official() ? "before" : "after") +
                           " the final LayerNorm, " + (texts ? "itc_text_proj" : "itc_vision_proj") +
                           " head, l2-normalised" +
                           (o.group_by.empty() ? "" : ", summed per group-by value and l2-normalised again");
  if (texts) {
    made_from["max_text_len"] = bundle.config.max_text_len;
  } else {
    made_from["image_res"] = enc.image_res();
    made_from["preprocessing"] = "decoded to RGB, bicubic resize to image_res x image_res (aspect not kept), "
                                 "x / 127.5 - 1";
  }
  made_from["dtype"] = o.half ? "float16" : "float32";
  made_from["part_size"] = o.part_size;
  if (texts && bundle.config.official()) made_from["batch_size"] = o.batch_size;  // outputs depend on it
  check_existing_outputs(o, made_from);

  if (texts) {
    const bool grouped = !o.group_by.empty();
    TextSource src(o.texts, grouped ? o.group_by : o.id_field, bundle.config.vocab_size,
                   grouped ? "--group-by" : "--id-field");
    EmbedReport rep = grouped ? embed_groups(src, o, made_from, cols, enc) : embed_stream<TextSource, TextItem>(
        src, o, made_from, cols, "texts", [](Batch<TextItem>&) {},
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
  EmbedReport r = embed_stream<ImageSources, ImageItem>(src, o, made_from, cols, "img", start, finish);
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
