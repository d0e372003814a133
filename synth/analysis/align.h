// Stage 2: aligning one function's instructions across builds by sequence alignment (LCS over
// normalized signatures that ignore branch displacements and relocation fields), then cutting
// the differences into hunks: maximal runs between instructions that match in all builds.
#pragma once
#include <cstddef>
#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"
#include "synth/analysis/disasm.h"

namespace sie::synth::analysis {

// The one LCS aligner: sequences of n and m elements where same(i, j) says whether element i of
// the first equals element j of the second. match[i] = the j aligned with i, or -1; monotone.
// Common prefix and suffix are matched first, so the table covers only the differing middle.
std::vector<int> AlignLcs(size_t n, size_t m, absl::FunctionRef<bool(size_t, size_t)> same);

// match[i] = index in `b` aligned with a[i], or -1, comparing normalized signatures.
std::vector<int> AlignInsns(const std::vector<Insn>& a, const std::vector<Insn>& b);

// gcc may lay out the same basic blocks in another order in another build (cold blocks swapped
// at the end of the function): the control flow is the same, only the layout differs. When the
// control-flow graphs of `base` and `var` are isomorphic (blocks paired from the entry by their
// successors and terminators), returns `var` with its blocks reordered as in `base`, so the
// alignment sees only the real differences. Failing that, both graphs are walked in step from
// the entry (a block duplicated in one build, e.g. an epilogue copied into a predecessor at one
// value only, or a branch inverted with its blocks swapped), pairing instructions of one shape.
// nullopt when the layout already agrees or the graphs differ (then the value really changes
// control flow and the caller refuses). The result keeps
// each instruction's original offset: Function::IndexAt and branch_targets are not valid on it
// (it is only aligned and executed symbolically, never walked as a CFG).
std::optional<Function> RelayoutLike(const Function& base, const Function& var);

// gcc may give the callee-saved registers (rbx, rbp, r12-r15) other roles in another build (the
// loop counter in r12 and a base address in r13 at one value, swapped at another): the same
// code up to one consistent permutation of them. Returns `var` renamed to `base`'s registers
// (the prologue's saves and the epilogue's restores left as written, as in `base`: a save
// stores the caller's value, Insn::entry_save; a restore is opaque), or nullopt
// when the registers already agree or no one permutation explains them. Like RelayoutLike's,
// the result is only aligned and executed symbolically (its bytes are not renamed).
std::optional<Function> RenamedLike(const Function& base, const Function& var);

// One difference region: [begin, end) instruction indices in the baseline and each variant.
struct Hunk {
  int base_begin = 0, base_end = 0;
  std::vector<int> var_begin, var_end;  // one per variant
};

// Hunks of `base` against every variant, ordered by position. Layout-only differences (branch
// displacements, relocation offsets) never produce a hunk.
std::vector<Hunk> DiffFunctions(const Function& base, const std::vector<const Function*>& vars);

}  // namespace sie::synth::analysis
