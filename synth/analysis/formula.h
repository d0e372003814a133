// The formula language of a span: a C expression in V (the policy's value) and X (the
// instruction's input), using integer literals, + - * / % << >> & | ^ ~ and parentheses.
// Semantics (what the runtime must implement): uint64 wrapping arithmetic, / % >> unsigned,
// a shift by 64 or more yields 0, and the result is truncated to the span's width.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace sie::synth::analysis {

absl::StatusOr<uint64_t> EvalFormula(std::string_view formula, int64_t v, uint64_t x = 0,
                                     int width_bytes = 8);
// True when the formula mentions X.
bool FormulaUsesX(std::string_view formula);

}  // namespace sie::synth::analysis
