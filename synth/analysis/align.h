// Stage 2: aligning one function's instructions across builds by sequence alignment (LCS over
// normalized signatures that ignore branch displacements and relocation fields), then cutting
// the differences into hunks: maximal runs between instructions that match in all builds.
#pragma once
#include <vector>

#include "synth/analysis/disasm.h"

namespace sie::synth::analysis {

// match[i] = index in `b` aligned with a[i], or -1. Monotone (an LCS).
std::vector<int> AlignInsns(const std::vector<Insn>& a, const std::vector<Insn>& b);

// One difference region: [begin, end) instruction indices in the baseline and each variant.
struct Hunk {
  int base_begin = 0, base_end = 0;
  std::vector<int> var_begin, var_end;  // one per variant
};

// Hunks of `base` against every variant, ordered by position. Layout-only differences (branch
// displacements, relocation offsets) never produce a hunk.
std::vector<Hunk> DiffFunctions(const Function& base, const std::vector<const Function*>& vars);

}  // namespace sie::synth::analysis
