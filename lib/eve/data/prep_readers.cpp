// Annotation readers of the prep pipeline. Each reader validates its file completely and
// names the file and the line or JSON path of the first problem.
#include <fmt/format.h>

#include <filesystem>
#include <set>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/data/prep.h"
#include "eve/io/file.h"
#include "eve/io/image_store.h"
#include "eve/io/jsonl.h"
#include "eve/io/tar.h"

namespace eve::data {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::string join_path(const std::string& root, const std::string& rel) {
  if (rel.empty() || rel[0] == '/' || root.empty()) return rel;
  return root.back() == '/' ? root + rel : root + "/" + rel;
}

// A store key from a name: extension dropped, '/' and '.' become '_', control characters
// too; long names are shortened with a hash so keys stay within the store's limit.
std::string key_from_name(const std::string& name) {
  std::string base = name;
  const size_t slash = base.rfind('/');
  const size_t dot = base.rfind('.');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) base.resize(dot);
  while (!base.empty() && (base[0] == '/' || base[0] == '.')) base.erase(0, 1);
  std::string key;
  for (char ch : base) key += (ch == '/' || ch == '.' || static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ? '_' : ch;
  uint64_t h = 1469598103934665603ull;  // FNV-1a of the name: stable everywhere
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  if (key.empty()) key = "image";
  if (key.size() > 180) key = key.substr(key.size() - 160) + fmt::format("-{:016x}", h);
  // Names that are not valid UTF-8 cannot be keys; they get their hash.
  if (!io::image_key_problem(key).empty()) key = fmt::format("image-{:016x}", h);
  return key;
}

// "a, b, c, d, e, ..." naming the first few ids of a warning.
std::string first_ids(const std::vector<int64_t>& ids, size_t shown = 5) {
  std::string s;
  for (size_t i = 0; i < ids.size() && i < shown; ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  if (ids.size() > shown) s += ", ...";
  return s;
}

std::string where_index(size_t i, const std::string& field = {}) {
  return "[" + std::to_string(i) + "]" + (field.empty() ? "" : "." + field);
}

const json& require(const json& obj, const char* field, const std::string& file, const std::string& where) {
  if (!obj.is_object()) throw Error("expected a JSON object", file, where);
  auto it = obj.find(field);
  if (it == obj.end()) throw Error(std::string("missing field \"") + field + "\"", file, where);
  return *it;
}

std::string require_string(const json& obj, const char* field, const std::string& file, const std::string& where) {
  const json& v = require(obj, field, file, where);
  if (!v.is_string()) throw Error(std::string("field \"") + field + "\" must be a string", file, where + "." + field);
  return v.get<std::string>();
}

json require_array_file(const std::string& file) {
  json doc = io::read_json(file);
  if (!doc.is_array()) throw Error("expected a JSON array at the top level", file);
  return doc;
}

// Copies every field of `from` not in `skip` into `to` (unknown fields are carried).
void carry(ordered_json& to, const json& from, std::initializer_list<const char*> skip) {
  for (auto it = from.begin(); it != from.end(); ++it) {
    bool skipped = false;
    for (const char* s : skip) skipped = skipped || it.key() == s;
    if (!skipped && !to.contains(it.key())) to[it.key()] = it.value();
  }
}

void add_source(Collection& c, const std::string& split, const std::string& file, const char* format) {
  c.sources.push_back({{"split", split}, {"file", file}, {"format", format}});
}

std::vector<std::string> captions_of(const json& e, const std::string& file, const std::string& where) {
  const json& cap = require(e, "caption", file, where);
  std::vector<std::string> out;
  if (cap.is_string()) {
    out.push_back(cap.get<std::string>());
  } else if (cap.is_array()) {
    for (size_t k = 0; k < cap.size(); ++k) {
      if (!cap[k].is_string()) throw Error("captions must be strings", file, where + ".caption[" + std::to_string(k) + "]");
      out.push_back(cap[k].get<std::string>());
    }
  } else {
    throw Error("field \"caption\" must be a string or a list of strings", file, where + ".caption");
  }
  return out;
}

std::string answer_string(const json& a, const std::string& file, const std::string& where) {
  if (!a.is_string()) throw Error("answers must be strings", file, where);
  return a.get<std::string>();
}

std::string expand_template(const std::string& t, int64_t image_id, const std::string& subtype) {
  std::string out;
  for (size_t i = 0; i < t.size();) {
    if (t[i] == '{') {
      const size_t close = t.find('}', i);
      if (close == std::string::npos) throw UsageError("unclosed '{' in --image-name '" + t + "'");
      const std::string field = t.substr(i + 1, close - i - 1);
      if (field == "image_id") out += std::to_string(image_id);
      else if (field.rfind("image_id:", 0) == 0) {
        const std::string width = field.substr(9);
        // At most 64 digits: the width pads a number, and std::stoi of a longer one would throw.
        if (width.empty() || width.size() > 4 || width.find_first_not_of("0123456789") != std::string::npos ||
            std::stoi(width) > 64)
          throw UsageError("bad width in --image-name field {" + field + "} (a number of digits up to 64)");
        out += fmt::format("{:0{}d}", image_id, std::stoi(width));
      } else if (field == "data_subtype") out += subtype;
      else throw UsageError("unknown field {" + field + "} in --image-name (use image_id, image_id:N, data_subtype)");
      i = close + 1;
    } else {
      out += t[i++];
    }
  }
  return out;
}

}  // namespace

size_t Collection::image(const std::string& path, const std::string& name, uint64_t offset, int64_t size) {
  const std::string source = path + (size >= 0 ? fmt::format("@{}+{}", offset, size) : "");
  auto it = by_source_.find(source);
  if (it != by_source_.end()) return it->second;
  std::string key = key_from_name(name);
  for (int n = 2; keys_.count(key); ++n) key = key_from_name(name) + "-" + std::to_string(n);
  const size_t index = images.size();
  images.push_back({key, path, offset, size, name});
  keys_[key] = index;
  by_source_[source] = index;
  return index;
}

SplitFile parse_split_file(const std::string& arg, const std::string& default_split) {
  const size_t eq = arg.find('=');
  if (eq == std::string::npos) return {default_split, arg};
  SplitFile f{arg.substr(0, eq), arg.substr(eq + 1)};
  if (f.split.empty() || f.file.empty() || f.split.find_first_of("/.\\ ") != std::string::npos)
    throw UsageError("expected SPLIT=FILE with a plain split name, got '" + arg + "'");
  return f;
}

void read_caption_pairs(Collection& c, const SplitFile& f, const std::string& root) {
  const json doc = require_array_file(f.file);
  add_source(c, f.split, f.file, "caption pairs");
  for (size_t i = 0; i < doc.size(); ++i) {
    const std::string w = where_index(i);
    const std::string image = require_string(doc[i], "image", f.file, w);
    const size_t img = c.image(join_path(root, image), image);
    for (const auto& text : captions_of(doc[i], f.file, w)) {
      ordered_json rec;
      rec["image"] = c.images[img].key;
      rec["text"] = text;
      carry(rec, doc[i], {"image", "caption"});
      c.examples.push_back({f.split, std::move(rec), {img}, f.file + ": " + w});
    }
  }
}

void read_retrieval(Collection& c, const SplitFile& f, const std::string& root) {
  const json doc = require_array_file(f.file);
  add_source(c, f.split, f.file, "karpathy retrieval");
  std::map<size_t, size_t> example_of_image;  // image index -> example index
  // The entries are joined by image: a training file has one entry per caption, so its images
  // repeat, and each entry of a val/test file holds an image with all its captions, so an
  // image there is listed once. An image_id, where given, names one image.
  std::map<size_t, size_t> first_entry, listed_entry;  // image index -> its first entry / its list entry
  std::map<std::string, std::pair<size_t, size_t>> image_of_id;  // image_id as JSON -> (image, entry)
  std::map<size_t, std::pair<std::string, size_t>> id_of_image;  // image -> (image_id as JSON, entry)
  for (size_t i = 0; i < doc.size(); ++i) {
    const std::string w = where_index(i);
    const std::string image = require_string(doc[i], "image", f.file, w);
    const size_t img = c.image(join_path(root, image), image);
    auto texts = captions_of(doc[i], f.file, w);
    const bool listed = doc[i]["caption"].is_array();
    auto [first, fresh] = first_entry.emplace(img, i);
    if (!fresh) {
      auto l = listed_entry.find(img);
      if (listed || l != listed_entry.end())
        throw repeated_id(f.file, w, "image", json(image).dump(), where_index(listed ? first->second : l->second));
    }
    if (listed) listed_entry.emplace(img, i);
    if (doc[i].contains("image_id")) {
      const std::string id = doc[i]["image_id"].dump();
      auto [known, new_id] = image_of_id.emplace(id, std::make_pair(img, i));
      if (!new_id && known->second.first != img)
        throw repeated_id(f.file, w, "image_id", id, where_index(known->second.second),
                          "one image_id, one image; that entry's is \"" + c.images[known->second.first].name +
                              "\"");
      auto [had, first_id] = id_of_image.emplace(img, std::make_pair(id, i));
      if (!first_id && had->second.first != id)
        throw Error(w + ".image_id " + id + " differs from " + where_index(had->second.second) + ".image_id " +
                        had->second.first + " of the same image",
                    f.file);
    }
    auto it = example_of_image.find(img);
    if (it == example_of_image.end()) {
      ordered_json rec;
      rec["image"] = c.images[img].key;
      rec["texts"] = ordered_json::array();
      carry(rec, doc[i], {"image", "caption"});
      example_of_image[img] = c.examples.size();
      c.examples.push_back({f.split, std::move(rec), {img}, f.file + ": " + w});
      it = example_of_image.find(img);
    }
    for (auto& t : texts) c.examples[it->second].record["texts"].push_back(std::move(t));
  }
}

void read_vqa_official(Collection& c, const std::string& split, const std::string& qfile, const std::string& afile,
                       const std::string& root, const std::string& name_template) {
  const json q = io::read_json(qfile);
  if (!q.is_object() || !q.contains("questions") || !q["questions"].is_array())
    throw Error("not a VQA question file: expected an object with a \"questions\" list", qfile);
  std::string subtype;
  if (q.contains("data_subtype")) {
    if (!q["data_subtype"].is_string()) throw Error("field \"data_subtype\" must be a string", qfile, "data_subtype");
    subtype = q["data_subtype"].get<std::string>();
  }
  std::map<int64_t, size_t> annotations;  // question_id -> position in the annotation list
  json a;
  if (!afile.empty()) {
    a = io::read_json(afile);
    if (!a.is_object() || !a.contains("annotations") || !a["annotations"].is_array())
      throw Error("not a VQA annotation file: expected an object with an \"annotations\" list", afile);
    const json& list = a["annotations"];
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string w = "annotations" + where_index(i);
      const json& qid = require(list[i], "question_id", afile, w);
      if (!qid.is_number_integer()) throw Error("question_id must be an integer", afile, w + ".question_id");
      const json& answers = require(list[i], "answers", afile, w);
      if (!answers.is_array()) throw Error("field \"answers\" must be a list", afile, w + ".answers");
      for (size_t k = 0; k < answers.size(); ++k)
        answer_string(require(answers[k], "answer", afile, w + ".answers[" + std::to_string(k) + "]"), afile,
                      w + ".answers[" + std::to_string(k) + "].answer");
      auto [it, fresh] = annotations.emplace(qid.get<int64_t>(), i);
      if (!fresh) throw repeated_id(afile, w, "question_id", qid.dump(), "annotations" + where_index(it->second));
    }
  }
  const json& list = q["questions"];
  // Every question once: a repeated question_id would join one annotation to two records.
  std::map<int64_t, size_t> asked;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string w = "questions" + where_index(i);
    const json& qid = require(list[i], "question_id", qfile, w);
    if (!qid.is_number_integer()) throw Error("question_id must be an integer", qfile, w + ".question_id");
    auto [it, fresh] = asked.emplace(qid.get<int64_t>(), i);
    if (!fresh) throw repeated_id(qfile, w, "question_id", qid.dump(), "questions" + where_index(it->second));
  }
  // What the two files do not share, in file order: questions without an annotation are left
  // out (a split with annotations has answers in every record); annotations without a
  // question are not used.
  std::vector<int64_t> unanswered, unasked;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string w = "questions" + where_index(i);
    const json& qid = list[i]["question_id"];
    const json& image_id = require(list[i], "image_id", qfile, w);
    if (!image_id.is_number_integer()) throw Error("image_id must be an integer", qfile, w + ".image_id");
    const std::string question = require_string(list[i], "question", qfile, w);
    const json* found = nullptr;
    if (!afile.empty()) {
      auto it = annotations.find(qid.get<int64_t>());
      if (it == annotations.end()) {
        unanswered.push_back(qid.get<int64_t>());
        continue;
      }
      found = &a["annotations"][it->second];
    }
    const std::string name = expand_template(name_template, image_id.get<int64_t>(), subtype);
    const size_t img = c.image(join_path(root, name), name);
    ordered_json rec;
    rec["question_id"] = qid;
    rec["image"] = c.images[img].key;
    rec["question"] = question;
    if (found) {
      const json& ann = *found;
      rec["answers"] = ordered_json::array();
      for (const auto& ans : ann["answers"]) rec["answers"].push_back(ans["answer"].get<std::string>());
      if (ann.contains("answer_type")) rec["answer_type"] = ann["answer_type"];
      if (ann.contains("question_type")) rec["question_type"] = ann["question_type"];
      if (ann.contains("multiple_choice_answer")) rec["multiple_choice_answer"] = ann["multiple_choice_answer"];
    }
    rec["image_id"] = image_id;
    carry(rec, list[i], {"question_id", "image_id", "question"});
    c.examples.push_back({split, std::move(rec), {img}, qfile + ": " + w});
  }
  ordered_json source = {{"split", split}, {"questions", qfile}, {"annotations", afile}, {"format", "vqa v2"}};
  if (!afile.empty()) {
    const json& alist = a["annotations"];
    for (size_t i = 0; i < alist.size(); ++i) {
      const int64_t id = alist[i]["question_id"].get<int64_t>();
      if (!asked.count(id)) unasked.push_back(id);
    }
    source["questions_without_annotation"] = unanswered.size();
    source["annotations_without_question"] = unasked.size();
    if (!unanswered.empty())
      log::warn("prep: {}: {} question(s) have no annotation in {} and are left out (first: {})", qfile,
                unanswered.size(), afile, first_ids(unanswered));
    if (!unasked.empty())
      log::warn("prep: {}: {} annotation(s) match no question in {} (first: {})", afile, unasked.size(), qfile,
                first_ids(unasked));
  }
  c.sources.push_back(std::move(source));
}

