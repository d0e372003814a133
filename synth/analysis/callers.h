// Stage 6b: the direct call sites of a function inside its object, for a safe span whose value
// the function returns (slice.h): the slice of rax from each call's return joins the span.
// The call sites are known only when no code outside the object can reach the function (it is
// STB_LOCAL and its address is never taken) and none tail-calls it (the caller's frame is gone
// while it runs); otherwise the result is an error saying why they cannot be listed.
#pragma once
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "synth/analysis/disasm.h"

namespace sie::synth::analysis {

struct CallSite {
  const Function* caller;
  int index;  // of the call instruction in caller->insns
};

// `fns`: every function of `elf` (call sites are searched among them).
absl::StatusOr<std::vector<CallSite>> DirectCallSites(const ElfFile& elf,
                                                      const std::vector<Function>& fns,
                                                      const Function& fn);

}  // namespace sie::synth::analysis
