// eve-finetune: the training loss of each task.
#include "eve/train/finetuner.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <unordered_map>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/paths.h"
#include "eve/core/rng.h"
#include "eve/core/threads.h"
#include "eve/eval/retrieval_eval.h"
#include "eve/eval/vqa_eval.h"
#include "eve/io/file.h"
#include "eve/io/image_store.h"
#include "eve/io/jsonl.h"
#include "eve/io/npy.h"
#include "eve/model/bundle.h"
#include "eve/train/checkpoint.h"
#include "eve/train/contrastive.h"

namespace eve::train {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using ojson = nlohmann::ordered_json;
using torch::Tensor;

namespace {

constexpr uint64_t kNegativeStream = 0x6e65676174ull;  // "negat": ITM hard negatives

}  // namespace

// The loss of micro-batch `micro` (the step's micro-batches counted over the run), its forward
// passes under the run's precision; losses in float32.
MicroLoss Finetuner::task_loss(const Batch& b, int64_t micro) {
  model::Autocast autocast(precision, device.str());
  MicroLoss out;
  Tensor images = batch_to(b.images, device), ids = batch_to(b.ids, device), mask = batch_to(b.mask, device);
  const double w_aux = config.moe_lossweight;
  if (task == Task::retrieval) {
    Tensor groups = torch::empty({b.samples.size(0)}, torch::kInt64);
    auto group = groups.accessor<int64_t, 1>();
    for (int64_t i = 0; i < groups.size(0); ++i) group[i] = train_data.groups[sample_of(b, i)];
    ContrastiveOptions co;
    // The same on every rank and for any world size: N workers draw the negatives of 1 process.
    co.negative_seed = Rng(seed, kNegativeStream, static_cast<uint64_t>(micro)).next();
    ContrastiveLoss l = contrastive_loss(*model, images, ids, mask, batch_to(groups, device), co, pg.get());
    out.total = l.total;
    out.parts = {{"itc", l.itc}, {"itm", l.itm}, {"itm_accuracy", l.itm_accuracy}, {"aux", l.aux}};
    out.load = std::move(l.load);
    return out;
  }
  model::EncoderInput in;
  in.text_ids = ids;
  in.text_mask = mask;
  if (task == Task::vqa) {
    in.image = images;
    model::EncoderOutput e = model->encode(model::Mode::vl, in);
    Tensor logits = model->vqa_logits(e.pooled).to(torch::kFloat32);
    Tensor t = torch::zeros({logits.size(0), logits.size(1)});
    auto target = t.accessor<float, 2>();
    for (int64_t i = 0; i < t.size(0); ++i)
      for (const auto& [k, v] : targets[sample_of(b, i)]) target[i][k] = v;
    Tensor bce = F::binary_cross_entropy_with_logits(logits, batch_to(t, device)) * static_cast<double>(logits.size(1));
    out.total = config.official() ? bce : bce + w_aux * e.aux;
    out.parts = {{"bce", bce.detach()}, {"aux", e.aux.detach()}};
    out.load = std::move(e.load);
    return out;
  }
  // NLVR2: the left and right image with the same sentence.
  Tensor labels = torch::empty({b.samples.size(0)}, torch::kInt64);
  auto label = labels.accessor<int64_t, 1>();
  for (int64_t i = 0; i < labels.size(0); ++i) label[i] = train_data.labels[sample_of(b, i)];
  Tensor logits, aux;
  std::tie(logits, aux) = nlvr2_forward(images, batch_to(b.images2, device), ids, mask, &out.load);
  const Tensor on_device_labels = batch_to(labels, device);
  logits = logits.to(torch::kFloat32);
  Tensor ce = F::cross_entropy(logits, on_device_labels);
  out.total = ce + w_aux * aux;
  out.parts = {{"ce", ce.detach()}, {"aux", aux.detach()},
               {"accuracy", logits.argmax(1).eq(on_device_labels).to(torch::kFloat64).mean()}};
  return out;
}

std::pair<Tensor, Tensor> Finetuner::nlvr2_forward(const Tensor& left, const Tensor& right, const Tensor& ids,
                                        const Tensor& mask, std::vector<model::LayerLoad>* load) {
  const int64_t b = left.size(0);
  model::EncoderInput in;
  if (r.head == "biattn") {
    in.text_ids = ids;
    in.text_mask = mask;
    in.image = left;
    model::EncoderOutput e0 = model->encode(model::Mode::vl, in);
    in.image = right;
    model::EncoderOutput e1 = model->encode(model::Mode::vl, in);
    if (load) {
      accumulate_load(*load, e0.load);
      accumulate_load(*load, e1.load);
    }
    return {model->nlvr2_biattn_logits(e0, e1), (e0.aux + e1.aux) / 2};
  }
  in.image = torch::cat({left, right});
  in.text_ids = torch::cat({ids, ids});
  in.text_mask = torch::cat({mask, mask});
  model::EncoderOutput e = model->encode(model::Mode::vl, in);
  if (load) *load = e.load;
  return {model->nlvr2_logits(e.pooled.narrow(0, 0, b), e.pooled.narrow(0, b, b)), e.aux};
}

}  // namespace eve::train
