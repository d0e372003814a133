// Stage 7b: may the kernel jump-optimize a kprobe here? The rules of the guest's kernel that
// the shipped binary decides (arch/x86/kernel/kprobes/opt.c can_optimize: no exception-table
// entry in the function, no jump into the 5 bytes, not entry code; copy_optimized_instructions:
// no byte the kernel itself patches in the copied window), so `sie set` can place an apply
// probe where it will be optimized instead of attaching and waiting to see. What the copied
// instructions are is read from the live code at set time (return thunks and alternatives
// are rewritten at boot): the loader checks them (common/elf/kprobe_rules.h).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "synth/analysis/disasm.h"

namespace sie::synth::analysis {

struct OptimizeContext {
  const Function* fn = nullptr;  // the shipped function (function-relative offsets)
  // [offset, offset + len) the kernel will not copy out of line: ftrace's call, alternatives,
  // jump labels, static calls (len 0: the instruction there).
  std::vector<std::pair<uint64_t, int>> reserved;
  bool has_extable = false;  // an exception-table entry inside the function
  bool entry_text = false;   // in .entry.text
};

// How many bytes from `offset` an optimized probe may replace (at least 5: up to the first
// byte the kernel patches, or the function's end, at most 32), or why it cannot be optimized.
absl::StatusOr<int> JumpLimit(const OptimizeContext& c, uint64_t offset);

}  // namespace sie::synth::analysis
