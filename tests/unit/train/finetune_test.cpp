// Fine-tuning pieces: task records (VQA, NLVR2, retrieval) and their errors, the VQA answer
// vocabulary and soft targets, ITC targets and negative sampling, the contrastive loss on a
// small model, per-parameter learning-rate multipliers, two-image loader batches and the
// one-process gather.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "eve/core/error.h"
#include "eve/image/codec.h"
#include "eve/image/preprocess.h"
#include "eve/io/file.h"
#include "eve/io/image_store.h"
#include "eve/train/contrastive.h"
#include "eve/train/distributed.h"
#include "eve/train/finetune_data.h"
#include "eve/train/loader.h"
#include "eve/train/optim.h"
#include "common/error_of.h"
#include "fixtures.h"
#include "common/model_test_util.h"

namespace {

using namespace eve::train;
using eve::test::error_of;
using eve::model::test::TempDir;
using eve::train::test::write_image_store;
using eve::train::test::write_records;

// ---------------------------------------------------------------------------------------
// VQA answers

// The official leave-one-out accuracy of an answer that k of the ten humans gave
// (docs/architecture.md, "Fine-tuning and retrieval evaluation"; eval/vqa_eval.h).
double official_vqa_accuracy(int k) {
  double sum = 0;
  for (int j = 0; j < 10; ++j) {
    const int others = j < k ? k - 1 : k;  // held-out record j matches or not
    sum += std::min(1.0, others / 3.0);
  }
  return sum / 10.0;
}

std::map<std::string, float> targets_by_answer(const std::vector<std::string>& human, bool vg,
                                               const std::vector<std::string>& vocabulary) {
  std::map<std::string, float> out;
  for (const auto& [index, score] : vqa_targets(human, vg, answer_index(vocabulary))) {
    EXPECT_TRUE(out.emplace(vocabulary.at(static_cast<size_t>(index)), score).second) << "answer twice";
  }
  return out;
}

TEST(FinetuneAnswers, SoftTargetsEqualTheOfficialLeaveOneOutValue) {
  const std::vector<std::string> vocab{"no", "yes", "two", "red", "blue"};
  const std::vector<std::string> human{"yes", "no", "no", "two", "two", "two", "red", "red", "red", "red"};
  auto t = targets_by_answer(human, false, vocab);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_NEAR(t["yes"], 0.3, 1e-6);
  EXPECT_NEAR(t["no"], 0.6, 1e-6);
  EXPECT_NEAR(t["two"], 0.9, 1e-6);
  EXPECT_NEAR(t["red"], 1.0, 1e-6);
  EXPECT_NEAR(t["yes"], official_vqa_accuracy(1), 1e-6);
  EXPECT_NEAR(t["no"], official_vqa_accuracy(2), 1e-6);
  EXPECT_NEAR(t["two"], official_vqa_accuracy(3), 1e-6);
  EXPECT_NEAR(t["red"], official_vqa_accuracy(4), 1e-6);

  // More than four votes stays at 1; answers outside the vocabulary are dropped.
  t = targets_by_answer({"blue", "blue", "blue", "blue", "blue", "blue", "green", "green", "pink", "pink"}, false,
                        vocab);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_NEAR(t["blue"], official_vqa_accuracy(6), 1e-6);
  EXPECT_TRUE(targets_by_answer({"green", "pink"}, false, vocab).empty());

  // Visual Genome questions and single answers score 1 whatever the count.
  t = targets_by_answer({"red"}, true, vocab);
  EXPECT_EQ(t, (std::map<std::string, float>{{"red", 1.0f}}));
  t = targets_by_answer({"two"}, false, vocab);
  EXPECT_EQ(t, (std::map<std::string, float>{{"two", 1.0f}}));
  t = targets_by_answer({"no", "yes"}, true, vocab);
  EXPECT_EQ(t, (std::map<std::string, float>{{"no", 1.0f}, {"yes", 1.0f}}));
}

TEST(FinetuneAnswers, TopAnswersByCountThenTextWithLimit) {
  TaskRecords a, b;
  a.human_answers = {{"b", "a", "c", "c"}, {"a", "d", "c"}};
  b.human_answers = {{"b", "e"}, {}};
  // c 3, a 2, b 2, d 1, e 1.
  const std::vector<std::string> all{"c", "a", "b", "d", "e"};
  EXPECT_EQ(top_answers({&a, &b}, 0), all);
  EXPECT_EQ(top_answers({&a, &b}, 10), all);
  EXPECT_EQ(top_answers({&a, &b}, 3), (std::vector<std::string>{"c", "a", "b"}));
  EXPECT_EQ(top_answers({&b}, 1), (std::vector<std::string>{"b"}));
  const AnswerIndex index = answer_index(all);
  EXPECT_EQ(index.at("c"), 0);
  EXPECT_EQ(index.at("e"), 4);
}

TEST(FinetuneAnswers, AnswerListFileRoundTripAndErrors) {
  TempDir t;
  const std::vector<std::string> list{"yes", "no", "2", "red car"};
  eve::io::write_file_atomic(t / "answers.json", answers_json(list));
  EXPECT_EQ(read_answers(t / "answers.json"), list);

  eve::io::write_file_atomic(t / "object.json", "{\"yes\": 0}");
  EXPECT_EQ(error_of([&] { read_answers(t / "object.json"); }),
            t / "object.json" + ": an answer list must be a non-empty JSON list of strings");
  eve::io::write_file_atomic(t / "empty.json", "[]");
  EXPECT_EQ(error_of([&] { read_answers(t / "empty.json"); }),
            t / "empty.json" + ": an answer list must be a non-empty JSON list of strings");
  eve::io::write_file_atomic(t / "twice.json", "[\"yes\", \"no\", \"yes\"]");
  EXPECT_EQ(error_of([&] { read_answers(t / "twice.json"); }),
            t / "twice.json" + ":[2]: answer \"yes\" is listed twice");
  eve::io::write_file_atomic(t / "number.json", "[\"yes\", 3]");
  EXPECT_EQ(error_of([&] { read_answers(t / "number.json"); }), t / "number.json" + ":[1]: entry is not a string");
}

TEST(FinetuneAnswers, SplitStemAndTaskNames) {
  EXPECT_EQ(split_stem("val.ids"), "val");
  EXPECT_EQ(split_stem("test.dev.ids"), "test.dev");
  EXPECT_EQ(split_stem("val"), "val");
  EXPECT_EQ(split_stem(".ids"), ".ids");
  EXPECT_EQ(split_stem("val.ids.bak"), "val.ids.bak");
  for (Task task : {Task::vqa, Task::nlvr2, Task::retrieval}) EXPECT_EQ(parse_task(task_name(task)), task);
  EXPECT_EQ(error_of([] { parse_task("caption"); }), "--task caption: unknown (vqa, nlvr2, retrieval or probe)");
  EXPECT_THROW(parse_task(""), eve::UsageError);
}

// ---------------------------------------------------------------------------------------
// Task records

// Writes <split>.jsonl = `good` then `bad` and returns the error reading it names.
std::string record_error(const TempDir& t, Task task, const std::string& good, const std::string& bad,
                         bool training) {
  write_records(t.path, "bad", {good, bad});
  return error_of([&] { read_task_records(task, t.path, "bad", 50, training); });
}

TEST(FinetuneRecords, VqaFieldsAndErrors) {
  TempDir t;
  write_records(t.path, "train",
                {R"({"question_id": 7, "image": "img0", "ids": [2, 10, 3], "answers": ["yes", "yes", "no"]})",
                 R"({"image": "img1", "ids": [2, 11, 12, 3], "answers": ["red"], "dataset": "vg"})"});
  TaskRecords r = read_task_records(Task::vqa, t.path, "train", 50, true);
  EXPECT_EQ(r.path, t / "train.jsonl");
  ASSERT_EQ(r.samples.size(), 2u);
  EXPECT_EQ(r.samples[0].images, (std::vector<std::string>{"img0"}));
  EXPECT_EQ(r.samples[1].ids, (std::vector<int64_t>{2, 11, 12, 3}));
  EXPECT_EQ(r.samples[1].where, t / "train.jsonl:2");
  EXPECT_EQ(r.question_ids, (std::vector<int64_t>{7, 1}));  // training: the record index stands in
  EXPECT_EQ(r.human_answers[0], (std::vector<std::string>{"yes", "yes", "no"}));
  EXPECT_EQ(r.from_vg, (std::vector<bool>{false, true}));
  EXPECT_TRUE(r.labelled());

  write_records(t.path, "test", {R"({"question_id": 70, "image": "img0", "ids": [2, 3]})"});
  TaskRecords test = read_task_records(Task::vqa, t.path, "test", 50, false);
  EXPECT_EQ(test.question_ids, (std::vector<int64_t>{70}));
  EXPECT_TRUE(test.human_answers.at(0).empty());
  EXPECT_FALSE(test.labelled());

  const std::string good = R"({"question_id": 1, "image": "img0", "ids": [2, 3], "answers": ["a"]})";
  const std::string at = t / "bad.jsonl:2: ";
  EXPECT_EQ(record_error(t, Task::vqa, good, R"({"question_id": 2, "image": "img0", "answers": ["a"]})", true),
            at + "record has no token ids (\"ids\") (run the records through eve-tokenize encode first)");
  EXPECT_EQ(record_error(t, Task::vqa, good, R"({"question_id": 2, "ids": [2, 3], "answers": ["a"]})", true),
            at + "record has no string field \"image\" (VQA records are written by eve-prep vqa)");
  EXPECT_EQ(record_error(t, Task::vqa, good, R"({"image": "img0", "ids": [2, 3]})", false),
            at + "record has no \"question_id\" (predictions are keyed by question_id)");
  EXPECT_EQ(record_error(t, Task::vqa, good, R"({"question_id": "q2", "image": "img0", "ids": [2, 3]})", false),
            at + "\"question_id\" must be an integer");
  EXPECT_EQ(record_error(t, Task::vqa, good, R"({"question_id": 2, "image": "img0", "ids": [2, 3]})", true),
            at + "training record has no answers (train on a split with \"answers\")");
  EXPECT_EQ(record_error(t, Task::vqa, good, R"({"question_id": 2, "image": "img0", "ids": [2, 3], "answers": "a"})",
                         true),
            at + "\"answers\" must be a list of strings");
  EXPECT_EQ(record_error(t, Task::vqa, good, R"({"question_id": 2, "image": "img0", "ids": [2, 50, 3],)"
                                                 R"( "answers": ["a"]})", true),
            at + "token id 50 is outside the vocabulary [0, 50) "
                 "(encode the records with the tokenizer given by --tokenizer)");
  // Predictions are keyed by question_id: a repeat is an error where the split is predicted.
  write_records(t.path, "dup", {good, R"({"question_id": 2, "image": "img1", "ids": [2, 3]})",
                                R"({"question_id": 1, "image": "img2", "ids": [2, 4, 3]})"});
  EXPECT_EQ(error_of([&] { read_task_records(Task::vqa, t.path, "dup", 50, false); }),
            t / "dup.jsonl:3: question_id 1 repeats line 1 (predictions are keyed by question_id)");
  // A missing split names the splits the dataset dir holds.
  EXPECT_EQ(error_of([&] { read_task_records(Task::vqa, t.path, "train.ids", 50, true); }),
            t / "train.ids.jsonl: no such records file (give the split name as eve-tokenize encode wrote it "
                "(e.g. train.ids for train.ids.jsonl); the splits in " + t.path + ": bad, dup, test, train)");
  // So does an empty one.
  write_records(t.path, "none", {});
  EXPECT_EQ(error_of([&] { read_task_records(Task::vqa, t.path, "none", 50, true); }),
            t / "none.jsonl: the split has no records (the file is empty) (check the split's record count in " +
                t.path + "/manifest.json (\"splits\") and that eve-tokenize encode was given the right file)");
}

TEST(FinetuneRecords, Nlvr2LabelsAndErrors) {
  TempDir t;
  write_records(t.path, "train",
                {R"({"identifier": "a-0", "images": ["img0", "img1"], "ids": [2, 9, 3], "label": "True"})",
                 R"({"identifier": "a-1", "images": ["img2", "img0"], "ids": [2, 3], "label": "False"})",
                 R"({"identifier": "a-2", "images": ["img1", "img2"], "ids": [2, 3], "label": true})",
                 R"({"identifier": "a-3", "images": ["img1", "img1"], "ids": [2, 3], "label": false})"});
  TaskRecords r = read_task_records(Task::nlvr2, t.path, "train", 50, true);
  ASSERT_EQ(r.samples.size(), 4u);
  EXPECT_EQ(r.samples[1].images, (std::vector<std::string>{"img2", "img0"}));
  EXPECT_EQ(r.samples[0].ids, (std::vector<int64_t>{2, 9, 3}));
  EXPECT_EQ(r.identifiers, (std::vector<std::string>{"a-0", "a-1", "a-2", "a-3"}));
  EXPECT_EQ(r.labels, (std::vector<int>{1, 0, 1, 0}));
  EXPECT_TRUE(r.labelled());

  write_records(t.path, "test", {R"({"identifier": "b-0", "images": ["img0", "img1"], "ids": [2, 3]})"});
  TaskRecords test = read_task_records(Task::nlvr2, t.path, "test", 50, false);
  EXPECT_EQ(test.labels, (std::vector<int>{-1}));
  EXPECT_FALSE(test.labelled());

  const std::string good = R"({"identifier": "a-0", "images": ["img0", "img1"], "ids": [2, 3], "label": "True"})";
  const std::string at = t / "bad.jsonl:2: ";
  const std::string pair_error =
      at + "\"images\" must be a list of two image keys (NLVR2 records are written by eve-prep nlvr2)";
  EXPECT_EQ(record_error(t, Task::nlvr2, good, R"({"identifier": "x", "images": ["img0"], "ids": [2, 3]})", false),
            pair_error);
  EXPECT_EQ(record_error(t, Task::nlvr2, good, R"({"identifier": "x", "images": ["img0", "img1", "img2"],)"
                                                   R"( "ids": [2, 3]})", false),
            pair_error);
  EXPECT_EQ(record_error(t, Task::nlvr2, good, R"({"identifier": "x", "images": ["img0", 1], "ids": [2, 3]})", false),
            pair_error);
  EXPECT_EQ(record_error(t, Task::nlvr2, good, R"({"identifier": "x", "image": "img0", "ids": [2, 3]})", false),
            pair_error);
  EXPECT_EQ(record_error(t, Task::nlvr2, good, R"({"identifier": "x", "images": ["img0", "img1"], "ids": [2, 3],)"
                                                   R"( "label": "true"})", false),
            at + "\"label\" must be \"True\" or \"False\"");
  EXPECT_EQ(record_error(t, Task::nlvr2, good, R"({"identifier": "x", "images": ["img0", "img1"], "ids": [2, 3],)"
                                                   R"( "label": 1})", true),
            at + "\"label\" must be \"True\" or \"False\"");
  EXPECT_EQ(record_error(t, Task::nlvr2, good, R"({"identifier": "x", "images": ["img0", "img1"], "ids": [2, 3]})",
                         true),
            at + "training record has no \"label\"");
  EXPECT_EQ(record_error(t, Task::nlvr2, good, R"({"images": ["img0", "img1"], "ids": [2, 3], "label": "True"})",
                         true),
            at + "record has no string field \"identifier\" (NLVR2 records are written by eve-prep nlvr2)");
  EXPECT_EQ(record_error(t, Task::nlvr2, good, R"({"identifier": "x", "images": ["img0", "img1"], "ids": [],)"
                                                   R"( "label": "True"})", true),
            at + "ids must be a non-empty list of integers");
  write_records(t.path, "dup", {good, R"({"identifier": "a-1", "images": ["img1", "img0"], "ids": [2, 3]})",
                                R"({"identifier": "a-0", "images": ["img2", "img0"], "ids": [2, 3]})"});
  EXPECT_EQ(error_of([&] { read_task_records(Task::nlvr2, t.path, "dup", 50, false); }),
            t / "dup.jsonl:3: identifier \"a-0\" repeats line 1 (predictions are keyed by identifier)");
}

TEST(FinetuneRecords, RetrievalCaptionsPerImage) {
  TempDir t;
  write_records(t.path, "train",
                {R"({"image": "img3", "texts": ["a", "b"], "ids_list": [[2, 10, 3], [2, 11, 3]]})",
                 R"({"image": "img1", "texts": ["c"], "ids_list": [[2, 12, 3]]})",
                 R"({"image": "img0", "text": "d", "ids": [2, 13, 14, 3]})",
                 R"({"image": "img2", "texts": ["e", "f", "g"], "ids_list": [[2, 15, 3], [2, 16, 3], [2, 17]]})"});

  // Training: one sample per caption, grouped by its image.
  TaskRecords r = read_task_records(Task::retrieval, t.path, "train", 50, true);
  ASSERT_EQ(r.samples.size(), 7u);
  EXPECT_EQ(r.groups, (std::vector<int64_t>{0, 0, 1, 2, 3, 3, 3}));
  const std::vector<std::string> image_of{"img3", "img3", "img1", "img0", "img2", "img2", "img2"};
  for (size_t i = 0; i < r.samples.size(); ++i) {
    EXPECT_EQ(r.samples[i].images, (std::vector<std::string>{image_of[i]})) << i;
    EXPECT_EQ(r.samples[i].ids, r.texts[i]) << i;
  }
  EXPECT_EQ(r.samples[1].ids, (std::vector<int64_t>{2, 11, 3}));
  EXPECT_EQ(r.samples[3].ids, (std::vector<int64_t>{2, 13, 14, 3}));
  EXPECT_EQ(r.samples[6].where, t / "train.jsonl:4");
  EXPECT_TRUE(r.labelled());

  // Evaluation: one sample per image (no text); the texts image by image.
  TaskRecords e = read_task_records(Task::retrieval, t.path, "train", 50, false);
  ASSERT_EQ(e.samples.size(), 4u);
  EXPECT_EQ(e.image_keys, (std::vector<std::string>{"img3", "img1", "img0", "img2"}));
  for (size_t i = 0; i < e.samples.size(); ++i) {
    EXPECT_EQ(e.samples[i].images, (std::vector<std::string>{e.image_keys[i]}));
    EXPECT_TRUE(e.samples[i].ids.empty());
  }
  EXPECT_EQ(e.text_offsets, (std::vector<uint32_t>{0, 2, 3, 4, 7}));
  ASSERT_EQ(e.texts.size(), 7u);
  EXPECT_EQ(e.texts[2], (std::vector<int64_t>{2, 12, 3}));
  EXPECT_EQ(e.texts[6], (std::vector<int64_t>{2, 17}));
  EXPECT_TRUE(e.groups.empty());
  EXPECT_TRUE(e.labelled());

  // A second record of an image is named by its own line, in training and evaluation.
  write_records(t.path, "twice",
                {R"({"image": "img0", "ids_list": [[2, 3], [2, 4, 3]]})", R"({"image": "img1", "ids_list": [[2, 3]]})",
                 R"({"image": "img0", "ids_list": [[2, 5, 3]]})"});
  const std::string twice = t / "twice.jsonl:3: image \"img0\" repeats line 1 "
                                "(retrieval records hold one image each with all its captions)";
  EXPECT_EQ(error_of([&] { read_task_records(Task::retrieval, t.path, "twice", 50, true); }), twice);
  EXPECT_EQ(error_of([&] { read_task_records(Task::retrieval, t.path, "twice", 50, false); }), twice);

  const std::string good = R"({"image": "img0", "ids_list": [[2, 3]]})";
  const std::string at = t / "bad.jsonl:2: ";
  EXPECT_EQ(record_error(t, Task::retrieval, good, R"({"image": "img1", "texts": ["x"]})", true),
            at + "record has no token ids (\"ids_list\") (run the records through eve-tokenize encode first)");
  EXPECT_EQ(record_error(t, Task::retrieval, good, R"({"image": "img1", "ids_list": [2, 3]})", false),
            at + "ids must be a non-empty list of integers");
  EXPECT_EQ(record_error(t, Task::retrieval, good, R"({"image": "img1", "ids_list": {"a": [2, 3]}})", false),
            at + "\"ids_list\" must be a list of token id lists");
  EXPECT_EQ(record_error(t, Task::retrieval, good, R"({"ids_list": [[2, 3]]})", true),
            at + "record has no string field \"image\" (retrieval records are written by eve-prep retrieval)");
  EXPECT_EQ(record_error(t, Task::retrieval, good, R"({"image": "img1", "ids_list": [[2, 3], [2, 99]]})", true),
            at + "token id 99 is outside the vocabulary [0, 50) "
                 "(encode the records with the tokenizer given by --tokenizer)");
}

// ---------------------------------------------------------------------------------------
// ITC targets and negative sampling

TEST(ContrastiveSampling, ItcTargetsAreRowNormalisedPositives) {
  torch::Tensor a = torch::tensor({0, 0, 1, 5}, torch::kInt64), b = torch::tensor({0, 1, 0, 0, 2}, torch::kInt64);
  torch::Tensor t = itc_targets(a, b);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{4, 5}));
  torch::Tensor want = torch::tensor({{1 / 3., 0., 1 / 3., 1 / 3., 0.},
                                      {1 / 3., 0., 1 / 3., 1 / 3., 0.},
                                      {0., 1., 0., 0., 0.},
                                      {0., 0., 0., 0., 0.}},
                                     torch::kFloat32);
  EXPECT_TRUE(torch::allclose(t, want, 0, 1e-7)) << t;
}

