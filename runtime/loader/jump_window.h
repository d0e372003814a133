// The live half of jump-optimization prediction: synth says where the shipped binary allows a
// kprobe to be jump-optimized and how many bytes it may replace (CriticalSpan::jump_windows);
// the instructions in those bytes are read from the running kernel (return thunks and
// alternatives are rewritten at boot) and must be ones the kernel runs out of line.
#pragma once
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::loader {

// The bytes an optimized kprobe at code[0] replaces (whole instructions, at least 5, all of
// `code`'s length at most), or why the kernel would keep it an int3 there.
absl::StatusOr<int> LiveJumpWindow(absl::string_view code);

}  // namespace sie::loader
