#include "eve/train/probe.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <future>
#include <map>
#include <set>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/progress.h"
#include "eve/core/signals.h"
#include "eve/core/threads.h"
#include "eve/image/codec.h"
#include "eve/image/preprocess.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/model/bundle.h"
#include "eve/model/runtime.h"

namespace eve::train {
namespace {

using io::ordered_json;

// L2 penalties tried on the selection slice, largest first: on equal selection accuracy the
// more regularised fit wins, as it is the one less likely to have memorised the slice.
constexpr double kPenalties[] = {1.0, 1e-1, 1e-2, 1e-3, 1e-4};
// L-BFGS iterations per fit: the loss is convex and the features standardised, so a few
// hundred iterations settle well past the accuracy's resolution on thousands of rows.
constexpr int kIterations = 300;

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct Weights {
  torch::Tensor w, b;
};

// Multinomial logistic regression, mean cross-entropy plus l2/2 |W|^2, from zero weights.
Weights fit_logistic(const torch::Tensor& x, const torch::Tensor& y, int64_t classes, double l2) {
  Weights m{torch::zeros({x.size(1), classes}, x.options()).requires_grad_(),
            torch::zeros({classes}, x.options()).requires_grad_()};
  torch::optim::LBFGS opt({m.w, m.b}, torch::optim::LBFGSOptions(1.0)
                                          .max_iter(kIterations)
                                          .history_size(20)
                                          .tolerance_grad(1e-10)
                                          .tolerance_change(1e-14)
                                          .line_search_fn(std::string("strong_wolfe")));
  auto closure = [&] {
    opt.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(torch::addmm(m.b, x, m.w), y) +
                         0.5 * l2 * m.w.pow(2).sum();
    loss.backward();
    return loss;
  };
  opt.step(closure);
  return m;
}

double accuracy_of(const Weights& m, const torch::Tensor& x, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  if (y.numel() == 0) return 0;
  torch::Tensor pred = torch::addmm(m.b, x, m.w).argmax(1);
  return pred.eq(y).to(torch::kDouble).mean().item<double>();
}

// One probed record: where it came from, where its image is, its side of the split.
struct Record {
  std::string id, image;
  uint64_t line = 0;
  bool held_out = false;
  std::vector<io::json> values;  // one per field
};

// A field's targets: one task for a single-label field, one binary task per varying value
// of a multi-label field.
struct ProbeTask {
  std::string name;               // the class list's name: the field, or the value
  std::vector<std::string> classes;
  std::vector<int> labels;        // per record
};

struct Field {
  std::string name;
  bool multi = false;
  std::vector<ProbeTask> tasks;
  std::vector<std::string> constant;  // multi-label values present in every record or none
};

std::string class_name(const io::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::vector<Record> read_records(const ProbeOptions& o, std::vector<Field>& fields) {
  io::JsonlReader reader(o.labels);
  std::vector<Record> recs;
  std::set<std::string> splits(o.splits.begin(), o.splits.end()), ids;
  io::json rec;
  auto fail = [&](const std::string& what, const std::string& hint = {}) {
    throw Error(what, o.labels, std::to_string(reader.line_number()), hint);
  };
  fields.clear();
  for (const auto& f : o.fields) fields.push_back(Field{f, false, {}, {}});
  std::vector<int> kind(fields.size(), 0);  // 0 unknown, 1 single, 2 multi
  while (reader.next(rec)) {
    if (!splits.empty()) {
      auto s = rec.find("split");
      if (s == rec.end() || !s->is_string() || !splits.count(s->get<std::string>())) continue;
    }
    Record r;
    r.line = reader.line_number();
    auto id = rec.find("id");
    if (id == rec.end() || !(id->is_string() || id->is_number_integer())) fail("\"id\" must be a string or an integer");
    r.id = class_name(*id);
    if (!ids.insert(r.id).second) fail("id " + id->dump() + " repeats an earlier record");
    auto img = rec.find("image");
    if (img == rec.end() || !img->is_string() || img->get<std::string>().empty())
      fail("\"image\" must be a non-empty path");
    r.image = o.images + "/" + img->get<std::string>();
    for (size_t f = 0; f < fields.size(); ++f) {
      auto v = rec.find(fields[f].name);
      if (v == rec.end()) fail("the record has no field \"" + fields[f].name + "\"", "every record needs each --field");
      const int k = v->is_array() ? 2 : (v->is_string() || v->is_number_integer()) ? 1 : 0;
      if (k == 0) fail("\"" + fields[f].name + "\" must be a string, an integer or a list of them");
      if (kind[f] != 0 && kind[f] != k)
        fail("\"" + fields[f].name + "\" is a " + (k == 2 ? "list" : "single value") + " here and a " +
             (k == 2 ? "single value" : "list") + " in earlier records");
      kind[f] = k;
      if (k == 2)
        for (const auto& e : *v)
          if (!e.is_string() && !e.is_number_integer())
            fail("\"" + fields[f].name + "\" must list strings or integers");
      r.values.push_back(*v);
    }
    recs.push_back(std::move(r));
  }
  for (size_t f = 0; f < fields.size(); ++f) fields[f].multi = kind[f] == 2;
  return recs;
}

// Gives every field its tasks; a field with nothing to learn (one class, no varying value)
// is an error naming it.
void build_tasks(const ProbeOptions& o, const std::vector<Record>& recs, std::vector<Field>& fields) {
  for (size_t f = 0; f < fields.size(); ++f) {
    Field& field = fields[f];
    std::set<std::string> names;
    for (const auto& r : recs) {
      if (field.multi)
        for (const auto& e : r.values[f]) names.insert(class_name(e));
      else
        names.insert(class_name(r.values[f]));
    }
    if (!field.multi) {
      if (names.size() < 2)
        throw Error("field \"" + field.name + "\" has one class only (" +
                        (names.empty() ? std::string("none") : *names.begin()) + ") in " +
                        std::to_string(recs.size()) + " records",
                    o.labels, {}, "a probe needs at least two classes to tell apart");
      ProbeTask t{field.name, std::vector<std::string>(names.begin(), names.end()), {}};
      for (const auto& r : recs)
        t.labels.push_back(static_cast<int>(std::lower_bound(t.classes.begin(), t.classes.end(),
                                                             class_name(r.values[f])) - t.classes.begin()));
      field.tasks.push_back(std::move(t));
      continue;
    }
    for (const auto& value : names) {
      ProbeTask t{value, {"absent", "present"}, {}};
      int present = 0;
      for (const auto& r : recs) {
        int has = 0;
        for (const auto& e : r.values[f]) has |= class_name(e) == value;
        t.labels.push_back(has);
        present += has;
      }
      if (present == 0 || present == static_cast<int>(recs.size())) field.constant.push_back(value);
      else field.tasks.push_back(std::move(t));
    }
    if (field.tasks.empty())
      throw Error("field \"" + field.name + "\" has one class only: no value is present in some records and "
                  "absent in others",
                  o.labels, {}, "a probe needs at least two classes to tell apart");
  }
}

// Decodes a batch of images on the pool with the evaluation transform.
torch::Tensor load_pixels(const ProbeOptions& o, const std::vector<Record>& recs, size_t from, size_t to,
                          int res, ThreadPool& pool) {
  const int64_t plane = 3 * int64_t{res} * res;
  torch::Tensor px = torch::empty({static_cast<int64_t>(to - from), 3, res, res}, torch::kFloat32);
  float* base = px.data_ptr<float>();
  std::vector<std::future<std::string>> jobs;
  for (size_t i = from; i < to; ++i) {
    const Record* r = &recs[i];
    float* out = base + static_cast<int64_t>(i - from) * plane;
    jobs.push_back(pool.submit([r, res, out]() -> std::string {
      try {
        image::eval_transform(image::decode(io::read_file(r->image)), res, out);
      } catch (const std::exception& e) {
        return e.what();
      }
      return {};
    }));
  }
  std::string first;
  size_t bad = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    std::string err = jobs[i].get();  // every job is waited for before `px` can go away
    if (!err.empty() && first.empty()) {
      first = err;
      bad = from + i;
    }
  }
  if (!first.empty())
    throw Error("image " + recs[bad].image + " cannot be used: " + first, o.labels, std::to_string(recs[bad].line));
  return px;
}

// Pooled features of a batch from a frozen backbone: [B, D] or [B, 2D] float on the CPU.
torch::Tensor pool_features(model::EveModel& m, const torch::Tensor& pixels, const std::string& features,
                            const std::string& device) {
  torch::NoGradGuard no_grad;
  model::Autocast autocast(model::run_precision(), device);
  model::EncoderInput in;
  in.image = pixels.to(torch::Device(device));
  model::EncoderOutput out = m->encode(model::Mode::vision, in);
  torch::Tensor h = out.hidden.to(torch::kCPU, torch::kFloat);
  torch::Tensor cls = h.select(1, 0);
  torch::Tensor mean = h.slice(1, 1, out.num_vision).mean(1);
  if (features == "cls") return cls.contiguous();
  if (features == "mean") return mean.contiguous();
  return torch::cat({cls, mean}, 1).contiguous();
}

// The fit of every task of a field on one model's features, as the JSON of the field.
struct FieldScore {
  double accuracy = 0, majority = 0;
  ordered_json per_value = ordered_json::object();
  double l2 = 0;
};

FieldScore score_field(const Field& field, const std::vector<float>& feats, int64_t dim,
                       const std::vector<bool>& held_out) {
  FieldScore s;
  for (const auto& t : field.tasks) {
    signals::throw_if_stopped();
    ProbeFit fit = fit_linear_probe(feats, dim, t.labels, static_cast<int>(t.classes.size()), held_out);
    s.accuracy += fit.accuracy / static_cast<double>(field.tasks.size());
    s.majority += fit.majority / static_cast<double>(field.tasks.size());
    s.l2 = fit.l2;
    if (field.multi) s.per_value[t.name] = {{"accuracy", 100 * fit.accuracy}, {"majority", 100 * fit.majority}, {"l2", fit.l2}};
  }
  return s;
}

}  // namespace

bool probe_held_out(const std::string& id, uint64_t seed, double fraction) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the id, then mixed with the seed
  for (unsigned char c : id) h = (h ^ c) * 0x100000001b3ull;
  const uint64_t z = mix(h ^ mix(seed + 0x9E3779B97F4A7C15ull));
  return static_cast<double>(z >> 11) * 0x1.0p-53 < fraction;
}

