// Stage 3b': a division by the constant as compilers emit it, a multiply-high by a "magic"
// number: (T * m) >> s, where both numerals m and s change with the divisor, and neither is a
// formula of V on its own (0xcccccccd >> 35 at V=10, 0xf0f0f0f1 >> 36 at V=17). Found in a
// region executed with the differing numerals as symbols (multi_input.h
// FitBySymbolicImmediates) and written as the division it computes.
#pragma once
#include <z3++.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sie::synth::analysis {

struct MagicDivision {
  z3::expr sub;  // (T * m) >> s in the symbolic output
  // T / D (unsigned); sdiv(T, D) - (T < 0 ? 1 : 0) (signed); or, for a negative multiplier,
  // -sdiv(T, D) - (T > 0 ? 1 : 0)
  z3::expr replacement;
  std::string d;                   // the divisor's new symbol (64 bits); empty for a product's sign
  std::vector<z3::expr> divisors;  // D in each build, as 64-bit numerals
};

// `e` with every numeral symbol of `imms` replaced by build k's numeral (imms[symbol][k]).
z3::expr AtBuild(z3::context& ctx, const z3::expr& e,
                 const std::map<std::string, std::vector<z3::expr>>& imms, size_t k);

// Whether an output multiplies by a numeral of more than 16 bits (magnitude), as a division by
// a constant does.
bool HasMagicMultiply(const std::vector<z3::expr>& outs);

// The first such subterm of `sym_out` whose numerals (imms[symbol][build]) are, in every
// build, a magic pair for one divisor d_i: checked over the integers by the Granlund-
// Montgomery bound, so `replacement` with D = d_i equals `sub` for every N-bit T
// (unsigned: T < 2^N and 0 <= m*d - 2^s <= 2^(s-N); signed: T a sign extension of N bits and
// 0 < m*d - 2^s <= 2^(s-N+1); the product never overflows 64 bits). `d_name` names D.
std::optional<MagicDivision> FindMagicDivision(
    z3::context& ctx, const z3::expr& sym_out,
    const std::map<std::string, std::vector<z3::expr>>& imms, const std::string& d_name);

}  // namespace sie::synth::analysis
