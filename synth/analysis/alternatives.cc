#include "synth/analysis/alternatives.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/artifact/formula.h"
#include "common/base/diag.h"
#include "common/base/status_macros.h"
#include "synth/refusal.h"

namespace sie::synth::analysis {
namespace {

// Values compared on each side of the builds' (and between them): beyond, the range is cut.
constexpr int64_t kScan = int64_t{1} << 18;

// Further inputs (Y, Z, W) take other values than X, so a swap of two inputs shows.
artifact::FormulaVars SampleVars(int64_t v, uint64_t x) {
  return {static_cast<uint64_t>(v), x, 0, x * 3 + 1, x ^ 0x5a5a, x + 7};
}

std::optional<uint64_t> At(const artifact::Formula& f, int width, int64_t v, uint64_t x) {
  auto r = f.Eval(SampleVars(v, x));
  if (r && width < 8) *r &= (uint64_t{1} << (width * 8)) - 1;
  return r;
}

std::string Show(const std::optional<uint64_t>& r) { return r ? absl::StrCat(*r) : "undefined"; }

// The first sampled X where two candidates differ at V=v, if any.
std::optional<uint64_t> DifferAt(const artifact::Formula& a, const artifact::Formula& b, int width,
                                 int64_t v) {
  for (uint64_t x : SampleXs())
    if (At(a, width, v, x) != At(b, width, v, x)) return x;
  return std::nullopt;
}

std::string Where(const CriticalSpan& s) {
  return absl::StrFormat("%s+0x%x", s.function, s.cs_start);
}

std::string List(const std::vector<std::string>& fs) {
  std::vector<std::string> shown;
  for (size_t i = 0; i < fs.size() && i < 4; ++i) shown.push_back(absl::StrCat("`", fs[i], "`"));
  std::string more = fs.size() > 4 ? absl::StrCat(" and ", fs.size() - 4, " more") : "";
  return absl::StrCat(absl::StrJoin(shown, ", "), more);
}

struct Candidates {
  std::vector<std::string> texts;
  std::vector<artifact::Formula> fs;
  int width = 8;
  // A span's formula and its alternatives.
  static absl::StatusOr<Candidates> Of(const CriticalSpan& s) {
    Candidates c;
    c.width = s.width;
    c.texts = {s.formula};
    c.texts.insert(c.texts.end(), s.formula_alternatives.begin(), s.formula_alternatives.end());
    for (const std::string& t : c.texts) {
      auto f = artifact::Formula::Parse(t, "VX");
      if (!f.ok()) return f.status();
      c.fs.push_back(*std::move(f));
    }
    return c;
  }
  // The first pair differing at V=v, as "`a` gives 1, `b` gives 2 (X=0)"; empty if all agree.
  std::string Differ(int64_t v) const {
    for (size_t k = 1; k < fs.size(); ++k)
      if (auto x = DifferAt(fs[0], fs[k], width, v)) {
        bool in_x = fs[0].Uses('X') || fs[k].Uses('X');
        return absl::StrCat("`", texts[0], "` gives ", Show(At(fs[0], width, v, *x)), ", `",
                            texts[k], "` gives ", Show(At(fs[k], width, v, *x)),
                            in_x ? absl::StrCat(" (X=", *x, ")") : "");
      }
    return "";
  }
};

std::vector<int64_t> ScanValues(int64_t lo, int64_t hi, bool pow2);

// One span: refused when its candidates differ between the builds' values, else the range
// [*lo, *hi] cut to where they agree (`pow2`: only powers of two are values, so only those
// count).
absl::Status Resolve(const std::vector<int64_t>& values, CriticalSpan* s, int64_t* lo, int64_t* hi,
                     bool pow2, std::vector<std::string>* warnings) {
  ASSIGN_OR_RETURN(c, Candidates::Of(*s));
  auto [vmin, vmax] = std::minmax_element(values.begin(), values.end());
  const int64_t b_lo = std::max(*vmin, *lo), b_hi = std::min(*vmax, *hi);
  const std::string fit =
      absl::StrCat(c.texts.size(), " formulas fit every build (V=", absl::StrJoin(values, ", "),
                   "): ", List(c.texts));
  auto refuse = [&](const std::string& why) {
    return Classified(FailedWithHint(absl::StrCat(Where(*s), ": ", fit, "; ", why),
                                     "more builds are needed to tell them apart: restrict the "
                                     "range or tune the code by hand"),
                      Refusal::kFormulaFamily);
  };
  int64_t new_lo = b_lo, new_hi = b_hi;
  if (pow2) {
    // Only powers of two are values: the candidates need to agree at those alone.
    const std::vector<int64_t> p = ScanValues(*lo, *hi, true);
    auto first = std::lower_bound(p.begin(), p.end(), b_lo);
    auto last = std::upper_bound(p.begin(), p.end(), b_hi);
    for (auto it = first; it != last; ++it)
      if (std::string d = c.Differ(*it); !d.empty())
        return refuse(absl::StrCat("they differ at V=", *it, ": ", d));
    while (first != p.begin() && c.Differ(*(first - 1)).empty()) --first;
    while (last != p.end() && c.Differ(*last).empty()) ++last;
    new_lo = first == p.begin() ? *lo : *(first - 1) + 1;
    new_hi = last == p.end() ? *hi : *last - 1;
  } else {
    if (static_cast<__int128>(b_hi) - b_lo > kScan)
      return refuse("the values between the builds' are too many to compare them at each");
    for (int64_t v = b_lo; v <= b_hi; ++v)
      if (std::string d = c.Differ(v); !d.empty())
        return refuse(absl::StrCat("they differ at V=", v, ": ", d));
    while (new_lo > *lo && b_lo - new_lo < kScan && c.Differ(new_lo - 1).empty()) --new_lo;
    while (new_hi < *hi && new_hi - b_hi < kScan && c.Differ(new_hi + 1).empty()) ++new_hi;
  }
  if (new_lo > *lo || new_hi < *hi)
    warnings->push_back(absl::StrCat(Where(*s), ": ", fit, "; they agree on [", new_lo, ", ",
                                     new_hi, "] only: value range narrowed to it"));
  *lo = std::max(*lo, new_lo);
  *hi = std::min(*hi, new_hi);
  s->formula_alternatives.clear();
  return absl::OkStatus();
}

bool Prime(int64_t n) {
  if (n < 2) return false;
  for (int64_t d = 2; d * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}

// Values of [lo, hi] compared when looking for a split: its powers of two (`pow2`), all of a
// small range, else an evenly strided sample. The stride is prime, so the sample meets every
// residue of the divisors code has (V / 250 and (V + 4) / 250 differ only at V = 246..249 mod
// 250).
std::vector<int64_t> ScanValues(int64_t lo, int64_t hi, bool pow2) {
  constexpr int64_t kValues = int64_t{1} << 15;
  std::vector<int64_t> out;
  if (pow2) {
    for (int k = 0; k < 63; ++k)
      if ((int64_t{1} << k) >= lo && (int64_t{1} << k) <= hi) out.push_back(int64_t{1} << k);
    return out;
  }
  const __int128 n = static_cast<__int128>(hi) - lo + 1;
  int64_t stride = n <= kValues ? 1 : static_cast<int64_t>(n / kValues);
  while (stride > 1 && !Prime(stride)) ++stride;
  for (__int128 v = lo; v <= hi; v += stride) out.push_back(static_cast<int64_t>(v));
  return out;
}

// The size of the largest group of candidates giving the same results at V=v.
size_t LargestGroup(const Candidates& c, int64_t v) {
  std::map<std::vector<std::optional<uint64_t>>, size_t> groups;
  size_t largest = 0;
  for (const artifact::Formula& f : c.fs) {
    std::vector<std::optional<uint64_t>> key;
    for (uint64_t x : {uint64_t{0}, uint64_t{1}, uint64_t{0x12345678}})
      key.push_back(At(f, c.width, v, x));
    largest = std::max(largest, ++groups[key]);
  }
  return largest;
}

// Values compared when choosing a split: the scan's, nearest to a value built first (the
// code keeps its shape near the builds', and small values often fold away), at most kNearest.
std::vector<int64_t> NearestScanValues(int64_t lo, int64_t hi, bool pow2,
                                       const std::vector<int64_t>& taken) {
  constexpr size_t kNearest = 4096;
  std::vector<int64_t> vs;
  for (int64_t v : ScanValues(lo, hi, pow2))
    if (std::find(taken.begin(), taken.end(), v) == taken.end()) vs.push_back(v);
  auto distance = [&](int64_t v) {
    __int128 d = static_cast<__int128>(1) << 64;
    for (int64_t t : taken)
      d = std::min<__int128>(d,
                             t > v ? static_cast<__int128>(t) - v : static_cast<__int128>(v) - t);
    return d;
  };
  std::stable_sort(vs.begin(), vs.end(),
                   [&](int64_t a, int64_t b) { return distance(a) < distance(b); });
  if (vs.size() > kNearest) vs.resize(kNearest);
  return vs;
}

}  // namespace

std::optional<int64_t> SplittingValue(const std::vector<CriticalSpan>& spans, int64_t lo,
                                      int64_t hi, const std::vector<int64_t>& taken, bool pow2) {
  std::vector<Candidates> cands;
  for (const CriticalSpan& s : spans)
    if (!s.formula_alternatives.empty())
      if (auto c = Candidates::Of(s); c.ok() && c->fs.size() > 1) cands.push_back(*std::move(c));
  if (cands.empty()) return std::nullopt;
  // Every span's candidates count: the value whose build settles the most of them (bits of
  // the candidates' spread removed, summed over spans), the nearest to the builds on a tie.
  std::optional<int64_t> best;
  double best_gain = 0;
  for (int64_t v : NearestScanValues(lo, hi, pow2, taken)) {
    double gain = 0;
    for (const Candidates& c : cands)
      gain += std::log2(static_cast<double>(c.fs.size()) / LargestGroup(c, v));
    if (gain > best_gain + 1e-9) best = v, best_gain = gain;
  }
  return best;
}

const std::vector<uint64_t>& SampleXs() {
  static const auto* xs = new std::vector<uint64_t>{
      0, 1, 2, 3, 7, 100, 255, 4096, 0x12345678, 0xffffffff, ~uint64_t{0}, uint64_t{1} << 63};
  return *xs;
}

// The X values a fitted formula is compared with a check build's at: the sampled ones, every
// small magnitude of either sign (a clamp hides a wrong divisor outside them: 8 - X / 20 and
// 8 - X / 17 agree at every sampled X) and pseudo-random values of 8 to 64 bits.
const std::vector<uint64_t>& CheckXs() {
  static const auto* xs = [] {
    auto* v = new std::vector<uint64_t>(SampleXs());
    for (uint64_t x = 4; x <= 1024; ++x) v->push_back(x);
    for (uint64_t x = 1; x <= 1024; ++x) v->push_back(-x);
    uint64_t r = 0x9e3779b97f4a7c15;
    for (int i = 0; i < 256; ++i) {
      r ^= r << 13, r ^= r >> 7, r ^= r << 17;  // xorshift64
      v->push_back(r >> (8 * (i % 8)));
    }
    return v;
  }();
  return *xs;
}

bool AgreesAt(const std::string& formula, int width, const std::string& seen_formula,
              int seen_width, int64_t v, std::string* why) {
  if (formula == seen_formula && width == seen_width) return true;
  const std::string vars = absl::StrCat("VX", artifact::kExtraInputs);
  auto fa = artifact::Formula::Parse(formula, vars),
       fb = artifact::Formula::Parse(seen_formula, vars);
  for (uint64_t x : CheckXs()) {
    if (fa.ok() && fb.ok())
      if (auto a = At(*fa, width, v, x); a && a == At(*fb, seen_width, v, x)) continue;
    auto want = artifact::EvalFormula(formula, SampleVars(v, x), width);
    auto got = artifact::EvalFormula(seen_formula, SampleVars(v, x), seen_width);
    if (want.ok() && got.ok() && *want == *got) continue;
    std::string at_x =
        formula.find('X') != std::string::npos || seen_formula.find('X') != std::string::npos
            ? absl::StrCat(" (X=", x, ")")
            : "";
    *why = absl::StrCat("gives ", want.ok() ? absl::StrCat(*want) : want.status().message(),
                        " at V=", v, at_x, ", but the build with V=", v, " computes ",
                        got.ok() ? absl::StrCat(*got) : got.status().message(), " (`", seen_formula,
                        "`)");
    return false;
  }
  return true;
}

bool KeepAgreeing(CriticalSpan* fitted, const CriticalSpan& seen, int64_t v, std::string* why) {
  std::vector<std::string> keep;
  if (AgreesAt(fitted->formula, fitted->width, seen.formula, seen.width, v, why))
    keep.push_back(fitted->formula);
  std::string ignored;
  for (const std::string& alt : fitted->formula_alternatives)
    if (AgreesAt(alt, fitted->width, seen.formula, seen.width, v, &ignored)) keep.push_back(alt);
  if (keep.empty()) return false;
  fitted->formula = keep[0];
  fitted->formula_alternatives.assign(keep.begin() + 1, keep.end());
  return true;
}

absl::Status ResolveAlternatives(const std::vector<int64_t>& values,
                                 std::vector<CriticalSpan>* spans, int64_t* lo, int64_t* hi,
                                 std::vector<std::string>* warnings, bool pow2) {
  for (CriticalSpan& s : *spans)
    if (!s.formula_alternatives.empty())
      if (auto st = Resolve(values, &s, lo, hi, pow2, warnings); !st.ok()) return st;
  return absl::OkStatus();
}

}  // namespace sie::synth::analysis
