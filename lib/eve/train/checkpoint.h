// Resumable checkpoints in a run dir:
//
//   RUN/checkpoint-<step, 8 digits>/   config.json, model.safetensors (a model bundle),
//                                      optimizer.safetensors, trainer.json
//   RUN/config.json, RUN/model.safetensors   the latest checkpoint's bundle (a usable model)
//
// A checkpoint is written into RUN/.checkpoint-<step>.tmp and renamed into place once every
// file is complete, so a run killed at any moment leaves only complete checkpoints; the
// oldest ones beyond `keep` are removed afterwards.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "eve/model/eve_model.h"
#include "eve/train/optim.h"

namespace eve::train {

struct CheckpointRef {
  int64_t step = -1;  // -1 = none
  std::string dir;
};

// The complete checkpoint with the highest step in run_dir (step -1 when there is none).
CheckpointRef latest_checkpoint(const std::string& run_dir);

// A second SIGINT/SIGTERM while it writes is held until the checkpoint is complete
// (signals.h); a third abandons it, and the note the handler then writes names the
// checkpoint that is intact.
// update_root: also make RUN/config.json + RUN/model.safetensors this checkpoint's model
// (fine-tuning keeps the best model there instead).
void write_checkpoint(const std::string& run_dir, int64_t step, model::EveModelImpl& model,
                      const AdamW& optimizer, const nlohmann::ordered_json& trainer, int keep,
                      bool update_root = true);

// Tells the signal handler which checkpoint of run_dir a hard stop (a second signal) leaves
// intact: `step` (-1: none yet). write_checkpoint keeps it current; a trainer calls it once
// it knows where it starts (rank 0 only: the note is written to stderr).
void note_intact_checkpoint(const std::string& run_dir, int64_t step);

}  // namespace eve::train
