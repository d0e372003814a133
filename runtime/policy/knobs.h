// A policy's knobs, read from its BTF (no source parsing):
//  - start settings: global `const volatile` variables (.rodata), fixed when the policy loads
//    (`sie-run --set NAME=VALUE`, written into every object of the policy before its load);
//  - live knobs: SIE_KNOB globals (section .data.sie_knobs), one map shared by every object of
//    the policy and pinned at /sys/fs/bpf/sie_run_knobs, changed while it runs (`sie knob`).
// Values are integers, bools and enums, parsed and range-checked for their BTF type, and
// strings (char arrays: at most size - 1 bytes, NUL-padded).
#pragma once
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::policy {

inline constexpr char kKnobSection[] = ".data.sie_knobs";
inline constexpr char kKnobPin[] = "/sys/fs/bpf/sie_run_knobs";

// The policy's writable data sections and where sie-run pins their maps, so that every object
// of the policy (its own, one per constant) shares them: globals are the policy's, not each
// constant's. The stubs have no .data/.bss of their own, so a linked object's sections have
// the policy's layout exactly (PrepareKnobs checks the size).
struct SharedSection {
  const char* section;
  const char* pin;
};
inline constexpr SharedSection kSharedSections[] = {{kKnobSection, kKnobPin},
                                                    {".data", "/sys/fs/bpf/sie_run_data"},
                                                    {".bss", "/sys/fs/bpf/sie_run_bss"}};

enum class KnobKind { kSetting, kLive };

struct Knob {
  std::string name;
  KnobKind kind = KnobKind::kSetting;
  std::string type;  // as the policy spells it: "__u32", "bool", "enum hint"
  uint32_t offset = 0, size = 0;
  enum class Enc {
    kUnsigned,
    kSigned,
    kBool,
    kEnum,
    kString,
    kUnsupported
  } enc = Enc::kUnsupported;
  std::vector<std::pair<std::string, int64_t>> enumerators;  // kEnum
  std::string value;  // the default (policy object) or the current value (running policy)
};

const char* KindName(KnobKind k);

// Parses `text` for the knob's type into its bytes (little endian, knob.size long). Errors say
// what the type accepts.
absl::StatusOr<std::string> EncodeKnobValue(const Knob& k, absl::string_view text);
// The value in `bytes` (knob.size long) as the command line would write it.
std::string FormatKnobValue(const Knob& k, const void* bytes);

// The knobs of an opened (not loaded) policy object, defaults from its sections.
absl::StatusOr<std::vector<Knob>> KnobsOfObject(bpf_object* obj);
// The knobs of one data section described by BTF type `datasec`, values from `data`.
std::vector<Knob> KnobsOfDatasec(const btf* b, int datasec, KnobKind kind, const void* data,
                                 size_t size);

// A validated `--set NAME=VALUE`.
struct KnobSetting {
  Knob knob;
  std::string bytes;
};
// Checks each "NAME=VALUE" against the knobs (settings and live knobs); an unknown name or a
// bad value is an error whose hint lists the knobs. `what` names the policy in messages.
absl::StatusOr<std::vector<KnobSetting>> ResolveSettings(const std::vector<Knob>& knobs,
                                                         const std::vector<std::string>& sets,
                                                         absl::string_view what);
// Same, for a compiled policy object file.
absl::StatusOr<std::vector<KnobSetting>> ResolveSettings(const std::filesystem::path& obj,
                                                         const std::vector<std::string>& sets,
                                                         absl::string_view what);

// Before bpf_object__load of any object of the policy (its own, each constant's): writes the
// settings into the sections' initial values and, with share, points the maps of
// kSharedSections at their pins (created by the first load, reused by every later one).
absl::Status PrepareKnobs(bpf_object* obj, const std::vector<KnobSetting>& settings, bool share);

// The running policy's live knobs (the pinned map), with current values.
absl::StatusOr<std::vector<Knob>> LiveKnobs();
// Sets a live knob of the running policy; returns the knob with its previous value.
absl::StatusOr<Knob> SetLiveKnob(absl::string_view name, absl::string_view value);

// "name (live, __u32), ..." for hints.
std::string KnobList(const std::vector<Knob>& knobs);

}  // namespace sie::policy
