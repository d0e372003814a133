// Which lines of a source file the target kernel's configuration compiles: the file's
// #if/#ifdef/#elif/#else/#endif evaluated against the CONFIG_ symbols of the tree's
// include/generated/autoconf.h. Used to pick the one active definition of a macro that is
// defined in several branches (`#ifdef CONFIG_X` / `#define N 1` / `#else` / `#define N 2`).
//
// Never guesses: a condition that depends on anything but CONFIG_ symbols and literals
// (another macro, `defined(MODULE)`, sizeof tricks) is unknown, and so is every line under it.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::synth {

// The CONFIG_ symbols defined by autoconf.h with their value text ("1", "8192", "\"x\"").
// A symbol not in the map is known to be undefined (autoconf.h defines every set option).
struct KernelConfig {
  std::map<std::string, std::string> symbols;
};

// Parses autoconf.h ("#define CONFIG_X 1" lines).
KernelConfig ParseAutoconf(absl::string_view text);
absl::StatusOr<KernelConfig> ReadAutoconf(const std::string& path);

enum class LineState { kInactive, kActive, kUnknown };

// One state per line of `text` (1-based line i is element i-1). Directive lines themselves
// carry the state of the region they are in.
std::vector<LineState> ActiveLines(absl::string_view text, const KernelConfig& config);

// The value of a preprocessor #if expression under `config`; nullopt when it depends on
// something other than CONFIG_ symbols and literals. Exposed for tests.
std::optional<int64_t> EvalCondition(absl::string_view expr, const KernelConfig& config);

}  // namespace sie::synth
