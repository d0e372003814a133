// The sie runtime: make a synthesized constant take a new value in the running kernel, show
// what is loaded, and take it back out.
//
// `SetConst` on a constant that is not loaded verifies everything first (range, kernel release,
// symbols, the code bytes at every probe), loads sie_kfuncs (and the target module) on demand,
// compiles or reuses the stub, attaches ALL probes or none, pins maps and links under
// /sys/fs/bpf/sie/<name>/ and records /run/sie/<name>.json, so that `sie status` and
// `sie unload --all` work after the loading process died (even by kill -9). On a loaded
// constant it only writes the value map. Every change is appended to the journal.
//
// Two engines apply the value in the kernel: the BPF stub (every kind, every mode, policies)
// and sie_native (kprobe pre-handlers writing a fixed value, no BPF per hit: runtime/loader/
// native.h says what it covers). `--engine auto` picks native only where it is as safe as the
// stub, and falls back to BPF when another constant's native probe holds one of the places
// (sie_native keeps one per place). Before anything is attached, functions replaced by an
// enabled livepatch are refused (probes inside them would never fire), and other kprobes at a
// probe address are reported; `sie status` flags probes bypassed by a livepatch enabled later.
// The loader owns every fd it opens (perf events, links): none outlives SetConst or Unload.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

struct bpf_object;