TEST(ContrastiveSampling, NeverDrawsZeroWeightsAndEmptyRowsDrawUniformly) {
  const int64_t draws = 4000;
  torch::Tensor row0 = torch::tensor({0.f, 1.f, 0.f, 3.f}), row1 = torch::zeros({4});
  torch::Tensor w = torch::cat({row0.expand({draws, 4}), row1.expand({draws, 4})});
  torch::manual_seed(11);
  torch::Tensor s = sample_rows(w);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{2 * draws}));
  EXPECT_EQ(s.scalar_type(), torch::kInt64);
  torch::Tensor weighted = torch::bincount(s.narrow(0, 0, draws), {}, 4);
  torch::Tensor empty = torch::bincount(s.narrow(0, draws, draws), {}, 4);
  EXPECT_EQ(weighted[0].item<int64_t>(), 0);
  EXPECT_EQ(weighted[2].item<int64_t>(), 0);
  // Proportional to the weights: 1/4 and 3/4 (binomial sd ~27 for 4000 draws).
  EXPECT_NEAR(weighted[1].item<double>(), draws / 4.0, 150);
  EXPECT_NEAR(weighted[3].item<double>(), 3 * draws / 4.0, 150);
  for (int64_t j = 0; j < 4; ++j) EXPECT_NEAR(empty[j].item<double>(), draws / 4.0, 150) << j;
  // The caller's weights are left alone, and the same seed draws the same indices.
  EXPECT_TRUE(w.narrow(0, draws, draws).eq(0).all().item<bool>());
  torch::manual_seed(11);
  EXPECT_TRUE(sample_rows(w).equal(s));
  torch::manual_seed(12);
  EXPECT_FALSE(sample_rows(w).equal(s));
}

