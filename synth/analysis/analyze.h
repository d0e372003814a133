// The synth analysis core: from three builds of an object (the constant at V1 shipped, V2, V3)
// to the Critical Spans, Safe Spans and data initializers of synth/model.h.
//
// Pipeline (one stage per file): elf_file (ELF) -> disasm (Capstone) -> align (LCS hunks) ->
// semantics + derive (Z3: IV = f(V), outputs as X op f(V)) -> dataflow (probe offsets,
// candidates, liveness) -> slice (safe spans) -> dwarf_info (file:line, variables) ->
// map_shipped (onto vmlinux / .ko). No exception crosses this API.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "synth/artifact_types.h"

namespace sie::synth {

struct VariantObject {
  int64_t value = 0;
  std::string path;  // an ELF relocatable .o (or .ko)
};

struct AnalyzeOptions {
  std::vector<std::string> functions;  // optional scope (names, clone suffixes normalized)
  std::vector<std::string> skip;       // functions never analysed (init/exit code)
  int64_t range_min = INT64_MIN, range_max = INT64_MAX;
  // Builds with values never used to fit (see CheckValues). Three samples do not single out a
  // function (DIV_ROUND_UP(250, V) folds to 1, 2, 1 at 250, 125, 500: so does 125 / V + 1), so
  // each is analysed with V1 and V2 and every span must come out cut alike with a formula that
  // agrees at its value; otherwise the object is refused (formula-family, shape-change, ...).
  std::vector<VariantObject> check;
  // Builds the object with another value (optional). When the code has another shape at one of
  // V2, V3 or a check value, nearby values are tried instead (ReplacementValues).
  std::function<absl::StatusOr<std::string>(int64_t value)> build;
};

struct AnalysisResult {
  std::vector<CriticalSpan> spans;
  std::vector<SafeSpan> safe_spans;
  // Why the safe spans cannot be bounded (SynthesizedConst::safe_spans_unbounded), or "".
  std::string safe_spans_unbounded;
  std::vector<DataInitializer> data_initializers;
  std::vector<std::string> warnings;
  // The requested range, narrowed where a formula is only valid on part of it (each
  // narrowing is explained in warnings).
  int64_t range_min = INT64_MIN, range_max = INT64_MAX;
  // The values the formulas were fitted from (V1, V2, V3 after any replacement, see
  // AnalyzeOptions::build) and the values they were checked at.
  std::vector<int64_t> fitted, checked;
  // V must be a power of two: the values fitted all are, and the code has another shape (or
  // the formulas do not hold) at values that are none, while they hold at other powers of two.
  bool pow2_only = false;
};

// Up to `n` values to build instead of `v` when the code at `v` has another shape: the nearest
// to v inside [range_min, range_max] (above first), not in `taken`, never a power of two when
// `no_pow2` (check values), deterministic.
std::vector<int64_t> ReplacementValues(int64_t v, int64_t range_min, int64_t range_max,
                                       const std::vector<int64_t>& taken, bool no_pow2, size_t n);

// Up to two powers of two inside [range_min, range_max] not in `taken`: the nearest above the
// highest of `values`, then the nearest below the lowest (else further above).
std::vector<int64_t> PowerOfTwoChecks(const std::vector<int64_t>& values, int64_t range_min,
                                      int64_t range_max, const std::vector<int64_t>& taken);

// Up to two values to check the derived formulas at, deterministic: inside the range, distinct
// from `values`, never a power of two, preferably prime; the first near the middle of the wider
// gap between the spec's values, the second between the range's low end and the lowest value
// (else above the highest, else in the other gap). Fewer when the range has no room.
std::vector<int64_t> CheckValues(const std::vector<int64_t>& values, int64_t range_min,
                                 int64_t range_max);

// variants[0] is the baseline (shipped value); exactly three, distinct values.
absl::StatusOr<AnalysisResult> AnalyzeVariants(const std::vector<VariantObject>& variants,
                                               const AnalyzeOptions& opts);

// Translates spans from the baseline object onto the shipped binary (vmlinux with symbols, or a
// .ko) by matching the function's instruction sequence with relocation fields masked; fills
// expect_bytes. Any mismatch is an error naming the function and offset. A caller safe span
// (SafeSpanHow::kCaller) the shipped binary lacks is dropped and explained in `unbounded`.
absl::Status MapToShipped(const std::string& baseline_obj, const std::string& shipped_elf,
                          std::vector<CriticalSpan>* spans, std::vector<SafeSpan>* safe_spans,
                          std::string* unbounded = nullptr);

}  // namespace sie::synth
