#include "synth/variants/config_if.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/files.h"

namespace sie::synth {
namespace {

using Value = std::optional<int64_t>;  // nullopt: unknown

bool IsIdentChar(char c) { return absl::ascii_isalnum(c) || c == '_'; }

// Tokens of an #if expression: identifiers, numbers and operators of one or two characters.
std::vector<std::string> Tokenize(absl::string_view e) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < e.size()) {
    char c = e[i];
    if (absl::ascii_isspace(c)) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    if (IsIdentChar(c)) {
      while (j < e.size() && IsIdentChar(e[j])) ++j;
    } else if (j < e.size()) {
      std::string two(e.substr(i, 2));
      for (const char* op : {"&&", "||", "==", "!=", "<=", ">=", "<<", ">>"})
        if (two == op) j = i + 2;
    }
    out.emplace_back(e.substr(i, j - i));
    i = j;
  }
  return out;
}

// A precedence-climbing evaluator over three-valued integers.
class Evaluator {
 public:
  Evaluator(std::vector<std::string> toks, const KernelConfig& cfg)
      : toks_(std::move(toks)), cfg_(cfg) {}

  Value Parse() {
    Value v = Ternary();
    if (pos_ != toks_.size()) return std::nullopt;  // trailing tokens: not understood
    return v;
  }

 private:
  const std::string& Peek() const {
    static const std::string kEnd;
    return pos_ < toks_.size() ? toks_[pos_] : kEnd;
  }
  bool Accept(absl::string_view t) {
    if (Peek() != t) return false;
    ++pos_;
    return true;
  }

  Value Ternary() {
    Value c = Binary(0);
    if (!Accept("?")) return c;
    Value a = Ternary();
    if (!Accept(":")) return std::nullopt;
    Value b = Ternary();
    if (!c) return a && b && *a == *b ? a : std::nullopt;
    return *c ? a : b;
  }

  static int Precedence(const std::string& op) {
    static const std::map<std::string, int> p = {
        {"||", 1}, {"&&", 2}, {"|", 3}, {"^", 4},  {"&", 5},  {"==", 6},
        {"!=", 6}, {"<", 7},  {">", 7}, {"<=", 7}, {">=", 7}, {"<<", 8},
        {">>", 8}, {"+", 9},  {"-", 9}, {"*", 10}, {"/", 10}, {"%", 10}};
    auto it = p.find(op);
    return it == p.end() ? -1 : it->second;
  }

  Value Binary(int min_prec) {
    Value lhs = Unary();
    for (;;) {
      std::string op = Peek();
      int prec = Precedence(op);
      if (prec < 0 || prec < min_prec) return lhs;
      ++pos_;
      Value rhs = Binary(prec + 1);
      lhs = Apply(op, lhs, rhs);
    }
  }

  // && and || are decided by one known side; every other operator needs both.
  static Value Apply(const std::string& op, Value a, Value b) {
    if (op == "&&") {
      if ((a && !*a) || (b && !*b)) return 0;
      return a && b ? Value(1) : std::nullopt;
    }
    if (op == "||") {
      if ((a && *a) || (b && *b)) return 1;
      return a && b ? Value(0) : std::nullopt;
    }
    if (!a || !b) return std::nullopt;
    int64_t x = *a, y = *b;
    if (op == "|") return x | y;
    if (op == "^") return x ^ y;
    if (op == "&") return x & y;
    if (op == "==") return x == y;
    if (op == "!=") return x != y;
    if (op == "<") return x < y;
    if (op == ">") return x > y;
    if (op == "<=") return x <= y;
    if (op == ">=") return x >= y;
    if (op == "<<") return y >= 0 && y < 63 ? Value(x << y) : std::nullopt;
    if (op == ">>") return y >= 0 && y < 63 ? Value(x >> y) : std::nullopt;
    if (op == "+") return x + y;
    if (op == "-") return x - y;
    if (op == "*") return x * y;
    if (op == "/") return y ? Value(x / y) : std::nullopt;
    if (op == "%") return y ? Value(x % y) : std::nullopt;
    return std::nullopt;
  }