namespace sie::loader {

inline constexpr char kPinRoot[] = "/sys/fs/bpf/sie";

// /run/sie, or $SIE_RUN_DIR.
std::filesystem::path RunDir();
// /var/log/sie/journal.jsonl when /var/log is writable, else /run/sie/journal.jsonl.
std::filesystem::path JournalPath();

// Synthesized constants per kernel release (consts_home.cc): /var/lib/sie/consts/<release>/,
// or under $SIE_CONSTS_ROOT. After a kernel update the old release's directory stays behind and
// is refused (CheckConstsFor), never used at stale addresses.
std::filesystem::path ConstsRoot();
// The default constants directory: $SIE_CONSTS, else ConstsRoot()/<running release> when it
// exists, else /etc/sie/consts.
std::filesystem::path DefaultConstsDir();
// `dir` holds constants synthesized for the running kernel `release`: refused, with the command
// that regenerates them, when it is missing while other releases' directories exist, or when a
// constant in it was synthesized for another release.
absl::Status CheckConstsFor(const std::filesystem::path& dir, const std::string& release);

// sie-run --mode 2: a policy's constants share one sie_consistency instance, so all of them
// switch at one instant with no task inside any of their safe spans (no event sees one new
// value and one old). Each load adds its spans (a span equal to one already there only once;
// one overlapping another differently is refused: the module needs disjoint spans) and leaves
// the switch to the policy (SwitchSharedInstance).
struct SharedInstance {
  int id = -1;
  std::vector<std::pair<uint64_t, uint64_t>> spans;  // [start, end) added so far
};

struct SetOptions {
  std::filesystem::path consts_dir;
  std::string name;  // name or id
  int64_t value = 0;
  int mode = 0;             // 0 immediate, 1 per-task, 2 global (sie_consistency)
  double timeout_s = 5;     // mode 2: limit of each global transition (else unused by set)
  bool optimize = true;     // look for jump-optimized probe offsets among the candidates
  double opt_wait_s = 1.5;  // the kernel optimizes probes from delayed work
  std::vector<std::filesystem::path> policy_objects;  // linked over the weak decision hook
  // Policies: called on the linked object after open, before load (knob values, shared maps).
  std::function<absl::Status(bpf_object*)> prepare_object;
  // sie-run: the policy file's one object, already loaded, holding this constant's stub under
  // stubgen::StubSuffix(id) names next to the file's other constants' (stubgen::BuildStubs).
  // Not owned; the load uses its maps and programs instead of building a stub of its own.
  bpf_object* shared_object = nullptr;
  // sie-run --mode 2: join this instance instead of creating one; Activate does not switch.
  SharedInstance* shared_instance = nullptr;
  // "auto": sie_native where it covers every span with equal safety (runtime/loader/native.h),
  // else BPF; "bpf" or "native" force one (native refuses what it does not cover).
  std::string engine = "auto";
};

// Sets up the stub named with `suffix` (stubgen::StubSuffix; "" for sie set's own object) in an
// opened, not yet loaded object for `mode`: the mode-2 kfunc switch, the mode-1 reverse check's
// autoload.
absl::Status PrepareStub(bpf_object* obj, const std::string& suffix, int mode);
// A free sie_consistency instance for a policy's constants (the module loaded, a leftover of a
// killed run removed; `notes` says so).
absl::StatusOr<int> NewSharedInstance(std::vector<std::string>* notes);
// One transition of a shared instance, run to its end: forward opens the gates of all its
// constants at once, back closes them. Refused, naming the tasks inside, when it does not happen
// within timeout_s (forward: never opened; back: still open). *ms: the kernel's time to the flip.
absl::Status SwitchSharedInstance(int id, bool forward, double timeout_s, double* ms);
// Removes a shared instance unless a loaded constant still claims it.
void RemoveSharedInstance(int id);

// The modules a BPF stub of `mode` needs loaded before its object loads (its kfuncs):
// sie_kfuncs, and for mode 2 sie_consistency; `notes` says which were loaded now.
absl::Status LoadStubModules(int mode, std::vector<std::string>* notes);

struct ProbeInfo {
  std::string role;  // "apply", "save", "mark" (path token), "guard"
  int span = 0;      // span index (guard: safe-span index)
  int point = 0;     // "save": the span's save point (artifact::SavePointsOf)
  std::string function;
  uint64_t offset = 0;
  uint64_t address = 0;
  int cell = -1;  // kMem: the sie_kfuncs cell id
  bool optimized = false;
  // Apply probes: placed where the kernel will jump-optimize it (synth's jump_windows and the
  // live bytes); the kernel does so in the background.
  bool jump_placed = false;
  std::string kprobe_flags;  // "[OPTIMIZED]", "[FTRACE]", "" (from kprobes/list)
  // Other kprobes at this address (another tool or constant), from kprobes/list: at `sie set`
  // those registered before ours; in `sie status` every kprobe there when there are more than
  // this constant's own (others_count of them are not ours).
  std::vector<std::string> others;
  int others_count = 0;
  // `sie status`: the livepatch that replaces this probe's function now (enabled or in
  // transition), "" when none. Its callers run the patch's copy, so the probe never fires.
  std::string livepatched_by;
  bool livepatch_transition = false;
};

struct SetResult {
  std::string name;
  bool updated_only = false;         // the constant was loaded: only the value map changed
  std::optional<int64_t> old_value;  // previous value (loaded constant), else the shipped one
  int64_t value = 0;
  int mode = 0;
  bool compiled = false;  // the stub was compiled now (not from a cache)
  double latency_ms = 0;  // from start to the value being active
  double verify_ms = 0, build_ms = 0, load_ms = 0, attach_ms = 0, optimize_ms = 0;
  // Mode 2: the kernel's time from the transition request to the gate flip, and its result
  // ("instant": nobody was inside; "done": the last task inside left).
  double transition_ms = 0;
  std::string transition_result;
  std::vector<ProbeInfo> probes;
  std::vector<std::string> notes;     // told to the user (module loaded, candidate moves...)
  std::vector<std::string> warnings;  // worth a look (other kprobes at our probe addresses)
  std::string engine;                 // "bpf" or "native"
  std::string engine_reason;          // why (sie set -v)
};

absl::StatusOr<SetResult> SetConst(const SetOptions& opts);

struct SpanCounters {
  uint64_t hits = 0, applied = 0, rejected = 0, failed = 0, gated = 0, nosave = 0;
  // Path token spans: apply hits on the bypass path (no mark: nothing written), marks lost.
  uint64_t bypass = 0, markfail = 0;
};

// Mode 1: how tasks moved since the last request (new target or value): how many switched at a
// clean guard, and their time from the request to the switch (kernel clock).
struct EpochStats {
  uint64_t tasks = 0;
  double mean_ms = 0, max_ms = 0;
};

// Mode 1: a task whose last guard found a safe-span frame on its stack (so it keeps the old
// value) since the last request.
struct BlockedTask {
  uint32_t tid = 0;
  std::string comm;
  double last_ms = 0;  // since that guard
};

struct LoadedConst {
  nlohmann::json state;             // /run/sie/<name>.json
  std::vector<SpanCounters> spans;  // summed over CPUs; empty when the pins are gone
  uint64_t transitions = 0, unsafe = 0;
  EpochStats epoch;                  // mode 1, since the last request
  std::vector<BlockedTask> blocked;  // mode 1: tasks holding the current transition up
  bool pins_present = false;         // bpf: the pins; native: every probe registered
  std::string engine = "bpf";
  std::vector<ProbeInfo> probes;  // with current [OPTIMIZED] state
  // Mode 2: sie_consistency's status of the constant's instance (state, result, elapsed_ns,
  // blocking...; kmod/include/sie/consistency.h); empty when there is none.
  std::map<std::string, std::string> global;
  // Worth a look, each with what to do: probes bypassed by a livepatch enabled after `sie set`.
  struct Warning {
    std::string message, hint;
  };
  std::vector<Warning> warnings;
};

// Every constant with a state file or a pin directory.
absl::StatusOr<std::vector<LoadedConst>> Status();

// The name of the loaded constant `name_or_id` names: its name in any case, or its ConstID
// (with `consts_dir` "" any directory's; refused when two loaded constants share the id).
absl::StatusOr<std::string> LoadedName(const std::string& name_or_id,
                                       const std::string& consts_dir = "");

// Reverse transition (mode 1: tasks move back at their next clean guard until no task holding
// the new value may be inside a safe span, refused after timeout_s naming those tasks, keeping
// the constant loaded, unless `force`; mode 2: one global switch back, refused when it does not
// happen within timeout_s, keeping everything loaded), then detach (remove the pins) and forget the
// constant. `name` is a name or an id (LoadedName, in `consts_dir`); "" with all=true: everything
// under /sys/fs/bpf/sie and /run/sie, including leftovers of a killed `sie set`. `summaries`
// (optional) gets one journal entry per constant: its value, mode, engine, time loaded, counters
// summed over spans, the reverse transition and the outcome.
absl::Status Unload(const std::string& name, bool all, double timeout_s = 5,
                    std::vector<nlohmann::json>* summaries = nullptr,
                    const std::string& consts_dir = "", bool force = false);

// The journal's entries (one json object per line), oldest first (journal.h).
absl::StatusOr<std::vector<nlohmann::json>> ReadJournal();

}  // namespace sie::loader
