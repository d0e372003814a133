// One hunk of one function (the instructions that differ between the three builds, see
// align.h) turned into Critical Spans with proved formulas, or a classified refusal. A refusal
// with code InvalidArgument may be resolved by a larger region (the caller grows the hunk over
// common neighbours and retries); FailedPrecondition is final.
#pragma once
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "synth/analysis/align.h"
#include "synth/analysis/analyze.h"
#include "synth/analysis/disasm.h"
#include "synth/artifact_types.h"

namespace sie::synth::analysis {

// The three builds' versions of one function (fn[0] the baseline) and their values.
struct HunkContext {
  const Function* fn[3];
  std::vector<int64_t> vs;
  AnalysisResult* res;  // its range is narrowed where a formula holds on part of it only
  // Outputs of several inputs (or of a value loaded in the span) may become spans
  // (region.cc, MultiInputSpan); the driver first tries without, so what one-input spans
  // explain (a remainder as one span after growing) stays as it was.
  bool multi_input = true;
};

absl::StatusOr<std::vector<CriticalSpan>> AnalyzeHunk(const HunkContext& cx, const Hunk& h);

// `h` as one region, never split per instruction nor grown: the check of a span at another
// value (analyze.cc) re-derives exactly the region the span was derived from.
absl::StatusOr<std::vector<CriticalSpan>> AnalyzeWholeRegion(const HunkContext& cx, const Hunk& h);

}  // namespace sie::synth::analysis
