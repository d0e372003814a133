// Predicate spans: a conditional jump whose compare changes shape with the constant. gcc
// writes `x >= 256 % ceil` (get_random_u32_below's rejection test) as `test al, 0xf0; je` at
// one value and `cmp al, 0x23; jbe` at another: neither the immediate alone nor the condition
// code is the same, but each build's jump is taken exactly when `x op K` holds, one template
// op for all builds and K a family member of V. The stub then decides the jump itself: the
// formula is that predicate (1: the shipped build's consumer holds) and the flags are set
// through artifact::PredicateFlagsOperands. This file fits the template and proves, with Z3,
// that the emulated consumer decides as every build's own code does.
#pragma once
#include <z3++.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace sie::synth::analysis {

struct PredicateFit {
  enum Op { kUlt, kUgt, kSlt, kSgt, kEq, kNe } op = kUlt;
  std::vector<uint64_t> ks;  // K per build
};

// conds[k]: build k's jump condition over the operand `a` alone (one w-bit variable). The first
// template (in the order of Op) that explains every build, each with its own K, proved for
// every a; nullopt when none does.
std::optional<PredicateFit> FitPredicate(z3::context& ctx, const std::vector<z3::expr>& conds,
                                         const z3::expr& a);

// `operand op K` as a formula at width `bits` (operand: "X" or a parenthesized formula in X
// and V; k: K's formula in V); both sides masked to the width, signed ones biased.
std::string PredicateText(PredicateFit::Op op, const std::string& operand, const std::string& k,
                          int bits);

// `operand op K` for Z3, at the operand's width.
z3::expr PredicateExpr(PredicateFit::Op op, const z3::expr& operand, uint64_t k);

// Proves, for every input of build k, that the shipped consumer `consumer` ("je") of the flags
// the stub sets for predicate preds[k] decides as the build's own jump (wants[k]).
absl::Status ProvePredicateEmulation(z3::context& ctx, const std::vector<z3::expr>& wants,
                                     const std::vector<z3::expr>& preds,
                                     const std::string& consumer);

}  // namespace sie::synth::analysis
