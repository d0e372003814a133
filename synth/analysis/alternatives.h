// Stage 3c: formulas three builds cannot single out. A span's fit may come with alternatives
// (derive.h: other members of the family reproducing V1..V3 as well). Each check build keeps
// only the candidates that give what its code computes; what is left must agree: the range is
// narrowed to the values around the builds' where every candidate gives the same result, and
// a span whose candidates differ there is refused. One is never picked silently.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "synth/artifact_types.h"

namespace sie::synth::analysis {

// X values a formula in X is compared at.
const std::vector<uint64_t>& SampleXs();

// Whether `formula` (written at `width` bytes) gives what `seen_formula` does at V=v for every
// sampled X; otherwise `why` says where they differ ("gives 3 at V=61 (X=0) ... computes 5").
bool AgreesAt(const std::string& formula, int width, const std::string& seen_formula,
              int seen_width, int64_t v, std::string* why);

// Keeps the span's candidates (formula and alternatives) that agree with `seen` at V=v; the
// first becomes the formula. False, `fitted` unchanged, when none does (`why`: the formula's
// disagreement).
bool KeepAgreeing(CriticalSpan* fitted, const CriticalSpan& seen, int64_t v, std::string* why);

// The value in [lo, hi] (none of `taken`) at which the spans' candidates split most (summed
// over spans, the nearest to `taken` on a tie): building it keeps only the ones its code
// agrees with. nullopt when no span has candidates that differ anywhere in the range. `pow2`:
// powers of two only.
std::optional<int64_t> SplittingValue(const std::vector<CriticalSpan>& spans, int64_t lo,
                                      int64_t hi, const std::vector<int64_t>& taken,
                                      bool pow2 = false);

// After every check: the range [*lo, *hi] narrowed to where each span's remaining candidates
// all agree (scanned outward from the values built, `values`); refused (formula-family) when
// they differ between those values. Clears the alternatives; notes each narrowing in warnings.
// `pow2`: only powers of two are values (const.json pow2_only): candidates that differ only
// elsewhere are equivalent.
absl::Status ResolveAlternatives(const std::vector<int64_t>& values,
                                 std::vector<CriticalSpan>* spans, int64_t* lo, int64_t* hi,
                                 std::vector<std::string>* warnings, bool pow2 = false);

}  // namespace sie::synth::analysis
