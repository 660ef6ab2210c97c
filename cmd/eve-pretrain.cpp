// eve-pretrain: Pre-train an EVE model by masked signal modeling (or the VLMo baseline)
#include <CLI/CLI.hpp>

#include "eve/core/cli.h"
#include "eve/model/runtime.h"
#include "eve/train/pretrain.h"
#include "eve/train/trainer_options.h"

int main(int argc, char** argv) {
  CLI::App app{"Pre-train an EVE model by masked signal modeling (MIM + MLM + MoE aux loss), or by the "
               "VLMo-style ITC/ITM/MLM baseline and its image-only and text-only stages",
               "eve-pretrain"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorch, eve::model::build_info());
  eve::train::PretrainOptions o;
  const char* d = "Data and objective";
  app.add_option("--data", o.data, "Dataset dir of caption pairs with token ids")->group(d);
  app.add_option("--split", o.split, "Records file <data>/<split>.jsonl")->capture_default_str()->group(d);
  app.add_option("--objective", o.objective,
                 "msm, or any of itc,itm,mlm (--stage vl); mim (--stage image); mlm (--stage text); "
                 "default: the stage's first")->group(d);
  app.add_option("--stage", o.stage, "vl (image-text pairs), image (images alone) or text (token ids alone)")
      ->capture_default_str()->group(d);
  app.add_option("--freeze", o.freeze, "Keep parameters whose name matches this glob fixed (repeatable)")
      ->group(d);
  app.add_option("--image-mask-ratio", o.image_mask_ratio, "Fraction of patches masked")->capture_default_str()->group(d);
  app.add_option("--text-mask-ratio", o.text_mask_ratio, "Fraction of tokens masked")->capture_default_str()->group(d);
  app.add_option("--mim-weight", o.mim_weight, "Weight of the MIM loss")->capture_default_str()->group(d);
  app.add_option("--mlm-weight", o.mlm_weight, "Weight of the MLM loss")->capture_default_str()->group(d);
  app.add_option("--itc-weight", o.itc_weight, "Weight of the ITC loss (--objective itc)")
      ->capture_default_str()->group(d);
  app.add_option("--itm-weight", o.itm_weight, "Weight of the ITM loss (--objective itm)")
      ->capture_default_str()->group(d);
  eve::train::add_model_flags(app, o);
  eve::train::add_optimisation_flags(app, o);
  const char* t = eve::train::kOptimGroup;
  app.add_option("--min-lr", o.min_lr, "Learning rate at the end of the decay")->capture_default_str()->group(t);
  app.add_option("--beta2", o.beta2, "AdamW beta2")->capture_default_str()->group(t);
  eve::train::add_run_flags(app, o, "at the end");
  return eve::cli::run(app, argc, argv, common, [&]() -> int { return eve::train::run_pretrain(o, common); });
}
