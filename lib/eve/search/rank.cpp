#include "eve/search/rank.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/progress.h"
#include "eve/core/sha256.h"
#include "eve/core/threads.h"
#include "eve/core/version.h"
#include "eve/io/dtype.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/io/npy.h"
#include "eve/io/rank_file.h"
#include "eve/model/bundle.h"
#include "eve/model/itm_rerank.h"
#include "eve/model/retrieval_encoder.h"
#include "eve/model/runtime.h"
#include "eve/search/embed.h"
#include "eve/search/embed_inputs.h"
#include "eve/search/topk.h"

#include <unordered_map>

namespace eve::search {
namespace {

// Several 2-D .npy parts seen as one matrix; f32 rows are copied straight from the file
// bytes, other dtypes converted on read. Every value must be finite: a NaN or infinity is
// an error naming the part, row and column (one vectorised pass per part as it is loaded).
class NpyParts : public RowSource {
 public:
  explicit NpyParts(const std::vector<std::string>& paths) : paths_(paths) {
    for (const auto& p : paths) {
      parts_.push_back(io::read_npy(p));
      const auto& a = parts_.back();
      if (a.shape.size() != 2)
        throw Error("expected a 2-D matrix (rows, dim), got " + std::to_string(a.shape.size()) +
                        " dimensions",
                    p);
      if (a.dtype == io::DType::u8)
        throw Error("embeddings must be float32, float16, bfloat16 or integers, not uint8", p);
      if (parts_.size() == 1) cols_ = a.shape[1];
      if (a.shape[1] != cols_)
        throw Error("has " + std::to_string(a.shape[1]) + " columns but " + paths[0] + " has " +
                        std::to_string(cols_),
                    p);
      io::check_finite(a.dtype, a.data.data(), a.shape[0], a.shape[1], "value", p,
                       "embeddings must be finite numbers");
      starts_.push_back(rows_);
      rows_ += a.shape[0];
    }
  }
  // "FILE row R": where row `row` of the whole matrix lives.
  std::string locate(int64_t row) const {
    size_t part = std::upper_bound(starts_.begin(), starts_.end(), row) - starts_.begin() - 1;
    return paths_[part] + " row " + std::to_string(row - starts_[part]);
  }
  int64_t rows() const override { return rows_; }
  int64_t cols() const override { return cols_; }
  // float32 rows within one part are used where they lie; other dtypes are converted by
  // read, a tile at a time, so no float32 copy of a whole matrix is ever made.
  const float* view(int64_t begin, int64_t n) const override {
    size_t part = std::upper_bound(starts_.begin(), starts_.end(), begin) - starts_.begin() - 1;
    const auto& a = parts_[part];
    if (a.dtype != io::DType::f32 || begin + n > starts_[part] + a.shape[0]) return nullptr;
    return reinterpret_cast<const float*>(a.data.data()) + (begin - starts_[part]) * cols_;
  }
  void read(int64_t begin, int64_t n, float* out) const override {
    while (n > 0) {
      size_t part = std::upper_bound(starts_.begin(), starts_.end(), begin) - starts_.begin() - 1;
      const auto& a = parts_[part];
      int64_t local = begin - starts_[part];
      int64_t take = std::min(n, a.shape[0] - local);
      size_t isz = io::dtype_size(a.dtype);
      const char* src = a.data.data() + static_cast<size_t>(local * cols_) * isz;
      io::convert_to_f32(a.dtype, src, static_cast<size_t>(take * cols_), out);
      out += take * cols_;
      begin += take;
      n -= take;
    }
  }

