// Stage 3b: deriving the compiler's transformation. Constants c_i seen in the builds are fit
// to a family h(V), tried in this order: a*V+b (small a, or a = 2^k: a field packed above
// another), two fields packed in one immediate ((H << 32) | L, each half a family member
// itself), (a<<V)+b, (a>>V)+b, a/V+b and the rational (a*V+b)/d, one family per numerator
// a = 1, 2, 3 (rounding divisions such as DIV_ROUND_UP or msecs_to_jiffies, V >> k, V*3/4).
// Coefficients are solved over bit-vectors with Z3 or, for the division families, exactly by
// interval arithmetic; the first family that fits wins (simplest first: the plain families
// for every output template before the wider ones). Inside a family three builds may not single out
// one member (125/V+1 and 249/V+1 agree at 125, 250, 500): every other member that fits is returned
// as an alternative, to be ruled out by builds at more values (the V4/V5 check) or refused, never
// dropped; outputs that depend on an input X are matched to X op c (c = h(V)) and proved equal for
// every X in each build. X / c and X % c compiled to multiply-high sequences (one-word,
// 65-bit "add" and pre-shifted magic numbers) are proved by abstracting the multiplication
// plus the Granlund-Montgomery bound of the magic number (derive.cc, ProveMagicByAbstraction).
#pragma once
#include <z3++.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sie::synth::analysis {

struct FamilyFit {
  std::string formula;                         // in V
  int64_t vmin = INT64_MIN, vmax = INT64_MAX;  // where the family is valid (shift/div limits)
  // Other members of the same family that reproduce every build as well but differ elsewhere.
  std::vector<std::string> alternatives;
};

// 2^bits % (+-V + b), bits = 8, 16 or 32 (the compare's width): the rejection bound of
// sampling below a constant (get_random_u32_below), fitted only where a predicate's K is
// (predicate_span.h): among immediates at large, three small numerals would fit it by chance.
absl::StatusOr<FamilyFit> FitRemainderFamily(const std::vector<int64_t>& vs,
                                             const std::vector<uint64_t>& cs, int bits);

// Fits c_i = h(V_i) at `bits` bits (c_i compared modulo 2^bits).
absl::StatusOr<FamilyFit> FitFamily(const std::vector<int64_t>& vs, const std::vector<uint64_t>& cs,
                                    int bits);

struct OutputFit {
  std::string formula;  // in V and possibly X
  bool uses_x = false;
  bool invertible = false;    // X can be recomputed from the output (add/sub/xor)
  std::string x_from_output;  // then: X as an expression of R (the output's value), baseline
  int64_t vmin = INT64_MIN, vmax = INT64_MAX;
  std::vector<std::string> alternatives;  // as FamilyFit's, written like `formula`
};

// outs[i]: the 64-bit output of build i as a Z3 expression over at most one input `x` (pass
// x = nullopt for constant outputs). out_bits: width of the write (32 for "mov eax,...").
// x_zext32: x is known to be a zero-extended 32-bit value.
// Throws z3::exception (callers catch).
absl::StatusOr<OutputFit> FitOutput(z3::context& ctx, const std::vector<z3::expr>& outs,
                                    const std::optional<z3::expr>& x,
                                    const std::vector<int64_t>& vs, int out_bits, bool x_zext32);

// `o` with each subterm that computes T / d or T % d as a multiply-high (d one of `divisors`,
// T the product's other factor) replaced by that division on 64 bits, each replacement
// proved for every T (ProveMagicByAbstraction). Z3 does not bit-blast such a sequence against
// a divider in reasonable time; with both sides dividing, a proof abstracts the divisions
// (DivisionsAbstracted). Throws z3::exception.
z3::expr MagicQuotientsAsDivisions(z3::context& ctx, const z3::expr& o,
                                   const std::vector<uint64_t>& divisors, bool* found = nullptr);

}  // namespace sie::synth::analysis
