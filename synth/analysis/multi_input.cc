#include "synth/analysis/multi_input.h"

#include <functional>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/artifact/formula.h"
#include "common/base/log.h"
#include "synth/analysis/derive.h"
#include "synth/analysis/linear_form.h"
#include "synth/analysis/magic_division.h"
#include "synth/analysis/semantics.h"

namespace sie::synth::analysis {
namespace {

using artifact::FormulaNode;

std::string Lit(uint64_t v) { return v < 65536 ? absl::StrCat(v) : absl::StrFormat("0x%x", v); }

bool IsInput(const z3::expr& e) {
  return e.is_app() && e.num_args() == 0 && e.decl().decl_kind() == Z3_OP_UNINTERPRETED;
}

// Operators whose arguments Z3 orders per term (matched as sets across builds).
bool Commutative(const z3::expr& e) {
  switch (e.decl().decl_kind()) {
    case Z3_OP_BADD:
    case Z3_OP_BMUL:
    case Z3_OP_BAND:
    case Z3_OP_BOR:
    case Z3_OP_BXOR:
    case Z3_OP_AND:
    case Z3_OP_OR:
    case Z3_OP_EQ:
      return true;
    default:
      return false;
  }
}

// Z3 term -> formula text with value == zext64(term); one argument position on `path` may be
// replaced by fixed text (the fitted hole).
class Translator {
 public:
  Translator(const std::map<std::string, char>& names, std::vector<unsigned> path = {},
             std::string hole = "", std::map<std::string, std::string> texts = {})
      : names_(names), path_(std::move(path)), hole_(std::move(hole)), texts_(std::move(texts)) {}

  std::optional<std::string> Go(const z3::expr& e, size_t depth = 0, bool on_path = false) {
    if (on_path && depth == path_.size()) return hole_;
    if (auto b = bound_.find(e.id()); b != bound_.end()) return b->second;
    if (!Expressible(e)) return std::nullopt;
    const unsigned w = e.is_bool() ? 1 : Width(e);
    uint64_t num = 0;
    if (e.is_numeral_u64(num)) return Lit(num);
    if (IsInput(e)) {
      const std::string n = e.decl().name().str();
      if (auto t = texts_.find(n); t != texts_.end()) return Masked(t->second, w);
      auto it = names_.find(n);
      if (it == names_.end()) return std::nullopt;
      std::string v(1, it->second);
      return w < 64 ? absl::StrFormat("(%s & 0x%x)", v, Mask(w)) : v;
    }
    if (!e.is_app()) return std::nullopt;
    std::vector<std::string> a;
    for (unsigned i = 0; i < e.num_args(); ++i) {
      bool child_on = on_path && path_[depth] == i;
      auto s = Go(e.arg(i), depth + 1, child_on);
      if (!s) return std::nullopt;
      a.push_back(*s);
    }
    return Node(e, w, a);
  }

  std::optional<std::string> Root(const z3::expr& e) { return Go(e, 0, true); }

  // `root` with the subterms it uses more than once bound by lets, each translated once
  // ("let t0 = ... in let t1 = ... in body"): a text that grows with the code, not with the
  // number of paths through it (a clamp repeats its operand in the compare and both arms).
  // Only subterms every evaluation computes are bound, not ones under one arm of a
  // conditional only: a let's value is evaluated first, so its division by zero would reject
  // hits the code itself computes fine.
  std::optional<std::string> Shared(const z3::expr& root) {
    std::vector<z3::expr> order;  // post-order, each term once
    std::set<unsigned> seen;
    std::function<void(const z3::expr&)> walk = [&](const z3::expr& e) {
      if (!seen.insert(e.id()).second) return;
      if (e.is_app())
        for (unsigned i = 0; i < e.num_args(); ++i) walk(e.arg(i));
      order.push_back(e);
    };
    walk(root);
    std::map<unsigned, uint64_t> uses = {{root.id(), 1}};
    std::map<unsigned, bool> always = {{root.id(), true}};
    for (auto it = order.rbegin(); it != order.rend(); ++it) {  // parents before children
      if (!it->is_app()) continue;
      const bool ite = it->decl().decl_kind() == Z3_OP_ITE;
      for (unsigned i = 0; i < it->num_args(); ++i) {
        const unsigned c = it->arg(i).id();
        uses[c] = std::min<uint64_t>(uses[c] + uses[it->id()], 1u << 20);
        always[c] = always[c] || (always[it->id()] && (!ite || i == 0));
      }
    }
    std::string lets;
    int n = 0;
    for (const z3::expr& e : order) {  // children before parents
      if (n > 255) break;
      if (e.id() == root.id() || !e.is_app() || e.num_args() == 0 || uses[e.id()] < 2 ||
          !always[e.id()] || !(e.is_bool() || (e.is_bv() && Width(e) <= 64)))
        continue;
      auto t = Go(e);
      if (!t) return std::nullopt;
      if (t->size() < 12) continue;  // shorter than a binding: repeat it
      const std::string name = absl::StrCat("t", n++);
      absl::StrAppend(&lets, "let ", name, " = ", *t, " in ");
      bound_[e.id()] = name;
    }
    auto body = Go(root);
    if (!body) return std::nullopt;
    return lets + *body;
  }

  // Booleans and terms of at most 64 bits; wider only where the low 64 bits are known from
  // 64-bit operations: idiv's double-width dividend (a sign extension of 64 bits or less) and
  // its signed division (Node checks the arguments); EXTRACT reads no more than the low 64.
  static bool Expressible(const z3::expr& e) {
    if (e.is_bool() || (e.is_bv() && Width(e) <= 64)) return true;
    if (!e.is_bv() || !e.is_app()) return false;
    switch (e.decl().decl_kind()) {
      case Z3_OP_SIGN_EXT:
      case Z3_OP_CONCAT:
        return SignExtendedFrom64(e);  // idiv's dividend
      case Z3_OP_BSDIV:
      case Z3_OP_BSDIV_I:
      case Z3_OP_BSREM:
      case Z3_OP_BSREM_I:
        return true;
      default:
        return false;
    }
  }
  static bool SignExtendedFrom64(const z3::expr& e) {
    auto l = SignExtension(e);
    return l && l->bits <= 64;
  }
  // e as a sign extension of its low `bits`: SIGN_EXT, or Z3's rewritten form
  // concat(T[h], ..., T[h], L...) whose first `first` arguments repeat T[h], the top bit of
  // the rest (L's first part is T[h:lo], or T of h + 1 bits); nullopt for anything else.
  struct SignExt {
    unsigned first = 0, bits = 0;
  };
  static std::optional<SignExt> SignExtension(const z3::expr& e) {
    if (!e.is_app()) return std::nullopt;
    if (e.decl().decl_kind() == Z3_OP_SIGN_EXT) return SignExt{0, Width(e.arg(0))};
    if (e.decl().decl_kind() != Z3_OP_CONCAT || e.num_args() < 2) return std::nullopt;
    const z3::expr b = e.arg(0);
    if (!b.is_app() || b.decl().decl_kind() != Z3_OP_EXTRACT || Param(b, 0) != Param(b, 1))
      return std::nullopt;
    const int h = Param(b, 0);
    unsigned first = 1;
    while (first < e.num_args() && z3::eq(e.arg(first), b)) ++first;
    if (first == e.num_args()) return std::nullopt;
    const z3::expr top = e.arg(first);
    const bool part = top.is_app() && top.decl().decl_kind() == Z3_OP_EXTRACT &&
                      Param(top, 0) == h && z3::eq(top.arg(0), b.arg(0));
    if (!part && !(z3::eq(top, b.arg(0)) && static_cast<int>(Width(top)) == h + 1))
      return std::nullopt;
    unsigned bits = 0;
    for (unsigned i = first; i < e.num_args(); ++i) bits += Width(e.arg(i));
    return SignExt{first, bits};
  }