 private:
  std::vector<std::string> paths_;
  std::vector<io::NpyArray> parts_;
  std::vector<int64_t> starts_;
  int64_t rows_ = 0, cols_ = 0;
};

// Row ids as JSON text, in row order: each line of an .ids.jsonl is an object with "id"
// or a bare JSON value. Without ids files the row number is the id.
std::vector<std::string> load_ids(const std::vector<std::string>& npy_paths,
                                  std::vector<std::string> ids_paths, int64_t rows,
                                  const char* what) {
  bool explicit_ids = !ids_paths.empty();
  if (!explicit_ids) {
    for (const auto& p : npy_paths) {
      std::string ip = default_ids_path(p);
      if (!io::file_exists(ip)) {
        if (!ids_paths.empty())
          throw Error("ids file missing while other parts have one", ip);
        continue;
      }
      ids_paths.push_back(ip);
    }
    if (!ids_paths.empty() && ids_paths.size() != npy_paths.size())
      throw Error(std::string("some ") + what + " parts have no .ids.jsonl beside them", npy_paths[0]);
  }
  std::vector<std::string> ids;
  if (ids_paths.empty()) {
    ids.reserve(rows);
    for (int64_t i = 0; i < rows; ++i) ids.push_back(std::to_string(i));
    return ids;
  }
  for (const auto& p : ids_paths) {
    io::LineReader lines(p);
    std::string line;
    while (lines.next(line)) {
      if (line.find_first_not_of(" \t") == std::string::npos)
        throw Error("empty line in an ids file", p, std::to_string(lines.line_number()));
      auto v = io::parse_json(line, p, std::to_string(lines.line_number()));
      if (v.is_object()) {
        if (!v.contains("id"))
          throw Error("object without \"id\"", p, std::to_string(lines.line_number()));
        v = v["id"];
      }
      ids.push_back(v.dump());
    }
  }
  if (static_cast<int64_t>(ids.size()) != rows)
    throw Error(std::string("the ") + what + " ids files list " + std::to_string(ids.size()) +
                    " ids but the matrices have " + std::to_string(rows) + " rows",
                ids_paths[0]);
  return ids;
}

// Finite embeddings can still give a score that is not: an inner product beyond float32's
// range, or a re-ranking model that outputs NaN. Such a score is an error, never a bare
// nan/inf in the ranks (no JSON reader takes them) or a NaN in --scores-out.
[[noreturn]] void throw_score(const NpyParts& q, const NpyParts& g, int64_t qi, int64_t gi, float score,
                              const std::string& model) {
  const std::string why = model.empty()
      ? "the inner product of " + q.locate(qi) + " and " + g.locate(gi) + " is beyond float32's range"
      : "the ITM match logit of the model " + model + " for " + q.locate(qi) + " and " + g.locate(gi);
  throw Error(io::non_finite_message("score", qi, gi, score) + ": " + why);
}

void write_scores(const NpyParts& q, const NpyParts& g, const RankOptions& opts) {
  int64_t cells = q.rows() * g.rows();
  if (cells > opts.max_scores)
    throw UsageError("--scores-out would hold " + std::to_string(cells) + " scores", {}, {},
                     "it is meant for evaluation-sized sets; rank with -k instead");
  torch::NoGradGuard no_grad;
  auto gt = torch::empty({g.rows(), g.cols()}, torch::kFloat32);
  g.read(0, g.rows(), gt.data_ptr<float>());
  io::NpyRowWriter w(opts.scores_out, io::DType::f32, g.rows());
  const int64_t qb = kQueryTile;
  for (int64_t q0 = 0; q0 < q.rows(); q0 += qb) {
    int64_t nb = std::min(qb, q.rows() - q0);
    auto qt = torch::empty({nb, q.cols()}, torch::kFloat32);
    q.read(q0, nb, qt.data_ptr<float>());
    auto s = torch::mm(qt, gt.t()).contiguous();
    if (!torch::isfinite(s).all().item<bool>()) {
      const int64_t at = torch::logical_not(torch::isfinite(s)).flatten().nonzero()[0].item<int64_t>();
      throw_score(q, g, q0 + at / g.rows(), at % g.rows(), s.data_ptr<float>()[at], {});
    }
    w.append_rows(s.data_ptr<float>(), static_cast<size_t>(nb));
  }
  w.finish();
}

// Re-scores candidate lists with the ITM head of the fusion pass (RankOptions::rerank). The
// re-ranker's image and text rows are the query and gallery rows, looked up by their ids
// among the images of --images and the texts of --texts.
class RankReranker : public model::ItmRows {
 public:
  RankReranker(const RankOptions& o, const std::string& device, const NpyParts& queries,
               const NpyParts& gallery, const std::vector<std::string>& qids,
               const std::vector<std::string>& gids, int threads)
      : o_(o), queries_(queries), gallery_(gallery), qids_(qids), gids_(gids),
        pool_(resolve_threads(threads)) {
    model::Bundle b = model::load_bundle(o.model);
    enc_ = std::make_unique<model::RetrievalEncoder>(b.model, torch::Device(device), o.model, true);
    itm_ = std::make_unique<model::ItmReranker>(*enc_, *this);
    sources_ = std::make_unique<ImageSources>(o.images);  // owns the stores items point into
    ImageItem it;
    while (sources_->next(it)) {
      std::string id = it.id;
      images_.emplace(std::move(id), std::move(it));
    }
    TextSource ts(o.texts, o.id_field, b.config.vocab_size);
    TextItem t;
    while (ts.next(t)) texts_.emplace(t.id, std::move(t.tokens));
    batch_ = o.batch_size > 0 ? o.batch_size : b.config.official() ? o.k_test : 64;
    if (qids.empty() || gids.empty()) return;
    const bool qi = images_.count(qids[0]), qt = texts_.count(qids[0]);
    const bool gi = images_.count(gids[0]), gt = texts_.count(gids[0]);
    if (qi && gt) image_queries_ = true;
    else if (qt && gi) image_queries_ = false;
    else
      throw Error("query " + qids[0] + " and gallery row " + gids[0] +
                      " are not an image of --images and a text of --texts (either way round)",
                  {}, {}, "give the inputs the embeddings were made from");
    log::info("rerank: {} queries by the ITM head, top {} of each ({} images, {} texts), {} pairs per "
              "pass, {}",
              image_queries_ ? "image" : "text", o.k_test, images_.size(), texts_.size(), batch_,
              model::inference_routing(b.config));
  }

