#include "eve/train/run_common.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/signals.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/train/distributed.h"
#include "eve/train/optim.h"

namespace eve::train {

torch::Tensor batch_to(const torch::Tensor& t, const torch::Device& device) {
  if (!t.defined() || t.device() == device) return t;
  // pin_memory copies into a block of the caching host allocator, which keeps it until the
  // copy has run: the caller may reuse t at once.
  if (device.is_cuda() && t.is_cpu()) return t.pin_memory().to(device, /*non_blocking=*/true);
  return t.to(device);
}

torch::Device training_device(const std::string& runtime_device, const DistEnv& env) {
  if (runtime_device == "cpu") return torch::Device(torch::kCPU);
  if (env.world <= 1) return torch::Device(runtime_device);
  const int64_t gpus = static_cast<int64_t>(torch::cuda::device_count());
  if (env.local_rank >= gpus)
    throw UsageError("worker with LOCAL_RANK " + std::to_string(env.local_rank) + " needs GPU cuda:" +
                         std::to_string(env.local_rank) + ", but " + std::to_string(gpus) + " GPU(s) are visible",
                     {}, {}, "start at most one worker per GPU, or train on the CPU with --device cpu");
  return torch::Device("cuda:" + std::to_string(env.local_rank));
}

namespace fs = std::filesystem;

text::TokenizerInfo tokenizer_of(const model::ModelConfig& c) {
  text::TokenizerInfo t;
  t.vocab_size = c.vocab_size;
  t.pad_id = c.pad_token_id;
  t.unk_id = c.unk_token_id;
  t.cls_id = c.cls_token_id;
  t.sep_id = c.sep_token_id;
  t.mask_id = c.mask_token_id;
  return t;
}

void adopt_tokenizer(const std::string& tok_json, model::ModelConfig& config, int model_vocab,
                     const std::string& run_dir) {
  text::TokenizerInfo t = text::read_tokenizer_info(tok_json);
  if (model_vocab > 0 && t.vocab_size != model_vocab)
    throw UsageError("--tokenizer has " + std::to_string(t.vocab_size) + " tokens but the --model bundle has " +
                     std::to_string(model_vocab));
  config.vocab_size = t.vocab_size;
  config.pad_token_id = t.pad_id;
  config.unk_token_id = t.unk_id;
  config.cls_token_id = t.cls_id;
  config.sep_token_id = t.sep_id;
  config.mask_token_id = t.mask_id;
  if (run_dir.empty()) return;
  // The bundle carries its tokenizer: the sentencepiece model (tok.model beside tok.json, the
  // model itself, or a bundle's) is copied in.
  const std::string spm = text::sentencepiece_model_of(tok_json);
  if (!spm.empty()) {
    fs::create_directories(run_dir);
    io::write_file_atomic((fs::path(run_dir) / "tokenizer.model").string(), io::read_file(spm));
  }
}

void copy_files(const fs::path& from, const fs::path& to, const std::vector<std::string>& names) {
  fs::create_directories(to);
  for (const auto& n : names)
    if (fs::exists(from / n)) io::write_file_atomic((to / n).string(), io::read_file((from / n).string()));
}

void truncate_metrics(const std::string& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      auto j = nlohmann::json::parse(line);
      if (j.value("step", int64_t{0}) <= step) kept += line + "\n";
    } catch (const std::exception&) {
      break;  // a torn last line from a killed run
    }
  }
  io::write_file_atomic(path, kept);
}

nlohmann::ordered_json expert_load_json(const std::vector<model::LayerLoad>& load) {
  nlohmann::ordered_json experts = nlohmann::ordered_json::object();
  for (const auto& ll : load) {
    // Read on the host through data_ptr: the step's one transfer brought them (and a device
    // tensor is copied once here).
    torch::Tensor t = ll.load.top1.to(torch::kCPU, torch::kFloat64).contiguous();
    const double* v = t.data_ptr<double>();
    double s = 0;
    for (int64_t e = 0; e < t.numel(); ++e) s += v[e];
    s = std::max(1.0, s);
    std::vector<double> frac;
    for (int64_t e = 0; e < t.numel(); ++e) frac.push_back(v[e] / s);
    experts[std::to_string(ll.layer)] = frac;
  }
  return experts;
}

