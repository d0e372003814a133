// Spans that end at a control-flow join: when the first instruction after a span is also the
// target of a jump that bypasses it, a probe there sees both paths. A path token tells them
// apart at run time (a mark probe at the span's start, checked by the apply probe); this
// stage decides whether the span's shape lets a mark identify the path exactly.
#pragma once
#include "absl/status/status.h"
#include "synth/analysis/disasm.h"

namespace sie::synth::analysis {

// OK when every execution that runs the instruction at index `begin` of `fn` runs the span
// [begin, end) straight through, with the same stack pointer, to the instruction at `end`,
// and none enters the span elsewhere: then "this frame passed the span's start" (its stack
// pointer, unique among live frames) is true at `end` exactly on the paths through the span.
// Else a precise reason (the caller refuses the span with it).
absl::Status CheckPathToken(const Function& fn, int begin, int end);

}  // namespace sie::synth::analysis
