// How a name is used in C code, from its tokens: the context each occurrence sits in decides
// whether it is executed arithmetic a live knob can change (a comparison, a loop bound, an
// operand, a call argument) or something that must never change at runtime (an array or struct
// size, a bit-field width, a case label, a flag tested with & or |).
#pragma once
#include <set>
#include <string>
#include <vector>

#include "synth/discover/ctoken.h"

namespace sie::synth::discover {

enum class UseKind {
  // executed code
  kCompare,    // next to <, >, ==, ... or an argument of min/max/clamp
  kLoopBound,  // a comparison in the condition of for/while
  kArith,      // + - * / % and their assignments, ternary arms
  kShift,      // << >> (a shift count or shifted value)
  kCallArg,    // a whole argument of a function call
  kAssign,     // right-hand side of '='
  kReturn,     // return N
  kOther,      // any other executed expression
  // never a live knob
  kArraySize,  // [N] in a declaration
  kIndex,      // a[N]: a position in an array
  kBitField,   // unsigned x : N
  kCaseLabel,  // case N:
  kBitwise,    // & | ^ ~ operand: a flag or a mask
  kAddress,    // &name: the object's address escapes
  // neutral: not executed here
  kInitializer,  // a static or global initializer, an enum value
  kCompileTime,  // #if, sizeof, BUILD_BUG_ON, static_assert
  kMacroBody,    // inside another #define (its uses count through it)
};

const char* UseKindName(UseKind k);
bool IsExecuted(UseKind k);
// Kinds that rule the constant out as a live knob.
bool IsDisqualifying(UseKind k);

struct Use {
  std::string name;
  UseKind kind = UseKind::kOther;
  int line = 0;
  std::string function;  // enclosing function, "" outside one
  std::string via;       // kMacroBody: the macro whose body uses it; else the macro it
                         // reaches the code through ("" when direct)
  std::string file;      // set by the caller
};

// Every occurrence of a name in `names` among `toks`, classified.
std::vector<Use> ClassifyUses(const std::vector<Token>& toks, const std::set<std::string>& names);

}  // namespace sie::synth::discover
