// The records of the fine-tuning tasks (finetune.h) as samples for the loader, plus what
// each task needs beside them: VQA answer scores, NLVR2 labels, retrieval positive groups.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "eve/train/loader.h"

namespace eve::train {

enum class Task { vqa, nlvr2, retrieval };
Task parse_task(const std::string& name);  // throws UsageError
const char* task_name(Task task);

struct TaskRecords {
  std::string path;
  std::vector<Sample> samples;  // what the loader reads (retrieval evaluation: images only)

  // VQA: one per sample.
  std::vector<int64_t> question_ids;
  std::vector<std::vector<std::string>> human_answers;  // empty = unlabelled
  std::vector<bool> from_vg;                            // "dataset": "vg" (answers score 1)
  // NLVR2: one per sample.
  std::vector<std::string> identifiers;
  std::vector<int> labels;  // 1 = "True", 0 = "False", -1 = none
  // Retrieval, training: the image (record) index of each caption sample.
  std::vector<int64_t> groups;
  // Retrieval, evaluation: samples = one per image (record order); the texts image by image.
  std::vector<std::string> image_keys;
  std::vector<std::vector<int64_t>> texts;
  std::vector<uint32_t> text_offsets;  // texts of image i: [text_offsets[i], text_offsets[i+1])

  bool labelled() const;
};

// Reads <dir>/<split>.jsonl for `task`. `training` requires labels (VQA answers, NLVR2
// labels) and, for retrieval, makes one sample per caption. Malformed records throw
// eve::Error naming file:line.
TaskRecords read_task_records(Task task, const std::string& dir, const std::string& split,
                              int vocab_size, bool training);

// VQA answer vocabulary: the `n` most frequent human answers of the records (each of a
// question's answers counts once per annotator; ties by text), most frequent first.
std::vector<std::string> top_answers(const std::vector<const TaskRecords*>& records, int n);

// Soft VQA targets of one question against the vocabulary: (answer index, score) with score
// min(1, 0.3 * count) for a human answer given `count` times (1.0 for VG questions).
// Answers outside the vocabulary are dropped.
using AnswerIndex = std::unordered_map<std::string, int>;
AnswerIndex answer_index(const std::vector<std::string>& vocabulary);
std::vector<std::pair<int, float>> vqa_targets(const std::vector<std::string>& human, bool from_vg,
                                               const AnswerIndex& vocabulary);

// The answer list as JSON text / from a JSON file (a list of distinct strings).
std::string answers_json(const std::vector<std::string>& answers);
std::vector<std::string> read_answers(const std::string& path);

// "val.ids" -> "val": the stem prediction files are named after.
std::string split_stem(const std::string& split);

}  // namespace eve::train
