// Source edits that give a constant another value: rewriting a #define, or replacing an exact
// piece of text. Pure functions on file contents so they can be checked before anything is built.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "synth/spec/spec.h"
#include "synth/variants/config_if.h"

namespace sie::synth {

// The literal value text of '#define MACRO <value>' (e.g. "(16000U)"), or NotFound / an error
// when the macro is not defined exactly once as an object-like macro. With `config`, a macro
// defined several times under #if/#ifdef resolves to the one definition that configuration
// compiles (config_if.h); when that cannot be decided it stays an error.
absl::StatusOr<std::string> MacroValueText(absl::string_view text, absl::string_view macro,
                                           absl::string_view file,
                                           const KernelConfig* config = nullptr);

// The integer the macro's value evaluates to when it is a plain literal ("32", "(16000U)",
// "0x80"); nullopt-like error otherwise (an expression such as "(1 << 4)").
absl::StatusOr<int64_t> MacroLiteralValue(absl::string_view value_text);

// Rewrites the macro's value to `value`. A plain literal keeps its parentheses, radix and
// suffix ("(16000U)" -> "(32000U)") because changing "16000U" to "32000" would change the
// expression's type and with it the generated code. Any other body becomes "(value)".
absl::StatusOr<std::string> ApplyMacroEdit(absl::string_view text, absl::string_view macro,
                                           int64_t value, absl::string_view file,
                                           const KernelConfig* config = nullptr);

// Replaces the single occurrence of `match` by `replace` with {V} substituted.
absl::StatusOr<std::string> ApplyMatchEdit(absl::string_view text, absl::string_view match,
                                           absl::string_view replace, int64_t value,
                                           absl::string_view file);

// Applies the tunable's edit (macro or match) for `value`.
absl::StatusOr<std::string> ApplyTunableEdit(absl::string_view text, const TunableSpec& t,
                                             int64_t value, absl::string_view file,
                                             const KernelConfig* config = nullptr);

}  // namespace sie::synth
