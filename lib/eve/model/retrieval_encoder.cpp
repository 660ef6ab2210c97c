#include "eve/model/retrieval_encoder.h"

#include <algorithm>

#include "eve/core/error.h"
#include "eve/model/runtime.h"

namespace eve::model {

RetrievalEncoder::RetrievalEncoder(EveModel model, torch::Device device,
                                   const std::string& bundle, bool need_itm)
    : model_(std::move(model)), device_(device) {
  const auto& c = model_->config();
  for (const char* head : {"itc", "itm"}) {
    if (std::string(head) == "itm" && !need_itm) continue;
    if (!c.has_head(head))
      throw Error(std::string("the model has no ") + head + " head", bundle + "/config.json", {},
                  std::string("use a bundle trained or fine-tuned for retrieval, with ") +
                      (need_itm ? "the itc and itm heads" : "the itc head"));
  }
  model_->eval();
  model_->to(device_);
}

int64_t RetrievalEncoder::dim() const { return model_->config().vision_width; }

void RetrievalEncoder::text_batch(const std::vector<const std::vector<int64_t>*>& tokens,
                                  torch::Tensor& ids, torch::Tensor& mask) {
  const auto& c = model_->config();
  const int64_t T = c.max_text_len, B = static_cast<int64_t>(tokens.size());
  ids = torch::full({B, T}, static_cast<int64_t>(std::max(c.pad_token_id, 0)), torch::kLong);
  mask = torch::zeros({B, T}, torch::kLong);
  auto* ip = ids.data_ptr<int64_t>();
  auto* mp = mask.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& t = *tokens[b];
    int64_t n = std::min<int64_t>(static_cast<int64_t>(t.size()), T);
    std::copy(t.begin(), t.begin() + n, ip + b * T);
    std::fill(mp + b * T, mp + b * T + n, 1);
    if (static_cast<int64_t>(t.size()) > T) {
      ++truncated_;
      ip[b * T + T - 1] = t.back();
    }
  }
}

torch::Tensor RetrievalEncoder::images(const torch::Tensor& pixels) {
  torch::NoGradGuard no_grad;
  model::Autocast autocast(model::run_precision(), device_.str());
  EncoderInput in;
  in.image = pixels.to(device_);
  auto out = model_->encode(Mode::vision, in);
  return model_->itc_image(model_->eval_cls(out)).to(torch::kCPU, torch::kFloat).contiguous();
}

torch::Tensor RetrievalEncoder::texts(const std::vector<const std::vector<int64_t>*>& tokens) {
  torch::NoGradGuard no_grad;
  model::Autocast autocast(model::run_precision(), device_.str());
  EncoderInput in;
  text_batch(tokens, in.text_ids, in.text_mask);
  in.text_ids = in.text_ids.to(device_);
  in.text_mask = in.text_mask.to(device_);
  auto out = model_->encode(Mode::text, in);
  return model_->itc_text(model_->eval_cls(out)).to(torch::kCPU, torch::kFloat).contiguous();
}

torch::Tensor RetrievalEncoder::match(const torch::Tensor& pixels,
                                      const std::vector<const std::vector<int64_t>*>& tokens) {
  torch::NoGradGuard no_grad;
  model::Autocast autocast(model::run_precision(), device_.str());
  EncoderInput in;
  text_batch(tokens, in.text_ids, in.text_mask);
  in.text_ids = in.text_ids.to(device_);
  in.text_mask = in.text_mask.to(device_);
  in.image = pixels.to(device_);
  auto out = model_->encode(Mode::vl, in);
  return model_->itm_logits(out.pooled).select(1, 1).to(torch::kCPU, torch::kFloat).contiguous();
}

}  // namespace eve::model