// ---------------------------------------------------------------------------------------
// The contrastive loss on a small model

struct ContrastiveBatch {
  torch::Tensor images, ids, mask, groups;
};

ContrastiveBatch contrastive_batch(const eve::model::ModelConfig& c, std::vector<int64_t> groups) {
  const int64_t B = static_cast<int64_t>(groups.size());
  auto b = eve::model::test::make_batch(c, B, c.max_text_len, 0, 21);
  return {b["image"], b["text_ids"], b["text_mask"], torch::tensor(groups, torch::kInt64)};
}

// ½ (CE_i2t + CE_t2i) computed entry by entry from the model's own projections, every pair
// with equal groups a positive.
double hand_itc(eve::model::EveModelImpl& m, const ContrastiveBatch& b) {
  torch::NoGradGuard guard;
  eve::model::EncoderInput vin, tin;
  vin.image = b.images;
  tin.text_ids = b.ids;
  tin.text_mask = b.mask;
  torch::Tensor fv = m.itc_image(m.encode(eve::model::Mode::vision, vin).pooled).to(torch::kFloat64);
  torch::Tensor ft = m.itc_text(m.encode(eve::model::Mode::text, tin).pooled).to(torch::kFloat64);
  const double tau = m.itc_temperature().item<double>();
  const int64_t n = fv.size(0);
  auto v = fv.accessor<double, 2>();
  auto t = ft.accessor<double, 2>();
  auto g = b.groups.accessor<int64_t, 1>();
  std::vector<std::vector<double>> logit(n, std::vector<double>(n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < fv.size(1); ++k) dot += v[i][k] * t[j][k];
      logit[i][j] = dot / tau;
    }
  double i2t = 0, t2i = 0;
  for (int64_t i = 0; i < n; ++i) {
    double lse_row = 0, lse_col = 0, pos_row = 0, pos_col = 0;
    int positives = 0;
    for (int64_t j = 0; j < n; ++j) {
      lse_row += std::exp(logit[i][j]);
      lse_col += std::exp(logit[j][i]);
      if (g[i] == g[j]) {
        pos_row += logit[i][j];
        pos_col += logit[j][i];
        ++positives;
      }
    }
    i2t += std::log(lse_row) - pos_row / positives;
    t2i += std::log(lse_col) - pos_col / positives;
  }
  return 0.5 * (i2t + t2i) / static_cast<double>(n);
}