  int64_t truncated() const { return enc_->truncated(); }

  // Re-orders `hits` of query q by the match logit and keeps the best k. Each query's hits
  // are scored on their own, batch_ at a time in inner-product order, so a compat official
  // model sees the passes the released evaluation makes.
  void rerank(int64_t q, std::vector<Hit>& hits, float* score_row) {
    const int64_t n = static_cast<int64_t>(hits.size());
    std::vector<int64_t> cand(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) cand[i] = hits[i].index;
    torch::Tensor s = itm_->query(image_queries_, q, cand, batch_);
    const float* logit = s.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(logit[i])) throw_score(queries_, gallery_, q, hits[i].index, logit[i], o_.model);
      hits[i].score = logit[i];
      if (score_row) score_row[hits[i].index] = logit[i];
    }
    std::stable_sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.score > b.score; });
    if (static_cast<int64_t>(hits.size()) > o_.k) hits.resize(o_.k);
  }

  // Image rows are query rows when the queries are images, gallery rows otherwise; text
  // rows the other side.
  torch::Tensor pixels(const std::vector<int64_t>& rows) override {
    const auto& ids = image_queries_ ? qids_ : gids_;
    const int res = enc_->image_res();
    const int64_t plane = 3 * int64_t{res} * res;
    torch::Tensor px = torch::empty({static_cast<int64_t>(rows.size()), 3, res, res});
    float* base = px.data_ptr<float>();
    parallel_for(pool_, rows.size(), [&](size_t i) { load(ids[rows[i]], base + i * plane); });
    return px;
  }
  const std::vector<int64_t>& tokens(int64_t row) override {
    return text((image_queries_ ? gids_ : qids_)[row]);
  }

 private:
  void load(const std::string& id, float* out) {
    auto it = images_.find(id);
    if (it == images_.end())
      throw Error("image " + id + " is not among the images of --images", o_.images[0]);
    std::string err = load_image(it->second, enc_->image_res(), out);
    if (!err.empty()) throw Error("cannot use image " + id + ": " + err, it->second.name);
  }
  const std::vector<int64_t>& text(const std::string& id) {
    auto it = texts_.find(id);
    if (it == texts_.end()) throw Error("text " + id + " is not among the texts of --texts", o_.texts);
    return it->second;
  }

  const RankOptions& o_;
  const NpyParts& queries_;
  const NpyParts& gallery_;
  const std::vector<std::string>& qids_;
  const std::vector<std::string>& gids_;
  ThreadPool pool_;
  std::unique_ptr<model::RetrievalEncoder> enc_;
  std::unique_ptr<model::ItmReranker> itm_;
  std::unique_ptr<ImageSources> sources_;
  std::unordered_map<std::string, ImageItem> images_;
  std::unordered_map<std::string, std::vector<int64_t>> texts_;
  bool image_queries_ = true;
  int64_t batch_ = 64;
};

