// The native engine of `sie set`: kmod/sie_native's kprobe pre-handlers apply a FIXED value with
// no BPF program per hit (faster per hit, docs/benchmarks.md). It is chosen only where it is
// exactly as safe as the BPF stub, so what it cannot do decides (NativeSupport):
//   - mode 0 only: it has no per-task guards (mode 1) and no sie_consistency gate (mode 2);
//   - no policy (a decision per event needs BPF);
//   - kinds reg and mem only, with a formula of V alone (evaluated once in user space: the
//     handler writes a constant); flags and recompute read the instruction's input per hit;
//   - mem: a cell addressed by one base register + displacement (no index, not RIP-relative).
//   - one probe per place: where another constant's native probe already is, sie_native refuses
//     the add (EEXIST); `--engine auto` then uses BPF (checked up front from the module's
//     listing, and on EEXIST after removing this load's probes), `--engine native` fails.
// Everything the BPF path checks before attaching (range, release, symbols, code bytes,
// livepatches) is checked the same way for both engines; width rules are the same function
// (kmod/include/sie/kfuncs_logic.h); status counters come from the module's listing
// (hits, faults); unload removes each probe synchronously (unregister_kprobe).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/artifact/model.h"

namespace sie::loader {

inline constexpr char kNativeControl[] = "/sys/kernel/debug/sie_native/control";

// One sie_native probe of a constant: the key (symbol, offset) that its control commands use.
struct NativeProbe {
  int span = 0;
  std::string symbol;  // "func" (vmlinux) or "module:func"
  uint64_t offset = 0;
  std::string add;  // "probe SYMBOL OFFSET KIND ..." without the value
  // Path token: the mark probe's offset (the CS's first instruction), passed as "mark OFF".
  std::optional<uint64_t> mark;
  const artifact::CriticalSpan* cs = nullptr;
};

// "" when sie_native covers every span of `c` with equal safety for this use, else why not
// (one line, for `sie set -v` and for --engine native's error).
std::string NativeUnsupported(const artifact::SynthesizedConst& c, int mode, bool has_policy);

// The probes of `c` (NativeUnsupported(c) must be ""): `binary` is "vmlinux" or the module.
absl::StatusOr<std::vector<NativeProbe>> NativeProbes(const artifact::SynthesizedConst& c,
                                                      const std::string& binary);

// The value a span's handler writes for the constant's value V: its formula evaluated at V.
absl::StatusOr<uint64_t> NativeValue(const artifact::CriticalSpan& s, int64_t v);

// Control commands.
// `disarmed`: registered disabled until an `arm` command (kNativeArmCommand) enables all.
std::string NativeAddCommand(const NativeProbe& p, uint64_t value, bool disarmed = false);
inline constexpr char kNativeArmCommand[] = "arm";
std::string NativeValueCommand(const NativeProbe& p, uint64_t value);
std::string NativeRemoveCommand(const std::string& symbol, uint64_t offset);

struct NativeCounters {
  uint64_t value = 0, hits = 0, faults = 0;
  uint64_t bypass = 0;  // path token: apply hits whose frame took the bypass (no write)
};
// The module's listing ("SYMBOL+0xOFF KIND REG WIDTH [DISP] 0xVALUE hits=N faults=N
// [mark=0xOFF bypass=N]" per line),
// keyed by "SYMBOL+0xOFF".
std::map<std::string, NativeCounters> ParseNativeListing(absl::string_view text);
std::string NativeKey(const std::string& symbol, uint64_t offset);

// sie_native keeps one probe per place and refuses a second add there (EEXIST). The index in
// `probes` of the first whose place `listing` (ParseNativeListing) already holds; -1 when every
// place is free.
int NativeConflict(const std::vector<NativeProbe>& probes,
                   const std::map<std::string, NativeCounters>& listing);

// One command to the control file (one write(2)).
absl::Status NativeCommand(const std::string& cmd, int* err = nullptr);

}  // namespace sie::loader