  // The builds' outputs `o` of one shape, differing only in numerals: the shared text, each
  // differing numeral written by `leaf` (a formula in V, or nullopt to give up).
  using Leaf = std::function<std::optional<std::string>(const std::vector<z3::expr>&)>;
  std::optional<std::string> GoMulti(std::vector<z3::expr> o, const Leaf& leaf) {
    bool same = true;
    for (size_t k = 1; k < o.size(); ++k) same &= z3::eq(o[0], o[k]);
    if (same) return Go(o[0]);
    AlignIdentities(&o);
    const z3::expr& e = o[0];
    if (!Expressible(e) || !e.is_app()) return std::nullopt;
    bool nums = true;
    for (const z3::expr& b : o) nums &= b.is_numeral() && b.is_bv() && Width(b) == Width(e);
    if (nums) return leaf(o);
    for (size_t k = 1; k < o.size(); ++k)
      if (!o[k].is_app() || o[k].num_args() != e.num_args() ||
          !Z3_is_eq_func_decl(e.ctx(), e.decl(), o[k].decl()))
        return std::nullopt;
    if (e.num_args() == 0) return std::nullopt;
    std::vector<std::vector<z3::expr>> args(e.num_args());
    for (size_t k = 0; k < o.size(); ++k) {
      auto order = k == 0 ? std::optional(Identity(e.num_args())) : Pairing(e, o[k]);
      if (!order) return std::nullopt;
      for (unsigned i = 0; i < e.num_args(); ++i) args[i].push_back(o[k].arg((*order)[i]));
    }
    std::vector<std::string> a;
    for (const auto& arg : args) {
      auto t = GoMulti(arg, leaf);
      if (!t) return std::nullopt;
      a.push_back(*t);
    }
    return Node(e, e.is_bool() ? 1 : Width(e), a);
  }

 private:
  // The compiler folds an operation with its identity (3 * x at V=4 is plain x at V=2, x + 0
  // is x): a build whose term lacks the operation another build applies with a numeral gets
  // it back with the identity (1 * x), so the numerals line up for the leaf. Exact rewrites.
  static void AlignIdentities(std::vector<z3::expr>* o) {
    const z3::expr* op = nullptr;
    unsigned num_at = 0;
    for (const z3::expr& e : *o) {
      if (!e.is_app() || e.num_args() != 2 || !e.is_bv()) continue;
      const Z3_decl_kind k = e.decl().decl_kind();
      if (k != Z3_OP_BMUL && k != Z3_OP_BADD && k != Z3_OP_BOR && k != Z3_OP_BXOR &&
          k != Z3_OP_BSHL && k != Z3_OP_BLSHR && k != Z3_OP_BASHR)
        continue;
      for (unsigned i = 0; i < 2 && !op; ++i)
        if (e.arg(i).is_numeral() && !e.arg(1 - i).is_numeral()) op = &e, num_at = i;
      if (op) break;
    }
    if (!op || (num_at == 0 && !Commutative(*op))) return;
    const z3::expr tmpl = *op;
    const uint64_t identity = tmpl.decl().decl_kind() == Z3_OP_BMUL ? 1 : 0;
    for (z3::expr& e : *o) {
      if (e.is_app() && Z3_is_eq_func_decl(e.ctx(), e.decl(), tmpl.decl())) continue;
      if (!e.is_bv() || Width(e) != Width(tmpl) || e.is_numeral()) continue;
      z3::expr id = e.ctx().bv_val(identity, Width(e));
      z3::expr_vector args(e.ctx());
      args.push_back(num_at == 0 ? id : e);
      args.push_back(num_at == 0 ? e : id);
      e = tmpl.decl()(args);
    }
  }

  static std::string Masked(const std::string& s, unsigned w) {
    return w < 64 ? absl::StrFormat("(%s & 0x%x)", s, Mask(w)) : s;
  }
  static std::string Join(const std::vector<std::string>& a, const char* op) {
    std::string s = "(" + a[0];
    for (size_t i = 1; i < a.size(); ++i) absl::StrAppend(&s, " ", op, " ", a[i]);
    return s + ")";
  }

  // a and b as w-bit signed values, compared unsigned: the sign bit flipped.
  static std::string Signed(const std::string& a, const std::string& b, const char* op,
                            unsigned w) {
    const uint64_t sign = uint64_t{1} << (w - 1);
    return absl::StrFormat("((%s ^ 0x%x) %s (%s ^ 0x%x))", a, sign, op, b, sign);
  }
  // a (a w-bit value) sign-extended to 64 bits.
  static std::string Sext64(const std::string& a, unsigned w) {
    if (w >= 64) return a;
    const uint64_t sign = uint64_t{1} << (w - 1);
    return absl::StrFormat("((%s ^ 0x%x) - 0x%x)", a, sign, sign);
  }

  // A signed operation (sdiv, srem, sar) of w-bit values: on their s64 extensions, masked back
  // to w bits. Wider than 64 (idiv's rdx:rax dividend) only of values sign-extended from 64
  // bits or less: the low 64 bits of the quotient are then those of the 64-bit division.
  static std::optional<std::string> Signed64(const char* op, const z3::expr& e, unsigned w,
                                             const std::vector<std::string>& a) {
    if (w > 64) {
      if (!SignExtendedFrom64(e.arg(0)) || !SignExtendedFrom64(e.arg(1))) return std::nullopt;
      return absl::StrCat(op, "(", a[0], ", ", a[1], ")");
    }
    return Masked(absl::StrCat(op, "(", Sext64(a[0], w), ", ",
                               std::string(op) == "sar" ? a[1] : Sext64(a[1], w), ")"),
                  w);
  }

