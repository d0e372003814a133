#include "synth/discover/uses.h"

#include <optional>

namespace sie::synth::discover {
namespace {

enum class Ctx {
  kFunction,   // a function body or a block inside one
  kAggregate,  // struct/union body
  kEnum,       // enum body
  kInit,       // brace initializer
  kLoop,       // ( of for/while
  kControl,    // ( of if/switch
  kCompile,    // ( of sizeof, BUILD_BUG_ON, __aligned, ...
  kMinMax,     // ( of min/max/clamp
  kCall,       // ( of another call
  kParen,      // grouping or cast
  kDecl,       // [ of a declaration
  kIndex,      // [ of a subscript or designator
};

struct Frame {
  Ctx ctx;
  std::string name;  // the function's name for kFunction at the outermost level
};

bool In(const std::string& s, std::initializer_list<const char*> set) {
  for (const char* x : set)
    if (s == x) return true;
  return false;
}

bool IsCompare(const std::string& s) { return In(s, {"<", ">", "<=", ">=", "==", "!="}); }
bool IsBitwise(const std::string& s) { return In(s, {"&", "|", "^", "~", "&=", "|=", "^="}); }
bool IsShift(const std::string& s) { return In(s, {"<<", ">>", "<<=", ">>="}); }
bool IsArith(const std::string& s) {
  return In(s, {"+", "-", "*", "/", "%", "+=", "-=", "*=", "/=", "%=", "?", ":"});
}

Ctx ParenCtx(const Token* prev) {
  if (!prev || prev->kind != TokKind::kIdent) return Ctx::kParen;
  const std::string& w = prev->text;
  if (In(w, {"for", "while"})) return Ctx::kLoop;
  if (In(w, {"if", "switch"})) return Ctx::kControl;
  if (In(w, {"sizeof",           "BUILD_BUG_ON",   "BUILD_BUG_ON_MSG", "BUILD_BUG_ON_ZERO",
             "static_assert",    "_Static_assert", "__aligned",        "aligned",
             "ARRAY_SIZE",       "DECLARE_BITMAP", "__attribute__",    "typeof",
             "__typeof__",       "alignof",        "_Alignof",         "DECLARE_HASHTABLE",
             "DEFINE_HASHTABLE", "BITS_TO_LONGS",  "offsetof",         "__section",
             "__stringify",      "BITS_PER_TYPE",  "DECLARE_KFIFO",    "DEFINE_PER_CPU",
             "DECLARE_PER_CPU"}))
    return Ctx::kCompile;
  if (In(w, {"min", "max", "min_t", "max_t", "clamp", "clamp_t", "clamp_val", "umin", "umax",
             "min3", "max3", "min_not_zero"}))
    return Ctx::kMinMax;
  return IsKeyword(w) ? Ctx::kParen : Ctx::kCall;
}

class Walker {
 public:
  Walker(const std::vector<Token>& toks, const std::set<std::string>& names) : names_(names) {
    for (const Token& t : toks)
      if (t.directive.empty()) code_.push_back(&t);
    Directives(toks);
  }

  std::vector<Use> Run() {
    for (size_t i = 0; i < code_.size(); ++i) {
      const Token& t = *code_[i];
      if (t.kind == TokKind::kIdent && names_.count(t.text)) Classify(i);
      Track(i);
    }
    return std::move(out_);
  }

 private:
  const Token* At(size_t i) const { return i < code_.size() ? code_[i] : nullptr; }
  const std::string& Text(size_t i) const {
    static const std::string kNone;
    return i < code_.size() ? code_[i]->text : kNone;
  }

  // #define bodies and #if conditions.
  void Directives(const std::vector<Token>& toks) {
    std::string via;
    for (size_t i = 0; i < toks.size(); ++i) {
      const Token& t = toks[i];
      if (t.directive.empty()) continue;
      if (t.directive_start) {
        via = t.directive == "define" && i + 1 < toks.size() ? toks[i + 1].text : "";
        continue;
      }
      if (t.kind != TokKind::kIdent || !names_.count(t.text)) continue;
      if (t.directive == "define" && toks[i - 1].directive_start) continue;  // the name defined
      if (t.directive == "define")
        out_.push_back({t.text, UseKind::kMacroBody, t.line, "", via});
      else if (t.directive == "if" || t.directive == "elif")
        out_.push_back({t.text, UseKind::kCompileTime, t.line, "", ""});
    }
  }

