// Stage 3d: a region that the shipped build computes from an input X where the other builds
// compute from f(X, V) first, f being the identity at the shipped value (`queue / 1` folded
// away: the shipped code has no instruction for the constant to probe, and its register
// allocation differs from the other builds'). The span is empty: a probe at the region's
// start rewrites X to f(X, V), proved to make the shipped region compute each build's
// outputs from the same inputs.
#pragma once
#include <z3++.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sie::synth::analysis {

struct InputRewrite {
  std::string family;   // the register rewritten ("ax")
  int width = 8;        // bytes the probe writes (4: zero-extended, as a 32-bit write)
  std::string formula;  // in V and X (X: the register's value at the probe)
  std::vector<std::string> alternatives;
  int64_t vmin = INT64_MIN, vmax = INT64_MAX;
  // X is live after the region, which leaves it as it was: the rewritten value must not
  // outlive the region, so a second span puts X back at its end (saved at its start).
  bool restore = false;
};

// outs[k]: the region's live results in build k (registers live after it, stores), the same
// results in the same order in every build, over the inputs at the region's start;
// live_regs[family]: the index in outs[k] of a register live after the region. zext32:
// register families holding a zero-extended 32-bit value there. Throws z3::exception.
absl::StatusOr<InputRewrite> FitInputRewrite(z3::context& ctx,
                                             const std::vector<std::vector<z3::expr>>& outs,
                                             const std::map<std::string, size_t>& live_regs,
                                             const std::vector<int64_t>& vs,
                                             const std::set<std::string>& zext32);

}  // namespace sie::synth::analysis