// The largest number of rows that share one id (1 when ids are distinct).
int most_rows_per_id(const std::vector<std::string>& ids) {
  std::unordered_map<std::string_view, int> count;
  int most = 0;
  for (const auto& id : ids) most = std::max(most, ++count[id]);
  return most;
}

}  // namespace

std::string default_ids_path(const std::string& npy_path) {
  std::string stem = npy_path;
  if (stem.size() > 4 && stem.compare(stem.size() - 4, 4, ".npy") == 0) stem.resize(stem.size() - 4);
  return stem + ".ids.jsonl";
}

// The eve-embed meta file of each part ("null" where a part has none).
std::vector<io::ordered_json> read_metas(const std::vector<std::string>& parts) {
  std::vector<io::ordered_json> out;
  for (const auto& p : parts) {
    const std::string path = embed_meta_path(p, -1);
    if (!io::file_exists(path)) {
      out.emplace_back(nullptr);
      continue;
    }
    try {
      out.push_back(io::ordered_json::parse(io::read_file(path)));
    } catch (const std::exception& e) {
      throw Error(std::string("not a valid meta file: ") + describe_exception(e), path, {},
                  "eve-embed writes it beside each part; remove it to rank the part as it is");
    }
    if (!out.back().is_object() || !out.back().contains("made_from") || !out.back()["made_from"].is_object())
      throw Error("not an eve-embed meta file (no \"made_from\")", path);
  }
  return out;
}

// Queries and gallery must come from one embedding space: the same bundle weights and
// compat mode, and for images the same resolution. Refused (or, with --allow-mixed, a
// warning) naming both files and what differs.
void check_one_space(const RankOptions& o, const std::vector<io::ordered_json>& qm,
                     const std::vector<io::ordered_json>& gm) {
  std::vector<std::pair<std::string, const io::ordered_json*>> seen;
  int missing = 0;
  for (int side = 0; side < 2; ++side) {
    const auto& parts = side == 0 ? o.queries : o.gallery;
    const auto& metas = side == 0 ? qm : gm;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (metas[i].is_null()) {
        ++missing;
        continue;
      }
      seen.emplace_back(embed_meta_path(parts[i], -1), &metas[i]["made_from"]);
    }
  }
  if (missing > 0)
    log::info("rank: {} of {} parts have no eve-embed meta file (made by another tool?); they are ranked as "
              "they are, unchecked", missing, o.queries.size() + o.gallery.size());
  for (size_t i = 1; i < seen.size(); ++i) {
    const auto& [path, f] = seen[i];
    const auto& [first_path, first] = seen[0];
    std::string diff;
    for (const char* key : {"model_sha256", "compat"})
      if (f->value(key, io::ordered_json()) != first->value(key, io::ordered_json()))
        diff = std::string(key) + " " + first->value(key, io::ordered_json()).dump() + " vs " +
               f->value(key, io::ordered_json()).dump();
    if (diff.empty() && f->value("modality", "") == "image")
      for (size_t j = 0; j < i && diff.empty(); ++j)
        if (seen[j].second->value("modality", "") == "image" &&
            seen[j].second->value("image_res", 0) != f->value("image_res", 0))
          diff = "image_res " + seen[j].second->value("image_res", io::ordered_json()).dump() + " (" +
                 seen[j].first + ") vs " + f->value("image_res", io::ordered_json()).dump();
    if (diff.empty()) continue;
    const std::string msg = first_path + " and " + path + " describe embeddings of different models: " + diff;
    if (!o.allow_mixed)
      throw Error(msg, {}, {}, "rank embeddings of one bundle against each other, or pass --allow-mixed");
    log::warn("rank: {}; ranked anyway (--allow-mixed)", msg);
    return;
  }
}

