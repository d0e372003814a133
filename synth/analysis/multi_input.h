// Stage 3c: the formula of an output computed from the constant and several inputs (registers
// live at the span's start, values loaded inside it), f(V, X, Y, Z, W), proved for every value
// of every input in each build. The three builds' outputs are descended together to the one
// place where they differ (the hole); the hole must be a one-input function of V (fitted by
// FitOutput, derive.h) of a V-independent term (any combination of the inputs), and the rest
// is the same V-independent context in every build. The composed formula is then proved, as a
// whole, against each build's output with Z3.
#pragma once
#include <z3++.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sie::synth::analysis {

struct MultiFit {
  std::string formula;  // in V and the variables of `names`
  int64_t vmin = INT64_MIN, vmax = INT64_MAX;
  // Other formulas proved at the three builds (another method's reading of the same code):
  // the checks at further values keep the ones that agree there (alternatives.h).
  std::vector<std::string> alternatives;
  // FitBySymbolicImmediates found a division by the constant written as a multiply-high.
  bool magic_division = false;
};

// A range [lo, hi] of no more values than were built (a 2-bit field's count): each build's
// own output, chosen by V, so no value of the range is extrapolated (and none is left to
// check). Proved against each build's output; refused when a value of the range was not built.
absl::StatusOr<MultiFit> FitEveryValue(z3::context& ctx, const std::vector<z3::expr>& outs,
                                       const std::map<std::string, char>& names,
                                       const std::vector<int64_t>& vs, int out_bits, int64_t lo,
                                       int64_t hi);

// `other`'s formula and alternatives as alternatives of `fit` (those it lacks); the range is
// where every candidate is defined.
void AddAlternatives(MultiFit* fit, const MultiFit& other);

// outs[k]: build k's 64-bit output (bits above out_bits are not written), over the inputs
// named in `names` (Z3 input name, e.g. "in:si" or "mem:...:4" -> formula variable 'X'..'W').
// The variable holds the input zero-extended to 64 bits. Throws z3::exception (callers catch).
absl::StatusOr<MultiFit> FitMultiInput(z3::context& ctx, const std::vector<z3::expr>& outs,
                                       const std::map<std::string, char>& names,
                                       const std::vector<int64_t>& vs, int out_bits);

// A region executed once more with the immediates that differ between the builds as symbols:
// `sym_out` is the output over the inputs and those symbols, `imms[symbol]` each build's
// numeral for it. Each symbol becomes its formula in V (the one-input family, FitOutput), and
// the whole is proved against each build's output `outs[k]`. Unlike FitMultiInput, it needs
// no common shape of the simplified outputs (a shift by a numeral is rewritten into extracts
// and concatenations of another shape for each count).
absl::StatusOr<MultiFit> FitBySymbolicImmediates(
    z3::context& ctx, const z3::expr& sym_out,
    const std::map<std::string, std::vector<z3::expr>>& imms, const std::vector<z3::expr>& outs,
    const std::map<std::string, char>& names, const std::vector<int64_t>& vs, int out_bits);

// `e` (at most 64 bits wide) as formula text whose u64 value is e zero-extended, or nullopt
// for an operation the formula language cannot express (sign extension, ite, wide products).
std::optional<std::string> FormulaOfExpr(const z3::expr& e,
                                         const std::map<std::string, char>& names);

// `formula` at V = v as a 64-bit Z3 term over `vars` (each zero-extended to 64 bits), and the
// condition under which it is defined (no division by zero, no shift past the width).
struct FormulaTerm {
  z3::expr value, defined;
};
std::optional<FormulaTerm> FormulaAt(z3::context& ctx, const std::string& formula, int64_t v,
                                     const std::map<char, z3::expr>& vars);

// Proves `formula` at V = v equals `out` on its low out_bits bits for every input (a hit where
// the formula is undefined is rejected by the stub, so only defined hits count).
bool ProveFormulaAt(z3::context& ctx, const std::string& formula, int64_t v, const z3::expr& out,
                    const std::map<std::string, char>& names, int out_bits);

}  // namespace sie::synth::analysis