ProbeFit fit_linear_probe(const std::vector<float>& features, int64_t dim, const std::vector<int>& labels,
                          int classes, const std::vector<bool>& held_out) {
  const int64_t n = static_cast<int64_t>(labels.size());
  if (dim < 1 || static_cast<int64_t>(features.size()) != n * dim || held_out.size() != labels.size() || classes < 2)
    throw Error("linear probe: " + std::to_string(features.size()) + " feature values for " + std::to_string(n) +
                " rows of width " + std::to_string(dim) + " and " + std::to_string(classes) + " classes");
  std::vector<int64_t> train, test, fit_rows, select_rows;
  for (int64_t i = 0; i < n; ++i) (held_out[static_cast<size_t>(i)] ? test : train).push_back(i);
  if (train.empty() || test.empty())
    throw Error("linear probe: " + std::to_string(train.size()) + " training and " + std::to_string(test.size()) +
                    " held-out rows",
                {}, {}, "both parts need rows: change --holdout or give more records");
  for (size_t j = 0; j < train.size(); ++j) (j % 5 == 4 ? select_rows : fit_rows).push_back(train[j]);

  // Double precision keeps the fit's result a function of the data, not of rounding.
  torch::Tensor all = torch::from_blob(const_cast<float*>(features.data()), {n, dim}, torch::kFloat32)
                          .to(torch::kDouble);
  torch::Tensor y = torch::tensor(std::vector<int64_t>(labels.begin(), labels.end()), torch::kLong);
  auto rows = [](const std::vector<int64_t>& r) { return torch::tensor(r, torch::kLong); };
  torch::Tensor tr = rows(train);
  torch::Tensor mu = all.index_select(0, tr).mean(0);
  torch::Tensor sd = all.index_select(0, tr).std(0, false).clamp_min(1e-8);
  all = (all - mu) / sd;
  auto part = [&](const std::vector<int64_t>& r) { return all.index_select(0, rows(r)); };
  auto part_y = [&](const std::vector<int64_t>& r) { return y.index_select(0, rows(r)); };

  ProbeFit fit;
  fit.train = static_cast<int64_t>(train.size());
  fit.test = static_cast<int64_t>(test.size());
  fit.l2 = 1e-2;
  if (!select_rows.empty() && !fit_rows.empty()) {
    double best = -1;
    for (double l2 : kPenalties) {
      const double a = accuracy_of(fit_logistic(part(fit_rows), part_y(fit_rows), classes, l2), part(select_rows),
                                   part_y(select_rows));
      if (a > best) {
        best = a;
        fit.l2 = l2;
      }
    }
  }
  fit.accuracy = accuracy_of(fit_logistic(part(train), part_y(train), classes, fit.l2), part(test), part_y(test));

  std::vector<int64_t> counts(static_cast<size_t>(classes), 0);
  for (int64_t i : train) ++counts[static_cast<size_t>(labels[static_cast<size_t>(i)])];
  const int most = static_cast<int>(std::max_element(counts.begin(), counts.end()) - counts.begin());
  int64_t hits = 0;
  for (int64_t i : test) hits += labels[static_cast<size_t>(i)] == most;
  fit.majority = static_cast<double>(hits) / static_cast<double>(test.size());
  return fit;
}

