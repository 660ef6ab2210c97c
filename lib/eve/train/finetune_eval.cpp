// eve-finetune: validation and predictions of each task; retrieval scores and their ITM re-rank.
#include "eve/train/finetuner.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <unordered_map>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/paths.h"
#include "eve/core/rng.h"
#include "eve/core/threads.h"
#include "eve/eval/retrieval_eval.h"
#include "eve/eval/score.h"
#include "eve/eval/vqa_eval.h"
#include "eve/io/file.h"
#include "eve/io/image_store.h"
#include "eve/io/jsonl.h"
#include "eve/io/npy.h"
#include "eve/io/rank_file.h"
#include "eve/model/bundle.h"
#include "eve/model/itm_rerank.h"
#include "eve/train/checkpoint.h"
#include "eve/train/contrastive.h"

namespace eve::train {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using ojson = nlohmann::ordered_json;
using torch::Tensor;

namespace {

// The JSON text of one value (an id or a score), spelled as a JSON dump of a whole ranks line
// spells it: scores are float32 values widened to double, in nlohmann's shortest form.
std::string json_text(const ojson& v) {
  std::string s = io::to_jsonl_line(v);
  s.pop_back();  // the newline
  return s;
}

// The re-ranker's rows: images read through the evaluation loader, texts from the records.
class EvalRows : public model::ItmRows {
 public:
  EvalRows(Loader& ld, const TaskRecords& data) : ld_(ld), data_(data) {}
  Tensor pixels(const std::vector<int64_t>& rows) override { return ld_.load(rows).images; }
  const std::vector<int64_t>& tokens(int64_t row) override { return data_.texts[static_cast<size_t>(row)]; }

 private:
  Loader& ld_;
  const TaskRecords& data_;
};

}  // namespace

std::unique_ptr<Loader> Finetuner::eval_loader(const TaskRecords& data) {
  LoaderOptions lo;
  lo.dir = o.data;
  lo.global_batch = 1;
  lo.max_text_len = config.max_text_len;
  lo.pad_id = config.pad_token_id;
  lo.threads = resolve_threads(common.threads);
  lo.augment.res = config.image_res;
  return std::make_unique<Loader>(data.samples, lo);
}

// Evaluates one split; with `out_stem` non-empty (rank 0) writes the predictions there.
ojson Finetuner::evaluate(const std::string& split, const std::string& out_stem, bool rerank) {
  torch::NoGradGuard guard;
  model->eval();
  TaskRecords data = read_task_records(task, o.data, split, config.vocab_size, false);
  if (rank0()) warn_long_texts(data, config.max_text_len, split_stem(split));
  ojson m{{"split", split_stem(split)}};
  if (task == Task::retrieval) {
    evaluate_retrieval(data, out_stem, rerank, m);
  } else {
    auto ld = eval_loader(data);
    const int64_t n = ld->samples();
    std::vector<int64_t> pred(static_cast<size_t>(n));
    for_batches(n, [&](const std::vector<int64_t>& idx) {
      Batch b = ld->load(idx);
      Tensor logits;
      model::Autocast autocast(precision, device.str());
      if (task == Task::vqa) {
        model::EncoderInput in;
        in.image = b.images.to(device);
        in.text_ids = b.ids.to(device);
        in.text_mask = b.mask.to(device);
        logits = model->vqa_logits(model->encode(model::Mode::vl, in).pooled);
      } else {
        logits = nlvr2_forward(b.images.to(device), b.images2.to(device), b.ids.to(device), b.mask.to(device),
                               nullptr).first;
      }
      Tensor a = logits.argmax(1).cpu();
      for (size_t i = 0; i < idx.size(); ++i) pred[static_cast<size_t>(idx[i])] = a[static_cast<int64_t>(i)].item<int64_t>();
    });
    double correct = 0;
    std::string text;
    const bool labelled = data.labelled();
    if (task == Task::vqa) {
      ojson list = ojson::array();
      for (int64_t i = 0; i < n; ++i) {
        const std::string& ans = answers[static_cast<size_t>(pred[static_cast<size_t>(i)])];
        list.push_back(ojson{{"question_id", data.question_ids[static_cast<size_t>(i)]}, {"answer", ans}});
        if (labelled)
          correct += eval::vqa_question_accuracy(data.human_answers[static_cast<size_t>(i)], ans,
                                                 eval::VqaEvaluator::current);
      }
      text = list.dump() + "\n";
    } else {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t p = pred[static_cast<size_t>(i)];
        text += data.identifiers[static_cast<size_t>(i)] + "," + (p == 1 ? "True" : "False") + "\n";
        if (labelled) correct += p == data.labels[static_cast<size_t>(i)];
      }
    }
    if (labelled) m["accuracy"] = 100.0 * correct / static_cast<double>(n);
    m["examples"] = n;
    if (!out_stem.empty())
      io::write_file_atomic(out_stem + (task == Task::vqa ? ".json" : ".csv"), text);
  }
  model->train();
  return m;
}

