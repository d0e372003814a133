#include "synth/analysis/formula.h"

#include <cctype>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace sie::synth::analysis {
namespace {

// Recursive descent over C precedence: | ^ & << >> + - * / % unary.
class Parser {
 public:
  Parser(std::string_view s, uint64_t v, uint64_t x) : s_(s), v_(v), x_(x) {}
  absl::StatusOr<uint64_t> Run() {
    uint64_t r = Or();
    Skip();
    if (err_.empty() && pos_ != s_.size()) err_ = "unexpected character";
    if (!err_.empty())
      return absl::InvalidArgumentError(
          absl::StrCat("formula '", std::string(s_), "': ", err_, " at column ", pos_ + 1));
    return r;
  }

 private:
  void Skip() {
    while (pos_ < s_.size() && isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool Eat(std::string_view tok) {
    Skip();
    if (s_.substr(pos_, tok.size()) != tok) return false;
    // Do not split "<<" into "<" or "|" out of "||".
    if (tok.size() == 1 && pos_ + 1 < s_.size() && (tok == "<" || tok == ">") &&
        s_[pos_ + 1] == tok[0])
      return false;
    pos_ += tok.size();
    return true;
  }
  uint64_t Or() {
    uint64_t l = Xor();
    while (Eat("|")) l |= Xor();
    return l;
  }
  uint64_t Xor() {
    uint64_t l = And();
    while (Eat("^")) l ^= And();
    return l;
  }
  uint64_t And() {
    uint64_t l = Shift();
    while (Eat("&")) l &= Shift();
    return l;
  }
  uint64_t Shift() {
    uint64_t l = Add();
    for (;;) {
      if (Eat("<<")) {
        uint64_t r = Add();
        l = r >= 64 ? 0 : l << r;
      } else if (Eat(">>")) {
        uint64_t r = Add();
        l = r >= 64 ? 0 : l >> r;
      } else {
        return l;
      }
    }
  }
  uint64_t Add() {
    uint64_t l = Mul();
    for (;;) {
      if (Eat("+"))
        l += Mul();
      else if (Eat("-"))
        l -= Mul();
      else
        return l;
    }
  }
  uint64_t Mul() {
    uint64_t l = Unary();
    for (;;) {
      if (Eat("*")) {
        l *= Unary();
      } else if (Eat("/") || Eat("%")) {
        bool div = s_[pos_ - 1] == '/';
        uint64_t r = Unary();
        if (r == 0) {
          if (err_.empty()) err_ = "division by zero";
          return 0;
        }
        l = div ? l / r : l % r;
      } else {
        return l;
      }
    }
  }
  uint64_t Unary() {
    if (Eat("-")) return -Unary();
    if (Eat("~")) return ~Unary();
    if (Eat("+")) return Unary();
    return Primary();
  }
  uint64_t Primary() {
    Skip();
    if (Eat("(")) {
      uint64_t r = Or();
      if (!Eat(")") && err_.empty()) err_ = "missing ')'";
      return r;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'V' || s_[pos_] == 'X')) {
      return s_[pos_++] == 'V' ? v_ : x_;
    }
    if (pos_ < s_.size() && isdigit(static_cast<unsigned char>(s_[pos_]))) {
      std::string num(s_.substr(pos_));
      char* end = nullptr;
      uint64_t r = strtoull(num.c_str(), &end, 0);
      pos_ += end - num.c_str();
      while (pos_ < s_.size() &&
             (s_[pos_] == 'u' || s_[pos_] == 'U' || s_[pos_] == 'l' || s_[pos_] == 'L'))
        ++pos_;
      return r;
    }
    if (err_.empty()) err_ = "expected a number, V, X or '('";
    return 0;
  }

  std::string_view s_;
  size_t pos_ = 0;
  uint64_t v_, x_;
  std::string err_;
};

}  // namespace

absl::StatusOr<uint64_t> EvalFormula(std::string_view formula, int64_t v, uint64_t x,
                                     int width_bytes) {
  Parser p(formula, static_cast<uint64_t>(v), x);
  auto r = p.Run();
  if (!r.ok()) return r.status();
  if (width_bytes >= 8) return *r;
  return *r & ((uint64_t{1} << (width_bytes * 8)) - 1);
}

bool FormulaUsesX(std::string_view f) { return f.find('X') != std::string_view::npos; }

}  // namespace sie::synth::analysis
