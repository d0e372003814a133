#include "common/artifact/formula.h"

#include <cctype>
#include <functional>
#include <map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/diag.h"

namespace sie::artifact {
namespace {

using Node = FormulaNode;
using Op = FormulaNode::Op;

// Recursive descent with C precedence: ?: | ^ & (== !=) (< <= > >=) (<< >>) (+ -) (* / %)
// unary.
class Parser {
 public:
  Parser(absl::string_view s, absl::string_view vars) : s_(s), vars_(vars) {}

  absl::StatusOr<std::unique_ptr<Node>> ParseAll() {
    auto n = Conditional();
    if (!n.ok()) return n;
    Skip();
    if (pos_ != s_.size()) return Error("unexpected character");
    return n;
  }

 private:
  // Binary operator levels, lowest precedence first.
  struct Level {
    std::vector<std::pair<const char*, Op>> ops;
  };
  static const std::vector<Level>& Levels() {
    static const auto* l = new std::vector<Level>{
        {{{"|", Op::kOr}}},
        {{{"^", Op::kXor}}},
        {{{"&", Op::kAnd}}},
        {{{"==", Op::kEq}, {"!=", Op::kNe}}},
        {{{"<=", Op::kLe}, {">=", Op::kGe}, {"<", Op::kLt}, {">", Op::kGt}}},
        {{{"<<", Op::kShl}, {">>", Op::kShr}}},
        {{{"+", Op::kAdd}, {"-", Op::kSub}}},
        {{{"*", Op::kMul}, {"/", Op::kDiv}, {"%", Op::kMod}}},
    };
    return *l;
  }

  absl::Status Error(absl::string_view what) const {
    return InvalidWithHint(
        absl::StrCat("invalid formula '", s_, "': ", what, " at position ", pos_ + 1),
        absl::StrCat("formulas use integer literals, the variables ", vars_,
                     ", + - * / % << >> & | ^ ~, < <= > >= == !=, c ? a : b, sdiv(a, b), "
                     "srem(a, b), sar(a, b), let t0 = a in b and parentheses"));
  }
  void Skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool Accept(absl::string_view tok) {
    Skip();
    if (s_.substr(pos_, tok.size()) != tok) return false;
    // No assignments ("<<=", "=="'s "="): a token followed by '=' is another token; "<" is not
    // the start of "<<".
    const char next = pos_ + tok.size() < s_.size() ? s_[pos_ + tok.size()] : '\0';
    if (next == '=' || (tok.size() == 1 && (tok[0] == '<' || tok[0] == '>') && next == tok[0]))
      return false;
    pos_ += tok.size();
    return true;
  }

  // c ? a : b (right-associative, lowest precedence).
  absl::StatusOr<std::unique_ptr<Node>> Conditional() {
    if (++depth_ > 64) return Error("nested too deeply");
    auto c = Binary(0);
    if (!c.ok() || !Accept("?")) {
      --depth_;
      return c;
    }
    auto a = Conditional();
    if (!a.ok()) return a;
    if (!Accept(":")) return Error("':' expected");
    auto b = Conditional();
    if (!b.ok()) return b;
    auto n = std::make_unique<Node>();
    n->op = Op::kCond;
    n->a = std::move(*c);
    n->b = std::move(*a);
    n->c = std::move(*b);
    --depth_;
    return n;
  }

  absl::StatusOr<std::unique_ptr<Node>> Binary(size_t level) {
    if (level == Levels().size()) return Unary();
    auto lhs = Binary(level + 1);
    if (!lhs.ok()) return lhs;
    for (;;) {
      bool matched = false;
      for (const auto& [tok, op] : Levels()[level].ops) {
        // "|" must not eat "||", "&" not "&&": those are not allowed at all.
        Skip();
        if (s_.substr(pos_, 2) == "||" || s_.substr(pos_, 2) == "&&")
          return Error("logical operators are not allowed");
        if (!Accept(tok)) continue;
        auto rhs = Binary(level + 1);
        if (!rhs.ok()) return rhs;
        auto n = std::make_unique<Node>();
        n->op = op;
        n->a = std::move(*lhs);
        n->b = std::move(*rhs);
        lhs = std::move(n);
        matched = true;
        break;
      }
      if (!matched) return lhs;
    }
  }

  absl::StatusOr<std::unique_ptr<Node>> Unary() {
    if (++depth_ > 64) return Error("nested too deeply");
    Skip();
    for (auto [tok, op] :
         {std::pair<const char*, Op>{"-", Op::kNeg}, {"~", Op::kNot}, {"+", Op::kPlus}}) {
      if (Accept(tok)) {
        auto inner = Unary();
        if (!inner.ok()) return inner;
        auto n = std::make_unique<Node>();
        n->op = op;
        n->a = std::move(*inner);
        --depth_;
        return n;
      }
    }
    auto p = Primary();
    --depth_;
    return p;
  }

