// The formula language of const.json, with its one implementation (parser, evaluator, C
// emitter) used by synth's derivation, the stub generator, the native engine and the tests.
// Formulas ("V", "X * V", "(V << 3) + X", ...) are pasted into generated BPF C, so they are
// parsed and validated first: only integer literals, the variables a span may use
// (V the policy value, X the instruction's input, R the saved register at the probe, Y Z W a
// span's further inputs, read at the probe: CriticalSpan::inputs), the
// operators + - * / % << >> & | ^ ~ (unary - and + too), the comparisons < <= > >= == != (1 or
// 0), the conditional c ? a : b (the code's cmov/setcc: min, max, clamps), the signed
// operations sdiv(a, b), srem(a, b) and sar(a, b) (idiv and sar: a and b read as s64) and
// parentheses, and `let tN = E in B` (N a number: B may use tN for E's value, evaluated once,
// before B; synth shares a subterm the code computes once and uses several times).
// Anything else (a function call, a cast, `;`) is refused, so a const.json can never inject
// code into a stub. Semantics are those of u64 arithmetic in C (wrapping), / % >> and the
// comparisons unsigned, the conditional evaluates only the branch taken; / % by zero and
// shifts by >= 64 are undefined: an evaluation error here, a rejected hit in the stub
// (bpf/include/sie/stub.bpf.h sie_shl & co.), never a made-up value. The result written at a
// span is truncated to the span's width.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::artifact {

struct FormulaNode {
  enum class Op {
    kLit,
    kVar,
    kNeg,
    kPlus,
    kNot,
    kAdd,
    kSub,
    kMul,
    kDiv,
    kMod,
    kShl,
    kShr,
    kAnd,
    kOr,
    kXor,
    kLt,  // unsigned comparisons: 1 or 0
    kLe,
    kGt,
    kGe,
    kEq,
    kNe,
    kCond,  // a ? b : c
    kSDiv,  // sdiv(a, b): a / b of s64 values, truncated toward zero (idiv)
    kSRem,  // srem(a, b): the remainder of sdiv, with a's sign
    kSar,   // sar(a, b): a >> b of an s64 value, sign bits shifted in
    kLet,   // let t<slot> = a in b
    kRef    // t<slot>
  };
  Op op = Op::kLit;
  uint64_t lit = 0;
  char var = 0;   // 'V', 'X', 'R' or a further input 'Y', 'Z', 'W'
  int slot = -1;  // kLet, kRef: the bound name's number (t3: 3)
  std::unique_ptr<FormulaNode> a, b, c;
};

// The longest formula text accepted: a span over several inputs with the constant in several
// places (a division, two products shifted back) takes a few hundred characters per use.
inline constexpr size_t kMaxFormulaChars = 4096;

// The names of a span's inputs besides X, in the order synth assigns them.
inline constexpr absl::string_view kExtraInputs = "YZW";

// The variables' values for Formula::Eval.
struct FormulaVars {
  uint64_t v = 0, x = 0, r = 0, y = 0, z = 0, w = 0;
};

class Formula {
 public:
  // `vars`: the variables allowed ("VX", "VXR", "R"). Errors are InvalidArgument with a hint
  // naming the offending character position.
  static absl::StatusOr<Formula> Parse(absl::string_view text, absl::string_view vars = "VX");

  // Fully parenthesized BPF C: V, X, R stay as identifiers (the caller declares them as __u64),
  // / % << >> become sie_div/sie_mod/sie_shl/sie_shr(a, b, &bad) (bpf/include/sie/stub.bpf.h).
  std::string EmitC() const;
  // Evaluates with the given variables; nullopt on division by zero or an oversized shift.
  std::optional<uint64_t> Eval(uint64_t v, uint64_t x = 0, uint64_t r = 0) const;
  std::optional<uint64_t> Eval(const FormulaVars& vars) const;
  bool Uses(char var) const;
  const std::string& text() const { return text_; }
  const FormulaNode& root() const { return *root_; }  // the parsed tree (synth's proofs)

 private:
  std::string text_;
  std::shared_ptr<FormulaNode> root_;
};

// Parses `formula` (variables V and X) and evaluates it, truncated to `width_bytes`: what the
// runtime writes at a span of that width. Errors: a parse error, or an undefined operation.
absl::StatusOr<uint64_t> EvalFormula(absl::string_view formula, int64_t v, uint64_t x = 0,
                                     int width_bytes = 8);
// The same over V, X and the further inputs Y, Z, W.
absl::StatusOr<uint64_t> EvalFormula(absl::string_view formula, const FormulaVars& vars,
                                     int width_bytes = 8);

}  // namespace sie::artifact