void read_vqa_eve(Collection& c, const SplitFile& f, const std::string& root, const std::string& vg_root) {
  const json doc = require_array_file(f.file);
  add_source(c, f.split, f.file, "eve vqa json");
  std::map<std::string, size_t> first_of_id;  // question_id as JSON -> its entry
  for (size_t i = 0; i < doc.size(); ++i) {
    const std::string w = where_index(i);
    const std::string image = require_string(doc[i], "image", f.file, w);
    const std::string question = require_string(doc[i], "question", f.file, w);
    if (doc[i].contains("question_id")) {
      const std::string id = doc[i]["question_id"].dump();
      auto [it, fresh] = first_of_id.emplace(id, i);
      if (!fresh) throw repeated_id(f.file, w, "question_id", id, where_index(it->second));
    }
    std::string dataset = "vqa";
    if (doc[i].contains("dataset")) dataset = require_string(doc[i], "dataset", f.file, w);
    std::string path = dataset == "vg" ? join_path(vg_root.empty() ? root : vg_root, image)
                       : dataset == "gqa" ? image
                                          : join_path(root, image);
    const size_t img = c.image(path, (dataset == "vqa" ? "" : dataset + "/") + image);
    ordered_json rec;
    if (doc[i].contains("question_id")) rec["question_id"] = doc[i]["question_id"];
    rec["image"] = c.images[img].key;
    rec["question"] = question;
    if (doc[i].contains("answer")) {
      const json& ans = doc[i]["answer"];
      rec["answers"] = ordered_json::array();
      if (ans.is_array()) {
        for (size_t k = 0; k < ans.size(); ++k)
          rec["answers"].push_back(answer_string(ans[k], f.file, w + ".answer[" + std::to_string(k) + "]"));
      } else {
        rec["answers"].push_back(answer_string(ans, f.file, w + ".answer"));
      }
    }
    carry(rec, doc[i], {"image", "question", "answer"});
    c.examples.push_back({f.split, std::move(rec), {img}, f.file + ": " + w});
  }
}

