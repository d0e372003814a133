// Stage 3c helper: a term's linear parts in one canonical form. The compiler writes V * x as
// `shl`, `lea`, `imul` or an `add` chain depending on V, and Z3 keeps those shapes (a product
// by 8 simplifies to concat(extract(28, 0, x), 0b000)); written as c0 + c1*a1 + ... over the
// same atoms, the builds of one source expression differ only in their numerals, which the
// shape fit (multi_input.cc) then reads as functions of V.
#pragma once
#include <z3++.h>

namespace sie::synth::analysis {

// `e` with every maximal sum of products by numerals (bvadd, bvsub, bvneg, bvmul and bvshl
// by a numeral, concatenation of zero low bits, low extracts of those) written as one bvadd
// of bvmul(numeral, atom) terms, atoms in an order that ignores numerals, so equal shapes
// line up across builds. Non-linear parts keep their operator, their arguments normalized.
// The result equals `e` for every value of its inputs (an exact rewrite modulo 2^width).
z3::expr LinearForm(const z3::expr& e);

}  // namespace sie::synth::analysis
