// A C-aware tokenizer for `sie discover`: comments removed, string and character literals kept
// whole (so a name inside a string is never a use), backslash-newlines joined, and every token of
// a preprocessor directive marked with the directive's name ("define", "if", ...).
#pragma once
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace sie::synth::discover {

enum class TokKind { kIdent, kNumber, kPunct, kString, kChar };

struct Token {
  TokKind kind = TokKind::kPunct;
  std::string text;
  int line = 0;           // 1-based physical line where the token starts
  std::string directive;  // "" outside a directive; else its name ("define", "if", "include")
  bool directive_start = false;  // the directive's name token (the one after '#')
};

std::vector<Token> Tokenize(absl::string_view src);

// C keywords that start or qualify a type (for declaration heuristics).
bool IsTypeWord(absl::string_view w);
// Any C keyword (if, for, return, sizeof, ...).
bool IsKeyword(absl::string_view w);

}  // namespace sie::synth::discover
