// Stage 7: DWARF (libdw/libdwfl) facts for each span of the baseline object: the source line
// of the CS and the parameters/variables visible at the probe with their locations.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "synth/artifact_types.h"

namespace sie::synth::analysis {

// Fills `source` and `vars` of every span (function-relative offsets into `obj`'s symbols).
absl::Status AnnotateFromDwarf(const std::string& obj, std::vector<CriticalSpan>* spans);

// The size in bytes of each defined function's return value (1..8), by name; functions
// returning void or wider types are absent. What a caller reads of rax after a return.
absl::StatusOr<std::map<std::string, int>> ReturnSizes(const std::string& obj);

}  // namespace sie::synth::analysis