  // Booleans (comparisons, their combinations, conditionals) as 1 or 0.
  std::optional<std::string> BoolNode(const z3::expr& e, const std::vector<std::string>& a) {
    static const std::map<Z3_decl_kind, const char*> kJoined = {
        {Z3_OP_AND, "&"},   {Z3_OP_OR, "|"},  {Z3_OP_XOR, "^"},  {Z3_OP_ULT, "<"},
        {Z3_OP_ULEQ, "<="}, {Z3_OP_UGT, ">"}, {Z3_OP_UGEQ, ">="}};
    static const std::map<Z3_decl_kind, const char*> kSigned = {
        {Z3_OP_SLT, "<"}, {Z3_OP_SLEQ, "<="}, {Z3_OP_SGT, ">"}, {Z3_OP_SGEQ, ">="}};
    const Z3_decl_kind k = e.decl().decl_kind();
    if (auto it = kJoined.find(k); it != kJoined.end()) return Join(a, it->second);
    if (auto it = kSigned.find(k); it != kSigned.end())
      return Signed(a[0], a[1], it->second, Width(e.arg(0)));
    switch (k) {
      case Z3_OP_TRUE:
        return "1";
      case Z3_OP_FALSE:
        return "0";
      case Z3_OP_NOT:
        return absl::StrCat("(", a[0], " == 0)");
      case Z3_OP_EQ:
      case Z3_OP_IFF:
      case Z3_OP_DISTINCT:
        if (a.size() != 2) return std::nullopt;
        return absl::StrCat("(", a[0], k == Z3_OP_DISTINCT ? " != " : " == ", a[1], ")");
      case Z3_OP_ITE:
        return absl::StrCat("(", a[0], " ? ", a[1], " : ", a[2], ")");
      default:
        return std::nullopt;
    }
  }

  std::optional<std::string> Node(const z3::expr& e, unsigned w,
                                  const std::vector<std::string>& a) {
    if (e.is_bool()) return BoolNode(e, a);
    uint64_t k = 0;
    const bool k_num = e.num_args() == 2 && e.arg(1).is_numeral_u64(k);
    switch (e.decl().decl_kind()) {
      case Z3_OP_ITE:
        return absl::StrCat("(", a[0], " ? ", a[1], " : ", a[2], ")");
      case Z3_OP_SIGN_EXT: {
        const unsigned from = Width(e.arg(0));
        return from == 0 ? std::nullopt : std::optional(Masked(Sext64(a[0], from), w));
      }
      case Z3_OP_BASHR:
        // By a numeral (not a fitted hole): a count of w or more leaves only sign bits.
        if (k_num && a[1] == Lit(k) && k >= w) return Signed64("sar", e, w, {a[0], Lit(w - 1)});
        return Signed64("sar", e, w, a);
      case Z3_OP_BSDIV:
      case Z3_OP_BSDIV_I:
        return Signed64("sdiv", e, w, a);
      case Z3_OP_BSREM:
      case Z3_OP_BSREM_I:
        return Signed64("srem", e, w, a);
      case Z3_OP_BADD:
        return Masked(Join(a, "+"), w);
      case Z3_OP_BSUB:
        return Masked(Join(a, "-"), w);
      case Z3_OP_BMUL:
        return Masked(Join(a, "*"), w);
      case Z3_OP_BNEG:
        return Masked("(-" + a[0] + ")", w);
      case Z3_OP_BNOT:
        return Masked("(~" + a[0] + ")", w);
      case Z3_OP_BAND:
        return Join(a, "&");
      case Z3_OP_BOR:
        return Join(a, "|");
      case Z3_OP_BXOR:
        return Join(a, "^");
      // By a computed count or a fitted hole: a count of w to 63 gives 0 as in Z3, 64 or more
      // leaves the formula undefined (a rejected hit).
      case Z3_OP_BSHL:
        if (!k_num || a[1] != Lit(k)) return Masked(absl::StrCat("(", a[0], " << ", a[1], ")"), w);
        return k >= w ? "0" : Masked(absl::StrCat("(", a[0], " << ", k, ")"), w);
      case Z3_OP_BLSHR:
        if (!k_num || a[1] != Lit(k)) return absl::StrCat("(", a[0], " >> ", a[1], ")");
        return k >= w ? "0" : absl::StrCat("(", a[0], " >> ", k, ")");
      // By a computed divisor too: where it is 0 the formula is undefined (the stub leaves
      // the value alone, the proof covers the rest) and the code itself would have trapped.
      case Z3_OP_BUDIV:
      case Z3_OP_BUDIV_I:
        if (!k_num) return absl::StrCat("(", a[0], " / ", a[1], ")");
        if (k == 0) return std::nullopt;
        if (a[1] != Lit(k)) return absl::StrCat("(", a[0], " / ", a[1], ")");
        return absl::StrCat("(", a[0], " / ", Lit(k), ")");
      case Z3_OP_BUREM:
      case Z3_OP_BUREM_I:
        if (!k_num) return absl::StrCat("(", a[0], " % ", a[1], ")");
        if (k == 0) return std::nullopt;
        if (a[1] != Lit(k)) return absl::StrCat("(", a[0], " % ", a[1], ")");
        return absl::StrCat("(", a[0], " % ", Lit(k), ")");
      case Z3_OP_ZERO_EXT:
        return a[0];
      case Z3_OP_EXTRACT: {
        int hi = Param(e, 0), lo = Param(e, 1);
        if (Width(e.arg(0)) > 64 && hi > 63) return std::nullopt;  // only the low 64 are known
        std::string s = lo ? absl::StrCat("(", a[0], " >> ", lo, ")") : a[0];
        return hi + 1 < static_cast<int>(Width(e.arg(0))) ? Masked(s, hi - lo + 1) : s;
      }
      case Z3_OP_CONCAT: {
        const auto sx = SignExtension(e);
        if (sx && sx->bits > 64) return std::nullopt;
        if (!sx && w > 64) return std::nullopt;
        std::string s;
        for (unsigned i = sx ? sx->first : 0; i < e.num_args(); ++i) {
          unsigned below = 0;
          for (unsigned j = i + 1; j < e.num_args(); ++j) below += Width(e.arg(j));
          uint64_t z = 1;
          if (e.arg(i).is_numeral_u64(z) && z == 0) continue;
          std::string part = below ? absl::StrCat("(", a[i], " << ", below, ")") : a[i];
          s = s.empty() ? part : absl::StrCat("(", s, " | ", part, ")");
        }
        if (s.empty()) s = "0";
        return sx ? Masked(Sext64(s, sx->bits), w) : s;
      }
      default:
        return std::nullopt;
    }
  }