bool has_gradient(const torch::Tensor& p) { return p.grad().defined() && p.grad().abs().sum().item<double>() > 0; }

TEST(ContrastiveLoss, ItcMatchesHandComputationAndGradientsReachEveryPart) {
  torch::manual_seed(3);
  eve::model::EveModel m(eve::model::test::retrieval_config());
  eve::model::test::widen_weights(*m);
  ContrastiveBatch b = contrastive_batch(m->config(), {0, 0, 1, 2, 2, 2});
  torch::manual_seed(4);
  ContrastiveLoss l = contrastive_loss(*m, b.images, b.ids, b.mask, b.groups, {}, nullptr);
  ASSERT_TRUE(l.total.defined());
  EXPECT_EQ(l.total.dim(), 0);
  EXPECT_TRUE(std::isfinite(l.total.item<double>()));
  EXPECT_NEAR(l.itc.item<double>(), hand_itc(*m, b), 1e-4);
  // The positives of repeated ids matter: one image per row gives another value.
  ContrastiveBatch distinct = b;
  distinct.groups = torch::arange(6, torch::kInt64);
  EXPECT_GT(std::abs(hand_itc(*m, distinct) - l.itc.item<double>()), 0.05);
  EXPECT_GT(l.itm.item<double>(), 0.0);
  EXPECT_GE(l.itm_accuracy.item<double>(), 0.0);
  EXPECT_LE(l.itm_accuracy.item<double>(), 1.0);
  EXPECT_GE(l.aux.item<double>(), 0.0);
  EXPECT_FALSE(l.load.empty());
  EXPECT_NEAR(l.total.item<double>(), l.itc.item<double>() + l.itm.item<double>() + m->config().moe_lossweight * l.aux.item<double>(), 1e-5);

  l.total.backward();
  EXPECT_TRUE(has_gradient(m->itc_vision_proj_head->weight));
  EXPECT_TRUE(has_gradient(m->itc_text_proj_head->weight));
  EXPECT_TRUE(has_gradient(m->itc_temp));
  EXPECT_TRUE(has_gradient(m->itm_head->weight));
  EXPECT_TRUE(has_gradient(m->backbone->patch_embed->weight));
  EXPECT_TRUE(has_gradient(m->backbone->word_embedding->weight));
  EXPECT_TRUE(has_gradient(m->backbone->layers.at(0)->attn->qkv->weight));

  // Negatives come from torch's generator: the same seed gives the same ITM loss.
  torch::manual_seed(4);
  ContrastiveLoss again = contrastive_loss(*m, b.images, b.ids, b.mask, b.groups, {}, nullptr);
  EXPECT_DOUBLE_EQ(again.itm.item<double>(), l.itm.item<double>());
  EXPECT_DOUBLE_EQ(again.itc.item<double>(), l.itc.item<double>());
}