void accumulate_load(std::vector<model::LayerLoad>& into, const std::vector<model::LayerLoad>& more) {
  if (into.empty()) {
    into = more;
    return;
  }
  // Load statistics are computed only on logging steps (undefined otherwise).
  auto add_to = [](torch::Tensor& sum, const torch::Tensor& add) {
    if (add.defined()) sum = sum.defined() ? sum + add : add;
  };
  for (size_t i = 0; i < into.size() && i < more.size(); ++i) {
    add_to(into[i].load.top1, more[i].load.top1);
    add_to(into[i].load.tokens, more[i].load.tokens);
  }
}

LoaderOptions training_loader_options(const std::string& dir, int64_t micro_batch, int rank, int world,
                                      uint64_t seed, const model::ModelConfig& config, int threads, int prefetch,
                                      double crop_scale_min, bool flip, bool rand_augment) {
  LoaderOptions lo;
  lo.dir = dir;
  lo.global_batch = micro_batch;
  lo.rank = rank;
  lo.world = world;
  lo.seed = seed;
  lo.max_text_len = config.max_text_len;
  lo.pad_id = config.pad_token_id;
  lo.threads = threads;
  lo.prefetch = prefetch;
  lo.augment.res = config.image_res;
  lo.augment.scale_min = crop_scale_min;
  lo.augment.flip = flip;
  lo.augment.rand_augment = rand_augment;
  return lo;
}

DatasetManifest read_dataset_manifest(const std::string& dir) {
  DatasetManifest m;
  m.path = (fs::path(dir) / "manifest.json").string();
  if (!io::file_exists(m.path)) return m;
  const io::json j = io::read_json(m.path);
  if (!j.is_object()) throw Error("a dataset manifest must be a JSON object", m.path, {}, "eve-prep writes it");
  m.found = true;
  if (auto t = j.find("task"); t != j.end() && t->is_string()) m.task = t->get<std::string>();
  if (auto p = j.find("image_policy"); p != j.end() && p->is_object())
    if (auto s = p->find("short_side"); s != p->end() && s->is_number_integer()) m.short_side = s->get<int>();
  return m;
}

std::vector<std::string> dataset_splits(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const std::string ext = ".jsonl";
    if (e.is_regular_file() && name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0)
      out.push_back(name.substr(0, name.size() - ext.size()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string require_split(const std::string& dir, const std::string& split, const std::string& why) {
  const std::string path = (fs::path(dir) / (split + ".jsonl")).string();
  if (io::file_exists(path)) return path;
  std::string have;
  for (const auto& s : dataset_splits(dir)) have += (have.empty() ? "" : ", ") + s;
  std::string hint = why;
  if (!fs::is_directory(dir)) hint += "; " + dir + " is not a directory";
  else hint += "; the splits in " + dir + ": " + (have.empty() ? std::string("none") : have);
  throw Error("no such records file", path, {}, hint);
}

void warn_resolution(const DatasetManifest& m, int res, const std::string& source, const std::string& fix) {
  if (!m.found || m.short_side <= 0 || res <= 2 * m.short_side) return;
  const double cost = static_cast<double>(res) * res / (static_cast<double>(m.short_side) * m.short_side);
  log::warn("the model sees {} px images ({}), but the dataset's images were prepared at {} px ({} "
            "\"image_policy\": {{\"short_side\": {}}}): each is upsampled and a step costs about {:.0f}x the "
            "pixels; {}",
            res, source, m.short_side, m.path, m.short_side, cost, fix);
}

bool already_complete(int64_t step, int64_t total, const std::string& checkpoint_dir, bool say) {
  if (step < total) return false;
  if (say) log::info("already complete at step {} (checkpoint {})", step, checkpoint_dir);
  return true;
}

std::string stopped_message(int64_t step, const std::string& run_dir) {
  return "stopped at step " + std::to_string(step) + "; checkpoint saved in " + run_dir +
         "; rerun the same command to resume";
}

void set_training_stop_note() {
  signals::set_stop_note(
      "stopping after this step and a checkpoint (a second signal stops at once, losing the steps since the last "
      "checkpoint)");
}

void save_after_failure(int64_t step, int64_t saved, const std::string& run_dir, bool say,
                        const std::function<void()>& save) {
  if (step <= saved || step <= 0) return;
  try {
    save();
    if (say)
      log::warn("the run failed after step {}: its checkpoint is saved in {}; rerun the same command to resume "
                "there once the cause below is fixed",
                step, run_dir);
  } catch (const std::exception& e) {
    if (say)
      log::warn("the run failed after step {} and its checkpoint could not be saved: {}", step,
                describe_exception(e));
  }
}

}  // namespace eve::train