  Value Unary() {
    if (Accept("!")) {
      Value v = Unary();
      return v ? Value(!*v) : std::nullopt;
    }
    if (Accept("-")) {
      Value v = Unary();
      return v ? Value(-*v) : std::nullopt;
    }
    if (Accept("~")) {
      Value v = Unary();
      return v ? Value(~*v) : std::nullopt;
    }
    if (Accept("(")) {
      Value v = Ternary();
      return Accept(")") ? v : std::nullopt;
    }
    return Primary();
  }

  // The argument of defined(X) / defined X / IS_ENABLED(X).
  std::string Argument(bool parens_required) {
    bool paren = Accept("(");
    if (parens_required && !paren) return "";
    std::string name = pos_ < toks_.size() ? toks_[pos_++] : "";
    if (paren && !Accept(")")) return "";
    return name;
  }

  bool Set(const std::string& sym) const { return cfg_.symbols.count(sym) > 0; }

  Value Primary() {
    if (pos_ >= toks_.size()) return std::nullopt;
    std::string t = toks_[pos_++];
    if (absl::ascii_isdigit(t[0])) return Number(t);
    if (t == "defined") {
      std::string name = Argument(false);
      if (!absl::StartsWith(name, "CONFIG_")) return std::nullopt;  // only autoconf is known
      return Set(name);
    }
    for (const char* fn : {"IS_ENABLED", "IS_BUILTIN", "IS_MODULE"}) {
      if (t != fn) continue;
      std::string name = Argument(true);
      if (!absl::StartsWith(name, "CONFIG_")) return std::nullopt;
      bool y = Set(name), m = Set(name + "_MODULE");
      return t == "IS_BUILTIN" ? y : t == "IS_MODULE" ? m : (y || m);
    }
    if (Peek() == "(") SkipParens();  // another function-like macro: unknown
    if (!absl::StartsWith(t, "CONFIG_")) return std::nullopt;
    auto it = cfg_.symbols.find(t);
    if (it == cfg_.symbols.end()) return 0;  // an unset option expands to nothing: 0 in #if
    return Number(it->second);
  }

  void SkipParens() {
    int depth = 0;
    do {
      if (Peek() == "(") ++depth;
      if (Peek() == ")") --depth;
      ++pos_;
    } while (depth > 0 && pos_ < toks_.size());
  }

  static Value Number(absl::string_view t) {
    while (!t.empty() && (t.back() == 'u' || t.back() == 'U' || t.back() == 'l' || t.back() == 'L'))
      t.remove_suffix(1);
    int64_t v = 0;
    if (absl::StartsWithIgnoreCase(t, "0x")) {
      uint64_t u = 0;
      if (!absl::SimpleHexAtoi(t.substr(2), &u)) return std::nullopt;
      return static_cast<int64_t>(u);
    }
    if (t.size() > 1 && t[0] == '0') return std::nullopt;  // octal: not worth guessing
    if (!absl::SimpleAtoi(t, &v)) return std::nullopt;
    return v;
  }

  std::vector<std::string> toks_;
  const KernelConfig& cfg_;
  size_t pos_ = 0;
};

LineState And(LineState a, LineState b) {
  if (a == LineState::kInactive || b == LineState::kInactive) return LineState::kInactive;
  if (a == LineState::kUnknown || b == LineState::kUnknown) return LineState::kUnknown;
  return LineState::kActive;
}
LineState Not(LineState a) {
  if (a == LineState::kUnknown) return a;
  return a == LineState::kActive ? LineState::kInactive : LineState::kActive;
}
LineState Or(LineState a, LineState b) { return Not(And(Not(a), Not(b))); }
LineState FromValue(Value v) {
  if (!v) return LineState::kUnknown;
  return *v ? LineState::kActive : LineState::kInactive;
}

