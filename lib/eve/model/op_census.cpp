#include "eve/model/op_census.h"

#include <ATen/record_function.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "eve/core/error.h"
#include "eve/io/jsonl.h"

namespace eve::census {

namespace {

// Phases beyond this many in one step share the last slot (steps use six).
constexpr int kMaxPhases = 16;

struct AtomicCounts {
  std::atomic<int64_t> ops{0}, top{0}, compute{0}, kernels{0}, syncs{0}, to_cpu{0};
  void reset() {
    for (auto* c : {&ops, &top, &compute, &kernels, &syncs, &to_cpu}) c->store(0, std::memory_order_relaxed);
  }
  Counts load() const {
    return {ops.load(), top.load(), compute.load(), kernels.load(), syncs.load(), to_cpu.load()};
  }
};

// Everything a step accumulates. Operators run on the training thread and, for a backward
// pass on a GPU, on autograd's device thread while the training thread waits: counters are
// atomic, the rarer sync records take a lock.
struct State {
  bool forced = false;
  std::string path;  // the census file; empty: count only
  bool active = false;
  at::CallbackHandle handle = 0;
  std::atomic<int> phase{0};
  std::vector<std::string> phase_names;
  std::array<AtomicCounts, kMaxPhases> counts;
  std::mutex sync_mutex;
  std::map<std::string, int64_t> sync_ops, sync_sites;
  std::mutex op_mutex;
  std::map<std::string, int64_t> compute_ops, kernel_ops, kernel_sites;
  int64_t step = 0;
  bool logging = false;
  StepCensus last = [] {
    StepCensus none;
    none.step = -1;
    return none;
  }();
};

State& state() {
  static State s;
  return s;
}

const std::string& env_path() {
  static const std::string path = [] {
    const char* v = std::getenv("EVE_OP_CENSUS");
    return std::string(v ? v : "");
  }();
  return path;
}

// An operator's class, decided once per name.
enum : uint8_t { kExcluded = 1, kSync = 2, kCopy = 4, kToCall = 8 };

uint8_t classify(const char* name) {
  static const std::unordered_set<std::string> excluded(compute_exclusions().begin(), compute_exclusions().end());
  static const std::unordered_set<std::string> sync(sync_op_names().begin(), sync_op_names().end());
  const std::string n(name);
  uint8_t c = 0;
  // Autograd's records of its nodes (evaluate_function: MulBackward0, AccumulateGrad, ...)
  // enclose the ops that do the node's work, which are counted themselves.
  if (excluded.count(n) || n.rfind("autograd::", 0) == 0) c |= kExcluded;
  if (sync.count(n)) c |= kSync;
  if (n == "aten::to" || n == "aten::_to_copy" || n == "aten::copy_") c |= kCopy;
  if (n == "aten::to" || n == "aten::_to_copy") c |= kToCall;
  return c;
}

// What this thread's observer knows of the operators open on it.
struct Frame {
  const char* name;
  bool has_child;
  bool counts_compute;
  bool opened_sync;
};
struct ThreadState {
  std::unordered_map<const char*, uint8_t> classes;  // names are the operators' own strings
  std::vector<Frame> stack;
  int sync_depth = 0;          // open sync ops: one nested in another counts once
  const char* last_top = nullptr;
};
thread_local ThreadState t_state;

bool is_cpu_tensor(const c10::IValue& v, bool& known) {
  if (v.isTensor() && v.toTensor().defined()) {
    known = true;
    return v.toTensor().is_cpu();
  }
  known = false;
  return false;
}

// For aten::to / aten::_to_copy: whether the call names the CPU as its device (a Device
// argument, or the tensor of to(other)); aten::copy_ names it by its destination.
bool targets_cpu(const at::RecordFunction& fn, bool copy_in_place) {
  const auto inputs = fn.inputs();
  if (copy_in_place) {
    bool known = false;
    return !inputs.empty() && is_cpu_tensor(inputs[0], known) && known;
  }
  for (size_t i = 1; i < inputs.size(); ++i) {
    if (inputs[i].isDevice()) return inputs[i].toDevice().is_cpu();
    bool known = false;
    const bool cpu = is_cpu_tensor(inputs[i], known);
    if (known) return cpu;
  }
  return false;
}

// The tensor a copy reads: the first input of to / _to_copy, the second of copy_.
bool source_off_cpu(const at::RecordFunction& fn, bool copy_in_place) {
  const auto inputs = fn.inputs();
  const size_t at = copy_in_place ? 1 : 0;
  if (inputs.size() <= at) return false;
  bool known = false;
  const bool cpu = is_cpu_tensor(inputs[at], known);
  return known && !cpu;
}

void record_sync(const char* name, const Frame* outer, const char* last_top, int phase) {
  State& s = state();
  const std::string& phase_name = s.phase_names[static_cast<size_t>(phase)];
  std::string site = phase_name + " " + name;
  if (outer) site += std::string(" in ") + outer->name;
  else if (last_top) site += std::string(" after ") + last_top;
  std::lock_guard<std::mutex> lock(s.sync_mutex);
  ++s.sync_ops[name];
  ++s.sync_sites[site];
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  State& s = state();
  ThreadState& t = t_state;
  const char* name = fn.name();
  auto found = t.classes.find(name);
  const uint8_t cls = found != t.classes.end() ? found->second : (t.classes[name] = classify(name));
  const int phase = s.phase.load(std::memory_order_relaxed);
  AtomicCounts& c = s.counts[static_cast<size_t>(phase)];
  const bool top = t.stack.empty();
  const bool compute = !(cls & kExcluded);
  // A kernel is a compute op that calls no other: views and metadata queries inside it (the
  // resolve_conj of a matrix product) leave it a kernel.
  if (!top && compute) t.stack.back().has_child = true;
  c.ops.fetch_add(1, std::memory_order_relaxed);
  if (top) c.top.fetch_add(1, std::memory_order_relaxed);
  if (compute) {
    c.compute.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(s.op_mutex);
    ++s.compute_ops[name];
  }

  bool sync = cls & kSync;
  if (cls & kCopy) {
    const bool in_place = !(cls & kToCall);
    const bool to_cpu = targets_cpu(fn, in_place);
    // aten::to calls _to_copy when it copies: the outer call is the one eve made.
    if (to_cpu && (cls & kToCall) && (top || std::strcmp(t.stack.back().name, "aten::to") != 0))
      c.to_cpu.fetch_add(1, std::memory_order_relaxed);
    if (to_cpu && source_off_cpu(fn, in_place)) sync = true;
  }
  bool opened = false;
  if (sync) {
    if (t.sync_depth == 0) {
      c.syncs.fetch_add(1, std::memory_order_relaxed);
      record_sync(name, top ? nullptr : &t.stack.front(), t.last_top, phase);
    }
    ++t.sync_depth;
    opened = true;
  }
  if (top) t.last_top = name;
  t.stack.push_back({name, false, compute, opened});
  return nullptr;
}

void on_end(const at::RecordFunction&, at::ObserverContext*) {
  ThreadState& t = t_state;
  if (t.stack.empty()) return;  // opened before the census began
  const Frame f = t.stack.back();
  t.stack.pop_back();
  if (f.opened_sync) --t.sync_depth;
  if (f.counts_compute && !f.has_child) {
    State& s = state();
    s.counts[static_cast<size_t>(s.phase.load(std::memory_order_relaxed))].kernels.fetch_add(
        1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(s.op_mutex);
    ++s.kernel_ops[f.name];
    // Where it ran: the outermost open op (an autograd node's record in backward).
    const char* outer = t.stack.empty() ? f.name : t.stack.front().name;
    ++s.kernel_sites[outer == f.name ? std::string(f.name) : std::string(f.name) + " in " + outer];
  }
}

int phase_index(State& s, const std::string& name) {
  auto it = std::find(s.phase_names.begin(), s.phase_names.end(), name);
  if (it != s.phase_names.end()) return static_cast<int>(it - s.phase_names.begin());
  if (static_cast<int>(s.phase_names.size()) == kMaxPhases) return kMaxPhases - 1;
  s.phase_names.push_back(name);
  return static_cast<int>(s.phase_names.size()) - 1;
}

}  // namespace

Counts StepCensus::total() const {
  Counts t;
  for (const auto& [name, c] : phases) {
    t.ops += c.ops;
    t.top += c.top;
    t.compute += c.compute;
    t.kernels += c.kernels;
    t.syncs += c.syncs;
    t.to_cpu += c.to_cpu;
  }
  return t;
}

const Counts* StepCensus::phase(const std::string& name) const {
  for (const auto& [n, c] : phases)
    if (n == name) return &c;
  return nullptr;
}

const std::vector<std::string>& compute_exclusions() {
  static const std::vector<std::string> names = {
      // views: new strides over the same storage
      "aten::view", "aten::_unsafe_view", "aten::view_as", "aten::reshape", "aten::_reshape_alias",
      "aten::as_strided", "aten::expand", "aten::expand_as", "aten::slice", "aten::select", "aten::t",
      "aten::transpose", "aten::permute", "aten::unsqueeze", "aten::squeeze", "aten::detach", "aten::alias",
      "aten::unbind", "aten::split", "aten::split_with_sizes", "aten::chunk", "aten::narrow",
      "aten::flatten", "aten::unflatten", "aten::movedim", "aten::swapaxes", "aten::diagonal",
      "aten::unfold", "aten::view_as_real", "aten::view_as_complex", "aten::numpy_T",
      // allocations without a fill, and metadata
      "aten::empty", "aten::empty_like", "aten::empty_strided", "aten::new_empty",
      "aten::new_empty_strided", "aten::resize_", "aten::size", "aten::stride", "aten::sym_size",
      "aten::sym_stride", "aten::sym_numel", "aten::numel", "aten::dim", "aten::is_contiguous",
      "aten::result_type", "aten::is_same_size", "aten::_has_compatible_shallow_copy_type",
      "aten::lift_fresh", "aten::set_", "aten::requires_grad_", "aten::retain_grad",
      "aten::output_nr", "aten::_version", "aten::is_leaf",
      // return a real tensor itself (only a complex tensor's lazy conjugate or negation is
      // materialised); the CPU's batched products call them once per matrix of the batch
      "aten::resolve_conj", "aten::resolve_neg",
      // wrappers whose work, when there is any, is the op they call (counted there)
      "aten::to", "aten::contiguous", "aten::item", "aten::type_as", "aten::detach_"};
  return names;
}

const std::vector<std::string>& sync_op_names() {
  static const std::vector<std::string> names = {
      "aten::_local_scalar_dense", "aten::item", "aten::nonzero", "aten::masked_select",
      "aten::bincount", "aten::unique", "aten::_unique", "aten::_unique2", "aten::unique_dim",
      "aten::unique_consecutive", "aten::unique_dim_consecutive", "aten::is_nonzero"};
  return names;
}

bool reuse_batch() {
  static const bool reuse = [] {
    const char* v = std::getenv("EVE_BENCH_REUSE_BATCH");
    return v && std::strcmp(v, "1") == 0;
  }();
  return reuse;
}

bool enabled() { return state().forced || !env_path().empty(); }

void enable(const std::string& path) {
  State& s = state();
  s.forced = true;
  s.path = path;
}

void begin_step(int64_t step, bool logging) {
  if (!enabled()) return;
  State& s = state();
  if (s.active) end_step();
  if (!s.forced) s.path = env_path();
  s.phase_names.clear();
  for (auto& c : s.counts) c.reset();
  s.sync_ops.clear();
  s.sync_sites.clear();
  s.compute_ops.clear();
  s.kernel_ops.clear();
  s.kernel_sites.clear();
  s.phase_names.push_back("other");
  s.phase.store(0);
  s.step = step;
  s.logging = logging;
  t_state.stack.clear();
  t_state.sync_depth = 0;
  t_state.last_top = nullptr;
  // Thread-local: the loader's threads are not observed; autograd's threads inherit it.
  s.handle = at::addThreadLocalCallback(at::RecordFunctionCallback(&on_start, &on_end)
                                            .needsInputs(true)
                                            .scopes({at::RecordScope::FUNCTION}));
  s.active = true;
}

void phase(const char* name) {
  if (!enabled()) return;
  State& s = state();
  if (!s.active) return;
  s.phase.store(phase_index(s, name));
}

void end_step() {
  if (!enabled()) return;
  State& s = state();
  if (!s.active) return;
  at::removeCallback(s.handle);
  s.active = false;
  StepCensus& out = s.last;
  out.step = s.step;
  out.logging = s.logging;
  out.phases.clear();
  for (size_t i = 0; i < s.phase_names.size(); ++i) out.phases.emplace_back(s.phase_names[i], s.counts[i].load());
  out.sync_ops = s.sync_ops;
  out.sync_sites = s.sync_sites;
  out.compute_ops = s.compute_ops;
  out.kernel_ops = s.kernel_ops;
  out.kernel_sites = s.kernel_sites;
  if (s.path.empty()) return;
  std::ofstream f(s.path, std::ios::app);
  f << to_json_line(out) << '\n';
  f.flush();
  if (!f) throw Error("EVE_OP_CENSUS " + s.path + ": cannot append the step's census", s.path);
}

const StepCensus& last_step() { return state().last; }

std::string to_json_line(const StepCensus& s) {
  // The n largest entries of a name -> count map, largest first, as [[name, count], ...].
  auto largest = [](const std::map<std::string, int64_t>& m, size_t n) {
    std::vector<std::pair<std::string, int64_t>> v(m.begin(), m.end());
    std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    if (v.size() > n) v.resize(n);
    io::ordered_json out = io::ordered_json::array();
    for (const auto& [name, count] : v) out.push_back({name, count});
    return out;
  };
  auto counts = [](const Counts& c) {
    return io::ordered_json{{"ops", c.ops},         {"top", c.top},     {"compute", c.compute},
                            {"kernels", c.kernels}, {"syncs", c.syncs}, {"to_cpu", c.to_cpu}};
  };
  io::ordered_json j{{"step", s.step}, {"logging", s.logging}};
  if (const char* rank = std::getenv("RANK"); rank && *rank) j["rank"] = std::atoi(rank);
  io::ordered_json phases = io::ordered_json::object();
  for (const auto& [name, c] : s.phases) phases[name] = counts(c);
  j["phases"] = phases;
  const Counts total = s.total();
  j["total"] = counts(total);
  j["sync_ops"] = s.sync_ops;
  j["sync_sites"] = largest(s.sync_sites, 10);
  j["compute_ops"] = largest(s.compute_ops, 20);
  j["kernel_ops"] = largest(s.kernel_ops, 20);
  j["kernel_sites"] = largest(s.kernel_sites, 20);
  const Counts* opt = s.phase("optimizer");
  j["optimizer_share"] = total.ops > 0 && opt ? static_cast<double>(opt->ops) / static_cast<double>(total.ops) : 0.0;
  return j.dump();
}

}  // namespace eve::census
