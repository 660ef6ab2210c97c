// Exact top-k search by inner product over a gallery read in chunks, so memory is bounded
// by (query block + gallery chunk + score block) whatever the collection size.
// Torch-free header; the implementation multiplies with libtorch's BLAS.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace eve::search {

struct Hit {
  int64_t index;  // gallery row
  float score;
};

// Rows of a float32 matrix, fetched on demand.
class RowSource {
 public:
  virtual ~RowSource() = default;
  virtual int64_t rows() const = 0;
  virtual int64_t cols() const = 0;
  // Copies rows [begin, begin + n) into out (n * cols floats, C order).
  virtual void read(int64_t begin, int64_t n, float* out) const = 0;
  // Rows [begin, begin + n) in place when they lie in memory as float32 in one piece (C
  // order, valid as long as the source), else nullptr and the caller reads a copy.
  // Must be safe to call, like read, from several threads at once.
  virtual const float* view(int64_t begin, int64_t n) const { return nullptr; }
};

// A RowSource over memory the caller owns.
class MemoryRows : public RowSource {
 public:
  MemoryRows(const float* data, int64_t rows, int64_t cols) : data_(data), rows_(rows), cols_(cols) {}
  int64_t rows() const override { return rows_; }
  int64_t cols() const override { return cols_; }
  void read(int64_t begin, int64_t n, float* out) const override;
  const float* view(int64_t begin, int64_t) const override { return data_ + begin * cols_; }

 private:
  const float* data_;
  int64_t rows_, cols_;
};

struct TopkOptions {
  int k = 10;
  int threads = 0;  // 0 = all cores
};

// Candidates are found with BLAS matrix products of a block of kQueryTile queries by a
// tile of kGalleryTile gallery rows (fixed shapes: the thread count never changes which
// products a score comes from). One team of threads does all the work: each claims gallery
// tiles in turn, multiplies on its own thread and filters each query's scores into its own
// heaps while the tile is in cache; the best k + kRescoreMargin candidates of each query
// over all heaps (its global best by float32 score, (score, row) being a total order) are
// the ones that can be in the top k. Of these, those whose float32 score lies within the
// float32 rounding bound of the k-th best (twice gamma_d |q| max|g|, plus the rounding of the
// written score) are scored again exactly (exact_dot) and sorted by that score, so
// identical rows score identically, ties go to the lower row and the output is
// bit-reproducible for any thread count. The selection is provably the exact top k unless
// more than kRescoreMargin rows crowd that bound around the k-th place; such queries are
// counted (TopkStats::crowded). Memory per thread: a score tile (4 MiB), the heaps of one
// query block and, for a gallery that is not float32, one converted tile.
constexpr int64_t kQueryTile = 1024;
constexpr int64_t kGalleryTile = 1024;
constexpr int kRescoreMargin = 16;

// The exact score used for the final order: the products a[i]*b[i] (exact in double) summed
// in double in a fixed order (eight interleaved lanes, then pairwise), rounded to float32.
float exact_dot(const float* a, const float* b, int64_t n);

struct TopkStats {
  // Queries with more than kRescoreMargin candidates within float32 rounding of their k-th
  // best score: rows past the margin could belong in their top k.
  int64_t crowded = 0;
};

// Calls on_block(first_query, hits) for consecutive blocks of kQueryTile queries, in
// order; hits[i] holds the best min(k, gallery rows) hits of query first_query + i, best
// first, ties broken by the lower gallery index. Returns the crowded-query count.
TopkStats topk_search(const RowSource& queries, const RowSource& gallery, const TopkOptions& opts,
                      const std::function<void(int64_t, std::vector<std::vector<Hit>>&)>& on_block);

// True when a ranks before b: higher score, then lower index.
inline bool better(const Hit& a, const Hit& b) {
  return a.score > b.score || (a.score == b.score && a.index < b.index);
}

}  // namespace eve::search