TEST(ContrastiveLoss, ItmWeightZeroRunsNoFusionPass) {
  torch::manual_seed(3);
  eve::model::EveModel m(eve::model::test::retrieval_config());
  eve::model::test::widen_weights(*m);
  ContrastiveBatch b = contrastive_batch(m->config(), {0, 1, 1, 2});
  ContrastiveOptions o;
  o.itm_weight = 0;
  o.itc_weight = 2.0;
  ContrastiveLoss l = contrastive_loss(*m, b.images, b.ids, b.mask, b.groups, o, nullptr);
  EXPECT_EQ(l.itm.item<double>(), 0.0);
  EXPECT_EQ(l.itm_accuracy.item<double>(), 0.0);
  EXPECT_NEAR(l.itc.item<double>(), hand_itc(*m, b), 1e-4);
  EXPECT_NEAR(l.total.item<double>(), 2.0 * l.itc.item<double>() + m->config().moe_lossweight * l.aux.item<double>(), 1e-5);
  ContrastiveLoss full = contrastive_loss(*m, b.images, b.ids, b.mask, b.groups, {}, nullptr);
  EXPECT_NEAR(full.itc.item<double>(), l.itc.item<double>(), 1e-6);
  l.total.backward();
  EXPECT_TRUE(has_gradient(m->itc_vision_proj_head->weight));
  EXPECT_FALSE(has_gradient(m->itm_head->weight));  // the matching head never ran
}

