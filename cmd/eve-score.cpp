// eve-score: the official VQA v2, NLVR2 and retrieval metrics
#include <CLI/CLI.hpp>

#include <iostream>

#include "eve/core/cli.h"
#include "eve/eval/classify_eval.h"
#include "eve/eval/score.h"

int main(int argc, char** argv) {
  CLI::App app{"The official VQA v2, NLVR2 and retrieval metrics", "eve-score"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorchFree);
  std::string format = "json";
  app.add_option("--format", format, "Output: json (one object on stdout) or table")
      ->check(CLI::IsMember({"json", "table"}))
      ->capture_default_str()
      ->group("Output");

  eve::eval::VqaScoreOptions vqa;
  auto* vqa_cmd = app.add_subcommand("vqa", "VQA v2 accuracy (official evaluator)");
  // The file flags are spelled as eve-prep vqa spells them (and the official evaluator's
  // quesFile, annFile, resFile name the same three files).
  auto* questions = vqa_cmd->add_option("--questions", vqa.questions,
                                        "Questions JSON (v2_OpenEnded_mscoco_*_questions.json)")
                        ->required();
  auto* annotations = vqa_cmd->add_option("--annotations", vqa.annotations,
                                          "Annotations JSON (v2_mscoco_*_annotations.json); required unless "
                                          "--check-submission");
  eve::cli::add_deprecated_alias(vqa_cmd, "--ques", questions);
  eve::cli::add_deprecated_alias(vqa_cmd, "--ann", annotations);
  vqa_cmd->add_option("--pred", vqa.results, "Results JSON: [{\"question_id\", \"answer\"}, ...]")
      ->required();
  vqa_cmd->add_option("--evaluator", vqa.evaluator,
                      "current (2021 official) or legacy2017 (the LAVIS/BLIP logic)")
      ->check(CLI::IsMember({"current", "legacy2017"}))
      ->capture_default_str();
  vqa_cmd->add_flag("--check-submission", vqa.check_submission,
                    "Check --pred as an upload to the evaluation server against the test questions "
                    "--questions: every question answered once, no unknown ids, string answers, the file "
                    "named vqa_<split>_<method>_results.json; warns where the server's normalisation "
                    "changes an answer. Exits 1 listing the problems");
  vqa_cmd->add_option("--split", vqa.split,
                      "With --check-submission: the server's split (default: the questions' data_subtype)")
      ->check(CLI::IsMember({"test-dev2015", "test2015"}));

  eve::eval::Nlvr2ScoreOptions nlvr2;
  auto* nlvr2_cmd = app.add_subcommand("nlvr2", "NLVR2 accuracy and consistency");
  nlvr2_cmd->add_option("--gold", nlvr2.gold, "Labels, JSON Lines with identifier and label")
      ->required();
  nlvr2_cmd->add_option("--pred", nlvr2.predictions, "Predictions CSV: identifier,prediction")
      ->required();

  eve::eval::RetrievalScoreOptions retrieval;
  auto* retrieval_cmd = app.add_subcommand("retrieval", "Image-text retrieval recall (R@1/5/10)");
  retrieval_cmd->add_option("--ann", retrieval.annotations,
                            "Test annotation: [{\"image\", \"caption\": [...]}, ...]");
  retrieval_cmd->add_option("--data", retrieval.data,
                            "Dataset dir of eve-prep: its --split records are the annotation, or, with "
                            "--ann, give the images their store keys (the ids eve-embed writes)")
      ->option_text("DIR");
  retrieval_cmd->add_option("--split", retrieval.split, "The split of --data")->capture_default_str();
  retrieval_cmd->add_option("--i2t", retrieval.i2t_scores, "Image-to-text scores .npy (images x texts)");
  retrieval_cmd->add_option("--t2i", retrieval.t2i_scores, "Text-to-image scores .npy (texts x images)");
  retrieval_cmd->add_option("--i2t-ranks", retrieval.i2t_ranks, "Image-query rank lists, JSONL");
  retrieval_cmd->add_option("--t2i-ranks", retrieval.t2i_ranks, "Text-query rank lists, JSONL");

  eve::eval::ClassifyScoreOptions classify;
  auto* classify_cmd = app.add_subcommand(
      "classify", "Zero-shot classification: top-1/top-5 and per-class accuracy, most confused pairs");
  classify_cmd->add_option("--gold", classify.gold,
                           "Labels, JSON Lines: one record per image with its id and the --field attribute "
                           "(a class, or a list of classes any of which is correct)")
      ->required()->option_text("LABELS");
  classify_cmd->add_option("--ranks", classify.ranks,
                           "eve-rank output with the images as queries and the class embeddings as gallery")
      ->required()->option_text("RANKS");
  classify_cmd->add_option("--field", classify.field, "The gold attribute scored (e.g. colors, background)")
      ->required();
  classify_cmd->add_option("--id-field", classify.id_field, "The gold field holding the image id")
      ->capture_default_str();
  classify_cmd->add_option("--confused", classify.confused, "How many of the most confused pairs to list")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.require_subcommand(1);

  return eve::cli::run(app, argc, argv, common, [&]() -> int {
    eve::eval::ordered_json result;
    if (vqa_cmd->parsed()) {
      vqa.threads = common.threads;
      result = eve::eval::score_vqa(vqa);
    } else if (nlvr2_cmd->parsed()) {
      result = eve::eval::score_nlvr2(nlvr2);
    } else if (classify_cmd->parsed()) {
      result = eve::eval::score_classify(classify);
    } else {
      retrieval.threads = common.threads;
      result = eve::eval::score_retrieval(retrieval);
    }
    if (format == "table") {
      std::cout << eve::eval::format_score_table(result);
    } else {
      std::cout << result.dump() << "\n";
    }
    std::cout.flush();
    return std::cout ? 0 : 1;
  });
}
