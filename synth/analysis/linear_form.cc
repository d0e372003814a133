#include "synth/analysis/linear_form.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "synth/analysis/semantics.h"

namespace sie::synth::analysis {
namespace {

Z3_decl_kind Kind(const z3::expr& e) { return e.decl().decl_kind(); }

struct Term {
  z3::expr atom;
  uint64_t coef;
};

// c0 + sum coef * atom, modulo 2^w (w <= 64), every atom w bits wide.
struct Linear {
  unsigned w;
  uint64_t c0 = 0;
  std::vector<Term> terms;

  void Add(const z3::expr& atom, uint64_t c) {
    for (Term& t : terms)
      if (z3::eq(t.atom, atom)) {
        t.coef = (t.coef + c) & Mask(w);
        return;
      }
    terms.push_back({atom, c & Mask(w)});
  }
  void AddScaled(const Linear& o, uint64_t k) {
    c0 = (c0 + o.c0 * k) & Mask(w);
    for (const Term& t : o.terms) Add(t.atom, t.coef * k);
  }
};

// The low w bits of t as an atom of w bits: t's own low extracts folded first, so that
// extract(28, 0, x) lifted to 32 bits is extract(31, 0, x) in every build. Lifting changes the
// bits above the atom's old width, which is exact where the caller multiplies them away.
z3::expr LowBits(z3::expr t, unsigned w) {
  while (t.is_app() && Kind(t) == Z3_OP_EXTRACT && Param(t, 1) == 0 && Width(t.arg(0)) >= w)
    t = t.arg(0);
  if (Width(t) == w) return t;
  return Width(t) > w ? t.extract(w - 1, 0) : z3::zext(t, w - Width(t));
}

// l at width w (narrower: the low bits; wider: times 2^(w - l.w), see LowBits).
Linear Resized(const Linear& l, unsigned w) {
  Linear r{w, 0, {}};
  const unsigned shift = w > l.w ? w - l.w : 0;
  r.c0 = (l.c0 << shift) & Mask(w);
  for (const Term& t : l.terms) r.Add(LowBits(t.atom, w), t.coef << shift);
  std::erase_if(r.terms, [](const Term& t) { return t.coef == 0; });
  return r;
}

class Normalizer {
 public:
  explicit Normalizer(z3::context& c) : ctx_(&c) {}

  z3::expr Norm(const z3::expr& e) {
    if (auto it = memo_.find(e.id()); it != memo_.end()) return it->second;
    z3::expr r = Rewrite(e);
    memo_.emplace(e.id(), r);
    return r;
  }

 private:
  z3::expr Rewrite(const z3::expr& e) {
    if (!e.is_app() || e.num_args() == 0) return e;
    if (e.is_bv() && Width(e) <= 64 && LinearOp(e)) return Emit(Lin(e));
    // concat(H..., X, 0): the high parts over X * 2^k, that product normalized at X's width
    // + k (Z3 flattens nested concatenations: a zero extension, a double-width dividend).
    if (Kind(e) == Z3_OP_CONCAT && e.num_args() >= 3 && IsZero(e.arg(e.num_args() - 1))) {
      const unsigned n = e.num_args();
      z3::expr low = Norm(z3::concat(e.arg(n - 2), e.arg(n - 1)));
      for (unsigned i = n - 2; i-- > 0;) low = z3::concat(Norm(e.arg(i)), low);
      return low;
    }
    z3::expr_vector args(e.ctx());
    for (unsigned i = 0; i < e.num_args(); ++i) args.push_back(Norm(e.arg(i)));
    return e.decl()(args);
  }

  static bool IsZero(const z3::expr& e) {
    uint64_t n = 1;
    return e.is_numeral_u64(n) && n == 0;
  }

