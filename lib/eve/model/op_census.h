// The op census of a training step: how many libtorch operators a step runs, how many of
// them do work, and how many make the host wait for the device, split by phase of the step.
// On a GPU every host sync stalls the device and every small op is a kernel launch, and both
// can be counted on the CPU, so the counts measure a step's GPU cost without a GPU.
//
// Off unless the environment variable EVE_OP_CENSUS names a file: then begin_step ..
// end_step observe every operator the calling thread runs (and the autograd threads that run
// its backward pass, which inherit its thread-local state; the loader's threads do not) and
// append one JSON line per step to that file. When off, the call points cost one bool test.
//
// What is counted (per phase, and summed in "total"):
//   ops      every aten operator, nested ones included (aten::linear and the aten::addmm it
//            calls are two)
//   top      operators called by eve's code (or by an autograd node) directly
//   compute  ops less the views, metadata queries, allocations and dispatch wrappers of
//            compute_exclusions() (which do no arithmetic and launch no kernel) and less
//            autograd's records of its nodes ("autograd::..."; the ops inside are counted)
//   kernels  compute ops that call no other compute op: about the kernels a GPU would launch
//   syncs    ops that make the host wait for the device: sync_op_names() (.item(), nonzero,
//            masked_select, ...; one nested in another counts once) and copies to the CPU
//            from another device (aten::to / _to_copy / copy_ with a non-CPU source)
//   to_cpu   aten::to / _to_copy calls whose device argument is the CPU. On a CPU-only run
//            no copy crosses devices, and `.cpu()` cannot be told from the batch's
//            `.to(device)` (both are aten::to with a CPU device), so these are counted
//            beside the syncs, never in them: an upper bound of the device-to-host copies
//            the same code makes on a GPU, where the real ones appear in syncs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace eve::census {

struct Counts {
  int64_t ops = 0, top = 0, compute = 0, kernels = 0, syncs = 0, to_cpu = 0;
};

// One step's census as end_step wrote it.
struct StepCensus {
  int64_t step = 0;
  bool logging = false;
  std::vector<std::pair<std::string, Counts>> phases;  // in order of first use
  std::map<std::string, int64_t> sync_ops;             // op name -> syncs
  // "phase op after previous-op" -> syncs: the phase, the sync op and the last operator the
  // same thread ran directly before it (what computed the value the host waits for).
  std::map<std::string, int64_t> sync_sites;
  std::map<std::string, int64_t> compute_ops;  // op name -> compute ops of that name
  std::map<std::string, int64_t> kernel_ops;   // op name -> kernels (leaf compute ops)
  // "op in outer" -> kernels: a kernel and the outermost op it ran in (the autograd node's
  // record in backward; the op alone when eve's code called it directly).
  std::map<std::string, int64_t> kernel_sites;
  Counts total() const;
  const Counts* phase(const std::string& name) const;  // nullptr when the step never entered it
};

// Whether the census runs (EVE_OP_CENSUS set and non-empty, or enable() called).
bool enabled();
// Starts a step's census on the calling thread in phase "other". `logging`: the step writes
// its metrics line (logging steps run more host-side ops).
void begin_step(int64_t step, bool logging);
// Counts what follows under `name` (forward, backward, clip, optimizer, log, other, or any
// other name) until the next phase() or end_step().
void phase(const char* name);
// Ends the step, appends its JSON line to the census file (when one is named) and keeps it
// for last_step().
void end_step();

// Turns the census on for this process as EVE_OP_CENSUS=path would ("" = count without
// writing a file); for tests and bench drivers.
void enable(const std::string& path);
// The census of the last step ended in this process (step -1 before any).
const StepCensus& last_step();
// The step's JSON line (without the newline): {"step", "logging", "phases": {name: counts},
// "total", "sync_ops", "sync_sites" (the 10 most frequent, most first), "compute_ops" and
// "kernel_ops" (the 20 most frequent names of each, most first), "kernel_sites" (the 20 most
// frequent), "optimizer_share"
// (the optimizer phase's share of all ops)}.
std::string to_json_line(const StepCensus& s);

// EVE_BENCH_REUSE_BATCH=1 (benchmarks of the step alone): eve-pretrain trains every step on
// its first batch, the images kept on the training device, so a step's time and census leave
// out loading and the host-to-device copy of the images. Read once.
bool reuse_batch();

// The lists the counts are defined by, for tests and documentation.
const std::vector<std::string>& compute_exclusions();
const std::vector<std::string>& sync_op_names();

}  // namespace eve::census