// ---------------------------------------------------------------------------------------
// Learning-rate multipliers

TEST(FinetuneOptim, LrMultiplierScalesTheFirstStep) {
  auto full = [](std::vector<int64_t> shape) { return torch::full(shape, 1.0).set_requires_grad(true); };
  torch::Tensor head_w = full({2, 3}), body_w = full({2, 3}), head_b = full({3}), body_b = full({3});
  AdamW opt({{"backbone.layer.weight", body_w},
             {"backbone.layer.bias", body_b},
             {"head.weight", head_w},
             {"head.bias", head_b}},
            {});
  EXPECT_EQ(opt.set_lr_multiplier({"head.weight", "head.bias", "not.a.parameter"}, 10.0), 2u);
  EXPECT_EQ(opt.set_lr_multiplier({}, 3.0), 0u);
  ((head_w.sum() + body_w.sum()) * 0.5 + (head_b.sum() + body_b.sum()) * 2.0).backward();
  const double lr = 1e-3;
  opt.step(lr);
  auto moved = [](const torch::Tensor& p) { return (1.0 - p[0].flatten()[0]).item<double>(); };
  // First step: p -= lr * mult * (wd * p + g / |g|) for decayed weights, lr * mult for biases.
  EXPECT_NEAR(moved(body_w), lr * (1 + 0.01), 1e-7);
  EXPECT_NEAR(moved(head_w), 10 * lr * (1 + 0.01), 1e-6);
  EXPECT_NEAR(moved(body_b), lr, 1e-7);
  EXPECT_NEAR(moved(head_b), 10 * lr, 1e-6);
  EXPECT_NEAR(moved(head_w) / moved(body_w), 10.0, 1e-3);
  EXPECT_NEAR(moved(head_b) / moved(body_b), 10.0, 1e-3);
}