// "<out without .jsonl>.meta.json": what a ranks file holds and what it was made from.
void write_rank_meta(const RankOptions& o, const std::vector<io::ordered_json>& qm,
                     const std::vector<io::ordered_json>& gm, int64_t query_rows, int64_t gallery_rows) {
  auto fingerprints = [](const std::vector<io::ordered_json>& metas) {
    io::ordered_json a = io::ordered_json::array();
    for (const auto& m : metas)
      a.push_back(m.is_null() ? io::ordered_json(nullptr) : m["made_from"].value("model_sha256", io::ordered_json()));
    return a;
  };
  io::ordered_json m;
  m["format"] = "eve-rank-meta 1";
  m["tool"] = version_line("eve-rank");
  m["ranks"] = o.out;
  m["queries"] = o.queries;
  m["gallery"] = o.gallery;
  m["query_rows"] = query_rows;
  m["gallery_rows"] = gallery_rows;
  m["model_sha256"] = {{"queries", fingerprints(qm)}, {"gallery", fingerprints(gm)}};
  m["k"] = o.k;
  m["ties"] = "equal scores: lower gallery row first";
  if (o.rerank) {
    m["score"] = "ITM match logit of the fusion pass (re-ranked)";
    m["rerank"] = {{"bundle", o.model},
                   {"model_sha256", sha256_file(o.model + "/model.safetensors")},
                   {"k_test", o.k_test},
                   {"batch_size", o.batch_size},
                   {"images", o.images},
                   {"texts", o.texts}};
  } else {
    m["score"] = "inner product of the embeddings";
    m["rerank"] = nullptr;
  }
  m["exclude_self"] = o.exclude_self;
  m["min_score"] = std::isnan(o.min_score) ? io::ordered_json(nullptr) : io::ordered_json::parse(fmt::format("{}", o.min_score));
  io::write_file_atomic(io::rank_meta_path(o.out), m.dump(2) + "\n");
}

