// The formulas of const.json ("V", "X * V", "(V << 3) + X", ...) are pasted into generated BPF C,
// so they are parsed and validated first: only integer literals, the variables a span may use
// (V the policy value, X the instruction's input, R the saved register at the probe), the
// operators + - * / % << >> & | ^ ~ (unary - and + too) and parentheses. Anything else (a
// function call, a cast, `;`) is refused, so a const.json can never inject code into a stub.
// Semantics are those of u64 arithmetic in C (wrapping); / % by zero and shifts by >= 64 are
// errors at evaluation time (the stub rejects such a hit rather than writing a made-up value).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::stubgen {

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
    kXor
  };
  Op op = Op::kLit;
  uint64_t lit = 0;
  char var = 0;  // 'V', 'X' or 'R'
  std::unique_ptr<FormulaNode> a, b;
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
  bool Uses(char var) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::shared_ptr<FormulaNode> root_;
};

}  // namespace sie::stubgen