  static std::vector<unsigned> Identity(unsigned n) {
    std::vector<unsigned> v(n);
    for (unsigned i = 0; i < n; ++i) v[i] = i;
    return v;
  }

  // The term's shape: operators and inputs, numerals as their width only.
  std::string Shape(const z3::expr& e) {
    auto it = shapes_.find(e.id());
    if (it != shapes_.end()) return it->second;
    std::string s;
    if (e.is_numeral())
      s = absl::StrCat("#", e.is_bv() ? Width(e) : 0);
    else if (!e.is_app() || shapes_.size() > 20000)
      s = e.to_string();
    else {
      s = absl::StrCat("(", e.decl().name().str());
      for (unsigned i = 0; i < Z3_get_decl_num_parameters(e.ctx(), e.decl()); ++i)
        if (Z3_get_decl_parameter_kind(e.ctx(), e.decl(), i) == Z3_PARAMETER_INT)
          absl::StrAppend(&s, ":", Param(e, i));
      for (unsigned i = 0; i < e.num_args(); ++i) absl::StrAppend(&s, " ", Shape(e.arg(i)));
      s += ")";
    }
    shapes_.emplace(e.id(), s);
    return s;
  }

  // Which argument of `b` stands for each argument of `a`: the same position, or for a
  // commutative operator (Z3 orders its arguments per term) the argument equal to it, else
  // the first unused one of the same shape; nullopt when the shapes do not pair up.
  std::optional<std::vector<unsigned>> Pairing(const z3::expr& a, const z3::expr& b) {
    const unsigned n = a.num_args();
    if (!Commutative(a)) {
      for (unsigned i = 0; i < n; ++i)
        if (Shape(a.arg(i)) != Shape(b.arg(i))) return std::nullopt;
      return Identity(n);
    }
    std::vector<unsigned> order(n, n);
    std::vector<bool> used(n, false);
    for (int pass = 0; pass < 2; ++pass)
      for (unsigned i = 0; i < n; ++i) {
        for (unsigned j = 0; j < n && order[i] == n; ++j)
          if (!used[j] &&
              (pass == 0 ? z3::eq(a.arg(i), b.arg(j)) : Shape(a.arg(i)) == Shape(b.arg(j))))
            order[i] = j, used[j] = true;
      }
    for (unsigned i = 0; i < n; ++i)
      if (order[i] == n) return std::nullopt;
    return order;
  }

