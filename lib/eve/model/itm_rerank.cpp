#include "eve/model/itm_rerank.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace eve::model {

using torch::Tensor;

Tensor ItmReranker::query(bool image_query, int64_t q, const std::vector<int64_t>& candidates, int64_t batch) {
  const int64_t n = static_cast<int64_t>(candidates.size());
  Tensor out = torch::empty({n});
  if (n == 0) return out;
  if (batch <= 0) batch = n;
  // An image query's pixels are one row, expanded (not copied) over each pass.
  Tensor px = image_query ? rows_.pixels({q}) : rows_.pixels(candidates);
  std::vector<const std::vector<int64_t>*> toks(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) toks[i] = &rows_.tokens(image_query ? candidates[i] : q);
  for (int64_t b0 = 0; b0 < n; b0 += batch) {
    const int64_t nb = std::min(batch, n - b0);
    Tensor p = image_query ? px.expand({nb, -1, -1, -1}) : px.narrow(0, b0, nb);
    std::vector<const std::vector<int64_t>*> tb(toks.begin() + b0, toks.begin() + b0 + nb);
    out.narrow(0, b0, nb).copy_(enc_.match(p, tb));
  }
  return out;
}

std::pair<Tensor, Tensor> ItmReranker::rerank(const Tensor& i2t, const Tensor& t2i, int64_t k_test, ItmBatching how,
                                              int64_t batch) {
  const int64_t ni = i2t.size(0), nt = i2t.size(1);
  Tensor top_t = std::get<1>(i2t.topk(std::min(k_test, nt), 1)).contiguous();
  Tensor top_i = std::get<1>(t2i.topk(std::min(k_test, ni), 1)).contiguous();
  return how == ItmBatching::per_query ? per_query(top_t, top_i, ni, nt, batch) : by_image(top_t, top_i, ni, nt, batch);
}

std::pair<Tensor, Tensor> ItmReranker::per_query(const Tensor& top_t, const Tensor& top_i, int64_t ni, int64_t nt,
                                                 int64_t batch) {
  Tensor a = torch::full({ni, nt}, -100.0f), b = torch::full({nt, ni}, -100.0f);
  auto fill = [&](Tensor& out, const Tensor& top, bool image_query) {
    for (int64_t q = 0; q < top.size(0); ++q) {
      const int64_t* c = top[q].data_ptr<int64_t>();
      std::vector<int64_t> cand(c, c + top.size(1));
      out[q].index_put_({top[q]}, query(image_query, q, cand, batch));
    }
  };
  fill(a, top_t, true);
  fill(b, top_i, false);
  return {a, b};
}

std::pair<Tensor, Tensor> ItmReranker::by_image(const Tensor& top_t, const Tensor& top_i, int64_t ni, int64_t nt,
                                                int64_t batch) {
  if (batch <= 0) batch = 1;
  std::vector<std::set<int64_t>> pairs(static_cast<size_t>(ni));  // image -> texts to score
  auto tt = top_t.accessor<int64_t, 2>();
  auto ti = top_i.accessor<int64_t, 2>();
  for (int64_t i = 0; i < ni; ++i)
    for (int64_t j = 0; j < top_t.size(1); ++j) pairs[static_cast<size_t>(i)].insert(tt[i][j]);
  for (int64_t t = 0; t < nt; ++t)
    for (int64_t j = 0; j < top_i.size(1); ++j) pairs[static_cast<size_t>(ti[t][j])].insert(t);
  // Pairs nobody asked for stay NaN; only candidates' cells are read back below.
  Tensor logit = torch::full({ni, nt}, std::nanf(""));
  for (int64_t start = 0; start < ni; start += batch) {
    std::vector<int64_t> idx;
    for (int64_t i = start; i < std::min(ni, start + batch); ++i) idx.push_back(i);
    Tensor pixels = rows_.pixels(idx);
    std::vector<int64_t> rows, img, txt;
    std::vector<const std::vector<int64_t>*> tok;
    auto flush = [&]() {
      if (rows.empty()) return;
      Tensor s = enc_.match(pixels.index_select(0, torch::tensor(rows)), tok);
      logit.index_put_({torch::tensor(img), torch::tensor(txt)}, s);
      rows.clear();
      img.clear();
      txt.clear();
      tok.clear();
    };
    for (size_t k = 0; k < idx.size(); ++k)
      for (int64_t t : pairs[static_cast<size_t>(idx[k])]) {
        rows.push_back(static_cast<int64_t>(k));
        img.push_back(idx[k]);
        txt.push_back(t);
        tok.push_back(&rows_.tokens(t));
        if (static_cast<int64_t>(rows.size()) == batch) flush();
      }
    flush();
  }
  Tensor a = torch::full({ni, nt}, -100.0f), b = torch::full({nt, ni}, -100.0f);
  a.scatter_(1, top_t, logit.gather(1, top_t));
  b.scatter_(1, top_i, logit.t().contiguous().gather(1, top_i));
  return {a.contiguous(), b.contiguous()};
}

}  // namespace eve::model