int run_probe(const ProbeOptions& o, const cli::CommonOptions& common) {
  if (o.init.empty()) throw UsageError("--task probe needs --model: the bundle whose backbone is probed");
  if (o.labels.empty()) throw UsageError("--task probe needs --labels: a labels JSONL file");
  if (o.images.empty()) throw UsageError("--task probe needs --images: the root of the records' image paths");
  if (o.fields.empty()) throw UsageError("--task probe needs at least one --field");
  if (o.out.empty()) throw UsageError("--out is required");
  if (o.features != "cls" && o.features != "mean" && o.features != "both")
    throw UsageError("--features " + o.features + ": expected cls, mean or both");
  if (!o.baseline.empty() && o.baseline != "fresh")
    throw UsageError("--baseline " + o.baseline + ": expected fresh");
  if (!(o.holdout > 0 && o.holdout < 1)) throw UsageError("--holdout must lie strictly between 0 and 1");
  if (o.batch_size < 1) throw UsageError("--batch-size must be at least 1");
  io::prepare_output(o.out + "/probe.json");

  std::vector<Field> fields;
  std::vector<Record> recs = read_records(o, fields);
  if (static_cast<int64_t>(recs.size()) < kProbeMinRecords)
    throw Error(std::to_string(recs.size()) + " records" + (o.splits.empty() ? "" : " in the --split splits") +
                    "; a probe needs at least " + std::to_string(kProbeMinRecords),
                o.labels);
  for (const auto& r : recs)
    if (!io::file_exists(r.image))
      throw Error("image " + r.image + " does not exist", o.labels, std::to_string(r.line),
                  "--images is the root the records' \"image\" paths are relative to");
  build_tasks(o, recs, fields);
  std::vector<bool> held_out;
  for (const auto& r : recs) held_out.push_back(probe_held_out(r.id, common.seed, o.holdout));
  const int64_t tests = std::count(held_out.begin(), held_out.end(), true);
  const int64_t trains = static_cast<int64_t>(recs.size()) - tests;
  if (tests == 0 || trains == 0)
    throw Error(fmt::format("--holdout {} leaves {} of {} records for training and {} held out", o.holdout, trains,
                            recs.size(), tests),
                o.labels, {}, "both parts need records: change --holdout or --seed, or give more records");

  const std::string device = model::init_runtime(common);
  model::Bundle bundle = model::load_bundle(o.init);
  std::vector<model::EveModel> models{bundle.model};
  if (o.baseline == "fresh") {
    torch::manual_seed(common.seed);  // the fresh weights are a function of --seed alone
    models.emplace_back(bundle.config);
  }
  for (auto& m : models) {
    m->eval();
    m->to(torch::Device(device));
  }
  const int res = bundle.config.image_res;
  ThreadPool pool(resolve_threads(common.threads));
  std::vector<std::vector<float>> feats(models.size());
  int64_t dim = 0;
  Progress progress("probe", recs.size(), "img");
  for (size_t from = 0; from < recs.size(); from += static_cast<size_t>(o.batch_size)) {
    signals::throw_if_stopped();
    const size_t to = std::min(recs.size(), from + static_cast<size_t>(o.batch_size));
    torch::Tensor px = load_pixels(o, recs, from, to, res, pool);
    for (size_t k = 0; k < models.size(); ++k) {
      torch::Tensor f = pool_features(models[k], px, o.features, device);
      dim = f.size(1);
      feats[k].insert(feats[k].end(), f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
    }
    progress.add(to - from);
  }
  progress.finish();

  ordered_json j;
  j["format"] = "eve-probe 1";
  j["bundle"] = o.init;
  j["labels"] = o.labels;
  j["features"] = o.features;
  j["feature_dim"] = dim;
  j["holdout"] = o.holdout;
  j["seed"] = common.seed;
  j["splits"] = o.splits;
  j["fields"] = ordered_json::object();
  for (const auto& field : fields) {
    FieldScore s = score_field(field, feats[0], dim, held_out);
    ordered_json fj;
    fj["kind"] = field.multi ? "multi" : "single";
    if (field.multi) {
      std::vector<std::string> values;
      for (const auto& t : field.tasks) values.push_back(t.name);
      fj["values"] = values;
      fj["constant_values"] = field.constant;
    } else {
      fj["classes"] = field.tasks[0].classes;
    }
    fj["train"] = trains;
    fj["test"] = tests;
    fj["features"] = o.features;
    fj["accuracy"] = 100 * s.accuracy;
    fj["majority"] = 100 * s.majority;
    if (!field.multi) fj["l2"] = s.l2;
    if (field.multi) fj["per_value"] = s.per_value;
    std::string fresh;
    if (models.size() > 1) {
      FieldScore f = score_field(field, feats[1], dim, held_out);
      fj["fresh_accuracy"] = 100 * f.accuracy;
      if (field.multi) fj["fresh_per_value"] = f.per_value;
      fresh = fmt::format("fresh {:.1f} %, ", 100 * f.accuracy);
    }
    log::info("{}: probe {:.1f} % ({}majority {:.1f} %), {}/{} images{}", field.name, 100 * s.accuracy, fresh,
              100 * s.majority, trains, tests, field.multi ? ", mean over values" : "");
    j["fields"][field.name] = fj;
  }
  io::write_file_atomic(o.out + "/probe.json", j.dump(2) + "\n");
  return 0;
}

}  // namespace eve::train
