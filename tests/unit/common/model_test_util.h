// Helpers shared by the model, search and train tests: small configs, random batches, the
// full set of outputs compared with the Python reference, tensor-map files, running the
// reference.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>

#include "eve/io/file.h"
#include "eve/io/safetensors.h"
#include "eve/model/bundle.h"
#include "eve/model/eve_model.h"

namespace eve::model::test {

using TensorMap = std::map<std::string, torch::Tensor>;

// A deterministic test config: tiny sizes, no dropout / drop-path / router noise.
inline ModelConfig tiny_config() {
  ModelConfig c;
  c.vision_width = 64;
  c.patch_size = 8;
  c.num_attention_heads = 4;
  c.intermediate_size = 128;
  c.num_hidden_layers = 4;
  c.moeffn_layers = {2, 3};
  c.moe_param.num_experts = 4;
  c.vocab_size = 300;
  c.image_res = 32;
  c.max_text_len = 12;
  c.text_pos_rows = 16;
  c.drop_path_rate = 0.0;
  c.text_dropout = 0.0;
  c.moe_noise = false;
  c.mim_decoder = {32, 1, 4, 64};
  c.num_answers = 10;
  return c;
}

// tiny_config shrunk further: width 32, 2 layers, 16 px images of 2 x 2 patches, the
// retrieval heads (itc, itm).
inline ModelConfig retrieval_config() {
  ModelConfig c = tiny_config();
  c.vision_width = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.moeffn_layers = {1};
  c.vocab_size = 50;
  c.image_res = 16;
  c.max_text_len = 8;
  c.text_pos_rows = 8;
  c.heads = {"itc", "itm"};
  return c;
}

// A fresh model's CLS vectors barely differ between inputs; wider weights (std 0.3) make the
// ITC logits of different pairs differ, so targets and hard negatives matter.
inline void widen_weights(EveModelImpl& m) {
  torch::NoGradGuard guard;
  for (auto& p : m.parameters())
    if (p.dim() >= 2) p.normal_(0.0, 0.3);
}

// A fresh directory under the system temp dir, removed at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "eve-nn-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    eve::io::try_remove_tree(path);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

inline void save_map(const std::string& path, const TensorMap& m) {
  std::vector<torch::Tensor> keep;
  std::vector<io::TensorView> views;
  for (const auto& [name, t0] : m) {
    torch::Tensor t = t0.detach().cpu().contiguous();
    io::TensorView v;
    v.name = name;
    if (t.scalar_type() == torch::kBool) t = t.to(torch::kUInt8);
    if (t.scalar_type() == torch::kLong) v.dtype = io::DType::i64;
    else if (t.scalar_type() == torch::kUInt8) v.dtype = io::DType::u8;
    else { t = t.to(torch::kFloat); v.dtype = io::DType::f32; }
    keep.push_back(t);
    v.shape = t.sizes().vec();
    v.data = t.data_ptr();
    v.nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    views.push_back(v);
  }
  io::write_safetensors(path, views);
}

inline TensorMap load_map(const std::string& path) {
  io::SafetensorsReader r(path);
  TensorMap m;
  for (const auto& v : r.tensors()) {
    auto dt = v.dtype == io::DType::i64 ? torch::kLong
              : v.dtype == io::DType::u8 ? torch::kUInt8
                                         : torch::kFloat;
    EXPECT_TRUE(v.dtype == io::DType::i64 || v.dtype == io::DType::u8 || v.dtype == io::DType::f32)
        << v.name;
    torch::Tensor t = torch::empty(v.shape, dt);
    if (v.nbytes) std::memcpy(t.data_ptr(), v.data, v.nbytes);
    m[v.name] = t;
  }
  return m;
}

// A batch: images, a second image set (NLVR2), text ids starting with CLS and padded
// after random lengths, and MAE keep indices.
inline TensorMap make_batch(const ModelConfig& c, int64_t B, int64_t T, int64_t keep,
                            uint64_t seed) {
  torch::manual_seed(seed);
  TensorMap b;
  b["image"] = torch::randn({B, 3, c.image_res, c.image_res});
  b["image2"] = torch::randn({B, 3, c.image_res, c.image_res});
  torch::Tensor ids = torch::randint(5, c.vocab_size, {B, T}, torch::kLong);
  ids.select(1, 0).fill_(c.cls_token_id);
  torch::Tensor mask = torch::ones({B, T}, torch::kLong);
  for (int64_t i = 1; i < B; ++i) {  // sample 0 keeps the full length
    int64_t len = 2 + (i * 5) % (T - 1);
    mask[i].narrow(0, len, T - len).zero_();
    ids[i].narrow(0, len, T - len).fill_(c.pad_token_id);
  }
  b["text_ids"] = ids;
  b["text_mask"] = mask;
  if (keep > 0) {
    std::vector<torch::Tensor> rows;
    for (int64_t i = 0; i < B; ++i) rows.push_back(torch::randperm(c.num_patches()).narrow(0, 0, keep));
    b["ids_keep"] = torch::stack(rows);
  }
  return b;
}

// The vl input of a batch (image, text ids and mask), optionally rows [from, from+n).
inline EncoderInput vl_input(const TensorMap& b, int64_t from = 0, int64_t n = -1) {
  auto rows = [&](const torch::Tensor& t) { return n < 0 ? t : t.narrow(0, from, n); };
  EncoderInput in;
  in.image = rows(b.at("image"));
  in.text_ids = rows(b.at("text_ids"));
  in.text_mask = rows(b.at("text_mask"));
  return in;
}

// Every output the Python reference writes (tests/reference/eve_ref.py `outputs`).
inline TensorMap compute_outputs(EveModelImpl& m, const TensorMap& batch) {
  const ModelConfig& c = m.config();
  TensorMap res;
  EncoderInput vlin = vl_input(batch), vin, tin = vlin;
  vin.image = vlin.image;
  tin.image = torch::Tensor();
  std::map<std::string, EncoderOutput> runs{{"vision", m.encode(Mode::vision, vin)},
                                             {"text", m.encode(Mode::text, tin)},
                                             {"vl", m.encode(Mode::vl, vlin)}};
  for (auto& [mode, r] : runs) {
    res[mode + ".hidden"] = r.hidden;
    res[mode + ".pooled"] = r.pooled;
    res[mode + ".aux"] = r.aux;
    for (size_t i = 0; i < r.load.size(); ++i)
      res[mode + ".kept." + std::to_string(i)] = r.load[i].load.kept;
  }
  const EncoderOutput& vl = runs["vl"];
  if (c.has_head("itc")) {
    res["itc.image"] = m.itc_image(runs["vision"].pooled);
    res["itc.text"] = m.itc_text(runs["text"].pooled);
    res["itc.logits"] = torch::matmul(res["itc.image"], res["itc.text"].t()) / m.itc_temperature();
  }
  if (c.has_head("itm")) res["itm"] = m.itm_logits(vl.pooled);
  if (c.has_head("vqa")) res["vqa"] = m.vqa_logits(vl.pooled);
  if (c.has_head("nlvr2") || c.has_head("nlvr2_biattn")) {
    EncoderInput in2 = vlin;
    in2.image = batch.at("image2");
    EncoderOutput vl2 = m.encode(Mode::vl, in2);
    if (c.has_head("nlvr2")) res["nlvr2"] = m.nlvr2_logits(vl.pooled, vl2.pooled);
    if (c.has_head("nlvr2_biattn")) res["nlvr2_biattn"] = m.nlvr2_biattn_logits(vl, vl2);
  }
  if (c.has_head("mlm"))
    res["mlm"] = m.mlm_logits(vl.hidden.narrow(1, vl.num_vision, vl.hidden.size(1) - vl.num_vision));
  if (batch.count("ids_keep")) {
    EncoderInput mae = vlin;
    mae.ids_keep = batch.at("ids_keep");
    EncoderOutput o = m.encode(Mode::vl, mae);
    res["mae.hidden"] = o.hidden;
    res["mae.aux"] = o.aux;
    if (c.has_head("mim")) res["mim"] = m.mim_predict(o, mae.ids_keep);
  }
  return res;
}

// Runs the Python reference; returns its exit status and puts stderr into `err`.
inline int run_reference(const std::string& args, std::string* err = nullptr) {
  TempDir t;
  std::string cmd = std::string(EVE_TEST_PYTHON) + " " + EVE_TEST_REFERENCE + "/eve_ref.py " + args +
                    " 2>" + (t / "err");
  int rc = std::system(cmd.c_str());
  if (err) *err = io::file_exists(t / "err") ? io::read_file(t / "err") : "";
  return rc;
}

// Compares every tensor of `want` with `got` (same keys): max |a-b| <= tol (exact for ints).
inline void expect_maps_close(const TensorMap& got, const TensorMap& want, double tol,
                              const std::string& label) {
  EXPECT_EQ(got.size(), want.size()) << label;
  for (const auto& [name, w] : want) {
    auto it = got.find(name);
    if (it == got.end()) {
      ADD_FAILURE() << label << ": missing output " << name;
      continue;
    }
    torch::Tensor g = it->second.detach().cpu();
    ASSERT_EQ(g.sizes(), w.sizes()) << label << ": " << name;
    if (w.is_floating_point()) {
      double diff = w.numel() ? (g.to(torch::kFloat) - w).abs().max().item<double>() : 0.0;
      EXPECT_LE(diff, tol) << label << ": " << name;
    } else {
      EXPECT_TRUE(torch::equal(g.to(w.scalar_type()), w)) << label << ": " << name;
    }
  }
}

}  // namespace eve::model::test
