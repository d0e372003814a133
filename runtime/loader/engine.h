// How `sie set` applies a new constant: one driver (set.cc: validate -> choose engine -> verify
// kernel bytes -> load -> attach all -> optimize probes -> activate) over two engines that
// implement the kernel-facing steps: the BPF stub (engine_bpf.cc) and sie_native's kprobe
// pre-handlers (engine_native.cc, native.h). Every step that changes the kernel or /run/sie is
// recorded in a Transaction, so a failure at any step leaves nothing behind.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/artifact/consts_dir.h"
#include "runtime/loader/attach.h"
#include "runtime/loader/global_spans.h"
#include "runtime/loader/loader.h"
#include "runtime/loader/state.h"
#include "runtime/loader/transaction.h"

namespace sie::loader {

// What the driver verified before anything is attached: the probes at their verified
// addresses, and for modes 1 and 2 the safe spans.
struct LoadPlan {
  const artifact::ConstEntry* entry = nullptr;
  const SetOptions* opts = nullptr;
  std::string release;
  bool in_module = false;
  std::vector<Attached> probes;
  std::vector<std::pair<uint64_t, uint64_t>> safe_ranges;  // modes 1, 2: [start, end)
  std::vector<GlobalSpan> global_spans;                    // mode 2
  int instance = -1;  // mode 2: the sie_consistency instance (FreeGlobalInstance)
  Clock::time_point t0;

  const artifact::SynthesizedConst& c() const { return entry->c; }
  std::string binary() const { return in_module ? c().target.binary : "vmlinux"; }
  // SIE_TRACE=1 prints the time of each step (load latency investigations in the guest).
  void Mark(const char* what) const;
  // The state file's fields every engine records.
  nlohmann::json BaseState() const;
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Makes ready what runs in the kernel; nothing is attached yet.
  virtual absl::Status Load(SetResult& res) = 0;
  // Writes the state file, then attaches every probe with no effect yet (BPF: the gate is
  // closed; native: each probe writes the shipped value's result). Records each undo in txn.
  virtual absl::Status AttachAll(Transaction& txn) = 0;

  // The jump optimization (the driver's loop) moves probe i to plan.probes[i].info, its next
  // candidate: Unplace takes it from its current place, PlaceMoved attaches and records it at
  // the new one; when that fails, AbandonMove cleans up and PlaceBack restores the previous
  // place (the driver has restored info). Left: no probe of this load is at `addr` any more.
  virtual absl::Status Unplace(size_t i) = 0;
  virtual absl::Status PlaceMoved(size_t i) = 0;
  virtual void AbandonMove(size_t i) = 0;
  virtual absl::Status PlaceBack(size_t i) = 0;
  virtual void Left(uint64_t addr) {}

  // Makes the new value apply and records the constant as loaded (the state file).
  virtual absl::Status Activate(SetResult& res) = 0;
  // The load succeeded (txn committed): the kernel objects stay, our handles go.
  virtual void Commit() {}
  // Native only: sie_native refused a place another probe took after the driver's check; this
  // load's probes are gone again and the driver falls back to BPF.
  virtual bool place_taken() const { return false; }
};

std::unique_ptr<Engine> MakeBpfEngine(LoadPlan& plan);
// `allow_place_taken`: an EEXIST add becomes place_taken() (--engine auto) instead of an error.
std::unique_ptr<Engine> MakeNativeEngine(LoadPlan& plan, bool allow_place_taken);

// The constant is loaded: its probes go into the state file (for status/unload) and the result.
void RecordLoaded(const std::vector<Attached>& probes, nlohmann::json& state, SetResult& res);

// Unload of one constant; the caller holds the run lock. `before` (optional): its status
// before, for the journal's lifetime summary, which also goes to *summary.
absl::Status UnloadOne(const std::string& n, double timeout_s, const LoadedConst* before = nullptr,
                       nlohmann::json* summary = nullptr, bool force = false);

}  // namespace sie::loader