void Finetuner::evaluate_retrieval(const TaskRecords& data, const std::string& out_stem, bool rerank, ojson& m) {
  model::RetrievalEncoder enc(model, device, o.run_dir, rerank);
  auto ld = eval_loader(data);
  const int64_t ni = ld->samples(), nt = static_cast<int64_t>(data.texts.size());
  std::vector<Tensor> fv, ft;
  for_batches(ni, [&](const std::vector<int64_t>& idx) { fv.push_back(enc.images(ld->load(idx).images)); });
  // A compat official model's outputs depend on the batch: texts go 256 at a time, as the
  // released evaluation embeds them.
  const int64_t text_batch = config.official() ? 256 : o.eval_batch_size;
  for_batches(nt, text_batch, [&](const std::vector<int64_t>& idx) {
    std::vector<const std::vector<int64_t>*> tok;
    for (int64_t i : idx) tok.push_back(&data.texts[static_cast<size_t>(i)]);
    ft.push_back(enc.texts(tok));
  });
  Tensor i2t = torch::matmul(torch::cat(fv), torch::cat(ft).t()).contiguous();
  Tensor t2i = i2t.t().contiguous();
  std::vector<uint32_t> text_image(static_cast<size_t>(nt));
  for (int64_t i = 0; i < ni; ++i)
    for (uint32_t t = data.text_offsets[static_cast<size_t>(i)]; t < data.text_offsets[static_cast<size_t>(i) + 1]; ++t)
      text_image[t] = static_cast<uint32_t>(i);
  if (rerank && r.k_test > 0) {
    EvalRows rows(*ld, data);
    model::ItmReranker reranker(enc, rows);
    // A compat official model scores each query's candidates in one pass, as the released
    // evaluation does; other models score pairs image by image, so only a batch of images
    // is in memory.
    if (config.official())
      std::tie(i2t, t2i) = reranker.rerank(i2t, t2i, r.k_test, model::ItmBatching::per_query, r.k_test);
    else
      std::tie(i2t, t2i) = reranker.rerank(i2t, t2i, r.k_test, model::ItmBatching::by_image, o.eval_batch_size);
    m["k_test"] = r.k_test;
  }
  eval::RetrievalAnnotations ann;
  ann.path = data.path;
  ann.images = data.image_keys;
  ann.text_offsets = data.text_offsets;
  ann.text_image = text_image;
  auto ri = eval::image_to_text_ranks(ann, i2t.data_ptr<float>(), "i2t", nullptr);
  auto rt = eval::text_to_image_ranks(ann, t2i.data_ptr<float>(), "t2i", nullptr);
  m.update(eval::retrieval_scores_json(eval::retrieval_recall(ri, rt)));
  if (out_stem.empty()) return;
  std::vector<std::string> text_ids;
  for (int64_t t = 0; t < nt; ++t) {
    const uint32_t img = text_image[static_cast<size_t>(t)];
    text_ids.push_back(data.image_keys[img] + "#" + std::to_string(t - data.text_offsets[img]));
  }
  auto write = [&](const Tensor& scores, const std::string& dir, const std::vector<std::string>& qids,
                   const std::vector<std::string>& gids) {
    io::write_npy(out_stem + "." + dir + ".npy",
                  io::make_npy_f32({scores.size(0), scores.size(1)},
                                   std::vector<float>(scores.data_ptr<float>(),
                                                      scores.data_ptr<float>() + scores.numel())));
    const int64_t k = std::min<int64_t>(10, scores.size(1));
    auto top = scores.topk(k, 1);
    Tensor val = std::get<0>(top), ix = std::get<1>(top);
    std::string text;
    for (int64_t q = 0; q < scores.size(0); ++q) {
      io::begin_rank_line(text, json_text(qids[static_cast<size_t>(q)]), io::RankLayout::compact);
      for (int64_t j = 0; j < k; ++j)
        io::add_rank_hit(text, static_cast<size_t>(j), json_text(gids[static_cast<size_t>(ix[q][j].item<int64_t>())]),
                         json_text(val[q][j].item<float>()), io::RankLayout::compact);
      io::end_rank_line(text);
    }
    io::write_file_atomic(out_stem + "." + dir + ".ranks.jsonl", text);
  };
  write(i2t, "i2t", data.image_keys, text_ids);
  write(t2i, "t2i", text_ids, data.image_keys);
}

}  // namespace eve::train