namespace {

std::string nlvr_label(const json& v, const std::string& file, const std::string& where) {
  if (v.is_string() && (v == "True" || v == "False")) return v.get<std::string>();
  throw Error("label must be the string \"True\" or \"False\", got " + v.dump(), file, where);
}

// NLVR2 image files: <split>-<set>-<pair>-img0.png (and -img1), in the image root, its
// <split> folder, or the train <directory> subfolders; PNG or JPEG names.
std::pair<std::string, std::string> nlvr_image(const std::string& root, const std::string& stem,
                                               const std::string& id_split, const std::string& directory) {
  std::vector<std::string> dirs = {""};
  if (!directory.empty()) dirs.push_back(directory + "/");
  dirs.push_back(id_split + "/");
  if (!directory.empty()) dirs.push_back(id_split + "/" + directory + "/");
  for (const auto& d : dirs)
    for (const char* ext : {".png", ".jpg", ".jpeg", ".PNG", ".JPG"}) {
      const std::string rel = d + stem + ext;
      if (io::file_exists(join_path(root, rel))) return {join_path(root, rel), rel};
    }
  const std::string rel = dirs.back() + stem + ".png";
  return {join_path(root, rel), rel};
}

}  // namespace

void read_nlvr2(Collection& c, const SplitFile& f, const std::string& root) {
  std::string text = io::read_file(f.file);
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    const json doc = io::parse_json(text, f.file);
    add_source(c, f.split, f.file, "eve nlvr json");
    std::map<std::string, size_t> first_of_id;  // identifier as JSON -> its entry
    for (size_t i = 0; i < doc.size(); ++i) {
      const std::string w = where_index(i);
      const json& images = require(doc[i], "images", f.file, w);
      if (!images.is_array() || images.size() != 2 || !images[0].is_string() || !images[1].is_string())
        throw Error("field \"images\" must be a list of two paths", f.file, w + ".images");
      const std::string sentence = require_string(doc[i], "sentence", f.file, w);
      const std::string label = nlvr_label(require(doc[i], "label", f.file, w), f.file, w + ".label");
      if (doc[i].contains("identifier")) {
        const std::string id = doc[i]["identifier"].dump();
        auto [it, fresh] = first_of_id.emplace(id, i);
        if (!fresh) throw repeated_id(f.file, w, "identifier", id, where_index(it->second));
      }
      const size_t l = c.image(join_path(root, images[0]), images[0]);
      const size_t r = c.image(join_path(root, images[1]), images[1]);
      ordered_json rec;
      if (doc[i].contains("identifier")) rec["identifier"] = doc[i]["identifier"];
      rec["images"] = {c.images[l].key, c.images[r].key};
      rec["sentence"] = sentence;
      rec["label"] = label;
      carry(rec, doc[i], {"images", "sentence", "label"});
      c.examples.push_back({f.split, std::move(rec), {l, r}, f.file + ": " + w});
    }
    return;
  }
  add_source(c, f.split, f.file, "nlvr2 json lines");
  io::JsonlReader reader(f.file);
  json line;
  std::map<std::string, uint64_t> first_line;  // identifier -> its line
  while (reader.next(line)) {
    const std::string w = reader.where();
    const std::string id = require_string(line, "identifier", f.file, std::to_string(reader.line_number()));
    auto [seen, fresh] = first_line.emplace(id, reader.line_number());
    if (!fresh)
      throw repeated_id_on_line(f.file, reader.line_number(), "identifier", json(id).dump(), seen->second);
    const std::string sentence = require_string(line, "sentence", f.file, std::to_string(reader.line_number()));
    const std::string label = nlvr_label(require(line, "label", f.file, std::to_string(reader.line_number())),
                                         f.file, std::to_string(reader.line_number()));
    const size_t last_dash = id.rfind('-');
    if (last_dash == std::string::npos || last_dash == 0 || std::count(id.begin(), id.end(), '-') < 3)
      throw Error("identifier '" + id + "' is not split-set-pair-sentence", f.file, std::to_string(reader.line_number()));
    const std::string stem = id.substr(0, last_dash);
    const std::string id_split = id.substr(0, id.find('-'));
    std::string directory;
    if (line.contains("directory")) directory = line["directory"].is_string() ? line["directory"].get<std::string>()
                                                                            : line["directory"].dump();
    auto [lp, ln] = nlvr_image(root, stem + "-img0", id_split, directory);
    auto [rp, rn] = nlvr_image(root, stem + "-img1", id_split, directory);
    const size_t l = c.image(lp, ln), r = c.image(rp, rn);
    ordered_json rec;
    rec["identifier"] = id;
    rec["images"] = {c.images[l].key, c.images[r].key};
    rec["sentence"] = sentence;
    rec["label"] = label;
    carry(rec, line, {"identifier", "sentence", "label"});
    c.examples.push_back({f.split, std::move(rec), {l, r}, w});
  }
}

