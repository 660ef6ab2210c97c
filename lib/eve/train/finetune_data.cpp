#include "eve/train/finetune_data.h"

#include <algorithm>
#include <map>
#include <set>

#include "eve/core/error.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/train/run_common.h"

namespace eve::train {

Task parse_task(const std::string& name) {
  if (name == "vqa") return Task::vqa;
  if (name == "nlvr2") return Task::nlvr2;
  if (name == "retrieval") return Task::retrieval;
  if (name == "probe") throw UsageError("--task probe has no recipe: it trains no model (see \"Linear probe\" in --help)");
  throw UsageError("--task " + (name.empty() ? std::string("is required") : name + ": unknown") +
                   " (vqa, nlvr2, retrieval or probe)");
}

const char* task_name(Task task) {
  switch (task) {
    case Task::vqa: return "vqa";
    case Task::nlvr2: return "nlvr2";
    case Task::retrieval: return "retrieval";
  }
  return "?";
}

bool TaskRecords::labelled() const {
  if (!human_answers.empty())
    return std::all_of(human_answers.begin(), human_answers.end(), [](const auto& a) { return !a.empty(); });
  if (!labels.empty()) return std::all_of(labels.begin(), labels.end(), [](int l) { return l >= 0; });
  return !image_keys.empty() || !groups.empty();
}

namespace {

std::string string_field(const io::json& r, const char* key, const std::string& where, const char* hint) {
  auto it = r.find(key);
  if (it == r.end() || !it->is_string() || it->get<std::string>().empty())
    throw Error(std::string("record has no string field \"") + key + "\"", where, {}, hint);
  return it->get<std::string>();
}

const io::json& ids_field(const io::json& r, const char* key, const std::string& where) {
  auto it = r.find(key);
  if (it == r.end())
    throw Error(std::string("record has no token ids (\"") + key + "\")", where, {},
                "run the records through eve-tokenize encode first");
  return *it;
}

void read_vqa(const io::json& r, const std::string& where, int vocab, bool training, TaskRecords& out) {
  const char* hint = "VQA records are written by eve-prep vqa";
  Sample s{{string_field(r, "image", where, hint)}, parse_token_ids(ids_field(r, "ids", where), where, vocab), where};
  auto q = r.find("question_id");
  int64_t qid = static_cast<int64_t>(out.samples.size());
  if (q != r.end()) {
    if (!q->is_number_integer()) throw Error("\"question_id\" must be an integer", where);
    qid = q->get<int64_t>();
  } else if (!training) {
    throw Error("record has no \"question_id\"", where, {}, "predictions are keyed by question_id");
  }
  std::vector<std::string> answers;
  auto a = r.find("answers");
  if (a != r.end()) {
    if (!a->is_array()) throw Error("\"answers\" must be a list of strings", where);
    for (const auto& x : *a) {
      if (!x.is_string()) throw Error("\"answers\" must be a list of strings", where);
      answers.push_back(x.get<std::string>());
    }
  }
  if (training && answers.empty())
    throw Error("training record has no answers", where, {}, "train on a split with \"answers\"");
  auto d = r.find("dataset");
  out.from_vg.push_back(d != r.end() && d->is_string() && *d == "vg");
  out.samples.push_back(std::move(s));
  out.question_ids.push_back(qid);
  out.human_answers.push_back(std::move(answers));
}

void read_nlvr2(const io::json& r, const std::string& where, int vocab, bool training, TaskRecords& out) {
  auto im = r.find("images");
  if (im == r.end() || !im->is_array() || im->size() != 2 || !(*im)[0].is_string() || !(*im)[1].is_string())
    throw Error("\"images\" must be a list of two image keys", where, {}, "NLVR2 records are written by eve-prep nlvr2");
  Sample s{{(*im)[0].get<std::string>(), (*im)[1].get<std::string>()},
           parse_token_ids(ids_field(r, "ids", where), where, vocab), where};
  int label = -1;
  auto l = r.find("label");
  if (l != r.end()) {
    if (l->is_boolean()) label = l->get<bool>() ? 1 : 0;
    else if (l->is_string() && (*l == "True" || *l == "False")) label = *l == "True" ? 1 : 0;
    else throw Error("\"label\" must be \"True\" or \"False\"", where);
  }
  if (training && label < 0) throw Error("training record has no \"label\"", where);
  out.samples.push_back(std::move(s));
  out.identifiers.push_back(string_field(r, "identifier", where, "NLVR2 records are written by eve-prep nlvr2"));
  out.labels.push_back(label);
}

void read_retrieval(const io::json& r, const std::string& where, int vocab, bool training, TaskRecords& out) {
  const std::string image = string_field(r, "image", where, "retrieval records are written by eve-prep retrieval");
  std::vector<std::vector<int64_t>> texts;
  if (r.contains("ids_list")) {
    const io::json& list = r["ids_list"];
    if (!list.is_array()) throw Error("\"ids_list\" must be a list of token id lists", where);
    for (const auto& ids : list) texts.push_back(parse_token_ids(ids, where, vocab));
  } else {
    texts.push_back(parse_token_ids(ids_field(r, r.contains("ids") ? "ids" : "ids_list", where), where, vocab));
  }
  const int64_t index = static_cast<int64_t>(out.image_keys.size());
  out.image_keys.push_back(image);
  if (out.text_offsets.empty()) out.text_offsets.push_back(0);
  if (training) {
    for (auto& t : texts) {
      out.samples.push_back({{image}, t, where});
      out.groups.push_back(index);
    }
  } else {
    out.samples.push_back({{image}, {}, where});
  }
  for (auto& t : texts) out.texts.push_back(std::move(t));
  out.text_offsets.push_back(static_cast<uint32_t>(out.texts.size()));
}

}  // namespace

TaskRecords read_task_records(Task task, const std::string& dir, const std::string& split, int vocab_size,
                              bool training) {
  TaskRecords out;
  out.path = dir + "/" + split + ".jsonl";
  require_split(dir, split, "give the split name as eve-tokenize encode wrote it (e.g. train.ids for train.ids.jsonl)");
  io::JsonlReader reader(out.path);
  io::json r;
  // The ids that key each record's prediction (VQA question_id, NLVR2 identifier) or its
  // image (retrieval), as JSON, with the line of their record.
  std::map<std::string, uint64_t> first_line;
  auto once = [&](const char* field, const std::string& id, const char* hint) {
    auto [seen, fresh] = first_line.emplace(id, reader.line_number());
    if (!fresh) throw repeated_id_on_line(out.path, reader.line_number(), field, id, seen->second, hint);
  };
  while (reader.next(r)) {
    const std::string where = reader.where();
    switch (task) {
      case Task::vqa:
        read_vqa(r, where, vocab_size, training, out);
        if (!training)
          once("question_id", std::to_string(out.question_ids.back()), "predictions are keyed by question_id");
        break;
      case Task::nlvr2:
        read_nlvr2(r, where, vocab_size, training, out);
        if (!training)
          once("identifier", io::json(out.identifiers.back()).dump(), "predictions are keyed by identifier");
        break;
      case Task::retrieval:
        read_retrieval(r, where, vocab_size, training, out);
        once("image", io::json(out.image_keys.back()).dump(),
             "retrieval records hold one image each with all its captions");
        break;
    }
  }
  if (out.samples.empty()) throw empty_split(out.path);
  return out;
}

std::vector<std::string> top_answers(const std::vector<const TaskRecords*>& records, int n) {
  std::map<std::string, int64_t> counts;
  for (const auto* r : records)
    for (const auto& answers : r->human_answers)
      for (const auto& a : answers) ++counts[a];
  std::vector<std::pair<std::string, int64_t>> v(counts.begin(), counts.end());
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size() && (n <= 0 || static_cast<int>(i) < n); ++i) out.push_back(v[i].first);
  return out;
}

