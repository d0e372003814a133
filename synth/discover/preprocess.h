// The compiler's own view of a file's macros: the object's kbuild command (the saved one, or the
// nearest saved command of the tree adapted to this source) run as `gcc -E -dD`, whose line
// markers say in which file each active #define sits. Exact for #if branches on HZ, CONFIG_
// symbols and other macros, which the text-level fallback (config_if.h) cannot decide.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::synth::discover {

struct CppDefine {
  std::string name;
  std::string body;
  std::string file;  // relative to the tree
  int line = 0;
  bool function_like = false;
};

// The defines in effect at the end of `gcc -E -dD` output (#undef honoured). Paths in line
// markers are made relative to `root`.
std::vector<CppDefine> ParseDashDD(absl::string_view out, const std::filesystem::path& root);

// A saved kbuild compile command rewritten to preprocess `source` (relative to the tree) with
// -E -dD to stdout: dependency, output and module-name options dropped, the source's directory
// added to the include path.
std::string PreprocessCommand(absl::string_view saved_command, const std::string& source);

// The saved command of `source`'s object, else of the nearest object in its directory or a
// parent directory (or, failing that, of a few core directories). NotFound when none exists.
absl::StatusOr<std::string> KbuildCommandNear(const std::filesystem::path& root,
                                              const std::string& source);

// Runs the preprocessor on `source` in the tree `root`.
absl::StatusOr<std::vector<CppDefine>> PreprocessDefines(const std::filesystem::path& root,
                                                         const std::string& source);

}  // namespace sie::synth::discover