void read_webdataset(Collection& c, const SplitFile& f) {
  io::TarReadOptions topt;
  topt.allow_non_utf8_names = true;  // a member so named is a bad sample, not a bad shard
  io::TarReader tar(f.file, topt);
  uint64_t samples = 0, without_image = 0, without_text = 0;
  struct Sample {
    std::string key;
    io::TarMember first;  // names the sample when its key is a duplicate
    std::set<std::string> exts;
    bool has_image = false;
    io::TarMember image, text_member, meta_member;
    std::string text, meta_text;
    bool has_text = false, has_meta = false;
    const char* problem = nullptr;  // the first problem of its members, found while reading
    io::TarMember problem_member;
    std::string problem_message;
  } cur;
  std::set<std::string> keys_seen;
  auto skip = [&](const io::TarMember& m, const char* reason, std::string message) {
    c.skipped_samples.push_back({f.file + ":" + m.name, fmt::format("{}:{}@{}", f.file, m.name, m.offset), reason,
                                 std::move(message), f.file + ": " + m.name});
  };
  // The member of the sample whose text is not UTF-8 (nullptr when all are).
  auto not_utf8 = [&](size_t& at) -> const io::TarMember* {
    if (cur.has_text && (at = io::utf8_error_offset(cur.text)) != std::string::npos) return &cur.text_member;
    if (cur.has_meta && (at = io::utf8_error_offset(cur.meta_text)) != std::string::npos) return &cur.meta_member;
    return nullptr;
  };
  // The sample's .json as an object, or the reason it is not one (bad-json).
  auto parse_meta = [&](json& meta) -> std::string {
    try {
      meta = io::parse_json(cur.meta_text, f.file, cur.meta_member.name);
    } catch (const Error& e) {
      return e.message();
    }
    if (!meta.is_object()) return std::string("expected a JSON object, got ") + meta.type_name();
    auto cap = meta.find("caption");
    if (cap != meta.end() && !cap->is_string() && !cap->is_null())
      return std::string("field \"caption\" must be a string, got ") + cap->type_name();
    return {};
  };
  // Turns the current sample into a record, or skips it.
  auto take = [&] {
    if (cur.key.empty()) return;
    ++samples;
    if (!keys_seen.insert(cur.key).second) {
      skip(cur.first, "duplicate-key",
           "an earlier sample of this shard has the key '" + io::shown_name(cur.key) + "'; the first sample is kept");
      return;
    }
    if (cur.problem) {
      skip(cur.problem_member, cur.problem, cur.problem_message);
      return;
    }
    size_t at = 0;
    if (const io::TarMember* bad = not_utf8(at)) {
      const std::string& text = bad == &cur.text_member ? cur.text : cur.meta_text;
      skip(*bad, "text-not-utf8",
           fmt::format("text is not valid UTF-8 (byte 0x{:02x} at offset {})", static_cast<unsigned char>(text[at]), at));
      return;
    }
    json meta = json::object();
    if (cur.has_meta) {
      const std::string problem = parse_meta(meta);
      if (!problem.empty()) {
        skip(cur.meta_member, "bad-json", problem);
        return;
      }
    }
    std::string text = cur.text;
    bool has_text = cur.has_text;
    if (!has_text && meta.contains("caption") && meta["caption"].is_string()) {
      text = meta["caption"].get<std::string>();
      has_text = true;
    }
    if (!cur.has_image) {
      ++without_image;
      skip(cur.first, "no-image", "the sample has no .jpg, .jpeg, .png or .webp member");
    } else if (!has_text) {
      ++without_text;
      skip(cur.image, "no-text", "the sample has no .txt member and no \"caption\" in a .json member");
    } else {
      const size_t img = c.image(f.file, cur.key + "." + "jpg", cur.image.offset, static_cast<int64_t>(cur.image.size));
      c.images[img].name = f.file + ":" + cur.image.name;
      ordered_json rec;
      rec["image"] = c.images[img].key;
      rec["text"] = text;
      carry(rec, meta, {"caption"});
      c.examples.push_back({f.split, std::move(rec), {img}, f.file + ": " + cur.image.name});
    }
  };
  auto flush = [&] {
    take();
    cur = Sample{};
  };
  // Notes the sample's first problem found while its members are read.
  auto problem = [&](const io::TarMember& m, const char* reason, std::string message) {
    if (cur.problem) return;
    cur.problem = reason;
    cur.problem_member = m;
    cur.problem_message = std::move(message);
  };
  io::TarMember m;
  while (tar.next(m)) {
    const size_t slash = m.name.rfind('/');
    const size_t dot = m.name.find('.', slash == std::string::npos ? 0 : slash + 1);
    if (dot == std::string::npos) continue;  // not part of a sample
    const std::string key = m.name.substr(0, dot);
    std::string ext = m.name.substr(dot + 1);
    for (auto& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const std::string base = m.name.substr(slash == std::string::npos ? 0 : slash + 1);
    if (base.size() > 4 && base.rfind("__", 0) == 0) continue;  // webdataset metadata members
    // Another key, or an extension this sample already has: a new sample (a repeated
    // extension means a second sample with the same key).
    if (key != cur.key || cur.exts.count(ext)) {
      flush();
      cur.key = key;
      cur.first = m;
    }
    cur.exts.insert(ext);
    if (m.name_not_utf8)
      problem(m, "name-not-utf8", "the member name '" + io::shown_name(m.name) + "' is not valid UTF-8");
    if (ext == "jpg" || ext == "jpeg" || ext == "png" || ext == "webp") {
      if (cur.has_image) {
        problem(m, "two-images",
                "the sample has two images, " + io::shown_name(cur.image.name) + " and " + io::shown_name(m.name));
        continue;
      }
      cur.has_image = true;
      cur.image = m;
    } else if (ext == "txt") {
      cur.text = tar.read();
      while (!cur.text.empty() && (cur.text.back() == '\n' || cur.text.back() == '\r')) cur.text.pop_back();
      cur.has_text = true;
      cur.text_member = m;
    } else if (ext == "json") {
      cur.meta_text = tar.read();
      cur.meta_member = m;
      cur.has_meta = true;
    }
  }
  flush();
  c.sources.push_back({{"split", f.split},
                       {"file", f.file},
                       {"format", "webdataset"},
                       {"samples", samples},
                       {"samples_without_image", without_image},
                       {"samples_without_text", without_text}});
}

Collection collect_inputs(const PrepInputs& in) {
  Collection c;
  c.task = in.task == "webdataset" ? "pairs" : in.task;
  if (in.task == "pairs")
    for (const auto& a : in.ann) read_caption_pairs(c, parse_split_file(a), in.images);
  else if (in.task == "retrieval")
    for (const auto& a : in.ann) read_retrieval(c, parse_split_file(a), in.images);
  else if (in.task == "nlvr2")
    for (const auto& a : in.ann) read_nlvr2(c, parse_split_file(a), in.images);
  else if (in.task == "webdataset")
    for (const auto& t : in.tars) read_webdataset(c, {in.split, t});
  else if (in.task == "vqa") {
    if (in.questions.empty() && in.ann.empty())
      throw UsageError("vqa needs --questions SPLIT=FILE (official) or --ann SPLIT=FILE (EVE JSON)");
    std::map<std::string, std::string> annotations;
    for (const auto& a : in.annotations) {
      auto f = parse_split_file(a);
      annotations[f.split] = f.file;
    }
    for (const auto& q : in.questions) {
      auto f = parse_split_file(q);
      auto it = annotations.find(f.split);
      read_vqa_official(c, f.split, f.file, it == annotations.end() ? "" : it->second, in.images, in.image_name);
      if (it != annotations.end()) annotations.erase(it);
    }
    if (!annotations.empty())
      throw UsageError("--annotations for split '" + annotations.begin()->first + "' has no --questions file");
    for (const auto& a : in.ann) read_vqa_eve(c, parse_split_file(a), in.images, in.vg_images);
  } else {
    throw UsageError("unknown prep task '" + in.task + "'");
  }
  return c;
}

}  // namespace eve::data
