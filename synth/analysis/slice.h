// Stage 6: the Safe Span of a Critical Span: the forward data-dependency slice of the value it
// produces (registers, flags, stack slots, and cells outside the frame named by an unchanged
// base register), over the function's control-flow graph. A value passed to a call or
// returned escapes the function, as does one left in a cell outside the frame at a call or
// return or whose base register changes: the whole function is the span, and the escape is
// reported (a returned value is followed into the callers, callers.h).
#pragma once
#include <string>
#include <vector>

#include "synth/analysis/disasm.h"
#include "synth/artifact_types.h"

namespace sie::synth::analysis {

// How the sliced value leaves its function, if it does.
struct Escape {
  enum Kind { kNone, kReturned, kOther } kind = kNone;
  std::string why;  // e.g. "returned at f+0x1b (`ret`)", "left in a cell outside the frame ..."
};
SafeSpan SliceSafeSpan(const Function& fn, const CriticalSpan& cs, Escape* escape = nullptr);
// Merges overlapping spans of the same function (a whole-function span absorbs the others).
std::vector<SafeSpan> MergeSafeSpans(std::vector<SafeSpan> spans);

}  // namespace sie::synth::analysis
