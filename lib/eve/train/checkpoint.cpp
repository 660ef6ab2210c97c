#include "eve/train/checkpoint.h"

#include <filesystem>
#include <vector>

#include "eve/core/error.h"
#include "eve/core/signals.h"
#include "eve/io/file.h"
#include "eve/model/bundle.h"

namespace eve::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "checkpoint-";

std::vector<CheckpointRef> list_checkpoints(const std::string& run_dir) {
  std::vector<CheckpointRef> out;
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(run_dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.rfind(kPrefix, 0) != 0) continue;
    const std::string digits = name.substr(std::char_traits<char>::length(kPrefix));
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    if (!fs::exists(e.path() / "trainer.json")) continue;
    out.push_back({std::stoll(digits), e.path().string()});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

}  // namespace

CheckpointRef latest_checkpoint(const std::string& run_dir) {
  auto all = list_checkpoints(run_dir);
  return all.empty() ? CheckpointRef{} : all.back();
}

namespace {

std::string checkpoint_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "%s%08lld", kPrefix, static_cast<long long>(step));
  return name;
}

std::string intact_text(const std::string& run_dir, int64_t step) {
  if (step < 0)
    return "no checkpoint was written yet (" + run_dir + " holds none): a rerun of the same command starts over";
  return "the checkpoint of step " + std::to_string(step) + " (" + (fs::path(run_dir) / checkpoint_name(step)).string() +
         ") is intact: rerun the same command to resume from it";
}

}  // namespace

void note_intact_checkpoint(const std::string& run_dir, int64_t step) {
  signals::set_abandon_note("stopped at once by a second signal; " + intact_text(run_dir, step));
}

void write_checkpoint(const std::string& run_dir, int64_t step, model::EveModelImpl& model,
                      const AdamW& optimizer, const nlohmann::ordered_json& trainer, int keep,
                      bool update_root) {
  const std::string name = checkpoint_name(step);
  // The write finishes even when a second signal arrives meanwhile; a third abandons it.
  signals::DeferHardStop defer;
  signals::set_abandon_note("stopped by a third signal; the checkpoint of step " + std::to_string(step) +
                            " was abandoned half-written; " + intact_text(run_dir, latest_checkpoint(run_dir).step));
  const fs::path final_dir = fs::path(run_dir) / name;
  const fs::path tmp = fs::path(run_dir) / ("." + std::string(name) + ".tmp");
  io::remove_tree(tmp);
  fs::create_directories(tmp);
  model::save_bundle(model, tmp.string());
  optimizer.save((tmp / "optimizer.safetensors").string());
  io::write_file_atomic((tmp / "trainer.json").string(), trainer.dump(2) + "\n");
  io::remove_tree(final_dir);
  fs::rename(tmp, final_dir);
  note_intact_checkpoint(run_dir, step);
  // The run dir itself is the latest model bundle.
  if (update_root)
    for (const char* f : {"config.json", "model.safetensors"})
      io::write_file_atomic((fs::path(run_dir) / f).string(), io::read_file((final_dir / f).string()));
  auto all = list_checkpoints(run_dir);
  for (size_t i = 0; i + static_cast<size_t>(std::max(1, keep)) < all.size(); ++i) io::remove_tree(all[i].dir);
}

}  // namespace eve::train