// ---------------------------------------------------------------------------------------
// Loader batches with two images; in-order evaluation loading

LoaderOptions small_loader(const std::string& dir) {
  LoaderOptions o;
  o.dir = dir;
  o.global_batch = 2;
  o.seed = 5;
  o.max_text_len = 6;
  o.threads = 2;
  o.prefetch = 1;
  o.augment.res = 16;
  return o;
}

// The evaluation pixels of one stored image.
torch::Tensor eval_pixels(const std::string& dir, const std::string& key, int res) {
  eve::io::ImageStore store(dir);
  torch::Tensor out = torch::empty({3, res, res});
  eve::image::eval_transform(eve::image::decode(store.read(key)), res, out.data_ptr<float>());
  return out;
}

TEST(FinetuneLoader, TwoImageSamplesLoadInTheGivenOrder) {
  TempDir t;
  write_image_store(t.path, 6);
  write_records(t.path, "train",
                {R"({"identifier": "p0", "images": ["img0", "img1"], "ids": [2, 10, 3], "label": "True"})",
                 R"({"identifier": "p1", "images": ["img2", "img3"], "ids": [2, 11, 12, 3], "label": "False"})",
                 R"({"identifier": "p2", "images": ["img4", "img5"], "ids": [2, 13, 3], "label": "True"})",
                 R"({"identifier": "p3", "images": ["img5", "img1"], "ids": [2, 14, 15, 16, 17, 18, 19, 3],)"
                     R"( "label": "False"})"});
  TaskRecords r = read_task_records(Task::nlvr2, t.path, "train", 50, true);
  Loader loader(r.samples, small_loader(t.path));

  const std::vector<int64_t> order{3, 0, 2};
  Batch b = loader.load(order);
  EXPECT_TRUE(b.samples.equal(torch::tensor(order, torch::kInt64)));
  ASSERT_TRUE(b.images2.defined());
  ASSERT_EQ(b.images2.sizes(), (std::vector<int64_t>{3, 3, 16, 16}));
  ASSERT_EQ(b.images.sizes(), b.images2.sizes());
  for (size_t i = 0; i < order.size(); ++i) {
    const Sample& s = r.samples[static_cast<size_t>(order[i])];
    const auto row = static_cast<int64_t>(i);
    EXPECT_TRUE(b.images[row].equal(eval_pixels(t.path, s.images[0], 16))) << i;
    EXPECT_TRUE(b.images2[row].equal(eval_pixels(t.path, s.images[1], 16))) << i;
    const int64_t len = std::min<int64_t>(static_cast<int64_t>(s.ids.size()), 6);
    EXPECT_EQ(b.mask[row].sum().item<int64_t>(), len) << i;
    EXPECT_TRUE(b.ids[row].narrow(0, 0, len).equal(torch::tensor(s.ids, torch::kInt64).narrow(0, 0, len))) << i;
  }
  EXPECT_EQ(b.ids[0][5].item<int64_t>(), 18);  // sample 3 cut at max_text_len
  EXPECT_EQ(b.ids[1][3].item<int64_t>(), 0);   // pads
  EXPECT_TRUE(loader.load(order).images2.equal(b.images2));  // evaluation has no randomness

  // Training batches carry both images too, in the epoch's order.
  Batch n = loader.next();
  ASSERT_TRUE(n.images2.defined());
  EXPECT_EQ(n.images2.sizes(), n.images.sizes());
  const std::vector<int64_t> epoch = epoch_order(4, 5, 0);
  EXPECT_TRUE(n.samples.equal(torch::tensor(std::vector<int64_t>(epoch.begin(), epoch.begin() + 2), torch::kInt64)));
  EXPECT_FALSE(n.images2.equal(n.images));

  EXPECT_THROW(loader.load({4}), eve::Error);
}