  // Brackets, the enclosing function, the pending function name at the top level.
  void Track(size_t i) {
    const std::string& s = Text(i);
    const Token* prev = i ? At(i - 1) : nullptr;
    if (stack_.empty() && code_[i]->kind == TokKind::kIdent && Text(i + 1) == "(") pending_fn_ = s;
    if (s == "(") stack_.push_back({ParenCtx(prev), ""});
    if (s == "[") stack_.push_back({BracketCtx(i), ""});
    if (s == "{") stack_.push_back(BraceFrame(i));
    if ((s == ")" || s == "]" || s == "}") && !stack_.empty()) {
      if (s == "]") last_bracket_ = stack_.back().ctx;
      stack_.pop_back();
    }
  }

  Frame BraceFrame(size_t i) const {
    const std::string& p = i ? Text(i - 1) : "";
    const std::string& pp = i > 1 ? Text(i - 2) : "";
    if (p == "=" || (!stack_.empty() &&
                     InCtx(stack_.back().ctx, {Ctx::kInit, Ctx::kParen, Ctx::kCall, Ctx::kMinMax})))
      return {Ctx::kInit, ""};
    if (p == "enum" || pp == "enum") return {Ctx::kEnum, ""};
    if (In(p, {"struct", "union"}) || In(pp, {"struct", "union"})) return {Ctx::kAggregate, ""};
    if (InFunction()) return {Ctx::kFunction, ""};
    if (stack_.empty() && p == ")") return {Ctx::kFunction, pending_fn_};
    return {Ctx::kInit, ""};
  }

  static bool InCtx(Ctx c, std::initializer_list<Ctx> set) {
    for (Ctx x : set)
      if (c == x) return true;
    return false;
  }

  // `[` after "TYPE name" (or inside a struct) declares a size; otherwise it subscripts.
  Ctx BracketCtx(size_t i) const {
    if (!stack_.empty() && stack_.back().ctx == Ctx::kAggregate) return Ctx::kDecl;
    if (!stack_.empty() && stack_.back().ctx == Ctx::kInit) return Ctx::kIndex;
    if (i && Text(i - 1) == "]") return last_bracket_;
    if (i < 2 || At(i - 1)->kind != TokKind::kIdent) return Ctx::kIndex;
    const Token* before = At(i - 2);
    bool decl = (before->kind == TokKind::kIdent &&
                 (IsTypeWord(before->text) || !IsKeyword(before->text))) ||
                before->text == "*";
    if (!InFunction() && stack_.empty()) decl = true;
    return decl ? Ctx::kDecl : Ctx::kIndex;
  }

  bool InFunction() const {
    for (const Frame& f : stack_)
      if (f.ctx == Ctx::kFunction) return true;
    return false;
  }
  std::string FunctionName() const {
    for (const Frame& f : stack_)
      if (f.ctx == Ctx::kFunction) return f.name;
    return "";
  }
  bool OnStack(Ctx c) const {
    for (const Frame& f : stack_)
      if (f.ctx == c) return true;
    return false;
  }
  std::optional<Ctx> InnermostBracket() const {
    for (auto it = stack_.rbegin(); it != stack_.rend(); ++it) {
      if (it->ctx == Ctx::kDecl || it->ctx == Ctx::kIndex) return it->ctx;
      if (it->ctx == Ctx::kFunction) break;
    }
    return std::nullopt;
  }

  // Walks back over a cast "(type *)" right before position i; returns the index before it.
  size_t SkipCast(size_t i) const {
    if (i == 0 || Text(i - 1) != ")") return i;
    size_t j = i - 1;
    while (j > 0 && Text(j) != "(") {
      --j;
      const Token& t = *code_[j];
      if (t.text == "(") break;
      if (t.text != "*" &&
          !(t.kind == TokKind::kIdent && (IsTypeWord(t.text) || EndsWithT(t.text))))
        return i;
    }
    return j;
  }
  static bool EndsWithT(const std::string& s) {
    return s.size() > 2 && s.compare(s.size() - 2, 2, "_t") == 0;
  }

  // After a function-like macro's name: the token after its argument list.
  size_t AfterCall(size_t i) const {
    if (Text(i + 1) != "(") return i + 1;
    int depth = 0;
    size_t j = i + 1;
    for (; j < code_.size(); ++j) {
      if (Text(j) == "(") ++depth;
      if (Text(j) == ")" && --depth == 0) break;
    }
    return j + 1;
  }