  std::map<unsigned, std::string> shapes_;
  const std::map<std::string, char>& names_;
  std::vector<unsigned> path_;
  std::string hole_;
  std::map<std::string, std::string> texts_;  // symbols written as given text (FitBySymbols)
  std::map<unsigned, std::string> bound_;     // Shared: terms (by id) a let names
};

// Every input constant of the expressions, by name.
std::map<std::string, z3::expr> InputConsts(const std::vector<z3::expr>& es) {
  std::map<std::string, z3::expr> out;
  std::set<unsigned> seen;
  std::function<void(const z3::expr&)> walk = [&](const z3::expr& e) {
    if (!e.is_app() || !seen.insert(e.id()).second) return;
    if (IsInput(e)) out.emplace(e.decl().name().str(), e);
    for (unsigned i = 0; i < e.num_args(); ++i) walk(e.arg(i));
  };
  for (const z3::expr& e : es) walk(e);
  return out;
}

// The formula at V = v as a Z3 term over the inputs, and when it is defined.
struct Built {
  z3::expr e, ok;
};
Built Build(z3::context& c, const FormulaNode& n, int64_t v, const std::map<char, z3::expr>& vars,
            std::map<int, Built>& lets) {
  using Op = FormulaNode::Op;
  if (n.op == Op::kLit) return {c.bv_val(n.lit, 64), c.bool_val(true)};
  if (n.op == Op::kRef) return lets.at(n.slot);
  if (n.op == Op::kLet) {
    lets.insert_or_assign(n.slot, Build(c, *n.a, v, vars, lets));
    Built b = Build(c, *n.b, v, vars, lets);
    b.ok = b.ok && lets.at(n.slot).ok;  // the value is evaluated, used or not
    lets.erase(n.slot);
    return b;
  }
  if (n.op == Op::kVar) {
    if (n.var == 'V') return {c.bv_val(static_cast<uint64_t>(v), 64), c.bool_val(true)};
    auto it = vars.find(n.var);
    return {it != vars.end() ? it->second : c.bv_val(0, 64), c.bool_val(it != vars.end())};
  }
  Built a = Build(c, *n.a, v, vars, lets);
  if (n.op == Op::kNeg) return {-a.e, a.ok};
  if (n.op == Op::kPlus) return a;
  if (n.op == Op::kNot) return {~a.e, a.ok};
  Built b = Build(c, *n.b, v, vars, lets);
  if (n.op == Op::kCond) {
    Built e = Build(c, *n.c, v, vars, lets);
    z3::expr take = a.e != 0;
    return {z3::ite(take, b.e, e.e), a.ok && z3::ite(take, b.ok, e.ok)};
  }
  z3::expr ok = a.ok && b.ok;
  auto flag = [&](const z3::expr& p) { return z3::ite(p, c.bv_val(1, 64), c.bv_val(0, 64)); };
  switch (n.op) {
    case Op::kLt:
      return {flag(z3::ult(a.e, b.e)), ok};
    case Op::kLe:
      return {flag(z3::ule(a.e, b.e)), ok};
    case Op::kGt:
      return {flag(z3::ugt(a.e, b.e)), ok};
    case Op::kGe:
      return {flag(z3::uge(a.e, b.e)), ok};
    case Op::kEq:
      return {flag(a.e == b.e), ok};
    case Op::kNe:
      return {flag(a.e != b.e), ok};
    case Op::kAdd:
      return {a.e + b.e, ok};
    case Op::kSub:
      return {a.e - b.e, ok};
    case Op::kMul:
      return {a.e * b.e, ok};
    case Op::kAnd:
      return {a.e & b.e, ok};
    case Op::kOr:
      return {a.e | b.e, ok};
    case Op::kXor:
      return {a.e ^ b.e, ok};
    case Op::kDiv:
      return {z3::udiv(a.e, b.e), ok && b.e != 0};
    case Op::kMod:
      return {z3::urem(a.e, b.e), ok && b.e != 0};
    case Op::kShl:
      return {z3::shl(a.e, b.e), ok && z3::ult(b.e, 64)};
    case Op::kShr:
      return {z3::lshr(a.e, b.e), ok && z3::ult(b.e, 64)};
    // As idiv computes them (the low half of a double-width division of sign extensions,
    // equal to the 64-bit bvsdiv/bvsrem): the builds' terms then simplify to the same form
    // and the proof does not bit-blast a division per side.
    case Op::kSDiv:
      return {(z3::sext(a.e, 64) / z3::sext(b.e, 64)).extract(63, 0), ok && b.e != 0};
    case Op::kSRem:
      return {z3::srem(z3::sext(a.e, 64), z3::sext(b.e, 64)).extract(63, 0), ok && b.e != 0};
    case Op::kSar:
      return {z3::ashr(a.e, b.e), ok && z3::ult(b.e, 64)};
    default:
      return {c.bv_val(0, 64), c.bool_val(false)};
  }
}

// A few concrete inputs first: a wrong candidate is refuted in microseconds.
bool SamplesAgree(z3::context& c, const artifact::Formula& f, int64_t v, const z3::expr& out,
                  const std::map<std::string, z3::expr>& consts,
                  const std::map<std::string, char>& names, int out_bits) {
  for (uint64_t seed : {uint64_t{3}, uint64_t{0x12345}, uint64_t{0xdeadbeefcafe1}, ~uint64_t{0}}) {
    artifact::FormulaVars fv{static_cast<uint64_t>(v)};
    z3::expr_vector from(c), to(c);
    uint64_t k = 0;
    for (const auto& [name, e] : consts) {
      uint64_t val = (seed * (2 * ++k + 1)) & Mask(Width(e));
      from.push_back(e);
      to.push_back(c.bv_val(val, Width(e)));
      switch (names.at(name)) {
        case 'X':
          fv.x = val;
          break;
        case 'Y':
          fv.y = val;
          break;
        case 'Z':
          fv.z = val;
          break;
        default:
          fv.w = val;
      }
    }
    auto got = f.Eval(fv);
    uint64_t want = 0;
    if (!z3::expr(out).substitute(from, to).simplify().is_numeral_u64(want)) return true;
    if (got && ((*got ^ want) & Mask(out_bits))) return false;
  }
  return true;
}

// The argument where `b` differs from `a` (same operator and arity): the one position whose
// arguments differ, or for a commutative operator (Z3 orders its arguments per term) the one
// argument of each not found among the other's. `ai`/`bi`: the positions; false if none or
// several differ.
bool OneDifferingArg(const z3::expr& a, const z3::expr& b, unsigned* ai, unsigned* bi) {
  int n = 0;
  if (!Commutative(a)) {
    for (unsigned i = 0; i < a.num_args(); ++i)
      if (!z3::eq(a.arg(i), b.arg(i))) *ai = *bi = i, ++n;
    return n == 1;
  }
  auto only = [&](const z3::expr& x, const z3::expr& y, unsigned* pos) {
    int m = 0;
    for (unsigned i = 0; i < x.num_args(); ++i) {
      bool found = false;
      for (unsigned j = 0; j < y.num_args() && !found; ++j) found = z3::eq(x.arg(i), y.arg(j));
      if (!found) *pos = i, ++m;
    }
    return m == 1;
  };
  return only(a, b, ai) && only(b, a, bi);
}

// The path to where the three outputs differ: down while they apply the same operator and
// differ in one argument only.
std::vector<unsigned> HolePath(std::vector<z3::expr>* o) {
  std::vector<unsigned> path;
  for (;;) {
    const z3::expr a = (*o)[0];
    if (!a.is_app() || a.num_args() == 0) return path;
    std::vector<unsigned> pos(o->size(), 0);
    for (size_t k = 1; k < o->size(); ++k) {
      const z3::expr& b = (*o)[k];
      if (!b.is_app() || b.num_args() != a.num_args() ||
          !Z3_is_eq_func_decl(a.ctx(), a.decl(), b.decl()))
        return path;
      unsigned ai = 0;
      if (!OneDifferingArg(a, b, &ai, &pos[k])) return path;
      if (k > 1 && ai != pos[0]) return path;
      pos[0] = ai;
    }
    path.push_back(pos[0]);
    for (size_t k = 0; k < o->size(); ++k) (*o)[k] = (*o)[k].arg(pos[k]);
  }
}

std::set<unsigned> SubtermIds(const z3::expr& root) {
  std::set<unsigned> ids;
  std::function<void(const z3::expr&)> walk = [&](const z3::expr& e) {
    if (!e.is_app() || !ids.insert(e.id()).second || ids.size() > 20000) return;
    for (unsigned i = 0; i < e.num_args(); ++i) walk(e.arg(i));
  };
  walk(root);
  return ids;
}

// The largest subterms of holes[0] that hold inputs and occur unchanged in every hole: the
// V-independent terms the constant's part of the code works on.
std::vector<z3::expr> CommonTerms(const std::vector<z3::expr>& holes) {
  std::vector<std::set<unsigned>> ids;
  for (size_t k = 1; k < holes.size(); ++k) ids.push_back(SubtermIds(holes[k]));
  std::vector<z3::expr> out;
  std::set<unsigned> seen;
  std::function<void(const z3::expr&)> walk = [&](const z3::expr& e) {
    if (!e.is_app() || !seen.insert(e.id()).second || FreeInputs(e).empty()) return;
    bool common = true;
    for (const auto& s : ids) common &= s.count(e.id()) > 0;
    if (common) {
      out.push_back(e);
      return;
    }
    for (unsigned i = 0; i < e.num_args(); ++i) walk(e.arg(i));
  };
  walk(holes[0]);
  return out;
}

// X >> log2(V) in every build, V a power of two: "X / V", what the compiler made of a
// division by V (FitOutput only tries divisions where the code multiplies or divides). The
// composed formula is proved per build, and the check at values that are never a power of two
// (analyze.cc) sees the division the compiler emits there.
bool PowerOfTwoShifts(const std::vector<z3::expr>& holes, const z3::expr& x,
                      const std::vector<int64_t>& vs) {
  for (size_t k = 0; k < holes.size(); ++k) {
    if (vs[k] <= 0 || (vs[k] & (vs[k] - 1))) return false;
    z3::expr want = z3::lshr(Zext64(x), Zext64(x).ctx().bv_val(__builtin_ctzll(vs[k]), 64));
    z3::solver s(x.ctx());
    s.add(Zext64(holes[k]) != want);
    if (s.check() != z3::unsat) return false;
  }
  return true;
}

// The hole's formula: FitOutput over the one common term T (abstracted as X), X then written
// as T's formula; or a formula in V alone when the hole holds no input.
absl::StatusOr<OutputFit> FitHole(z3::context& ctx, std::vector<z3::expr> holes,
                                  const std::vector<int64_t>& vs,
                                  const std::map<std::string, char>& names) {
  if (!holes[0].is_bv()) return absl::InvalidArgumentError("the differing part is a condition");
  const unsigned hw = Width(holes[0]);
  if (hw > 64) return absl::InvalidArgumentError("the differing part is wider than 64 bits");
  std::vector<z3::expr> terms = CommonTerms(holes);
  if (terms.size() == 1 && !terms[0].is_bv())
    return absl::InvalidArgumentError("the common term of the inputs is a condition");
  std::optional<z3::expr> x;
  std::string t_text;
  if (terms.size() > 1)
    return absl::InvalidArgumentError(
        absl::StrCat("the part that depends on the constant combines ", terms.size(),
                     " separate terms of the inputs (not V and one term of them)"));
  if (terms.size() == 1) {
    auto t = Translator(names).Go(terms[0]);
    if (!t) return absl::InvalidArgumentError("an input term uses an operation formulas lack");
    t_text = *t;
    x = ctx.bv_const("sie_multi_t", Width(terms[0]));
    z3::expr_vector from(ctx), to(ctx);
    from.push_back(terms[0]);
    to.push_back(*x);
    for (z3::expr& h : holes) {
      h = Zext64(h.substitute(from, to));
      if (FreeInputs(h).size() > 1 ||
          (!FreeInputs(h).empty() && !FreeInputs(h).count("sie_multi_t")))
        return absl::InvalidArgumentError("the differing part reads inputs outside one term");
    }
  } else {
    for (z3::expr& h : holes) {
      if (!FreeInputs(h).empty())
        return absl::InvalidArgumentError(
            "the part that depends on the constant holds no term of the inputs common to all "
            "builds");
      h = Zext64(h).simplify();
    }
  }
  auto fit = FitOutput(ctx, holes, x, vs, static_cast<int>(hw), false);
  if (!fit.ok() && x && PowerOfTwoShifts(holes, *x, vs))
    fit = OutputFit{"X / V", true, false, "", 1};
  if (!fit.ok()) return fit.status();
  if (fit->uses_x) {
    std::string f;
    for (char ch : fit->formula) f += ch == 'X' ? "(" + t_text + ")" : std::string(1, ch);
    fit->formula = f;
  }
  return fit;
}

// The outputs of one shape that differ only in numerals, each a function of V (FitOutput of
// V alone): the baseline's expression with those numerals written as their formulas, proved
// as a whole per build. Covers what HolePath cannot: the constant in several places (a clamp
// `min(x, V)` and its use), next to several inputs.
// A numeral that differs between the builds (one per build) as its formula in V alone, in
// parentheses; `mf`'s range narrows to where that formula holds.
absl::StatusOr<std::string> FitNumeral(z3::context& ctx, const std::vector<z3::expr>& nums,
                                       const std::vector<int64_t>& vs, MultiFit* mf) {
  std::vector<z3::expr> z;
  for (const z3::expr& n : nums) z.push_back(Zext64(n));
  auto fit = FitOutput(ctx, z, std::nullopt, vs, static_cast<int>(Width(nums[0])), false);
  if (!fit.ok())
    return absl::InvalidArgumentError(
        absl::StrCat("a numeral that differs between builds: ", fit.status().message()));
  mf->vmin = std::max(mf->vmin, fit->vmin);
  mf->vmax = std::min(mf->vmax, fit->vmax);
  return "(" + fit->formula + ")";
}

// `text` as the formula of `mf`, once it is short enough and proved against each build's output.
absl::StatusOr<MultiFit> Proved(z3::context& ctx, const std::string& text, MultiFit mf,
                                const std::vector<z3::expr>& o,
                                const std::map<std::string, char>& names,
                                const std::vector<int64_t>& vs, int out_bits) {
  if (text.size() > artifact::kMaxFormulaChars)
    return absl::InvalidArgumentError(
        absl::StrCat("the formula would exceed ", artifact::kMaxFormulaChars, " characters"));
  for (size_t k = 0; k < o.size(); ++k)
    if (!ProveFormulaAt(ctx, text, vs[k], o[k], names, out_bits)) {
      if (LogEnabled(LogLevel::kTrace)) Logf(LogLevel::kTrace, "unproved at V=%d: %s", vs[k], text);
      return absl::InvalidArgumentError(absl::StrCat("the formula does not hold at V=", vs[k]));
    }
  mf.formula = text;
  return mf;
}

// `o`: the outputs whose shape is read; `proof`: the builds' outputs the formula is proved
// against (o itself, or o before a rewrite such as LinearForm).
absl::StatusOr<MultiFit> FitByShape(z3::context& ctx, const std::vector<z3::expr>& o,
                                    const std::vector<z3::expr>& proof,
                                    const std::map<std::string, char>& names,
                                    const std::vector<int64_t>& vs, int out_bits) {
  MultiFit mf;
  int holes = 0;
  std::string why;
  Translator::Leaf leaf = [&](const std::vector<z3::expr>& nums) -> std::optional<std::string> {
    if (++holes > 8) {
      why = "the constant shows in more than 8 places";
      return std::nullopt;
    }
    auto fit = FitNumeral(ctx, nums, vs, &mf);
    if (!fit.ok()) {
      why = std::string(fit.status().message());
      return std::nullopt;
    }
    const unsigned w = Width(nums[0]);
    return w < 64 ? absl::StrFormat("(%s & 0x%x)", *fit, Mask(w)) : *fit;
  };
  auto text = Translator(names).GoMulti(o, leaf);
  if (!text)
    return absl::InvalidArgumentError(
        why.empty() ? "the builds' outputs differ in shape, not only in numerals" : why);
  if (holes == 0) return absl::InvalidArgumentError("no numeral depends on the constant");
  return Proved(ctx, *text, mf, proof, names, vs, out_bits);
}

}  // namespace

absl::StatusOr<MultiFit> FitBySymbolicImmediates(
    z3::context& ctx, const z3::expr& sym_out,
    const std::map<std::string, std::vector<z3::expr>>& imms, const std::vector<z3::expr>& outs,
    const std::map<std::string, char>& names, const std::vector<int64_t>& vs, int out_bits) {
  // Divisions by magic numbers first: each becomes a division by a new numeral, its divisor.
  z3::expr out = sym_out;
  auto nums = imms;
  std::vector<MagicDivision> magic;
  for (int i = 0; i < 4; ++i) {
    auto md = FindMagicDivision(ctx, out, nums, absl::StrCat("imm:div", i));
    if (!md) break;
    z3::expr_vector from(ctx), to(ctx);
    from.push_back(md->sub);
    to.push_back(md->replacement);
    out = out.substitute(from, to);
    if (!md->d.empty()) nums.emplace(md->d, md->divisors);
    magic.push_back(*std::move(md));
  }
  const auto used = InputConsts({out});
  MultiFit mf;
  std::map<std::string, std::string> texts;
  for (const auto& [name, ns] : nums) {
    if (!used.count(name)) continue;  // a magic pair's numerals, now its divisor
    auto fit = FitNumeral(ctx, ns, vs, &mf);
    if (!fit.ok() && LogEnabled(LogLevel::kTrace))
      Logf(LogLevel::kTrace, "symbolic numeral %s unfitted in %s", name, out.to_string());
    if (!fit.ok()) return fit.status();
    texts[name] = *fit;  // the translator masks it to the symbol's width
  }
  auto text = Translator(names, {}, "", texts).Go(out);
  if (!text || text->size() > artifact::kMaxFormulaChars)
    text = Translator(names, {}, "", texts).Shared(out);
  if (LogEnabled(LogLevel::kTrace))
    Logf(LogLevel::kTrace, "symbolic fit: %s -> %s", out.to_string(), text.value_or("-"));
  if (!text) return absl::InvalidArgumentError("an operation formulas lack");
  if (magic.empty()) return Proved(ctx, *text, mf, outs, names, vs, out_bits);
  // A division the code computes by a multiply-high: proving the formula against the build's
  // output would bit-blast both. Instead, per build: the symbolic output at its numerals is its
  // output (the same operations), the formula is the rewritten output at its numerals (the
  // same division), and the two differ by the magic divisions, exact by the integer bound
  // FindMagicDivision checked.
  if (text->size() > artifact::kMaxFormulaChars)
    return absl::InvalidArgumentError(
        absl::StrCat("the formula would exceed ", artifact::kMaxFormulaChars, " characters"));
  for (size_t k = 0; k < outs.size(); ++k) {
    const unsigned w = std::min(Width(sym_out), Width(outs[k]));
    const bool same = Valid(
        ctx, AtBuild(ctx, sym_out, nums, k).extract(w - 1, 0) == outs[k].extract(w - 1, 0), 20000);
    if (!same || !ProveFormulaAt(ctx, *text, vs[k], AtBuild(ctx, out, nums, k), names, out_bits))
      return absl::InvalidArgumentError(
          absl::StrCat("the formula with a division by the constant does not hold at V=", vs[k]));
  }
  mf.formula = *text;
  mf.magic_division = true;
  return mf;
}

std::optional<std::string> FormulaOfExpr(const z3::expr& e,
                                         const std::map<std::string, char>& names) {
  return Translator(names).Go(e);
}

std::optional<FormulaTerm> FormulaAt(z3::context& ctx, const std::string& formula, int64_t v,
                                     const std::map<char, z3::expr>& vars) {
  auto f = artifact::Formula::Parse(formula, absl::StrCat("VX", artifact::kExtraInputs));
  if (!f.ok()) return std::nullopt;
  std::map<char, z3::expr> wide;
  for (const auto& [name, e] : vars) wide.emplace(name, Zext64(e));
  std::map<int, Built> lets;
  Built b = Build(ctx, f->root(), v, wide, lets);
  return FormulaTerm{b.e, b.ok};
}

// The numerals a term divides by (unsigned division and remainder).
static std::vector<uint64_t> ConstantDivisors(const z3::expr& e) {
  std::set<uint64_t> ds;
  std::set<unsigned> seen;
  std::function<void(const z3::expr&)> walk = [&](const z3::expr& x) {
    if (!x.is_app() || !seen.insert(x.id()).second) return;
    switch (x.decl().decl_kind()) {
      case Z3_OP_BUDIV:
      case Z3_OP_BUDIV_I:
      case Z3_OP_BUREM:
      case Z3_OP_BUREM_I:
        if (uint64_t d = 0; x.arg(1).simplify().is_numeral_u64(d) && d >= 2) ds.insert(d);
        break;
      default:
        break;
    }
    for (unsigned i = 0; i < x.num_args(); ++i) walk(x.arg(i));
  };
  walk(e);
  return {ds.begin(), ds.end()};
}

bool ProveFormulaAt(z3::context& ctx, const std::string& formula, int64_t v, const z3::expr& out,
                    const std::map<std::string, char>& names, int out_bits) {
  auto f = artifact::Formula::Parse(formula, absl::StrCat("VX", artifact::kExtraInputs));
  if (!f.ok()) return false;
  auto consts = InputConsts({out});
  std::map<char, z3::expr> vars;
  for (const auto& [name, e] : consts) {
    auto it = names.find(name);
    if (it == names.end()) return false;
    vars.emplace(it->second, Zext64(e));
  }
  if (!SamplesAgree(ctx, *f, v, out, consts, names, out_bits)) return false;
  std::map<int, Built> lets;
  Built b = Build(ctx, f->root(), v, vars, lets);
  z3::expr o64 = Zext64(out);
  const z3::expr differ = b.ok && o64.extract(out_bits - 1, 0) != b.e.extract(out_bits - 1, 0);
  // Divisions of equal arguments first, by congruence: a divider bit-blasted per side (the
  // formula's 64-bit one, the code's 32-bit one) can exhaust the budget. With products too
  // (sdiv(a << V, b) squared), then without (the formula's 64-bit product of two 32-bit
  // inputs is the code's 32-bit one only for Z3's own rewriting).
  auto proved = [&](const z3::expr& abstracted_differ) {
    return UnsatWithin(ctx, abstracted_differ, 2000u);
  };
  bool divides = false, multiplies = false;
  const z3::expr with_products = DivisionsAbstracted(differ, &multiplies, true);
  const z3::expr divisions = DivisionsAbstracted(differ, &divides);
  if (multiplies && proved(with_products)) return true;
  if (divides) {
    if (proved(divisions)) return true;
    // The code divides by a multiply-high: written as its (proved) division first.
    bool magic = false;
    const z3::expr o2 = MagicQuotientsAsDivisions(ctx, o64, ConstantDivisors(b.e), &magic);
    if (magic && proved(DivisionsAbstracted(b.ok && o2.extract(out_bits - 1, 0) !=
                                                        b.e.extract(out_bits - 1, 0))))
      return true;
  }
  return UnsatWithin(ctx, differ, 20000u);
}

// The hole method: the builds descended together to the one place they differ, that place
// fitted as a function of V of one input term (FitHole).
static absl::StatusOr<MultiFit> FitAtHole(z3::context& ctx, const std::vector<z3::expr>& o,
                                          const std::map<std::string, char>& names,
                                          const std::vector<int64_t>& vs, int out_bits) {
  std::vector<z3::expr> holes = o;
  std::vector<unsigned> path = HolePath(&holes);
  auto hole = FitHole(ctx, holes, vs, names);
  if (!hole.ok()) return hole.status();
  const unsigned hw = Width(holes[0]);
  // The hole's formula is right on the hole's low bits (FitOutput fits at the write's width,
  // 32 or 64 bits): masked to its width, or to 32 bits, whichever the proof accepts.
  std::vector<std::string> texts;
  for (unsigned m : {hw, 32u})
    if (m <= hw)
      texts.push_back(m < 64 ? absl::StrFormat("((%s) & 0x%x)", hole->formula, Mask(m))
                             : "(" + hole->formula + ")");
  for (const std::string& h : texts) {
    auto text = Translator(names, path, h).Root(o[0]);
    if (!text)
      return absl::InvalidArgumentError(
          "the output uses an operation formulas lack (signed division, a wide product)");
    if (text->size() > artifact::kMaxFormulaChars)
      return absl::InvalidArgumentError(
          absl::StrCat("the formula would exceed ", artifact::kMaxFormulaChars, " characters"));
    bool proved = true;
    for (size_t k = 0; k < o.size() && proved; ++k)
      proved = ProveFormulaAt(ctx, *text, vs[k], o[k], names, out_bits);
    if (proved) return MultiFit{*text, hole->vmin, hole->vmax};
  }
  return absl::InvalidArgumentError(
      "no formula over the inputs could be proved for every input value in every build");
}

absl::StatusOr<MultiFit> FitEveryValue(z3::context& ctx, const std::vector<z3::expr>& outs,
                                       const std::map<std::string, char>& names,
                                       const std::vector<int64_t>& vs, int out_bits, int64_t lo,
                                       int64_t hi) {
  const std::set<int64_t> built(vs.begin(), vs.end());
  if (lo > hi || hi - lo >= static_cast<int64_t>(built.size()))
    return absl::InvalidArgumentError(
        absl::StrCat("the range [", lo, ", ", hi, "] holds values never built"));
  for (int64_t v = lo; v <= hi; ++v)
    if (!built.count(v))
      return absl::InvalidArgumentError(absl::StrCat("V=", v, " of the range was never built"));
  std::string text;
  for (size_t k = outs.size(); k-- > 0;) {
    auto t = Translator(names).Go(Zext64(outs[k]).simplify());
    if (!t) return absl::InvalidArgumentError("an output uses an operation formulas lack");
    text = text.empty() ? *t : absl::StrCat("(V == ", vs[k], ") ? ", *t, " : (", text, ")");
  }
  MultiFit mf;
  mf.vmin = lo;
  mf.vmax = hi;
  return Proved(ctx, text, mf, outs, names, vs, out_bits);
}

void AddAlternatives(MultiFit* fit, const MultiFit& other) {
  std::vector<std::string> texts = other.alternatives;
  texts.insert(texts.begin(), other.formula);
  for (const std::string& t : texts)
    if (t != fit->formula &&
        std::find(fit->alternatives.begin(), fit->alternatives.end(), t) == fit->alternatives.end())
      fit->alternatives.push_back(t);
  fit->vmin = std::max(fit->vmin, other.vmin);
  fit->vmax = std::min(fit->vmax, other.vmax);
}

absl::StatusOr<MultiFit> FitMultiInput(z3::context& ctx, const std::vector<z3::expr>& outs,
                                       const std::map<std::string, char>& names,
                                       const std::vector<int64_t>& vs, int out_bits) {
  // A term the methods do not expect (a condition where a value was) is their refusal, not
  // the function's: the other method, or the region's own refusal, still applies.
  auto guarded = [](auto&& method) -> absl::StatusOr<MultiFit> {
    try {
      return method();
    } catch (const z3::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("z3: ", e.msg()));
    }
  };
  std::vector<z3::expr> o;
  for (const z3::expr& e : outs) o.push_back(Zext64(e).simplify());
  auto hole = guarded([&] { return FitAtHole(ctx, o, names, vs, out_bits); });
  if (hole.ok()) return hole;
  // Unsimplified first: the same instructions give the same terms, where simplification
  // folds special values (V = 1, powers of two) into other shapes.
  std::vector<z3::expr> raw;
  for (const z3::expr& e : outs) raw.push_back(Zext64(e));
  auto shaped = guarded([&] { return FitByShape(ctx, raw, raw, names, vs, out_bits); });
  std::optional<absl::StatusOr<MultiFit>> on_o;  // the simplified outputs' fit, once tried
  if (!shaped.ok()) {
    on_o = guarded([&] { return FitByShape(ctx, o, o, names, vs, out_bits); });
    shaped = *on_o;
  }
  // Products by V the compiler wrote as shl, lea or imul per build, as one sum of products:
  // where the shapes above fit too, they may have read a shift count (8, 7, 9 at V=10, 5, 20
  // for V * 128 written as `lea; shl`) as its own formula of V; the checks choose. Outputs
  // the rewrite leaves as they are fit as above.
  std::vector<z3::expr> lin;
  auto linear = guarded([&]() -> absl::StatusOr<MultiFit> {
    bool rewritten = false;
    for (const z3::expr& e : o) {
      lin.push_back(LinearForm(e));
      rewritten |= !z3::eq(lin.back(), e);
    }
    if (!rewritten && on_o) return *on_o;
    return FitByShape(ctx, lin, o, names, vs, out_bits);
  });
  if (shaped.ok() && linear.ok()) AddAlternatives(&*shaped, *linear);
  if (!linear.ok() && LogEnabled(LogLevel::kTrace))
    for (size_t k = 0; k < lin.size(); ++k)
      Logf(LogLevel::kTrace, "linear form, V=%d (%s): %s", vs[k], linear.status().message(),
           lin[k].to_string());
  if (!shaped.ok() && linear.ok()) return linear;
  if (shaped.ok()) return shaped;
  if (LogEnabled(LogLevel::kTrace))
    for (size_t k = 0; k < outs.size(); ++k)
      Logf(LogLevel::kTrace, "multi-input fit, V=%d: %s", vs[k], Zext64(outs[k]).to_string());
  return absl::InvalidArgumentError(
      absl::StrCat(hole.status().message(), "; as one shape: ", shaped.status().message()));
}

}  // namespace sie::synth::analysis