AnswerIndex answer_index(const std::vector<std::string>& vocabulary) {
  AnswerIndex index;
  for (size_t i = 0; i < vocabulary.size(); ++i) index.emplace(vocabulary[i], static_cast<int>(i));
  return index;
}

std::vector<std::pair<int, float>> vqa_targets(const std::vector<std::string>& human, bool from_vg,
                                               const AnswerIndex& vocabulary) {
  std::map<std::string, int> counts;
  for (const auto& a : human) ++counts[a];
  std::vector<std::pair<int, float>> out;
  for (const auto& [answer, count] : counts) {
    auto it = vocabulary.find(answer);
    if (it == vocabulary.end()) continue;
    const float score = from_vg || human.size() == 1 ? 1.0f : std::min(1.0f, 0.3f * static_cast<float>(count));
    out.emplace_back(it->second, score);
  }
  return out;
}

std::string answers_json(const std::vector<std::string>& answers) {
  return io::json(answers).dump() + "\n";
}

std::vector<std::string> read_answers(const std::string& path) {
  io::json j = io::read_json(path);
  if (!j.is_array() || j.empty()) throw Error("an answer list must be a non-empty JSON list of strings", path);
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_string()) throw Error("entry is not a string", path, "[" + std::to_string(i) + "]");
    if (!seen.insert(j[i].get<std::string>()).second)
      throw Error("answer \"" + j[i].get<std::string>() + "\" is listed twice", path, "[" + std::to_string(i) + "]");
    out.push_back(j[i].get<std::string>());
  }
  return out;
}

std::string split_stem(const std::string& split) {
  const std::string suffix = ".ids";
  if (split.size() > suffix.size() && split.compare(split.size() - suffix.size(), suffix.size(), suffix) == 0)
    return split.substr(0, split.size() - suffix.size());
  return split;
}

}  // namespace eve::train