int run_rank(const RankOptions& opts, const cli::CommonOptions& common) {
  const std::string device = model::init_runtime(common);
  if (opts.queries.empty() || opts.gallery.empty())
    throw UsageError("--queries and --gallery are required");
  if (opts.k < 1) throw UsageError("-k must be at least 1");
  io::prepare_output(opts.out);  // before the work
  io::prepare_output(opts.scores_out);
  if (opts.rerank) {
    if (opts.model.empty() || opts.images.empty() || opts.texts.empty())
      throw UsageError("--rerank needs --model, --images and --texts");
    if (opts.k_test < opts.k)
      throw UsageError("-k " + std::to_string(opts.k) + " is more than --k-test " + std::to_string(opts.k_test),
                       {}, {}, "only the top --k-test candidates are re-ranked");
    if (opts.batch_size < 0) throw UsageError("--batch-size must be at least 1");
  } else if (!opts.model.empty() || !opts.images.empty() || !opts.texts.empty()) {
    throw UsageError("--model, --images and --texts are for --rerank");
  }
  const auto qmeta = read_metas(opts.queries), gmeta = read_metas(opts.gallery);
  check_one_space(opts, qmeta, gmeta);
  NpyParts queries(opts.queries), gallery(opts.gallery);
  if (queries.cols() != gallery.cols())
    throw Error("the queries " + opts.queries[0] + " have " + std::to_string(queries.cols()) +
                    " columns but the gallery " + opts.gallery[0] + " has " + std::to_string(gallery.cols()),
                {}, {}, "rank embeddings of one model against each other");
  auto qids = load_ids(opts.queries, opts.query_ids, queries.rows(), "query");
  auto gids = load_ids(opts.gallery, opts.gallery_ids, gallery.rows(), "gallery");
  log::info("ranking {} queries against {} gallery rows (dim {}), k={}", queries.rows(),
            gallery.rows(), queries.cols(), opts.k);

  std::unique_ptr<RankReranker> reranker;
  std::unique_ptr<io::NpyRowWriter> rerank_scores;
  if (opts.rerank) {
    reranker = std::make_unique<RankReranker>(opts, device, queries, gallery, qids, gids, common.threads);
    if (!opts.scores_out.empty()) {
      if (queries.rows() * gallery.rows() > opts.max_scores)
        throw UsageError("--scores-out would hold " + std::to_string(queries.rows() * gallery.rows()) +
                         " scores", {}, {}, "it is meant for evaluation-sized sets; rank with -k instead");
      rerank_scores = std::make_unique<io::NpyRowWriter>(opts.scores_out, io::DType::f32, gallery.rows());
    }
  } else if (!opts.scores_out.empty()) {
    write_scores(queries, gallery, opts);
  }

  // A query's own row (or rows, where ids repeat) may take places in the search that the
  // written hits must not lose: search that many more, drop them, keep the rest.
  const int self_rows = opts.exclude_self ? most_rows_per_id(gids) : 0;
  const int keep = opts.rerank ? opts.k_test : opts.k;
  TopkOptions to;
  to.k = keep + self_rows;
  to.threads = common.threads;
  io::AtomicWriter out(opts.out);
  Progress progress("rank", static_cast<uint64_t>(queries.rows()), "queries");
  const bool by_score = !std::isnan(opts.min_score);
  std::string buf;
  const TopkStats stats = topk_search(queries, gallery, to, [&](int64_t first, std::vector<std::vector<Hit>>& hits) {
    buf.clear();
    if (self_rows > 0)
      for (size_t i = 0; i < hits.size(); ++i) {
        const std::string& self = qids[first + static_cast<int64_t>(i)];
        auto& h = hits[i];
        h.erase(std::remove_if(h.begin(), h.end(), [&](const Hit& x) { return gids[x.index] == self; }), h.end());
        if (h.size() > static_cast<size_t>(keep)) h.resize(static_cast<size_t>(keep));
      }
    if (reranker) {
      std::vector<float> row(rerank_scores ? gallery.rows() : 0);
      for (size_t i = 0; i < hits.size(); ++i) {
        std::fill(row.begin(), row.end(), -100.0f);
        reranker->rerank(first + static_cast<int64_t>(i), hits[i], rerank_scores ? row.data() : nullptr);
        if (rerank_scores) rerank_scores->append_rows(row.data(), 1);
      }
    }
    for (size_t i = 0; i < hits.size(); ++i) {
      io::begin_rank_line(buf, qids[first + i]);
      for (size_t j = 0; j < hits[i].size(); ++j) {
        if (!std::isfinite(hits[i][j].score))
          throw_score(queries, gallery, first + static_cast<int64_t>(i), hits[i][j].index, hits[i][j].score, {});
        // Hits are best first: the first below the threshold ends the query's list.
        if (by_score && !(hits[i][j].score >= opts.min_score)) break;
        io::add_rank_hit(buf, j, gids[hits[i][j].index], fmt::format("{}", hits[i][j].score));
      }
      io::end_rank_line(buf);
    }
    out.write(buf);
    progress.add(hits.size());
  });
  if (rerank_scores) rerank_scores->finish();
  out.commit();
  if (opts.out != "-") write_rank_meta(opts, qmeta, gmeta, queries.rows(), gallery.rows());
  progress.finish();
  if (stats.crowded > 0)
    log::warn("rank: {} queries have more than {} gallery rows within float32 rounding of their "
              "k-th score (near-copies?); rows past those may belong in their top {}",
              stats.crowded, to.k + kRescoreMargin, to.k);
  if (reranker && reranker->truncated())
    log::warn("rerank: {} text passes cut a text longer than the model's tokens (last id kept)",
              reranker->truncated());
  return 0;
}

}  // namespace eve::search
