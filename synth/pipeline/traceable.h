// Which functions of the shipped binary the kernel's kprobe events accept. Without
// CONFIG_KPROBE_EVENTS_ON_NOTRACE (Debian's default) a kprobe event, so every BPF kprobe, is
// refused with EINVAL in a function that has no ftrace site (`call __fentry__`): notrace code,
// and functions gcc emitted without one (e.g. some .constprop clones). The ftrace sites are the
// binary's __mcount_loc entries (addresses in vmlinux, relocations in a .ko).
#pragma once
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "synth/artifact_types.h"

namespace sie::synth::pipeline {

// The functions of `binary` that contain an ftrace site; nullopt when the binary has no
// __mcount_loc (not built for ftrace: a plain object, where kprobe events do not apply).
absl::StatusOr<std::optional<std::set<std::string>>> TraceableFunctions(const std::string& binary);

// Spans in functions not in `traceable`: a reg or mem span stays (the native engine's kprobe
// handlers are not kprobe events), with a warning; any other kind needs BPF and is refused.
absl::Status CheckTraceable(const std::set<std::string>& traceable,
                            const std::vector<CriticalSpan>& spans,
                            std::vector<std::string>* warnings);

}  // namespace sie::synth::pipeline
