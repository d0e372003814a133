// Stage 7: DWARF (libdw/libdwfl) facts for each span of the baseline object: the source line
// of the CS and the parameters/variables visible at the probe with their locations.
#pragma once
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "synth/artifact_types.h"

namespace sie::synth::analysis {

// Fills `source` and `vars` of every span (function-relative offsets into `obj`'s symbols).
absl::Status AnnotateFromDwarf(const std::string& obj, std::vector<CriticalSpan>* spans);

}  // namespace sie::synth::analysis