TEST(FinetuneLoader, OneImageSamplesKeepImages2Undefined) {
  TempDir t;
  write_image_store(t.path, 4);
  write_records(t.path, "pairs", {R"({"image": "img0", "ids": [2, 10, 3]})", R"({"image": "img1", "ids": [2, 11, 3]})",
                                  R"({"image": "img2", "ids_list": [[2, 12, 3], [2, 13, 3]]})"});
  std::vector<Sample> samples = read_pair_samples(t.path, "pairs", 50);
  ASSERT_EQ(samples.size(), 4u);
  Loader loader(samples, small_loader(t.path));
  Batch b = loader.load({2, 1});
  EXPECT_FALSE(b.images2.defined());
  EXPECT_TRUE(b.samples.equal(torch::tensor({2, 1}, torch::kInt64)));
  EXPECT_TRUE(b.images[0].equal(eval_pixels(t.path, "img2", 16)));
  EXPECT_TRUE(b.images[1].equal(eval_pixels(t.path, "img1", 16)));
  Batch n = loader.next();
  EXPECT_FALSE(n.images2.defined());
  EXPECT_EQ(n.images.sizes(), (std::vector<int64_t>{2, 3, 16, 16}));

  // One loader never mixes one- and two-image samples.
  samples.push_back({{"img0", "img3"}, {2, 3}, "mixed.jsonl:5"});
  EXPECT_EQ(error_of([&] { Loader mixed(samples, small_loader(t.path)); }),
            "mixed.jsonl:5: every sample needs 1 image(s), this one has 2");
}

// ---------------------------------------------------------------------------------------
// One process

TEST(FinetuneDistributed, OneProcessGatherRowsIsTheInput) {
  ProcessGroup pg(DistEnv{}, 5);
  EXPECT_FALSE(pg.active());
  EXPECT_EQ(pg.world(), 1);
  torch::Tensor x = torch::randn({3, 4}).set_requires_grad(true);
  torch::Tensor y = pg.gather_rows(x);
  ASSERT_EQ(y.sizes(), x.sizes());
  EXPECT_TRUE(y.equal(x));
  (y * 2).sum().backward();
  EXPECT_TRUE(x.grad().equal(torch::full({3, 4}, 2.0)));
  torch::Tensor ids = torch::tensor({4, 1, 4}, torch::kInt64);
  EXPECT_TRUE(pg.gather_rows(ids).equal(ids));
  EXPECT_EQ(pg.sum({1.5, -2.0}), (std::vector<double>{1.5, -2.0}));
}

}  // namespace