  // The statement around i at its own level begins with `case`.
  bool IsCaseLabel(size_t i) const {
    int depth = 0;
    for (size_t j = i; j-- > 0;) {
      const std::string& s = Text(j);
      if (s == ")" || s == "]") ++depth;
      if (s == "(" || s == "[") {
        if (depth == 0) return false;
        --depth;
      }
      if (depth) continue;
      if (s == "case") return true;
      if (In(s, {";", "{", "}", ":", "?", "="})) return false;
    }
    return false;
  }

  // A member declaration "type name : N" in a struct body.
  bool IsBitField(size_t i) const {
    for (size_t j = i; j-- > 0;) {
      const std::string& s = Text(j);
      if (s == ":") return true;
      if (In(s, {";", "{", "}", ",", "(", "["})) return false;
    }
    return false;
  }

  void Classify(size_t i) {
    const std::string& p = i ? Text(SkipCast(i) - 1) : "";
    if (p == "." || p == "->") return;  // a member with the same name
    size_t after = AfterCall(i);
    const std::string& n = Text(after);
    out_.push_back({code_[i]->text, Kind(i, p, n), code_[i]->line, FunctionName(), ""});
  }

  UseKind Kind(size_t i, const std::string& p, const std::string& n) const {
    if (OnStack(Ctx::kCompile)) return UseKind::kCompileTime;
    if (auto b = InnermostBracket())
      return *b == Ctx::kDecl ? UseKind::kArraySize : UseKind::kIndex;
    if (IsCaseLabel(i)) return UseKind::kCaseLabel;
    if (!InFunction()) {
      if (!stack_.empty() && stack_.back().ctx == Ctx::kAggregate && IsBitField(i))
        return UseKind::kBitField;
      return UseKind::kInitializer;
    }
    if (OnStack(Ctx::kInit)) return UseKind::kInitializer;
    const std::string& pp = i >= 2 ? Text(SkipCast(i) - 2) : "";
    if (p == "&" && (IsCompare(pp) || In(pp, {"(", ",", "=", "return"}) || IsArith(pp)))
      return UseKind::kAddress;
    if (IsCompare(p) || IsCompare(n))
      return OnStack(Ctx::kLoop) ? UseKind::kLoopBound : UseKind::kCompare;
    if (IsBitwise(p) || IsBitwise(n)) return UseKind::kBitwise;
    if (IsShift(p) || IsShift(n)) return UseKind::kShift;
    if (IsArith(p) || IsArith(n)) return UseKind::kArith;
    if (!stack_.empty() && stack_.back().ctx == Ctx::kMinMax) return UseKind::kCompare;
    if (!stack_.empty() && stack_.back().ctx == Ctx::kCall && In(p, {"(", ","}) &&
        In(n, {")", ","}))
      return UseKind::kCallArg;
    if (p == "=") return UseKind::kAssign;
    if (p == "return") return UseKind::kReturn;
    return UseKind::kOther;
  }

  const std::set<std::string>& names_;
  std::vector<const Token*> code_;
  std::vector<Frame> stack_;
  std::string pending_fn_;
  Ctx last_bracket_ = Ctx::kIndex;
  std::vector<Use> out_;
};

}  // namespace

const char* UseKindName(UseKind k) {
  switch (k) {
    case UseKind::kCompare:
      return "compare";
    case UseKind::kLoopBound:
      return "loop-bound";
    case UseKind::kArith:
      return "arith";
    case UseKind::kShift:
      return "shift";
    case UseKind::kCallArg:
      return "call-arg";
    case UseKind::kAssign:
      return "assign";
    case UseKind::kReturn:
      return "return";
    case UseKind::kOther:
      return "expr";
    case UseKind::kArraySize:
      return "array-size";
    case UseKind::kIndex:
      return "index";
    case UseKind::kBitField:
      return "bit-field";
    case UseKind::kCaseLabel:
      return "case-label";
    case UseKind::kBitwise:
      return "bitwise";
    case UseKind::kAddress:
      return "address";
    case UseKind::kInitializer:
      return "initializer";
    case UseKind::kCompileTime:
      return "compile-time";
    case UseKind::kMacroBody:
      return "macro-body";
  }
  return "?";
}

bool IsExecuted(UseKind k) { return k <= UseKind::kOther; }

bool IsDisqualifying(UseKind k) {
  return k == UseKind::kArraySize || k == UseKind::kIndex || k == UseKind::kBitField ||
         k == UseKind::kCaseLabel || k == UseKind::kAddress;
}

std::vector<Use> ClassifyUses(const std::vector<Token>& toks, const std::set<std::string>& names) {
  return Walker(toks, names).Run();
}

}  // namespace sie::synth::discover
