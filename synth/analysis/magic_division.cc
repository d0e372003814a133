#include "synth/analysis/magic_division.h"

#include <functional>
#include <set>

#include "synth/analysis/semantics.h"

namespace sie::synth::analysis {
namespace {

using i128 = __int128;
using Imms = std::map<std::string, std::vector<z3::expr>>;

// The numeral symbols (keys of `imms`) `e` reads; `input` is set when it reads anything else.
std::set<std::string> Symbols(const z3::expr& e, const Imms& imms, bool* input) {
  std::set<std::string> out;
  std::set<unsigned> seen;
  std::function<void(const z3::expr&)> walk = [&](const z3::expr& x) {
    if (!x.is_app() || !seen.insert(x.id()).second) return;
    if (x.is_numeral()) return;
    if (x.num_args() == 0) {
      const std::string n = x.decl().name().str();
      if (imms.count(n))
        out.insert(n);
      else
        *input = true;
      return;
    }
    for (unsigned i = 0; i < x.num_args(); ++i) walk(x.arg(i));
  };
  walk(e);
  return out;
}

// `e`, a term of numeral symbols only, at build k's numerals.
std::optional<uint64_t> At(z3::context& ctx, const z3::expr& e, const Imms& imms, size_t k) {
  uint64_t v = 0;
  if (z3::expr r = AtBuild(ctx, e, imms, k).simplify(); r.is_numeral_u64(v)) return v;
  return std::nullopt;
}

// A product m * T split into its multiplier m (numerals and at most one numeral symbol) and
// its dividend T (inputs, no numeral symbol), either way round.
struct Product {
  z3::expr m, t;
  size_t m_symbols;
};
std::optional<Product> SplitProduct(const z3::expr& mul, const Imms& imms) {
  if (!mul.is_app() || mul.decl().decl_kind() != Z3_OP_BMUL || mul.num_args() != 2 ||
      Width(mul) != 64)
    return std::nullopt;
  for (unsigned mi = 0; mi < 2; ++mi) {
    const z3::expr m = mul.arg(mi), t = mul.arg(1 - mi);
    bool in_m = false, in_t = false;
    const auto m_syms = Symbols(m, imms, &in_m);
    if (!in_m && m_syms.size() <= 1 && Symbols(t, imms, &in_t).empty() && in_t)
      return Product{m, t, m_syms.size()};
  }
  return std::nullopt;
}

// The smallest N of 8, 16, 32 with T an N-bit value: zero-extended (unsigned) or sign-extended.
int DividendBits(z3::context& ctx, const z3::expr& t, bool is_signed) {
  for (int n : {8, 16, 32}) {
    z3::expr low = t.extract(n - 1, 0);
    if (Valid(ctx, t == (is_signed ? z3::sext(low, 64 - n) : z3::zext(low, 64 - n)), 5000))
      return n;
  }
  return 0;
}

// The divisor d for which floor(T * m / 2^s) is T / d (unsigned) or trunc(T / d) - (T < 0)
// (signed) for every N-bit T, if (m, s) is such a pair: m*d - 2^s = e, unsigned
// 0 <= e <= 2^(s-N), signed 0 < e <= 2^(s-N+1), and |T * m| within 64 bits. A negative
// signed multiplier -m (clang negates the quotient so) gives -trunc(T / d) - (T > 0).
std::optional<uint64_t> Divisor(uint64_t m_bits, uint64_t s, int n, bool is_signed) {
  if (s >= 64 || m_bits == 0) return std::nullopt;
  i128 m = is_signed ? static_cast<i128>(static_cast<int64_t>(m_bits)) : i128{m_bits};
  if (m < 0) m = -m;
  const i128 t_max = is_signed ? i128{1} << (n - 1) : (i128{1} << n) - 1;
  if (m * t_max >= (i128{1} << (is_signed ? 63 : 64))) return std::nullopt;
  const i128 p = i128{1} << s;
  for (i128 d = p / m; d <= p / m + 1; ++d) {
    if (d < 2) continue;
    const i128 e = m * d - p;
    const int k = static_cast<int>(s) - n + (is_signed ? 1 : 0);  // e's bound is 2^k
    const bool ok = is_signed ? e > 0 && k >= 0 && e <= (i128{1} << k)
                              : e >= 0 && (e == 0 || (k >= 0 && e <= (i128{1} << k)));
    if (ok) return static_cast<uint64_t>(d);
  }
  return std::nullopt;
}

// The sign of a product by a multiplier numeral that keeps its sign in every build:
// (T * m) >> 63 or bit 63 of it, T a sign-extended 32-bit value and |m| < 2^31 (no overflow):
// T's sign, or its opposite's (clang corrects a quotient so). No new numeral: the multiplier's
// symbol leaves the output.
std::optional<MagicDivision> ProductSign(z3::context& ctx, const z3::expr& sub, const Imms& imms) {
  const Z3_decl_kind k = sub.decl().decl_kind();
  uint64_t count = 0;
  const bool shifted = k == Z3_OP_BLSHR && sub.arg(1).is_numeral_u64(count) && count == 63;
  const bool bit = k == Z3_OP_EXTRACT && sub.hi() == 63 && sub.lo() == 63;
  if (!shifted && !bit) return std::nullopt;
  const auto p = SplitProduct(sub.arg(0), imms);
  if (!p || p->m_symbols != 1 || DividendBits(ctx, p->t, true) != 32) return std::nullopt;
  std::set<bool> negative;
  for (size_t b = 0; b < imms.begin()->second.size(); ++b) {
    auto mv = At(ctx, p->m, imms, b);
    const int64_t v = mv ? static_cast<int64_t>(*mv) : 0;
    if (v == 0 || v == INT64_MIN || (v < 0 ? -v : v) >= (int64_t{1} << 31)) return std::nullopt;
    negative.insert(v < 0);
  }
  if (negative.size() != 1) return std::nullopt;
  const z3::expr cond = *negative.begin() ? p->t > 0 : p->t < 0;
  const unsigned w = Width(sub);
  return MagicDivision{sub, z3::ite(cond, ctx.bv_val(1, w), ctx.bv_val(0, w)), "", {}};
}

// `sub` = (T * m) >> s as a magic division in every build, if it is one.
std::optional<MagicDivision> AsMagicDivision(z3::context& ctx, const z3::expr& sub,
                                             const Imms& imms, const std::string& d_name) {
  const Z3_decl_kind k = sub.decl().decl_kind();
  if ((k != Z3_OP_BLSHR && k != Z3_OP_BASHR) || Width(sub) != 64) return std::nullopt;
  const z3::expr shift = sub.arg(1);
  // Each of m and s a numeral or a term of one numeral symbol, at least one of them symbolic
  // (the same multiplier serves V=5, 10 and 20 with shifts 34, 35 and 36).
  bool in_shift = false;
  const auto s_syms = Symbols(shift, imms, &in_shift);
  const auto p = SplitProduct(sub.arg(0), imms);
  if (in_shift || s_syms.size() > 1 || !p || p->m_symbols + s_syms.size() == 0) return std::nullopt;
  const bool is_signed = k == Z3_OP_BASHR;
  const int n = DividendBits(ctx, p->t, is_signed);
  if (n == 0) return std::nullopt;
  MagicDivision md{sub, sub, d_name, {}};
  const size_t builds = imms.begin()->second.size();
  std::set<bool> negative;  // the multiplier's sign, one for every build
  for (size_t b = 0; b < builds; ++b) {
    auto mv = At(ctx, p->m, imms, b), sv = At(ctx, shift, imms, b);
    auto d = mv && sv ? Divisor(*mv, *sv, n, is_signed) : std::nullopt;
    if (!d) return std::nullopt;
    md.divisors.push_back(ctx.bv_val(*d, 64));
    negative.insert(is_signed && static_cast<int64_t>(*mv) < 0);
  }
  if (negative.size() != 1) return std::nullopt;
  const z3::expr& t = p->t;
  const z3::expr dv = ctx.bv_const(d_name.c_str(), 64);
  const z3::expr one = ctx.bv_val(1, 64), zero = ctx.bv_val(0, 64);
  if (!is_signed)
    md.replacement = z3::udiv(t, dv);
  else if (*negative.begin())
    md.replacement = zero - (t / dv) - z3::ite(t > 0, one, zero);
  else
    md.replacement = (t / dv) - z3::ite(t < 0, one, zero);
  return md;
}

}  // namespace

z3::expr AtBuild(z3::context& ctx, const z3::expr& e, const Imms& imms, size_t k) {
  z3::expr_vector from(ctx), to(ctx);
  for (const auto& [name, nums] : imms) {
    from.push_back(ctx.bv_const(name.c_str(), Width(nums[k])));
    to.push_back(nums[k]);
  }
  return z3::expr(e).substitute(from, to);
}

bool HasMagicMultiply(const std::vector<z3::expr>& outs) {
  std::set<unsigned> seen;
  bool found = false;
  std::function<void(const z3::expr&)> walk = [&](const z3::expr& e) {
    if (found || !e.is_app() || !seen.insert(e.id()).second) return;
    if (e.decl().decl_kind() == Z3_OP_BMUL && Width(e) <= 64)
      for (unsigned i = 0; i < e.num_args(); ++i) {
        uint64_t v = 0;
        if (!e.arg(i).is_numeral_u64(v)) continue;
        const uint64_t sign = uint64_t{1} << (Width(e) - 1);
        const uint64_t mag = v & sign ? (~v + 1) & (sign | (sign - 1)) : v;
        found |= mag > 0xffff;
      }
    for (unsigned i = 0; i < e.num_args() && !found; ++i) walk(e.arg(i));
  };
  for (const z3::expr& o : outs) walk(o);
  return found;
}

std::optional<MagicDivision> FindMagicDivision(z3::context& ctx, const z3::expr& sym_out,
                                               const Imms& imms, const std::string& d_name) {
  if (imms.empty()) return std::nullopt;
  std::set<unsigned> seen;
  std::optional<MagicDivision> found;
  std::function<void(const z3::expr&)> walk = [&](const z3::expr& e) {
    if (found || !e.is_app() || !seen.insert(e.id()).second) return;
    if (e.is_bv()) found = ProductSign(ctx, e, imms);
    if (e.is_bv() && !found) found = AsMagicDivision(ctx, e, imms, d_name);
    for (unsigned i = 0; i < e.num_args() && !found; ++i) walk(e.arg(i));
  };
  walk(sym_out);
  return found;
}

}  // namespace sie::synth::analysis
