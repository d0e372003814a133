#include "synth/analysis/derive.h"

#include <algorithm>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/artifact/formula.h"
#include "synth/analysis/semantics.h"

namespace sie::synth::analysis {
namespace {

int64_t Signed(uint64_t v, int bits) {
  if (bits >= 64) return static_cast<int64_t>(v);
  v &= Mask(bits);
  return (v >> (bits - 1)) ? static_cast<int64_t>(v | ~Mask(bits)) : static_cast<int64_t>(v);
}

// A literal: small values in decimal, masks and large values in hex.
std::string Lit(uint64_t v, int bits) {
  int64_t s = Signed(v, bits);
  if (s > -65536 && s < 65536) return absl::StrCat(s);
  return absl::StrFormat("0x%x", v & Mask(bits));
}

bool Atom(const std::string& s) {
  return s.find_first_of(" ") == std::string::npos && !s.empty() && s[0] != '-';
}
std::string Paren(const std::string& s) { return Atom(s) ? s : "(" + s + ")"; }

// "term + b" with b's sign folded into the operator.
std::string PlusConst(const std::string& term, uint64_t b, int bits) {
  int64_t s = Signed(b, bits);
  if (s == 0) return term;
  if (s < 0 && s > -65536) return absl::StrCat(term, " - ", -s);
  return absl::StrCat(term, " + ", Lit(b, bits));
}

uint64_t Num(const z3::expr& e) {
  uint64_t v = 0;
  e.simplify().is_numeral_u64(v);
  return v;
}

z3::expr Bv(z3::context& c, uint64_t v, int bits) { return c.bv_val(v & Mask(bits), bits); }

bool CheckedByEval(const std::string& f, const std::vector<int64_t>& vs,
                   const std::vector<uint64_t>& cs, int bits) {
  for (size_t i = 0; i < vs.size(); ++i) {
    auto r = artifact::EvalFormula(f, vs[i]);
    if (!r.ok() || ((*r ^ cs[i]) & Mask(bits))) return false;
  }
  return true;
}

using Template = std::function<z3::expr(const z3::expr&, const z3::expr&, int64_t)>;

// Coefficients a, b with h(a, b, V_i) == c_i for every build, or nullopt. small_a / small_b
// keep them within +-65536; the smallest |a| is preferred.
std::optional<std::pair<uint64_t, uint64_t>> SolveCoefficients(z3::context& c,
                                                               const std::vector<int64_t>& vs,
                                                               const std::vector<uint64_t>& cs,
                                                               int bits, const Template& h,
                                                               bool small_a, bool small_b) {
  z3::solver s(c);
  z3::expr a = c.bv_const("a", bits), b = c.bv_const("b", bits);
  for (size_t i = 0; i < vs.size(); ++i) s.add(h(a, b, vs[i]) == Bv(c, cs[i], bits));
  // Prefer small coefficients: modular arithmetic admits aliases like a + 2^31.
  z3::expr lim = c.bv_val(65536, bits), nlim = c.bv_val(-65536, bits);
  if (small_a && bits > 17) s.add(z3::sle(a, lim) && z3::sge(a, nlim));
  if (small_b && bits > 17) s.add(z3::sle(b, lim) && z3::sge(b, nlim));
  if (s.check() != z3::sat) return std::nullopt;
  z3::model m = s.get_model();
  std::pair<uint64_t, uint64_t> best(Num(m.eval(a, true)), Num(m.eval(b, true)));
  // The smallest |a|: at narrow widths aliases also fit the three builds (at 16 bits,
  // 4095*V == -V for multiples of 16) but not other values, which the runtime must handle.
  auto abs_a = [&](const z3::expr& e) { return z3::ite(z3::slt(e, 0), -e, e); };
  for (int round = 0; small_a && round < 24; ++round) {
    int64_t cur = Signed(best.first, bits);
    if (cur == 0 || cur == 1 || cur == -1) break;
    s.add(z3::ult(abs_a(a), Bv(c, static_cast<uint64_t>(cur < 0 ? -cur : cur), bits)));
    if (s.check() != z3::sat) break;
    m = s.get_model();
    best = {Num(m.eval(a, true)), Num(m.eval(b, true))};
  }
  return best;
}

// More members of one family than this fitting the builds: the family is refused, the
// builds say too little about it.
constexpr size_t kMaxCandidates = 256;

using i128 = __int128;

// a * V + b with a = 2^k beyond the small coefficients: a field of V stored above another
// field in one immediate ("movabs rdi, 0x10000004e2": V << 32 | 1250).
std::optional<FamilyFit> FitShiftedLinear(const std::vector<int64_t>& vs,
                                          const std::vector<uint64_t>& cs, int bits) {
  for (int k = 17; k < bits; ++k) {
    uint64_t b = (cs[0] - (static_cast<uint64_t>(vs[0]) << k)) & Mask(bits);
    FamilyFit f{PlusConst(absl::StrCat("(V << ", k, ")"), b, bits)};
    if (CheckedByEval(f.formula, vs, cs, bits)) return f;
  }
  return std::nullopt;
}

// Every a / V + b (V > 0, 0 <= a < 2^(bits-1), |b| <= 65536) reproducing the builds: for
// each b, a lies in the intersection of [q_i * V_i, q_i * V_i + V_i - 1], q_i = c_i - b.
std::vector<std::string> ReciprocalFits(const std::vector<int64_t>& vs,
                                        const std::vector<uint64_t>& cs, int bits, bool* too_many) {
  std::vector<std::string> out;
  const i128 amax = (i128{1} << (bits - 1)) - 1;
  for (int64_t b = 65536; b >= -65536; --b) {
    i128 lo = 0, hi = amax;
    for (size_t i = 0; i < vs.size() && lo <= hi; ++i) {
      i128 q = static_cast<i128>(Signed(cs[i], bits)) - b;
      if (q < 0) hi = -1;
      lo = std::max(lo, q * vs[i]);
      hi = std::min(hi, q * vs[i] + vs[i] - 1);
    }
    for (i128 a = lo; a <= hi; ++a) {
      if (out.size() == kMaxCandidates) return *too_many = true, out;
      out.push_back(PlusConst(absl::StrCat(Lit(static_cast<uint64_t>(a), 64), " / V"),
                              static_cast<uint64_t>(b), bits));
    }
  }
  return out;
}

// (a * V + b) / d + e as written in a formula: 0 <= b < d, a power-of-two d as a shift.
std::string RationalText(int64_t a, int64_t d, i128 B, int bits) {
  i128 b = ((B % d) + d) % d, e = (B - b) / d;
  std::string num = a == 1 ? "V" : absl::StrCat(a, " * V");
  if (b) num = absl::StrCat(num, " + ", static_cast<int64_t>(b));
  std::string q = (d & (d - 1)) == 0 ? absl::StrCat(Paren(num), " >> ", __builtin_ctzll(d))
                                     : absl::StrCat(Paren(num), " / ", d);
  return e == 0 ? q : PlusConst(Paren(q), static_cast<uint64_t>(static_cast<int64_t>(e)), bits);
}

// Numerators of the rational families: each larger one multiplies the members that three
// builds and two checks cannot tell apart ((3*V + 5) / 11 agrees with (V + 3) / 4 at 2, 8, 13,
// 20, 29), so each numerator is a family of its own, tried in increasing order.
constexpr int64_t kMaxNumerator = 3;

// Every floor((a*V + B) / d) (2 <= d <= 2^16, a/d reduced, V >= 0) reproducing the builds:
// rounding divisions (DIV_ROUND_UP(V, d), msecs_to_jiffies at HZ=250 is (V + 3) / 4), V >> k,
// V * 3 / 4. For each d, B lies in the intersection of [d*c_i - a*V_i, d*c_i - a*V_i + d - 1].
// Valid while a*V + b stays below 2^31 (the compiler may have folded it in int).
std::vector<std::string> RationalFits(const std::vector<int64_t>& vs,
                                      const std::vector<uint64_t>& cs, int bits, int64_t a,
                                      bool* too_many, int64_t* vmax) {
  std::vector<std::string> out;
  if (std::any_of(vs.begin(), vs.end(), [](int64_t v) { return v < 0 || v > INT32_MAX; }) ||
      std::any_of(cs.begin(), cs.end(), [](uint64_t c) { return c > INT32_MAX; }))
    return out;
  *vmax = INT32_MAX;
  for (int64_t d = 2; d <= 65536; ++d) {
    if (std::gcd(a, d) != 1) continue;
    i128 lo = INT64_MIN, hi = INT64_MAX;
    for (size_t i = 0; i < vs.size() && lo <= hi; ++i) {
      i128 base = i128{d} * static_cast<i128>(cs[i]) - i128{a} * vs[i];
      lo = std::max(lo, base);
      hi = std::min(hi, base + d - 1);
    }
    for (i128 B = lo; B <= hi; ++B) {
      if (out.size() == kMaxCandidates) return *too_many = true, out;
      out.push_back(RationalText(a, d, B, bits));
      *vmax = std::min<int64_t>(*vmax, (INT32_MAX - static_cast<int64_t>(((B % d) + d) % d)) / a);
    }
  }
  return out;
}

// floor((a*V + B) / d) with a numerator above kMaxNumerator, a unit conversion (ms to ns >> 10
// is (15625*V + B) >> 4): the smallest d at which some a fits, the simplest slope the builds
// allow, and every power of two d (a shift, as unit conversions often are) at which the builds
// pin the slope, with every (a, B) at those d: three builds fit (1953*V) >> 1 as well as
// (15625*V) >> 4, further builds and the checks settle them. Same validity as RationalFits.
std::vector<std::string> LargeNumeratorFits(const std::vector<int64_t>& vs,
                                            const std::vector<uint64_t>& cs, int bits,
                                            bool* too_many, int64_t* vmax) {
  std::vector<std::string> out;
  if (std::any_of(vs.begin(), vs.end(), [](int64_t v) { return v < 0 || v > INT32_MAX; }) ||
      std::any_of(cs.begin(), cs.end(), [](uint64_t c) { return c > INT32_MAX; }))
    return out;
  auto [lo_it, hi_it] = std::minmax_element(vs.begin(), vs.end());
  const i128 dv = *hi_it - *lo_it;
  const i128 dc = static_cast<i128>(cs[hi_it - vs.begin()]) - cs[lo_it - vs.begin()];
  if (dv <= 0 || dc <= 0) return out;
  *vmax = INT32_MAX;
  bool any = false;
  for (int64_t d = 2; d <= 65536; ++d) {
    const bool is_pow2 = (d & (d - 1)) == 0;
    if (any && !is_pow2) continue;
    const size_t before = out.size();
    const int64_t vmax_before = *vmax;
    // a * dv lies within d - 1 of d * dc (both ends are floors of the same line).
    i128 alo = std::max<i128>(kMaxNumerator + 1, (i128{d} * dc - (d - 1) + dv - 1) / dv);
    i128 ahi = std::min<i128>(INT32_MAX, (i128{d} * dc + d - 1) / dv);
    // Builds too close together to pin the slope at this d (and the search bounded: the
    // loop over d stays linear).
    if (ahi - alo >= 16) continue;
    for (i128 a = alo; a <= ahi; ++a) {
      if (std::gcd(static_cast<int64_t>(a), d) != 1) continue;
      i128 lo = INT64_MIN, hi = INT64_MAX;
      for (size_t i = 0; i < vs.size() && lo <= hi; ++i) {
        i128 base = i128{d} * static_cast<i128>(cs[i]) - a * vs[i];
        lo = std::max(lo, base);
        hi = std::min(hi, base + d - 1);
      }
      for (i128 B = lo; B <= hi; ++B) {
        if (out.size() == kMaxCandidates && !any) return *too_many = true, out;
        if (out.size() == kMaxCandidates) {  // larger shifts than these: less simple, left out
          out.resize(before);
          *vmax = vmax_before;
          return out;
        }
        out.push_back(RationalText(static_cast<int64_t>(a), d, B, bits));
        *vmax = std::min<int64_t>(
            *vmax, (INT32_MAX - static_cast<int64_t>(((B % d) + d) % d)) / static_cast<int64_t>(a));
      }
    }
    any |= out.size() > before;
  }
  return out;
}

// A fit from a list of candidates (all verified by evaluation): the first, the others as
// alternatives.
std::optional<FamilyFit> FromCandidates(const std::vector<std::string>& fits,
                                        const std::vector<int64_t>& vs,
                                        const std::vector<uint64_t>& cs, int bits, int64_t vmin,
                                        int64_t vmax) {
  std::vector<std::string> ok;
  for (const std::string& f : fits)
    if (CheckedByEval(f, vs, cs, bits)) ok.push_back(f);
  if (ok.empty()) return std::nullopt;
  FamilyFit r{ok[0], vmin, vmax};
  r.alternatives.assign(ok.begin() + 1, ok.end());
  return r;
}

// level 0: the plain families (a*V+b, (a<<V)+b, (a>>V)+b, a/V+b); level 1: the wider ones
// (V << k, rational, packed fields), tried only when no output template fits at level 0 (V*X
// must stay `X * V`, not `X << (V + 2) / 3`); packed halves are not split again.
absl::StatusOr<FamilyFit> FitFamilyAt(const std::vector<int64_t>& vs,
                                      const std::vector<uint64_t>& cs, int bits, int level,
                                      bool packed = true);

// A member of any plain family (level 0, then 1; no packed fields) of a part of the numerals:
// the inner fit of the packed, flipped and scaled families.
absl::StatusOr<FamilyFit> FitInner(const std::vector<int64_t>& vs, const std::vector<uint64_t>& cs,
                                   int bits) {
  auto r = FitFamilyAt(vs, cs, bits, 0, false);
  return r.ok() ? r : FitFamilyAt(vs, cs, bits, 1, false);
}

// `f`'s formula and alternatives, each wrapped by `wrap`, checked against the whole numerals.
std::optional<FamilyFit> Wrapped(const FamilyFit& f,
                                 const std::function<std::string(const std::string&)>& wrap,
                                 const std::vector<int64_t>& vs, const std::vector<uint64_t>& cs,
                                 int bits) {
  std::vector<std::string> all = {wrap(f.formula)};
  for (const std::string& a : f.alternatives) all.push_back(wrap(a));
  return FromCandidates(all, vs, cs, bits, f.vmin, f.vmax);
}

// Two fields stored by one instruction (bits split in halves, "movabs rax, 0x90000000c":
// V * 3 / 4 above V): each half is a family member of V on its own.
std::optional<FamilyFit> FitPacked(const std::vector<int64_t>& vs, const std::vector<uint64_t>& cs,
                                   int bits) {
  if (bits != 64 && bits != 32) return std::nullopt;
  const int s = bits / 2;
  std::vector<uint64_t> lo, hi;
  for (uint64_t c : cs) {
    lo.push_back(c & Mask(s));
    hi.push_back((c >> s) & Mask(s));
  }
  if (std::all_of(hi.begin(), hi.end(), [](uint64_t h) { return h == 0; })) return std::nullopt;
  auto l = FitInner(vs, lo, s), h = FitInner(vs, hi, s);
  if (!l.ok() || !h.ok()) return std::nullopt;
  auto join = [&](const std::string& hf, const std::string& lf) {
    std::string high = absl::StrCat(Paren(hf), " << ", s);
    if (lf == "0") return high;
    bool small_lit = lf.find('V') == std::string::npos && !lf.empty() && lf[0] != '-';
    return absl::StrCat("(", high, ") | ",
                        small_lit ? lf : absl::StrFormat("(%s & 0x%x)", Paren(lf), Mask(s)));
  };
  std::vector<std::string> his = {h->formula}, los = {l->formula};
  his.insert(his.end(), h->alternatives.begin(), h->alternatives.end());
  los.insert(los.end(), l->alternatives.begin(), l->alternatives.end());
  if (his.size() * los.size() > kMaxCandidates) return std::nullopt;
  std::vector<std::string> all;
  for (const std::string& hf : his)
    for (const std::string& lf : los) all.push_back(join(hf, lf));
  return FromCandidates(all, vs, cs, bits, std::max(l->vmin, h->vmin), std::min(l->vmax, h->vmax));
}

// Every family member of `found` as one fit: the first as the formula, the others (and their
// own alternatives) as alternatives, valid where all are.
std::optional<FamilyFit> Joined(const std::vector<FamilyFit>& found) {
  if (found.empty()) return std::nullopt;
  FamilyFit r = found[0];
  for (size_t i = 1; i < found.size(); ++i) {
    r.vmin = std::max(r.vmin, found[i].vmin);
    r.vmax = std::min(r.vmax, found[i].vmax);
    r.alternatives.push_back(found[i].formula);
    r.alternatives.insert(r.alternatives.end(), found[i].alternatives.begin(),
                          found[i].alternatives.end());
  }
  return r;
}

// V >> k: V in larger units (bytes as pages: SZ_128K / PAGE_SIZE), for builds whose values
// are all multiples of the unit, where (V + b) / d fits in thousands of ways. Only with
// every V >> k at 2 or more: small numerals are shift counts of other shapes.
std::optional<FamilyFit> FitUnitShift(const std::vector<int64_t>& vs,
                                      const std::vector<uint64_t>& cs, int bits) {
  if (!std::all_of(vs.begin(), vs.end(), [](int64_t v) { return v >= 0; })) return std::nullopt;
  for (int k = 1; k < 63; ++k) {
    if (std::any_of(vs.begin(), vs.end(), [&](int64_t v) { return (v >> k) < 2; })) break;
    std::string f = absl::StrCat("V >> ", k);
    if (CheckedByEval(f, vs, cs, bits)) return FamilyFit{f, 0, INT64_MAX};
  }
  return std::nullopt;
}

// The value kept to its low k bits: it lands in a k-bit field and the compiler keeps only those
// bits (CYCLE_LEN - 1 - r stored into a 3-bit bit-field: 15 at V=16 is emitted as 7). k is the
// width of the largest numeral; tried last, when nothing fits the whole numerals. Only V + b, and
// only when the shipped build's numeral is V1 + b itself (the field holds the shipped value):
// with any slope, three small numerals would fit by chance too often.
std::optional<FamilyFit> FitTruncated(const std::vector<int64_t>& vs,
                                      const std::vector<uint64_t>& cs, int bits) {
  uint64_t top = 0;
  for (uint64_t c : cs) top = std::max(top, c & Mask(bits));
  const int k = top ? 64 - __builtin_clzll(top) : 0;
  if (k < 2 || k >= std::min(bits, 31)) return std::nullopt;
  const int64_t m = int64_t{1} << k;
  const i128 b = static_cast<i128>(cs[0] & Mask(bits)) - vs[0];
  bool wraps = false;
  for (size_t i = 0; i < vs.size(); ++i) {
    const i128 full = vs[i] + b;
    if ((((full % m) + m) % m) != static_cast<i128>(cs[i] & Mask(bits))) return std::nullopt;
    wraps |= full < 0 || full >= m;
  }
  if (!wraps || b <= -m || b >= m) return std::nullopt;
  const int64_t bb = static_cast<int64_t>(b);
  std::string lin = "V";
  if (bb) absl::StrAppend(&lin, bb > 0 ? " + " : " - ", bb > 0 ? bb : -bb);
  return FromCandidates({absl::StrFormat("((%s) & 0x%x)", lin, m - 1)}, vs, cs, bits, INT64_MIN,
                        INT64_MAX);
}

// A family member scaled by a power of two, f(V) << k: a value in larger units rounded first
// and shifted after (kcompactd's `msecs_to_jiffies(V) << COMPACT_MAX_DEFER_SHIFT`, 8000 at
// V=500 as ((V + 3) / 4) << 6, which no (a*V + b) / d reproduces: it rounds after scaling). k is
// the fewest trailing zero bits of the numerals; f is fitted to the numerals >> k.
std::optional<FamilyFit> FitScaled(const std::vector<int64_t>& vs, const std::vector<uint64_t>& cs,
                                   int bits) {
  int k = 64;
  for (uint64_t c : cs) {
    const uint64_t m = c & Mask(bits);
    if (m == 0) return std::nullopt;  // zero tells nothing of the scale
    k = std::min(k, __builtin_ctzll(m));
  }
  if (k == 0 || k >= bits) return std::nullopt;
  std::vector<uint64_t> low;
  for (uint64_t c : cs) low.push_back((c & Mask(bits)) >> k);
  auto f = FitInner(vs, low, bits - k);
  if (!f.ok()) return std::nullopt;
  return Wrapped(
      *f, [&](const std::string& h) { return absl::StrCat("(", Paren(h), " << ", k, ")"); }, vs, cs,
      bits);
}

// a * V + b with a slope beyond the small coefficients (V * NSEC_PER_MSEC: 1000000 * V), over
// the integers: the builds' numerals, read as unsigned or as signed, on one line pin a and b
// down exactly (a bit-vector solver would also admit modular aliases, hence its small bound).
std::optional<FamilyFit> FitExactLine(const std::vector<int64_t>& vs,
                                      const std::vector<uint64_t>& cs, int bits) {
  for (bool as_signed : {false, true}) {
    auto at = [&](size_t i) -> i128 {
      const uint64_t c = cs[i] & Mask(bits);
      return as_signed ? static_cast<i128>(Signed(c, bits)) : static_cast<i128>(c);
    };
    const i128 dv = static_cast<i128>(vs[1]) - vs[0];
    if (dv == 0 || (at(1) - at(0)) % dv) continue;
    const i128 a = (at(1) - at(0)) / dv, b = at(0) - a * vs[0];
    bool line = a != 0 && a >= INT64_MIN && a <= INT64_MAX && b >= INT64_MIN && b <= INT64_MAX;
    for (size_t i = 2; line && i < vs.size(); ++i) line = a * vs[i] + b == at(i);
    if (!line) continue;
    const std::string f =
        PlusConst(absl::StrCat(static_cast<int64_t>(a), " * V"), static_cast<uint64_t>(b), bits);
    if (CheckedByEval(f, vs, cs, bits)) return FamilyFit{f};
  }
  return std::nullopt;
}

// Level 0 (see FitFamilyAt): every plain family that reproduces the builds; when more than
// one does (5, 3, 2 at V=2, 3, 5 is both (12 >> V) + 2 and 10 / V), the others are
// alternatives, for further builds to tell apart. Throws z3::exception.
std::optional<FamilyFit> FitPlain(const std::vector<int64_t>& vs, const std::vector<uint64_t>& cs,
                                  int bits, std::string* ambiguous) {
  z3::context c;
  auto solve = [&](const Template& h, bool small_a, bool small_b) {
    return SolveCoefficients(c, vs, cs, bits, h, small_a, small_b);
  };
  auto v_bv = [&](int64_t v) { return Bv(c, static_cast<uint64_t>(v), bits); };
  std::vector<FamilyFit> found;
  // 1. a*V + b
  if (auto r = solve([&](auto& a, auto& b, int64_t v) { return a * v_bv(v) + b; }, true, false)) {
    int64_t a = Signed(r->first, bits);
    std::string t = a == 1 ? "V" : a == -1 ? "-V" : a == 0 ? "" : absl::StrCat(a, " * V");
    std::string f = t.empty() ? Lit(r->second, bits) : PlusConst(t, r->second, bits);
    if (CheckedByEval(f, vs, cs, bits)) found.push_back(FamilyFit{f});
    if (a == 0 || a == 1) return Joined(found);  // a constant or V itself: nothing else to tell
  }
  if (std::all_of(vs.begin(), vs.end(), [&](int64_t v) { return v >= 0 && v < bits; })) {
    // 2. (a << V) + b: masks such as (1 << V) - 1.
    if (auto r = solve([&](auto& a, auto& b, int64_t v) { return z3::shl(a, v_bv(v)) + b; }, true,
                       true)) {
      std::string f = PlusConst(absl::StrCat("(", Lit(r->first, bits), " << V)"), r->second, bits);
      if (CheckedByEval(f, vs, cs, bits)) found.push_back(FamilyFit{f, 0, bits - 1});
    }
    // 3. (a >> V) + b
    if (auto r = solve([&](auto& a, auto& b, int64_t v) { return z3::lshr(a, v_bv(v)) + b; }, false,
                       true)) {
      std::string f = PlusConst(absl::StrCat("(", Lit(r->first, bits), " >> V)"), r->second, bits);
      if (CheckedByEval(f, vs, cs, bits)) found.push_back(FamilyFit{f, 0, bits - 1});
    }
  }
  // 4. a / V + b
  if (std::all_of(vs.begin(), vs.end(), [](int64_t v) { return v > 0; })) {
    bool many = false;
    auto fits = ReciprocalFits(vs, cs, bits, &many);
    if (many) *ambiguous = absl::StrCat("; more than ", kMaxCandidates, " formulas a/V+b fit");
    if (!many)
      if (auto r = FromCandidates(fits, vs, cs, bits, 1, INT64_MAX)) found.push_back(*r);
  }
  return Joined(found);
}

// A mask or a negated amount of a family member: round_down(x, V / 4) ands with
// ~(V/4 - 1) = -(V >> 2). Tried after the plain families when every numeral reads as negative,
// on the negated and the complemented numerals (any family, not packed, not flipped again).
std::optional<FamilyFit> FitFlipped(const std::vector<int64_t>& vs, const std::vector<uint64_t>& cs,
                                    int bits) {
  // Only numerals that read as negative: a small one flipped is no mask.
  if (!std::all_of(cs.begin(), cs.end(),
                   [&](uint64_t c) { return (c & Mask(bits)) > (Mask(bits) >> 1); }))
    return std::nullopt;
  for (const char* op : {"-", "~"}) {
    std::vector<uint64_t> inv;
    for (uint64_t c : cs) inv.push_back((op[0] == '-' ? -c : ~c) & Mask(bits));
    auto f = FitInner(vs, inv, bits);
    if (!f.ok()) continue;
    if (auto checked = Wrapped(
            *f, [&](const std::string& h) { return absl::StrCat("(", op, Paren(h), ")"); }, vs, cs,
            bits))
      return checked;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<FamilyFit> FitFamily(const std::vector<int64_t>& vs, const std::vector<uint64_t>& cs,
                                    int bits) {
  auto r = FitFamilyAt(vs, cs, bits, 0);
  return r.ok() ? r : FitFamilyAt(vs, cs, bits, 1);
}

// 2^w % (a*V + b), a = +-1: the rejection bound of sampling below a constant (the kernel's
// get_random_u32_below(ceil) rejects `(u8)(ceil * rand_u8) < 256 % ceil`). w is the width the
// bound is compared at (`bits`: a byte compare samples 8 bits), so 2^32 % V, equal to 256 % V
// at the builds by chance, is no candidate for a byte. Every (a, b) that reproduces the builds
// is one; checks at values never compiled tell them apart.
absl::StatusOr<FamilyFit> FitRemainderFamily(const std::vector<int64_t>& vs,
                                             const std::vector<uint64_t>& cs, int bits) {
  constexpr int64_t kMaxB = 1 << 16;
  std::vector<std::string> fits;
  int64_t vmin = INT64_MIN, vmax = INT64_MAX;
  if (bits != 8 && bits != 16 && bits != 32)
    return absl::InvalidArgumentError(
        absl::StrCat("no remainder 2^w % (+-V + b) at ", bits, " bits (w = 8, 16, 32)"));
  for (int w : {bits}) {
    const int64_t two_w = int64_t{1} << w;
    for (int a : {1, -1}) {
      for (int64_t b = -kMaxB; b <= kMaxB && fits.size() <= kMaxCandidates; ++b) {
        bool ok = true;
        for (size_t i = 0; i < vs.size() && ok; ++i) {
          const int64_t d = a * vs[i] + b;
          ok = d >= 2 && d < two_w && static_cast<uint64_t>(two_w % d) == (cs[i] & Mask(bits));
        }
        if (!ok) continue;
        std::string div =
            a > 0 ? PlusConst("V", static_cast<uint64_t>(b), 64) : absl::StrCat(b, " - V");
        fits.push_back(absl::StrCat(two_w, " % (", div, ")"));
        // The divisor stays in [2, 2^w) (past it the code samples at another width), for
        // every candidate: the range is where all of them are defined.
        vmin = std::max(vmin, a > 0 ? 2 - b : b - (two_w - 1));
        vmax = std::min(vmax, a > 0 ? two_w - 1 - b : b - 2);
      }
    }
  }
  std::optional<FamilyFit> r;
  if (!fits.empty() && fits.size() <= kMaxCandidates && vmin <= vmax)
    r = FromCandidates(fits, vs, cs, bits, vmin, vmax);
  if (!r)
    return absl::InvalidArgumentError(
        fits.size() > kMaxCandidates
            ? absl::StrCat("more than ", kMaxCandidates, " remainders 2^", bits, " % (+-V + b) fit")
            : absl::StrCat("no remainder 2^", bits, " % (+-V + b) fits"));
  return *r;
}

namespace {

absl::StatusOr<FamilyFit> FitFamilyAt(const std::vector<int64_t>& vs,
                                      const std::vector<uint64_t>& cs, int bits, int level,
                                      bool packed) {
  std::string ambiguous;  // a family refused for fitting in too many ways
  try {
    if (level == 0) {
      if (auto r = FitPlain(vs, cs, bits, &ambiguous)) return *r;
      // Here, not with the wider families: X & c templates are tried at level 0 only.
      if (packed)
        if (auto r = FitFlipped(vs, cs, bits)) return *r;
    } else {
      // (V << k) + b; (a*V + b) / d, every member that fits; two packed fields.
      if (auto r = FitShiftedLinear(vs, cs, bits)) return *r;
      for (int64_t a = 1; a <= kMaxNumerator; ++a) {
        bool many = false;
        int64_t vmax = INT64_MAX;
        auto fits = RationalFits(vs, cs, bits, a, &many, &vmax);
        if (many) {
          // Too many to tell apart: the unit conversion when it fits (checked by the builds
          // never used to fit, like any fit).
          if (auto r = FitUnitShift(vs, cs, bits)) return *r;
          ambiguous = absl::StrCat("; more than ", kMaxCandidates, " formulas (", a,
                                   "*V+b)/d fit (too few builds to tell them apart)");
          break;
        }
        if (auto r = FromCandidates(fits, vs, cs, bits, 0, vmax)) return *r;
      }
      // A large slope exact over the integers comes first: packed halves reproduce it at the
      // three builds too (SELECT_MAX_SLACK_MS's V * NSEC_PER_MSEC as two 16-bit fields, rounded
      // a dozen ways) and stay alternatives for the checks (two fields that are not a line).
      std::vector<FamilyFit> found;
      if (auto line = FitExactLine(vs, cs, bits)) found.push_back(*line);
      if (packed)
        if (auto r = FitPacked(vs, cs, bits)) found.push_back(*r);
      if (auto r = Joined(found)) return *r;
      // Last: a slope the builds pin down only loosely, a guess the checks confirm or refute.
      if (ambiguous.empty()) {
        bool many = false;
        int64_t vmax = INT64_MAX;
        auto fits = LargeNumeratorFits(vs, cs, bits, &many, &vmax);
        if (!many)
          if (auto r = FromCandidates(fits, vs, cs, bits, 0, vmax)) return *r;
      }
      if (packed) {
        if (auto r = FitScaled(vs, cs, bits)) return *r;
        if (auto r = FitTruncated(vs, cs, bits)) return *r;
      }
    }
  } catch (const z3::exception& e) {
    return absl::InternalError(absl::StrCat("z3: ", e.msg()));
  }
  std::vector<std::string> pts;
  for (size_t i = 0; i < vs.size(); ++i)
    pts.push_back(absl::StrFormat("V=%d -> 0x%x", vs[i], cs[i] & Mask(bits)));
  return absl::InvalidArgumentError(
      absl::StrCat("no formula in the family (",
                   level == 0 ? "a*V+b, (a<<V)+b, (a>>V)+b, a/V+b"
                              : absl::StrCat("(V<<k)+b, (a*V+b)/d, (H<<", bits / 2, ")|L"),
                   ") fits ", absl::StrJoin(pts, ", "), ambiguous));
}

// A product by a constant in an output: the multiply-high of a division, when it is one.
struct MagicProduct {
  z3::expr mul;  // the product as it occurs in the output
  uint64_t m = 0;
  int j = 0;  // the lowest bit of the product the output reads
};

std::vector<MagicProduct> FindMagicProducts(const z3::expr& root) {
  std::vector<MagicProduct> out;
  std::map<unsigned, size_t> index;  // mul id -> out index
  std::set<unsigned> seen;
  std::function<void(const z3::expr&)> walk = [&](const z3::expr& e) {
    if (!e.is_app() || !seen.insert(e.id()).second || seen.size() > 20000) return;
    Z3_decl_kind k = e.decl().decl_kind();
    for (unsigned i = 0; i < e.num_args(); ++i) {
      z3::expr a = e.arg(i);
      if (a.is_app() && a.decl().decl_kind() == Z3_OP_BMUL && a.num_args() == 2) {
        // Which bits of the product this use reads: from `lo` up, or all of them.
        int lo = 0;
        uint64_t sh = 0;
        if (k == Z3_OP_EXTRACT) lo = Z3_get_decl_int_parameter(e.ctx(), e.decl(), 1);
        if (k == Z3_OP_BLSHR && i == 0 && e.arg(1).is_numeral_u64(sh)) lo = static_cast<int>(sh);
        auto it = index.find(a.id());
        if (it == index.end()) {
          uint64_t m = 0;
          for (unsigned b = 0; b < 2; ++b) {
            z3::expr c = a.arg(b).simplify();
            if (c.is_numeral() && c.is_numeral_u64(m)) {
              index[a.id()] = out.size();
              out.push_back(MagicProduct{a, m, lo});
              break;
            }
          }
        } else {
          out[it->second].j = std::min(out[it->second].j, lo);
        }
      }
      walk(a);
    }
  };
  walk(root);
  return out;
}

// Multiply-high division: Z3 cannot bit-blast x*M == x/d in reasonable time, so the proof is
// split. Z3 proves the output is floor(x*M / 2^s) for some (M, s) with M = ceil(2^s/d) (an
// equivalence of the same circuit, fast), and the Granlund-Montgomery bound
// 2^s <= M*d <= 2^s + 2^(s-N) proves floor(x*M/2^s) == floor(x/d) for every x < 2^N.
bool ProveMagicDivision(z3::context& ctx, const z3::expr& o64, const z3::expr& xw, int wx,
                        uint64_t d) {
  if (wx > 64 || d < 2) return false;
  const int N = wx;
  // The equivalence is only fast (and only ever proved) against the code's own multiplier:
  // try the (M, s) whose M is a constant the output multiplies by. Others would each spend
  // the solver's budget on a multiplier-against-multiplier proof that cannot finish.
  std::set<uint64_t> code_ms;
  for (const MagicProduct& t : FindMagicProducts(o64)) code_ms.insert(t.m);
  // 2^s stays within 128 bits: for 64-bit dividends this covers the magic numbers below 2^64
  // (gcc's "mul; shr" form); the 65-bit ones ("mul; sub; shr; add; shr") are proved by
  // ProveMagicByAbstraction, which is tried first.
  for (int sh = N; sh <= std::min(2 * N + 1, 127); ++sh) {
    unsigned __int128 two_s = static_cast<unsigned __int128>(1) << sh;
    unsigned __int128 M = (two_s + d - 1) / d;
    unsigned __int128 e = M * d - two_s;
    if (e > (static_cast<unsigned __int128>(1) << (sh - N))) continue;
    if ((M >> 64) || !code_ms.count(static_cast<uint64_t>(M))) continue;
    z3::expr x128 = z3::zext(xw, 128 - N);
    z3::expr prod = x128 * ctx.bv_val(static_cast<uint64_t>(M), 128);
    z3::expr q = z3::lshr(prod, ctx.bv_val(sh, 128)).extract(63, 0);
    if (UnsatWithin(ctx, o64 != q, 5000u)) return true;
  }
  return false;
}

// Multiply-high division and remainder by abstraction: the proof is split so Z3 never
// bit-blasts a multiplier against a different one. N = the dividend's width.
//  1. The output contains a product P = X' * m on 2N bits (X' = X >> pre, m a constant): Z3
//     proves the term is exactly zext(X >> pre) * m (the same circuit, fast).
//  2. P is replaced by concat(q, L), q and L free (q: P's bits from j up, j the lowest bit
//     the output reads; L: the bits below, any value). Z3 proves, for every X, every L and
//     every q with what q's definition implies (for 65-bit magic numbers, the multiply-high
//     q >> (N-j) <= X), that the output equals the quotient expression Q(X, q) (or
//     X - Q(X, q)*d for a remainder):
//        one-word magic (M = m < 2^N):      Q = q >> (s - j)
//        65-bit magic (M = 2^N + m):        Q = (X + (q >> (N - j))) >> (s - N), on N+1 bits;
//                                           the "sub; shr 1; add" sequence computes it only
//                                           because the multiply-high is <= X
//  3. Arithmetic (checked here on 128-bit integers, not assumed): M = ceil(2^s/d') with
//     d' = d >> pre, and the Granlund-Montgomery bound 2^s <= M*d' <= 2^s + 2^(s-(N-pre)),
//     which makes floor(X' * M / 2^s) == floor(X' / d') == floor(X / d) for every X < 2^N;
//     for 65-bit magic floor((X + floor(X*m/2^N)) / 2^(s-N)) == floor(X*M/2^s) since
//     M = 2^N + m.
// Instantiating q and L with the real product's bits gives output(X) == floor(X / d) (or
// X mod d) for every X < 2^N.

bool ProveMagicByAbstraction(z3::context& ctx, const z3::expr& o64, const z3::expr& xw, int N,
                             uint64_t d, bool remainder) {
  if (N > 64 || d < 2) return false;
  using u128 = unsigned __int128;
  auto prove = [&](const z3::expr& claim) { return Valid(ctx, claim, 10000); };
  auto to_n = [](const z3::expr& e, int n) {
    int w = static_cast<int>(e.get_sort().bv_size());
    return w == n ? e : w > n ? e.extract(n - 1, 0) : z3::zext(e, n - w);
  };
  for (const MagicProduct& t : FindMagicProducts(o64)) {
    const int W = static_cast<int>(t.mul.get_sort().bv_size());
    // The product of an N-bit X' and an N-bit m must not wrap; the output must read only
    // high bits of it.
    if (W != 2 * N || t.j < 1 || t.j >= W) continue;
    const int j = t.j;
    // pre > 0: even divisors, X is shifted right first (x/14 == (x>>1)/7).
    const int max_pre = std::min(__builtin_ctzll(d), N - 1);
    for (int pre = 0; pre <= max_pre; ++pre) {
      const uint64_t dd = d >> pre;
      const int NN = N - pre;  // bits of X' = X >> pre
      // 1. The product is X' * m.
      z3::expr xp = z3::lshr(xw, ctx.bv_val(pre, N));
      z3::expr prod = z3::zext(xp, W - N) * ctx.bv_val(t.m, W);
      if (!prove(t.mul == prod)) continue;
      for (int s = std::max(j, NN); s <= 127 && s <= NN + 64; ++s) {
        const u128 two_s = u128{1} << s;
        const u128 M = (two_s + dd - 1) / dd;
        // The multiplier's constant is M itself when X' * M fits the product (one word; or
        // a 33-bit M in a 64-bit multiply), or M - 2^N (65-bit magic, pre = 0).
        const bool direct = t.m == M && (M >> (W - N)) == 0;
        const bool wide =
            !direct && (M >> N) == 1 && t.m == M - (u128{1} << N) && pre == 0 && j <= N && s > N;
        if (!direct && !wide) continue;
        // Granlund-Montgomery: floor(X' * M / 2^s) == floor(X' / d') for every X' < 2^NN.
        const u128 e = M * dd - two_s;  // M = ceil(2^s/d'): M*d' >= 2^s
        if (s - NN >= 127 || e > (u128{1} << (s - NN))) continue;
        // 2. Abstract the product and prove the output is the quotient (remainder).
        const int WQ = W - j;
        z3::expr q = ctx.bv_const("sie_magic_q", WQ), low = ctx.bv_const("sie_magic_low", j);
        z3::expr_vector from(ctx), to(ctx);
        from.push_back(t.mul);
        to.push_back(z3::concat(q, low));
        z3::expr abstracted = z3::expr(o64).substitute(from, to);
        z3::expr hyp = ctx.bool_val(true);
        z3::expr quot = ctx.bv_val(0, N);
        if (wide) {
          z3::expr hi = to_n(z3::lshr(q, ctx.bv_val(N - j, WQ)), N);
          hyp = z3::ule(hi, xw);  // m < 2^N: floor(X*m/2^N) <= X
          z3::expr sum = z3::zext(xw, 1) + z3::zext(hi, 1);
          quot = z3::lshr(sum, ctx.bv_val(s - N, N + 1)).extract(N - 1, 0);
        } else {
          quot = to_n(z3::lshr(q, ctx.bv_val(s - j, WQ)), N);
        }
        z3::expr want = remainder ? xw - quot * ctx.bv_val(d, N) : quot;
        z3::expr want64 = N < 64 ? z3::zext(want, 64 - N) : want;
        if (prove(z3::implies(hyp, abstracted == want64))) return true;
      }
    }
  }
  return false;
}

// The output of one build as a function of a concrete X (masked to the input's width).
using EvalAt = std::function<uint64_t(uint64_t)>;

// One template "X op c": how c is read back from an output, how the template is evaluated on
// a concrete X and built for Z3, how it is written in a formula, and what it requires of V.
// The table below lists them in the order they are tried (the first that fits wins).
struct XOpInfo {
  enum Op { kAdd, kXor, kOr, kAnd, kShl, kShr, kMul, kUDiv, kURem } op;
  const char* sym;      // " + ": between X and the constant in the formula
  bool divides;         // udiv/urem: only tried when the code divides or multiplies
  bool shift;           // V is a shift count (V >= 0; V < width when the constant is V)
  bool mask_narrow_x;   // X is masked to the width when high bits would leak in
  const char* inverse;  // invertible (add, xor): X = R <inverse> c, else nullptr
  // c from the output at a few X; false when the output does not have this shape.
  bool (*read)(const EvalAt& out, int wx, uint64_t* c);
  uint64_t (*apply)(uint64_t x, uint64_t c, uint64_t mask);  // x already masked to the width
  z3::expr (*build)(const z3::expr& x, const z3::expr& c);
};

bool ReadAt0(const EvalAt& o, int wx, uint64_t* c) { return *c = o(0) & Mask(wx), true; }
bool ReadAtOnes(const EvalAt& o, int wx, uint64_t* c) { return *c = o(Mask(wx)) & Mask(wx), true; }
bool ReadAt1(const EvalAt& o, int wx, uint64_t* c) { return *c = o(1) & Mask(wx), true; }
// X << c maps 1 to the power of two 2^c.
bool ReadShl(const EvalAt& o, int wx, uint64_t* c) {
  uint64_t r = o(1) & Mask(wx);
  bool ok = r && !(r & (r - 1));
  *c = ok ? __builtin_ctzll(r) : 0;
  return ok;
}
// X >> c maps the top bit to 2^(wx-1-c).
bool ReadShr(const EvalAt& o, int wx, uint64_t* c) {
  uint64_t r = o(uint64_t{1} << (wx - 1)) & Mask(wx);
  bool ok = r && !(r & (r - 1));
  *c = ok ? (wx - 1 - __builtin_ctzll(r)) : 0;
  return ok;
}
bool ReadUDiv(const EvalAt& o, int wx, uint64_t* c) {
  uint64_t M = Mask(wx), q = o(M) & M;
  if (q == M) return *c = 1, true;  // X itself: X / 1 (the shipped `x / 1` folded away)
  bool ok = q != 0;
  *c = ok ? M / (q + 1) + 1 : 0;  // the smallest divisor giving q
  return ok;
}
// X % c == X exactly for X < c: c is the first X where the output differs.
bool ReadURem(const EvalAt& o, int wx, uint64_t* c) {
  uint64_t M = Mask(wx);
  bool ok = (o(M) & M) != M;
  uint64_t lo = 1, hi = M;  // out(lo - 1) == lo - 1, out(hi) != hi
  while (ok && lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if ((o(mid) & M) == mid)
      lo = mid + 1;
    else
      hi = mid;
  }
  *c = lo;
  return ok && lo >= 2;
}

const XOpInfo kXOps[] = {
    {XOpInfo::kAdd, " + ", false, false, false, " - ", ReadAt0,
     [](uint64_t x, uint64_t c, uint64_t M) { return (x + c) & M; },
     [](const z3::expr& x, const z3::expr& c) { return x + c; }},
    {XOpInfo::kXor, " ^ ", false, false, false, " ^ ", ReadAt0,
     [](uint64_t x, uint64_t c, uint64_t M) { return (x ^ c) & M; },
     [](const z3::expr& x, const z3::expr& c) { return x ^ c; }},
    {XOpInfo::kOr, " | ", false, false, false, nullptr, ReadAt0,
     [](uint64_t x, uint64_t c, uint64_t M) { return (x | c) & M; },
     [](const z3::expr& x, const z3::expr& c) { return x | c; }},
    {XOpInfo::kAnd, " & ", false, false, false, nullptr, ReadAtOnes,
     [](uint64_t x, uint64_t c, uint64_t) { return x & c; },
     [](const z3::expr& x, const z3::expr& c) { return x & c; }},
    {XOpInfo::kShl, " << ", false, true, false, nullptr, ReadShl,
     [](uint64_t x, uint64_t c, uint64_t M) { return c >= 64 ? 0 : (x << c) & M; },
     [](const z3::expr& x, const z3::expr& c) { return z3::shl(x, c); }},
    {XOpInfo::kShr, " >> ", false, true, true, nullptr, ReadShr,
     [](uint64_t x, uint64_t c, uint64_t) { return c >= 64 ? 0 : x >> c; },
     [](const z3::expr& x, const z3::expr& c) { return z3::lshr(x, c); }},
    {XOpInfo::kMul, " * ", false, false, false, nullptr, ReadAt1,
     [](uint64_t x, uint64_t c, uint64_t M) { return (x * c) & M; },
     [](const z3::expr& x, const z3::expr& c) { return x * c; }},
    {XOpInfo::kUDiv, " / ", true, false, true, nullptr, ReadUDiv,
     [](uint64_t x, uint64_t c, uint64_t) { return c ? x / c : 0; },
     [](const z3::expr& x, const z3::expr& c) { return z3::udiv(x, c); }},
    {XOpInfo::kURem, " % ", true, false, true, nullptr, ReadURem,
     [](uint64_t x, uint64_t c, uint64_t) { return c ? x % c : x; },
     [](const z3::expr& x, const z3::expr& c) { return z3::urem(x, c); }},
};

const XOpInfo& XOpOf(XOpInfo::Op op) {
  for (const XOpInfo& i : kXOps)
    if (i.op == op) return i;
  return kXOps[0];
}

// What FitOutput's templates share: the outputs, the input X and how to evaluate them.
struct FitCtx {
  z3::context& ctx;
  const std::vector<z3::expr>& outs;
  const z3::expr& x;
  const std::vector<int64_t>& vs;
  int out_bits;
  bool x_zext32;
  unsigned xs;    // X's width
  int level = 0;  // of the families the constants are fitted to (FitFamilyAt)
  std::string last_err = "no template X op c matched";

  uint64_t Eval(const z3::expr& o, uint64_t xv) const {
    z3::expr_vector from(ctx), to(ctx);
    from.push_back(x);
    to.push_back(ctx.bv_val(xs >= 64 ? xv : xv & Mask(xs), xs));
    return Num(z3::expr(o).substitute(from, to));
  }
  // X at width wx: truncated or zero-extended.
  z3::expr XAt(int wx) const {
    return xs >= static_cast<unsigned>(wx) ? x.extract(wx - 1, 0) : z3::zext(x, wx - xs);
  }
  z3::expr Out64(size_t i) const {
    unsigned n = outs[i].get_sort().bv_size();
    return n < 64 ? z3::zext(outs[i], 64 - n) : outs[i];
  }
  uint64_t OutMask() const { return out_bits >= 64 ? ~0ull : Mask(out_bits); }
  uint64_t XMask() const { return xs >= 64 ? ~0ull : Mask(xs); }
};

// Concrete samples first: refuting a wrong template by Z3 takes seconds when the code
// multiplies (a 64x64 multiplier is bit-blasted), evaluating it takes microseconds.
bool SamplesAgree(const FitCtx& f, const XOpInfo& op, int wx, const std::vector<uint64_t>& cs) {
  uint64_t M = Mask(wx), msb = uint64_t{1} << (wx - 1);
  for (size_t i = 0; i < f.outs.size(); ++i)
    for (uint64_t xv : {uint64_t{3}, uint64_t{1000}, uint64_t{0x12345}, uint64_t{0xdeadbeef},
                        uint64_t{0x7fffffff}, M, M - 1, msb + 5})
      if ((f.Eval(f.outs[i], xv) & f.OutMask()) !=
          (op.apply(xv & f.XMask() & M, cs[i], M) & f.OutMask()))
        return false;
  return true;
}

// Proves out_i(X) == zext(X op c_i) for every X of build i.
bool ProveOneOp(FitCtx& f, const XOpInfo& op, int wx, uint64_t c_val, size_t i) {
  z3::context& ctx = f.ctx;
  z3::expr xw = f.XAt(wx), c = ctx.bv_val(c_val, wx);
  z3::expr g = op.build(xw, c);
  z3::expr full = wx < 64 ? z3::zext(g, 64 - wx) : g;
  z3::expr o64 = f.Out64(i);
  const bool udiv = op.op == XOpInfo::kUDiv, urem = op.op == XOpInfo::kURem;
  // Multiply-high sequences (every magic-number form, 65-bit ones included): proved by
  // abstracting the multiplication, in milliseconds.
  if (op.divides && ProveMagicByAbstraction(ctx, o64, xw, wx, c_val, urem)) return true;
  // A multiplying span that is not one of those forms is refused here: the generic
  // proofs below would bit-blast the multiplier for minutes (signed division, ...).
  // A power-of-two divisor is a mask or a shift (x % 8 is `and eax, 7`): Z3 rewrites it to
  // bit extraction and proves it at once.
  const bool pow2 = c_val != 0 && (c_val & (c_val - 1)) == 0;
  if (!pow2 && (urem || (udiv && o64.to_string().find("bvmul") != std::string::npos))) {
    f.last_err = absl::StrCat(
        "the output matches X ", urem ? "%" : "/", " ", c_val,
        " on sampled inputs but is not a multiply-high sequence that could be proved for "
        "every X (an unsigned one-word, 65-bit or pre-shifted magic number for ",
        c_val, ")");
    return false;
  }
  std::optional<z3::expr> differ;
  if (udiv && !pow2) {
    // q = X / c as q*c <= X < q*c + c: avoids bit-blasting a divider (magic-number
    // sequences otherwise take minutes to prove).
    unsigned W = 2 * wx + 2;
    z3::expr q = o64.extract(wx - 1, 0);
    z3::expr qc = z3::zext(q, W - wx) * z3::zext(c, W - wx);
    z3::expr xx = z3::zext(xw, W - wx);
    z3::expr ok = z3::ule(qc, xx) && z3::ult(xx, qc + z3::zext(c, W - wx));
    if (wx < 64) ok = ok && o64.extract(63, wx) == ctx.bv_val(0, 64 - wx);
    differ = !ok;
  } else {
    differ = o64 != full;
  }
  // At 64 bits the bounds check (130-bit products) always times out: go to the
  // magic-number proof directly.
  bool proved = !(udiv && !pow2 && wx >= 64) && UnsatWithin(ctx, *differ, udiv ? 3000u : 20000u);
  if (!proved && udiv) proved = ProveMagicDivision(ctx, o64, xw, wx, c_val);
  return proved;
}

// "X op h" as written in a formula. X as the formula sees it: the full register; masked when
// high bits would leak in.
std::string OneOpText(const FitCtx& f, const XOpInfo& op, int wx, const std::string& h) {
  std::string X = "X";
  if (wx < 64 && !f.x_zext32 && op.mask_narrow_x) X = absl::StrFormat("(X & 0x%x)", Mask(wx));
  if (op.op == XOpInfo::kAdd && h[0] == '-' && Atom(h.substr(1)))
    return absl::StrCat(X, " - ", h.substr(1));
  return absl::StrCat(X, op.sym, Paren(h));
}

// The formula of a proved "X op h(V)" and the range of V it holds for.
OutputFit OneOpFormula(const FitCtx& f, const XOpInfo& op, int wx, const FamilyFit& fam,
                       uint64_t c0) {
  OutputFit r;
  r.uses_x = true;
  r.vmin = fam.vmin;
  r.vmax = fam.vmax;
  r.formula = OneOpText(f, op, wx, fam.formula);
  for (const std::string& alt : fam.alternatives)
    r.alternatives.push_back(OneOpText(f, op, wx, alt));
  if (op.inverse) {
    r.invertible = true;
    std::string lit = Lit(c0, wx);
    r.x_from_output = absl::StrCat("R", op.inverse, op.op == XOpInfo::kAdd ? Paren(lit) : lit);
  }
  if (op.divides) r.vmin = std::max<int64_t>(r.vmin, 1);  // V must stay a divisor
  if (op.shift) {
    r.vmin = std::max<int64_t>(r.vmin, 0);
    // keep h(V) < wx: only checked for the plain h = V case.
    if (fam.formula == "V") r.vmax = std::min<int64_t>(r.vmax, wx - 1);
  }
  return r;
}

// One operation: X op c, c a family member of V, at the write's width or 32/64 bits.
std::optional<OutputFit> FitOneOp(FitCtx& f, const std::vector<int>& widths) {
  bool may_divide = false;
  for (const z3::expr& o : f.outs) {
    std::string t = o.to_string();
    may_divide |= t.find("bvudiv") != std::string::npos || t.find("bvmul") != std::string::npos ||
                  t.find("bvlshr") != std::string::npos;
  }
  for (int wx : widths) {
    for (const XOpInfo& op : kXOps) {
      // The wider families only as an added constant (jiffies + msecs_to_jiffies(V)): a shift
      // count or multiplier (V + 2) >> 3 is a part of a longer sequence (x % 14 computes
      // x << 1 on the way), which must fail here so that the region grows to all of it.
      if (f.level > 0 && op.op != XOpInfo::kAdd) continue;
      std::vector<uint64_t> cs;
      bool ok = true;
      for (const z3::expr& o : f.outs) {
        uint64_t c = 0;
        ok = op.read([&](uint64_t xv) { return f.Eval(o, xv); }, wx, &c);
        if (!ok) break;
        cs.push_back(c);
      }
      // A division is only worth proving (seconds of Z3 time) when the code divides or
      // multiplies-and-shifts; "and eax,-32; add eax,64" never is one. By powers of two it is
      // a shift or a mask (Z3 simplifies x >> 5 to an extract), proved at once.
      const bool pow2 = std::all_of(cs.begin(), cs.end(),
                                    [](uint64_t c) { return c != 0 && (c & (c - 1)) == 0; });
      if (!ok || (op.divides && !may_divide && !pow2) || !SamplesAgree(f, op, wx, cs)) continue;
      bool proved = true;
      for (size_t i = 0; i < f.outs.size() && proved; ++i) proved = ProveOneOp(f, op, wx, cs[i], i);
      if (!proved) continue;
      // The constant part must itself be a family member of V.
      auto fam = FitFamilyAt(f.vs, cs, wx, f.level);
      if (!fam.ok()) {
        f.last_err = std::string(fam.status().message());
        continue;
      }
      return OneOpFormula(f, op, wx, *fam, cs[0]);
    }
  }
  return std::nullopt;
}

// The constants c1, c2 of "(X op c1) + c2" per build. 0 op c1 == 0, so c2 = out(0) and c1
// is read from out(X) - c2 as for one operation.
bool ReadTwoOps(const FitCtx& f, const XOpInfo& op, int wx, std::vector<uint64_t>* c1s,
                std::vector<uint64_t>* c2s) {
  uint64_t M = Mask(wx);
  for (const z3::expr& o : f.outs) {
    uint64_t c2 = f.Eval(o, 0) & M, c1 = 0;
    if (!op.read([&](uint64_t xv) { return (f.Eval(o, xv) - c2) & M; }, wx, &c1)) return false;
    c1s->push_back(c1);
    c2s->push_back(c2);
  }
  // Concrete samples first, as for one operation: a wrong template over a multiplying
  // span otherwise costs seconds of Z3 time to refute.
  for (size_t i = 0; i < f.outs.size(); ++i)
    for (uint64_t xv : {uint64_t{3}, uint64_t{1000}, uint64_t{0x12345}, uint64_t{0xdeadbeef},
                        uint64_t{0x7fffffff}, M, M - 1}) {
      uint64_t g = op.apply(xv & M & f.XMask(), (*c1s)[i], M);
      if ((f.Eval(f.outs[i], xv) & f.OutMask()) != (((g + (*c2s)[i]) & M) & f.OutMask()))
        return false;
    }
  return true;
}

bool ProveTwoOps(const FitCtx& f, const XOpInfo& op, int wx, const std::vector<uint64_t>& c1s,
                 const std::vector<uint64_t>& c2s) {
  for (size_t i = 0; i < f.outs.size(); ++i) {
    z3::expr c1 = f.ctx.bv_val(c1s[i], wx), c2 = f.ctx.bv_val(c2s[i], wx);
    z3::expr g = op.build(f.XAt(wx), c1) + c2;
    z3::expr full = wx < 64 ? z3::zext(g, 64 - wx) : g;
    z3::solver s(f.ctx);
    BoundSolver(s, 20000u);
    s.add(f.Out64(i) != full);
    if (s.check() != z3::unsat) return false;
  }
  return true;
}

// Two operations: (X op c1) + c2 with op in {and, mul, shl}. gcc selects between two values
// of the constant with "sbb eax,eax; and eax,-V; add eax,2*V" (X is 0 or -1: V or 2*V), and
// "lea eax,[rdi*8+V]" folds a scale and an offset. The whole is proved for every X.
std::optional<OutputFit> FitTwoOps(FitCtx& f, const std::vector<int>& widths) {
  for (int wx : widths) {
    for (XOpInfo::Op o : {XOpInfo::kAnd, XOpInfo::kMul, XOpInfo::kShl}) {
      const XOpInfo& op = XOpOf(o);
      std::vector<uint64_t> c1s, c2s;
      if (!ReadTwoOps(f, op, wx, &c1s, &c2s) || !ProveTwoOps(f, op, wx, c1s, c2s)) continue;
      auto f1 = FitFamilyAt(f.vs, c1s, wx, f.level), f2 = FitFamilyAt(f.vs, c2s, wx, f.level);
      if (!f1.ok() || !f2.ok()) {
        f.last_err = std::string((f1.ok() ? f2 : f1).status().message());
        continue;
      }
      OutputFit r;
      r.uses_x = true;
      auto text = [&](const std::string& h1, const std::string& h2) {
        return absl::StrCat("(X", op.sym, Paren(h1), ") + ", Paren(h2));
      };
      r.formula = text(f1->formula, f2->formula);
      std::vector<std::string> h1s = {f1->formula}, h2s = {f2->formula};
      h1s.insert(h1s.end(), f1->alternatives.begin(), f1->alternatives.end());
      h2s.insert(h2s.end(), f2->alternatives.begin(), f2->alternatives.end());
      if (h1s.size() * h2s.size() > kMaxCandidates) {
        f.last_err = "too many formulas of the family fit the two constants";
        continue;
      }
      for (const std::string& h1 : h1s)
        for (const std::string& h2 : h2s)
          if (h1 != f1->formula || h2 != f2->formula) r.alternatives.push_back(text(h1, h2));
      r.vmin = std::max(f1->vmin, f2->vmin);
      r.vmax = std::min(f1->vmax, f2->vmax);
      if (op.shift) {
        r.vmin = std::max<int64_t>(r.vmin, 0);
        if (f1->formula == "V") r.vmax = std::min<int64_t>(r.vmax, wx - 1);
      }
      return r;
    }
  }
  return std::nullopt;
}

// One bit of X selects the constant or 0: `cond ? V : 0` with cond a flag bit (a feature
// bit, bdev_nonrot()). For a power-of-two constant gcc moves the bit into place ("and eax, 4";
// "shr eax, 1; and eax, 2"), so the builds differ in shape; the bit s is the one where the
// shipped build's output is non-zero, c_i is each build's output there, and the whole is
// proved for every X.
std::optional<OutputFit> FitBitSelect(FitCtx& f, const std::vector<int>& widths) {
  if (f.outs.empty() || f.Eval(f.outs[0], 0) != 0) return std::nullopt;
  for (int wx : widths) {
    const uint64_t M = Mask(wx);
    int s = -1;
    for (int b = 0; b < std::min<int>(wx, f.xs) && s < 0; ++b)
      if (f.Eval(f.outs[0], uint64_t{1} << b) & M) s = b;
    if (s < 0) continue;
    std::vector<uint64_t> cs;
    bool ok = true;
    for (size_t i = 0; i < f.outs.size() && ok; ++i) {
      const uint64_t c = f.Eval(f.outs[i], uint64_t{1} << s) & M;
      for (uint64_t xv : {uint64_t{0}, uint64_t{3}, uint64_t{1000}, uint64_t{0x12345},
                          uint64_t{0xdeadbeef}, uint64_t{0x7fffffff}, M, M - 1})
        ok &= (f.Eval(f.outs[i], xv) & f.OutMask()) == ((((xv >> s) & 1) ? c : 0) & f.OutMask());
      cs.push_back(c);
    }
    for (size_t i = 0; i < f.outs.size() && ok; ++i) {
      z3::expr bit = f.XAt(wx).extract(s, s) == f.ctx.bv_val(1, 1);
      z3::expr g = z3::ite(bit, f.ctx.bv_val(cs[i], wx), f.ctx.bv_val(0, wx));
      z3::solver sv(f.ctx);
      BoundSolver(sv, 20000u);
      sv.add(f.Out64(i) != (wx < 64 ? z3::zext(g, 64 - wx) : g));
      ok = sv.check() == z3::unsat;
    }
    if (!ok) continue;
    auto fam = FitFamilyAt(f.vs, cs, wx, f.level);
    if (!fam.ok()) {
      f.last_err = std::string(fam.status().message());
      continue;
    }
    auto text = [&](const std::string& h) {
      return absl::StrCat("((X >> ", s, ") & 1) * ", Paren(h));
    };
    OutputFit r;
    r.uses_x = true;
    r.formula = text(fam->formula);
    for (const std::string& alt : fam->alternatives) r.alternatives.push_back(text(alt));
    r.vmin = fam->vmin;
    r.vmax = fam->vmax;
    return r;
  }
  return std::nullopt;
}

}  // namespace

namespace {

// The N-bit factor X of a magic product's non-numeral operand zext(X) (or of zext(X >> k),
// written as an extract of X's high bits): the dividend candidates.
std::vector<z3::expr> MagicFactors(const MagicProduct& t) {
  std::vector<z3::expr> out;
  const unsigned W = Width(t.mul);
  for (unsigned b = 0; b < 2; ++b) {
    z3::expr a = t.mul.arg(b);
    if (a.is_numeral()) continue;
    uint64_t zero = 1;
    if (a.decl().decl_kind() == Z3_OP_CONCAT && a.num_args() == 2 &&
        a.arg(0).is_numeral_u64(zero) && zero == 0)
      a = a.arg(1);
    else if (a.decl().decl_kind() == Z3_OP_ZERO_EXT)
      a = a.arg(0);
    else
      continue;
    if (Width(a) * 2 == W) out.push_back(a);
    if (a.decl().decl_kind() == Z3_OP_EXTRACT &&
        Z3_get_decl_int_parameter(a.ctx(), a.decl(), 0) + 1 == static_cast<int>(Width(a.arg(0))) &&
        Width(a.arg(0)) * 2 == W)
      out.push_back(a.arg(0));
  }
  return out;
}

// The subterms of `root` that contain `part` (a multiply-high sequence is one of them),
// smallest first, with no variable `x` lacks.
std::vector<z3::expr> EnclosingTerms(const z3::expr& root, const z3::expr& part,
                                     const z3::expr& x) {
  std::set<unsigned> xs;  // the declarations of x's variables
  std::set<unsigned> seen;
  std::function<void(const z3::expr&)> vars = [&](const z3::expr& e) {
    if (!e.is_app() || !seen.insert(e.id()).second) return;
    if (e.decl().decl_kind() == Z3_OP_UNINTERPRETED) xs.insert(e.decl().id());
    for (unsigned i = 0; i < e.num_args(); ++i) vars(e.arg(i));
  };
  vars(x);
  struct Seen {
    bool has = false;   // contains part
    bool clean = true;  // no variable x lacks
  };
  std::map<unsigned, Seen> memo;
  std::vector<z3::expr> out;
  std::function<Seen(const z3::expr&)> go = [&](const z3::expr& e) -> Seen {
    if (e.id() == part.id()) return {true, true};
    if (auto it = memo.find(e.id()); it != memo.end()) return it->second;
    Seen r;
    if (e.is_app() && e.decl().decl_kind() == Z3_OP_UNINTERPRETED)
      r.clean = xs.count(e.decl().id()) > 0;
    if (e.is_app())
      for (unsigned i = 0; i < e.num_args(); ++i) {
        const Seen a = go(e.arg(i));
        r.has |= a.has;
        r.clean &= a.clean;
      }
    memo[e.id()] = r;
    if (r.has && r.clean && e.is_bv() && Width(e) <= 64) out.push_back(e);
    return r;
  };
  go(root);
  return out;
}

}  // namespace

z3::expr MagicQuotientsAsDivisions(z3::context& ctx, const z3::expr& o,
                                   const std::vector<uint64_t>& divisors, bool* found) {
  z3::expr r = o;
  for (const MagicProduct& t : FindMagicProducts(o))
    for (const z3::expr& x : MagicFactors(t)) {
      const int N = static_cast<int>(Width(x));
      // Largest first: the whole sequence, at its full width (a narrower part would hide that
      // the quotient fits it).
      std::vector<z3::expr> terms = EnclosingTerms(r, t.mul, x);
      std::reverse(terms.begin(), terms.end());
      if (terms.size() > 32) terms.erase(terms.begin() + 32, terms.end());
      for (const z3::expr& term : terms)
        for (uint64_t d : divisors)
          for (bool rem : {false, true}) {
            if (!ProveMagicByAbstraction(ctx, Zext64(term), x, N, d, rem)) continue;
            // As the formula writes it: 64 bits, so the formula's own division is congruent.
            z3::expr x64 = Zext64(x), d64 = ctx.bv_val(d, 64);
            z3::expr q = rem ? z3::urem(x64, d64) : z3::udiv(x64, d64);
            z3::expr_vector from(ctx), to(ctx);
            from.push_back(term);
            to.push_back(Width(term) < 64 ? q.extract(Width(term) - 1, 0) : q);
            r = r.substitute(from, to);
            if (found) *found = true;
            goto next_product;
          }
    next_product:;
    }
  return r;
}

absl::StatusOr<OutputFit> FitOutput(z3::context& ctx, const std::vector<z3::expr>& outs,
                                    const std::optional<z3::expr>& x,
                                    const std::vector<int64_t>& vs, int out_bits, bool x_zext32) {
  if (!x) {
    std::vector<uint64_t> cs;
    for (const z3::expr& o : outs) {
      uint64_t v = 0;
      if (!o.simplify().is_numeral_u64(v))
        return absl::InternalError("constant output is not a numeral");
      cs.push_back(v);
    }
    auto fam = FitFamily(vs, cs, out_bits);
    if (!fam.ok()) return fam.status();
    return OutputFit{fam->formula, false, false, "", fam->vmin, fam->vmax, fam->alternatives};
  }
  FitCtx f{ctx, outs, *x, vs, out_bits, x_zext32, x->get_sort().bv_size()};
  std::vector<int> widths = {out_bits};
  for (int w : {32, 64})
    if (w != out_bits) widths.push_back(w);
  for (f.level = 0; f.level < 2; ++f.level) {
    if (auto r = FitOneOp(f, widths)) return *r;
    if (f.level == 0)
      if (auto r = FitTwoOps(f, widths)) return *r;
    if (auto r = FitBitSelect(f, widths)) return *r;
  }
  return absl::InvalidArgumentError(f.last_err);
}

}  // namespace sie::synth::analysis