  absl::StatusOr<std::unique_ptr<Node>> Primary() {
    Skip();
    if (pos_ >= s_.size()) return Error("expression expected");
    char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      auto n = Conditional();
      if (!n.ok()) return n;
      if (!Accept(")")) return Error("')' expected");
      return n;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return Literal();
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t start = pos_;
      while (pos_ < s_.size() &&
             (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
        ++pos_;
      absl::string_view id = s_.substr(start, pos_ - start);
      if (auto f = SignedOps().find(id); f != SignedOps().end()) return Call(f->second);
      if (id == "let") return Let();
      if (int slot = Bound(id); slot >= 0) {
        auto n = std::make_unique<Node>();
        n->op = Op::kRef;
        n->slot = slot;
        return n;
      }
      if (id.size() != 1 || vars_.find(id[0]) == absl::string_view::npos) {
        pos_ = start;
        return Error(absl::StrCat("unknown identifier '", id, "'"));
      }
      auto n = std::make_unique<Node>();
      n->op = Op::kVar;
      n->var = id[0];
      return n;
    }
    return Error("unexpected character");
  }

  // The signed operations, the only names besides the variables: sdiv(a, b) and the like.
  static const std::map<absl::string_view, Op>& SignedOps() {
    static const auto* m = new std::map<absl::string_view, Op>{
        {"sdiv", Op::kSDiv}, {"srem", Op::kSRem}, {"sar", Op::kSar}};
    return *m;
  }
  absl::StatusOr<std::unique_ptr<Node>> Call(Op op) {
    if (!Accept("(")) return Error("'(' expected after a signed operation's name");
    auto a = Conditional();
    if (!a.ok()) return a;
    if (!Accept(",")) return Error("',' expected between a signed operation's two arguments");
    auto b = Conditional();
    if (!b.ok()) return b;
    if (!Accept(")")) return Error("')' expected");
    auto n = std::make_unique<Node>();
    n->op = op;
    n->a = std::move(*a);
    n->b = std::move(*b);
    return n;
  }

  // The slot of a name `let` bound in scope ("t3" -> 3), else -1.
  int Bound(absl::string_view id) const {
    int n = -1;
    if (id.size() < 2 || id[0] != 't' || !absl::SimpleAtoi(id.substr(1), &n)) return -1;
    for (int s : scope_)
      if (s == n) return n;
    return -1;
  }
  // let tN = E in B: tN is in scope in B only, and bound once.
  absl::StatusOr<std::unique_ptr<Node>> Let() {
    Skip();
    const size_t start = pos_;
    while (pos_ < s_.size() && std::isalnum(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    absl::string_view name = s_.substr(start, pos_ - start);
    int slot = -1;
    if (name.size() < 2 || name[0] != 't' || !absl::SimpleAtoi(name.substr(1), &slot) || slot < 0 ||
        slot > 255)
      return Error("a let names t0 ... t255");
    for (int s : scope_)
      if (s == slot) return Error(absl::StrCat("t", slot, " is already bound"));
    if (!Accept("=")) return Error("'=' expected after the let's name");
    auto value = Conditional();
    if (!value.ok()) return value;
    Skip();
    if (s_.substr(pos_, 2) != "in" || pos_ + 2 >= s_.size() ||
        !std::isspace(static_cast<unsigned char>(s_[pos_ + 2])))
      return Error("'in' expected after the let's value");
    pos_ += 2;
    scope_.push_back(slot);
    auto body = Conditional();
    scope_.pop_back();
    if (!body.ok()) return body;
    auto n = std::make_unique<Node>();
    n->op = Op::kLet;
    n->slot = slot;
    n->a = std::move(*value);
    n->b = std::move(*body);
    return n;
  }

  absl::StatusOr<std::unique_ptr<Node>> Literal() {
    size_t start = pos_;
    int base = 10;
    if (s_.substr(pos_, 2) == "0x" || s_.substr(pos_, 2) == "0X") {
      base = 16;
      pos_ += 2;
    }
    uint64_t v = 0;
    size_t digits = 0;
    while (pos_ < s_.size() && std::isxdigit(static_cast<unsigned char>(s_[pos_]))) {
      char c = static_cast<char>(std::tolower(static_cast<unsigned char>(s_[pos_])));
      int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : c - 'a' + 10;
      if (d >= base) break;
      if (v > (UINT64_MAX - d) / base) {
        pos_ = start;
        return Error("integer literal does not fit 64 bits");
      }
      v = v * base + d;
      ++pos_;
      ++digits;
    }
    if (digits == 0) return Error("digits expected");
    // Integer suffixes (u, l, ul, ull) are accepted and ignored: everything is u64.
    while (pos_ < s_.size() &&
           (s_[pos_] == 'u' || s_[pos_] == 'U' || s_[pos_] == 'l' || s_[pos_] == 'L'))
      ++pos_;
    if (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
      return Error("malformed integer literal");
    auto n = std::make_unique<Node>();
    n->op = Op::kLit;
    n->lit = v;
    return n;
  }

  absl::string_view s_, vars_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::vector<int> scope_;  // slots bound by the enclosing lets
};

// The C operator of a comparison node.
const char* CompareOp(Op op) {
  switch (op) {
    case Op::kLt:
      return "<";
    case Op::kLe:
      return "<=";
    case Op::kGt:
      return ">";
    case Op::kGe:
      return ">=";
    case Op::kEq:
      return "==";
    default:
      return "!=";
  }
}

std::string Emit(const Node& n) {
  auto bin = [&](const char* op) {
    return absl::StrCat("(", Emit(*n.a), " ", op, " ", Emit(*n.b), ")");
  };
  auto call = [&](const char* f) {
    return absl::StrCat(f, "(", Emit(*n.a), ", ", Emit(*n.b), ", &bad)");
  };
  switch (n.op) {
    case Op::kLit:
      return absl::StrCat(n.lit, "ULL");
    case Op::kVar:
      return std::string(1, n.var);
    case Op::kNeg:
      return absl::StrCat("(-", Emit(*n.a), ")");
    case Op::kPlus:
      return Emit(*n.a);
    case Op::kNot:
      return absl::StrCat("(~", Emit(*n.a), ")");
    case Op::kAdd:
      return bin("+");
    case Op::kSub:
      return bin("-");
    case Op::kMul:
      return bin("*");
    case Op::kAnd:
      return bin("&");
    case Op::kOr:
      return bin("|");
    case Op::kXor:
      return bin("^");
    case Op::kDiv:
      return call("sie_div");
    case Op::kMod:
      return call("sie_mod");
    case Op::kShl:
      return call("sie_shl");
    case Op::kShr:
      return call("sie_shr");
    case Op::kLet:
      // A GNU statement expression: the value once, then the body that names it.
      return absl::StrCat("({ __u64 sie_t", n.slot, " = ", Emit(*n.a), "; ", Emit(*n.b), "; })");
    case Op::kRef:
      return absl::StrCat("sie_t", n.slot);
    case Op::kSDiv:
      return call("sie_sdiv");
    case Op::kSRem:
      return call("sie_srem");
    case Op::kSar:
      return call("sie_sar");
    case Op::kLt:
    case Op::kLe:
    case Op::kGt:
    case Op::kGe:
    case Op::kEq:
    case Op::kNe:
      return absl::StrCat("((__u64)", bin(CompareOp(n.op)), ")");
    case Op::kCond:
      return absl::StrCat("(", Emit(*n.a), " ? ", Emit(*n.b), " : ", Emit(*n.c), ")");
  }
  return "0";
}

uint64_t VarValue(char var, const FormulaVars& in) {
  switch (var) {
    case 'V':
      return in.v;
    case 'X':
      return in.x;
    case 'Y':
      return in.y;
    case 'Z':
      return in.z;
    case 'W':
      return in.w;
    default:
      return in.r;
  }
}

// s64 division on u64 bits, defined everywhere but b == 0: the magnitudes' quotient, negated
// when the signs differ (INT64_MIN / -1 wraps to INT64_MIN, where idiv would trap); the
// remainder takes a's sign. No signed overflow in C++.
uint64_t SignedDivide(uint64_t a, uint64_t b, bool rem) {
  const bool na = a >> 63, nb = b >> 63;
  const uint64_t ma = na ? 0 - a : a, mb = nb ? 0 - b : b;
  if (rem) return na ? 0 - ma % mb : ma % mb;
  return na != nb ? 0 - ma / mb : ma / mb;
}

uint64_t Sar(uint64_t a, uint64_t b) { return a >> 63 ? ~(~a >> b) : a >> b; }

// `env`: the values of the lets in scope, by slot.
std::optional<uint64_t> EvalNode(const Node& n, const FormulaVars& in,
                                 std::map<int, uint64_t>& env) {
  if (n.op == Op::kLit) return n.lit;
  if (n.op == Op::kVar) return VarValue(n.var, in);
  if (n.op == Op::kRef) return env.at(n.slot);
  auto a = EvalNode(*n.a, in, env);
  if (!a) return std::nullopt;
  if (n.op == Op::kCond) return EvalNode(*a ? *n.b : *n.c, in, env);  // the branch taken only
  if (n.op == Op::kLet) {
    env[n.slot] = *a;
    auto b = EvalNode(*n.b, in, env);
    env.erase(n.slot);
    return b;
  }
  switch (n.op) {
    case Op::kNeg:
      return 0 - *a;
    case Op::kPlus:
      return *a;
    case Op::kNot:
      return ~*a;
    default:
      break;
  }
  auto b = EvalNode(*n.b, in, env);
  if (!b) return std::nullopt;
  switch (n.op) {
    case Op::kAdd:
      return *a + *b;
    case Op::kSub:
      return *a - *b;
    case Op::kMul:
      return *a * *b;
    case Op::kAnd:
      return *a & *b;
    case Op::kOr:
      return *a | *b;
    case Op::kXor:
      return *a ^ *b;
    case Op::kDiv:
      return *b ? std::optional<uint64_t>(*a / *b) : std::nullopt;
    case Op::kMod:
      return *b ? std::optional<uint64_t>(*a % *b) : std::nullopt;
    case Op::kShl:
      return *b < 64 ? std::optional<uint64_t>(*a << *b) : std::nullopt;
    case Op::kShr:
      return *b < 64 ? std::optional<uint64_t>(*a >> *b) : std::nullopt;
    case Op::kSDiv:
    case Op::kSRem:
      return *b ? std::optional<uint64_t>(SignedDivide(*a, *b, n.op == Op::kSRem)) : std::nullopt;
    case Op::kSar:
      return *b < 64 ? std::optional<uint64_t>(Sar(*a, *b)) : std::nullopt;
    case Op::kLt:
      return *a < *b;
    case Op::kLe:
      return *a <= *b;
    case Op::kGt:
      return *a > *b;
    case Op::kGe:
      return *a >= *b;
    case Op::kEq:
      return *a == *b;
    case Op::kNe:
      return *a != *b;
    default:
      return std::nullopt;
  }
}

bool UsesNode(const Node& n, char var) {
  if (n.op == Op::kVar) return n.var == var;
  return (n.a && UsesNode(*n.a, var)) || (n.b && UsesNode(*n.b, var)) ||
         (n.c && UsesNode(*n.c, var));
}

}  // namespace

absl::StatusOr<Formula> Formula::Parse(absl::string_view text, absl::string_view vars) {
  if (text.size() > kMaxFormulaChars)
    return InvalidWithHint(absl::StrCat("formula longer than ", kMaxFormulaChars, " characters"),
                           "simplify the formula");
  Parser p(text, vars);
  auto root = p.ParseAll();
  if (!root.ok()) return root.status();
  Formula f;
  f.text_ = std::string(text);
  f.root_ = std::move(*root);
  return f;
}

std::string Formula::EmitC() const { return Emit(*root_); }

std::optional<uint64_t> Formula::Eval(uint64_t v, uint64_t x, uint64_t r) const {
  return Eval(FormulaVars{v, x, r});
}

std::optional<uint64_t> Formula::Eval(const FormulaVars& vars) const {
  std::map<int, uint64_t> env;
  return EvalNode(*root_, vars, env);
}

bool Formula::Uses(char var) const { return UsesNode(*root_, var); }

absl::StatusOr<uint64_t> EvalFormula(absl::string_view formula, int64_t v, uint64_t x,
                                     int width_bytes) {
  auto f = Formula::Parse(formula, "VX");
  if (!f.ok()) return f.status();
  return EvalFormula(formula, FormulaVars{static_cast<uint64_t>(v), x}, width_bytes);
}

absl::StatusOr<uint64_t> EvalFormula(absl::string_view formula, const FormulaVars& vars,
                                     int width_bytes) {
  auto f = Formula::Parse(formula, absl::StrCat("VX", kExtraInputs));
  if (!f.ok()) return f.status();
  auto r = f->Eval(vars);
  if (!r)
    return absl::InvalidArgumentError(
        absl::StrCat("formula '", formula, "' is undefined at V=", static_cast<int64_t>(vars.v),
                     ", X=", vars.x, f->Uses('Y') ? absl::StrCat(", Y=", vars.y) : "",
                     f->Uses('Z') ? absl::StrCat(", Z=", vars.z) : "",
                     f->Uses('W') ? absl::StrCat(", W=", vars.w) : "",
                     " (division by zero or a shift by >= 64)"));
  if (width_bytes >= 8) return *r;
  return *r & ((uint64_t{1} << (width_bytes * 8)) - 1);
}

}  // namespace sie::artifact