  static bool LinearOp(const z3::expr& e) {
    switch (Kind(e)) {
      case Z3_OP_BADD:
      case Z3_OP_BSUB:
      case Z3_OP_BNEG:
        return true;
      case Z3_OP_BMUL:
        return e.num_args() == 2 && (e.arg(0).is_numeral() || e.arg(1).is_numeral());
      case Z3_OP_BSHL:
        return e.arg(1).is_numeral();
      case Z3_OP_CONCAT:
        return e.num_args() == 2 && IsZero(e.arg(1));
      case Z3_OP_EXTRACT:
        return Param(e, 1) == 0 && Width(e.arg(0)) <= 64 && e.arg(0).is_app() &&
               e.arg(0).num_args() > 0 && LinearOp(e.arg(0));
      default:
        return false;
    }
  }

  Linear Lin(const z3::expr& e) {
    const unsigned w = Width(e);
    Linear l{w, 0, {}};
    uint64_t n = 0;
    if (e.is_numeral_u64(n)) {
      l.c0 = n & Mask(w);
      return l;
    }
    if (!e.is_app() || !LinearOp(e)) {
      l.Add(Norm(e), 1);
      return l;
    }
    switch (Kind(e)) {
      case Z3_OP_BADD:
        for (unsigned i = 0; i < e.num_args(); ++i) l.AddScaled(Lin(e.arg(i)), 1);
        break;
      case Z3_OP_BSUB:
        l.AddScaled(Lin(e.arg(0)), 1);
        for (unsigned i = 1; i < e.num_args(); ++i) l.AddScaled(Lin(e.arg(i)), Mask(w));
        break;
      case Z3_OP_BNEG:
        l.AddScaled(Lin(e.arg(0)), Mask(w));
        break;
      case Z3_OP_BMUL: {
        const bool first = e.arg(0).is_numeral();
        l.AddScaled(Lin(e.arg(first ? 1 : 0)), e.arg(first ? 0 : 1).get_numeral_uint64());
        break;
      }
      case Z3_OP_BSHL: {
        const uint64_t k = e.arg(1).get_numeral_uint64();
        if (k < w) l.AddScaled(Lin(e.arg(0)), uint64_t{1} << k);
        break;  // a shift by the width or more is 0
      }
      case Z3_OP_CONCAT:   // x * 2^k
      case Z3_OP_EXTRACT:  // the low bits of x
        return Resized(Lin(e.arg(0)), w);
      default:
        break;
    }
    std::erase_if(l.terms, [](const Term& t) { return t.coef == 0; });
    return l;
  }

  // The sort key of an atom: its text with numerals blanked (equal across builds that differ
  // only in numerals), then the full text.
  static std::pair<std::string, std::string> Key(const z3::expr& a) {
    static const std::regex kNum("#x[0-9a-f]+|#b[01]+|\\(_ bv[0-9]+ [0-9]+\\)");
    std::string s = a.to_string();
    return {std::regex_replace(s, kNum, "#"), s};
  }

  z3::expr Emit(const Linear& l) {
    z3::context& c = *ctx_;
    std::vector<std::pair<std::pair<std::string, std::string>, Term>> keyed;
    for (const Term& t : l.terms) keyed.push_back({Key(t.atom), t});
    std::sort(keyed.begin(), keyed.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    if (keyed.size() == 1 && l.c0 == 0 && keyed[0].second.coef == 1) return keyed[0].second.atom;
    std::optional<z3::expr> sum;
    if (l.c0 != 0 || keyed.empty()) sum = c.bv_val(l.c0, l.w);
    for (const auto& [key, t] : keyed) {
      z3::expr p = t.coef == 1 ? t.atom : c.bv_val(t.coef, l.w) * t.atom;
      sum = sum ? *sum + p : p;
    }
    return *sum;
  }

  z3::context* ctx_;
  std::map<unsigned, z3::expr> memo_;
};

}  // namespace

z3::expr LinearForm(const z3::expr& e) { return Normalizer(e.ctx()).Norm(e); }

}  // namespace sie::synth::analysis
