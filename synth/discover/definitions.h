// The candidate constants a file defines: object-like integer macros (the definition the
// kernel's configuration compiles) and `static const` integer variables at file scope, each
// with its shipped value, and the reason it is ruled out by its definition alone (uapi, a flag
// or mask, not an integer).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "synth/discover/ctoken.h"
#include "synth/variants/config_if.h"

namespace sie::synth::discover {

enum class DefKind { kMacro, kStaticConst };

struct Definition {
  std::string name;
  DefKind kind = DefKind::kMacro;
  std::string file;  // relative to the kernel tree
  int line = 0;
  std::string body;       // the macro's body, or the static const's initializer text
  std::string type;       // static const: the declared type ("int", "unsigned long")
  std::string decl;       // static const: the whole declaration line (the spec's `match:`)
  bool from_cpp = false;  // the compiler's preprocessor (gcc -E -dD) saw it active
  std::optional<int64_t> value;
  std::string excluded;  // why it is not a candidate ("" when it is)
};

// Object-like macro bodies by name: what evaluation expands names with.
using MacroTable = std::map<std::string, std::string>;

// Definitions in one file's text (`file` relative to the tree). Macros under #if branches the
// configuration rules out are dropped (config_if.h); when the same macro is defined in several
// branches that cannot be decided, the first is kept.
std::vector<Definition> DefinitionsInText(const std::vector<Token>& toks, absl::string_view text,
                                          const std::string& file, const KernelConfig& config);

// The integer value of an expression, names expanded through `macros` (object-like only),
// CONFIG_ symbols from `config`, casts to integer types dropped; nullopt when not a constant
// integer expression.
std::optional<int64_t> EvaluateExpr(absl::string_view expr, const MacroTable& macros,
                                    const KernelConfig& config);

// Fills value and excluded from the definition itself.
void Judge(Definition* d, const MacroTable& macros, const KernelConfig& config);

}  // namespace sie::synth::discover
