#include "synth/discover/ctoken.h"

#include <set>

#include "absl/strings/ascii.h"

namespace sie::synth::discover {
namespace {

bool IdentStart(char c) { return absl::ascii_isalpha(c) || c == '_'; }
bool IdentChar(char c) { return absl::ascii_isalnum(c) || c == '_'; }

// Longest-first punctuators of C.
const char* const kPuncts[] = {"<<=", ">>=", "...", "->", "++", "--", "<<", ">>",
                               "<=",  ">=",  "==",  "!=", "&&", "||", "*=", "/=",
                               "%=",  "+=",  "-=",  "&=", "^=", "|=", "##"};

class Lexer {
 public:
  explicit Lexer(absl::string_view s) : s_(s) {}

  std::vector<Token> Run() {
    while (pos_ < s_.size()) Step();
    return std::move(out_);
  }

 private:
  char At(size_t i) const { return i < s_.size() ? s_[i] : '\0'; }

  // Skips a backslash-newline; true when one was skipped.
  bool Splice() {
    if (At(pos_) != '\\') return false;
    size_t j = pos_ + 1;
    if (At(j) == '\r') ++j;
    if (At(j) != '\n') return false;
    pos_ = j + 1;
    ++line_;
    return true;
  }

  void Step() {
    if (Splice()) return;
    char c = s_[pos_];
    if (c == '\n') {
      ++line_;
      ++pos_;
      directive_.clear();
      in_directive_ = false;
      at_line_start_ = true;
      return;
    }
    if (absl::ascii_isspace(c)) {
      ++pos_;
      return;
    }
    if (c == '/' && At(pos_ + 1) == '/') {
      while (pos_ < s_.size() && s_[pos_] != '\n')
        if (!Splice()) ++pos_;
      return;
    }
    if (c == '/' && At(pos_ + 1) == '*') {
      pos_ += 2;
      while (pos_ < s_.size() && !(s_[pos_] == '*' && At(pos_ + 1) == '/')) {
        if (s_[pos_] == '\n') ++line_;
        ++pos_;
      }
      pos_ += 2;
      return;
    }
    Lex(c);
  }

  void Lex(char c) {
    const bool line_start = at_line_start_;
    at_line_start_ = false;
    Token t;
    t.line = line_;
    size_t start = pos_;
    if (IdentStart(c)) {
      while (IdentChar(At(pos_))) ++pos_;
      t.kind = TokKind::kIdent;
    } else if (absl::ascii_isdigit(c) || (c == '.' && absl::ascii_isdigit(At(pos_ + 1)))) {
      while (IdentChar(At(pos_)) || At(pos_) == '.') ++pos_;
      t.kind = TokKind::kNumber;
    } else if (c == '"' || c == '\'') {
      Quoted(c);
      t.kind = c == '"' ? TokKind::kString : TokKind::kChar;
    } else {
      pos_ += PunctLength();
    }
    t.text = std::string(s_.substr(start, pos_ - start));
    if (line_start && t.text == "#") {
      in_directive_ = true;
      return;
    }
    if (in_directive_ && directive_.empty()) {
      directive_ = t.text;
      t.directive_start = true;
    }
    if (in_directive_) t.directive = directive_.empty() ? "#" : directive_;
    out_.push_back(std::move(t));
  }

  void Quoted(char q) {
    ++pos_;
    while (pos_ < s_.size() && s_[pos_] != q && s_[pos_] != '\n') {
      if (s_[pos_] == '\\') ++pos_;
      ++pos_;
    }
    ++pos_;
  }

  size_t PunctLength() const {
    for (const char* p : kPuncts) {
      absl::string_view v(p);
      if (s_.substr(pos_, v.size()) == v) return v.size();
    }
    return 1;
  }

  absl::string_view s_;
  size_t pos_ = 0;
  int line_ = 1;
  bool at_line_start_ = true;
  bool in_directive_ = false;
  std::string directive_;
  std::vector<Token> out_;
};

}  // namespace

std::vector<Token> Tokenize(absl::string_view src) { return Lexer(src).Run(); }

bool IsTypeWord(absl::string_view w) {
  static const std::set<std::string, std::less<>> k = {
      "int",    "long",     "short",  "char",    "unsigned", "signed",        "const", "volatile",
      "static", "struct",   "union",  "enum",    "void",     "bool",          "_Bool", "extern",
      "inline", "register", "u8",     "u16",     "u32",      "u64",           "s8",    "s16",
      "s32",    "s64",      "__u8",   "__u16",   "__u32",    "__u64",         "__s8",  "__s16",
      "__s32",  "__s64",    "size_t", "ssize_t", "atomic_t", "atomic_long_t", "typeof"};
  return k.count(w) > 0;
}

bool IsKeyword(absl::string_view w) {
  static const std::set<std::string, std::less<>> k = {
      "if",      "else",   "for",      "while", "do",     "switch", "case",       "default",
      "return",  "break",  "continue", "goto",  "sizeof", "typeof", "__typeof__", "_Alignof",
      "alignof", "struct", "union",    "enum",  "static", "const",  "volatile",   "extern"};
  return k.count(w) > 0 || IsTypeWord(w);
}

}  // namespace sie::synth::discover
