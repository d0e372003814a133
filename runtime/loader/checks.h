// The decisions of `sie set` that need no kernel: argument checks, the engine choice, refusal
// reasons, the code-byte verdict and the mode-2 placement rules. Inputs that come from the
// kernel (listings, lookups) are passed in, so each decision has host unit tests
// (tests/runtime/loader_checks_test.cc).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/artifact/model.h"
#include "runtime/loader/attach.h"
#include "runtime/loader/global_spans.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/loader.h"
#include "runtime/loader/native.h"

namespace sie::loader {

// Range and mode: refusals that need nothing from the kernel.
absl::Status ValidateRequest(const artifact::SynthesizedConst& c, const SetOptions& o);
absl::Status ValidateEngineName(const std::string& engine);

// A loaded constant (its state file `old`) may only change its value: refused when it is
// half-loaded, or the request names another engine or mode. `loaded_engine` is its engine.
absl::Status CheckUpdate(const std::string& name, const nlohmann::json& old, const SetOptions& o);

// Why sie_native cannot apply this request ("" when it can): native.h's rules, a known shipped
// value (probes start inert), and a formula that evaluates at the new value on every span.
std::string NativeWhyNot(const artifact::SynthesizedConst& c, const SetOptions& o);

struct EngineChoice {
  bool native = false;
  std::string reason;  // for `sie set -v`
};
// --engine auto|bpf|native against NativeWhyNot's answer; --engine native refuses when it
// cannot be used.
absl::StatusOr<EngineChoice> ChooseEngine(const std::string& name, const std::string& engine,
                                          const std::string& why_not);
// sie_native turned out unusable after the choice (module missing, place taken): --engine
// native fails with `refusal`, auto falls back to BPF with `reason`.
absl::Status FallBackToBpf(EngineChoice& ch, const std::string& engine, absl::Status refusal,
                           std::string reason);
// Why the native engine cannot take `probes` now: the first place sie_native already probes
// (in `listing`), with its owner (`owner_of` by NativeKey, "" unknown); "" when all are free.
std::string NativePlaceTaken(const std::vector<NativeProbe>& probes,
                             const std::map<std::string, NativeCounters>& listing,
                             const std::function<std::string(const std::string&)>& owner_of);
// The refusal/fallback pair for a taken place.
absl::Status NativePlaceRefusal(EngineChoice& ch, const std::string& name,
                                const std::string& engine, const std::string& taken);

// A loaded constant whose code is in a module (`binary`, not vmlinux) and whose probes no longer
// fire: the module was unloaded after `sie set` (`module_loaded` false), or unloaded and loaded
// again (`probes_gone` of its `probes` kprobes are [GONE]: the kernel never re-arms them).
// nullopt while the probes are in place. `state` is what `sie status` shows instead of "loaded".
struct TargetGone {
  std::string state, message, hint;
};
std::optional<TargetGone> ModuleTargetGone(const std::string& name, const std::string& binary,
                                           bool module_loaded, int probes, int probes_gone);
// The same for the constant `name` of state file `state`, asked of the kernel now: /sys/module
// and `list` (the kprobes list) for its probes' [GONE] flags. Defined in status.cc.
std::optional<TargetGone> TargetGoneNow(const std::string& name, const nlohmann::json& state,
                                        const absl::StatusOr<std::vector<KprobeEntry>>& list);

// Is the code at span s's probe place (`bytes`, read at its address) what synth analyzed?
// Exactly, or under a probe that cannot hide a difference: another loaded constant's probe
// that verified the same bytes (`verified_by`, asked only on a mismatch), or another kprobe's
// int3 on the first byte (`int3_here`), the rest still compared. Returns "" or a note saying
// which; otherwise the refusal, naming `const_path` and the expected bytes.
absl::StatusOr<std::string> CheckProbeBytes(const artifact::CriticalSpan& s,
                                            const std::string& bytes, bool in_module,
                                            const std::string& const_path,
                                            const std::function<std::string()>& verified_by,
                                            const std::function<bool()>& int3_here);

// What CheckCode needs from the running kernel, passed in (host unit tests fake it).
struct CodeContext {
  uint64_t func_addr = 0;  // the function's live address
  // The live address of a module relocation's target (CodeReloc::symbol: a section of the
  // module, or a symbol elsewhere); nullopt when it cannot be known (the field is then not
  // compared, and a note says so).
  std::function<std::optional<uint64_t>(const artifact::CodeReloc&)> symbol_address;
  std::vector<KprobeEntry> kprobes;  // kprobes/list
  // The other sie constant probing `addr`, "" when none (another tool).
  std::function<std::string(uint64_t)> owner;
};
// Is the live code `live` (read at ctx.func_addr + r.offset) what synth analyzed in range `r`
// of `function`? Every byte that is not masked is compared; every relocated field is computed
// (module: from its symbol; vmlinux: moved by the KASLR slide) and compared. Bytes under
// another armed kprobe (its int3, or the 5-byte jmp of an [OPTIMIZED] one, another sie
// constant's too) are not compared: a note says whose. Returns the notes, or the refusal
// naming function+offset, the expected and live bytes and `const_path`; `what` ("span 0",
// "safe span 1") says whose range it is.
absl::StatusOr<std::vector<std::string>> CheckCode(const std::string& what,
                                                   const std::string& function,
                                                   const artifact::CodeRange& r,
                                                   const std::string& live, const CodeContext& ctx,
                                                   const std::string& const_path);

// A span with code ranges: its expect_bytes (the apply probe's instruction) must agree with
// the code recorded at probe_offset ("??" on either side agrees with anything), so a probe
// offset edited into the middle of an instruction, or a corrupted expect_bytes, is refused as
// before: the code there (verified live by CheckCode) is not what const_path expects.
absl::Status CheckExpectAgainstCode(const artifact::CriticalSpan& s, const std::string& what,
                                    const std::string& const_path);

// The safe spans of mode 1 and 2: synth's, or the whole functions of the Critical Spans.
std::vector<artifact::SafeSpan> SafeSpansOf(const artifact::SynthesizedConst& c);
// Mode 1 checks at most SIE_MAX_SAFE_CHECKED safe spans, mode 2 SIE_CONS_MAX_SPANS.
absl::Status CheckSafeSpanCount(const std::string& name, size_t n, int mode);
// The warning modes 1 and 2 print when synth could not bound the safe spans (the value
// outlives them: safe_spans_unbounded), nullopt otherwise.
std::optional<std::string> UnboundedSafeSpans(const artifact::SynthesizedConst& c, int mode);
// Mode 2 disassembles each safe span's function: refused when another kprobe patches it
// (`foreign`: armed, not ftrace) within [addr, addr + size).
absl::Status CheckUnpatched(const std::string& where, const std::vector<KprobeEntry>& foreign,
                            uint64_t addr, uint64_t size);
// Mode 2: the unguard of an exit runs before a CS probe at the same address
// (consistency.h), so the last task out would see the new value at that use only: refused when
// the span has other uses. Candidate offsets on any exit are dropped for the same reason.
absl::Status CheckExitUses(const std::string& name, const std::vector<GlobalSpan>& spans,
                           std::vector<Attached>& probes);
// Other kprobes at our probe addresses (another tool, another constant) run on the same hits:
// not refused, but noted on each probe and told as warnings.
void NoteOtherKprobes(const std::vector<KprobeEntry>& list, std::vector<Attached>& probes,
                      std::vector<std::string>& warnings);

// Mode 2: the sie_consistency instance a loaded constant's state file records ("instance";
// state files of an older sie used the ConstID, "id"); -1 when none.
int GlobalInstanceIn(const nlohmann::json& state);
// Mode 2: the instance for a new load: the lowest in [1, SIE_CONS_MAX_ID) no other loaded
// constant (`others`, their state files) holds. Not the ConstID: ids are per consts directory,
// so constants loaded from two directories can share one.
absl::StatusOr<int> FreeGlobalInstance(const std::vector<nlohmann::json>& others);
// Mode 2 under sie-run: does constant `name`'s span `g` join the policy's shared instance, which
// holds `spans` ([start, end))? true: add it; false: an equal span is there (a function both
// constants use); refused when it overlaps one without being equal (the module needs disjoint
// spans).
absl::StatusOr<bool> JoinsSharedSpans(const std::string& name,
                                      const std::vector<std::pair<uint64_t, uint64_t>>& spans,
                                      const GlobalSpan& g);

// `sie unload` and `sie status`: the name of the loaded constant `arg` names, by name (any case)
// or by ConstID, among the loaded constants' state files. An id is per consts directory: with
// `consts_dir` only constants loaded from there answer to it, and an id loaded from two
// directories is refused as ambiguous.
absl::StatusOr<std::string> ResolveLoaded(const std::string& arg,
                                          const std::vector<nlohmann::json>& states,
                                          const std::string& consts_dir);

}  // namespace sie::loader