// One open #if: whether its current branch is compiled and whether an earlier one was.
struct Frame {
  LineState branch;
  LineState taken;
};

// The directive of a (joined) line: "if", "elif", ... with its argument, or false.
bool Directive(absl::string_view line, std::string* name, std::string* arg) {
  absl::string_view l = absl::StripLeadingAsciiWhitespace(line);
  if (!absl::ConsumePrefix(&l, "#")) return false;
  l = absl::StripLeadingAsciiWhitespace(l);
  size_t n = 0;
  while (n < l.size() && IsIdentChar(l[n])) ++n;
  *name = std::string(l.substr(0, n));
  std::string rest(l.substr(n));
  // Comments on the directive line are not part of the condition.
  if (size_t c = rest.find("/*"); c != std::string::npos) rest.erase(c);
  if (size_t c = rest.find("//"); c != std::string::npos) rest.erase(c);
  *arg = std::string(absl::StripAsciiWhitespace(rest));
  return true;
}

// `#ifndef X` at line i opens an include guard when the next line is `#define X`: the file's
// content is compiled on its first inclusion (and when it is not, no edit of it matters).
bool IncludeGuard(const std::vector<absl::string_view>& lines, size_t i, const std::string& x) {
  std::string name, arg;
  return i + 1 < lines.size() && Directive(lines[i + 1], &name, &arg) && name == "define" &&
         arg == x;
}

}  // namespace

KernelConfig ParseAutoconf(absl::string_view text) {
  KernelConfig c;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::string name, arg;
    if (!Directive(line, &name, &arg) || name != "define") continue;
    std::vector<std::string> parts = absl::StrSplit(arg, absl::MaxSplits(' ', 1));
    if (parts.empty() || !absl::StartsWith(parts[0], "CONFIG_")) continue;
    c.symbols[parts[0]] = parts.size() > 1 ? parts[1] : "";
  }
  return c;
}

absl::StatusOr<KernelConfig> ReadAutoconf(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseAutoconf(*text);
}

std::optional<int64_t> EvalCondition(absl::string_view expr, const KernelConfig& config) {
  return Evaluator(Tokenize(expr), config).Parse();
}

std::vector<LineState> ActiveLines(absl::string_view text, const KernelConfig& config) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  std::vector<LineState> out(lines.size(), LineState::kActive);
  std::vector<Frame> stack;
  auto here = [&] {
    LineState s = LineState::kActive;
    for (const Frame& f : stack) s = And(s, f.branch);
    return s;
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    size_t first = i;
    std::string joined(lines[i]);
    while (!joined.empty() && joined.back() == '\\' && i + 1 < lines.size()) {
      joined.pop_back();
      absl::StrAppend(&joined, lines[++i]);
    }
    std::string name, arg;
    if (Directive(joined, &name, &arg)) {
      LineState c = LineState::kUnknown;
      if (name == "if" || name == "elif") c = FromValue(EvalCondition(arg, config));
      if (name == "ifdef" || name == "ifndef") {
        c = FromValue(EvalCondition(absl::StrCat("defined(", arg, ")"), config));
        if (name == "ifndef") c = IncludeGuard(lines, i, arg) ? LineState::kActive : Not(c);
      }
      if (name == "if" || name == "ifdef" || name == "ifndef") {
        stack.push_back({c, c});
      } else if (name == "elif" && !stack.empty()) {
        stack.back().branch = And(Not(stack.back().taken), c);
        stack.back().taken = Or(stack.back().taken, c);
      } else if (name == "else" && !stack.empty()) {
        stack.back().branch = Not(stack.back().taken);
        stack.back().taken = LineState::kActive;
      } else if (name == "endif" && !stack.empty()) {
        stack.pop_back();
      }
    }
    for (size_t k = first; k <= i; ++k) out[k] = here();
  }
  return out;
}

}  // namespace sie::synth
