#include "eve/search/rank.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/progress.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/io/npy.h"
#include "eve/model/runtime.h"
#include "eve/search/topk.h"

namespace eve::search {
namespace {

// Several 2-D .npy parts seen as one matrix; f32 rows are copied straight from the file
// bytes, other dtypes converted on read.
class NpyParts : public RowSource {
 public:
  explicit NpyParts(const std::vector<std::string>& paths) {
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
      starts_.push_back(rows_);
      rows_ += a.shape[0];
    }
  }
  int64_t rows() const override { return rows_; }
  int64_t cols() const override { return cols_; }
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

void write_scores(const RowSource& q, const RowSource& g, const RankOptions& opts) {
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
    w.append_rows(s.data_ptr<float>(), static_cast<size_t>(nb));
  }
  w.finish();
}

}  // namespace

std::string default_ids_path(const std::string& npy_path) {
  std::string stem = npy_path;
  if (stem.size() > 4 && stem.compare(stem.size() - 4, 4, ".npy") == 0) stem.resize(stem.size() - 4);
  return stem + ".ids.jsonl";
}

int run_rank(const RankOptions& opts, const cli::CommonOptions& common) {
  nn::init_runtime(common);
  if (opts.queries.empty() || opts.gallery.empty())
    throw UsageError("--queries and --gallery are required");
  if (opts.k < 1) throw UsageError("-k must be at least 1");
  NpyParts queries(opts.queries), gallery(opts.gallery);
  if (queries.cols() != gallery.cols())
    throw Error("queries have " + std::to_string(queries.cols()) + " columns but the gallery has " +
                std::to_string(gallery.cols()), opts.gallery[0]);
  auto qids = load_ids(opts.queries, opts.query_ids, queries.rows(), "query");
  auto gids = load_ids(opts.gallery, opts.gallery_ids, gallery.rows(), "gallery");
  log::info("ranking {} queries against {} gallery rows (dim {}), k={}", queries.rows(),
            gallery.rows(), queries.cols(), opts.k);

  if (!opts.scores_out.empty()) write_scores(queries, gallery, opts);

  TopkOptions to;
  to.k = opts.k;
  to.threads = common.threads;
  io::AtomicWriter out(opts.out);
  Progress progress("rank", static_cast<uint64_t>(queries.rows()), "queries");
  std::string buf;
  topk_search(queries, gallery, to, [&](int64_t first, std::vector<std::vector<Hit>>& hits) {
    buf.clear();
    for (size_t i = 0; i < hits.size(); ++i) {
      buf += "{\"query\": ";
      buf += qids[first + i];
      buf += ", \"results\": [";
      for (size_t j = 0; j < hits[i].size(); ++j) {
        if (j) buf += ", ";
        buf += fmt::format("[{}, {}]", gids[hits[i][j].index], hits[i][j].score);
      }
      buf += "]}\n";
    }
    out.write(buf);
    progress.add(hits.size());
  });
  out.commit();
  progress.finish();
  return 0;
}

}  // namespace eve::search
