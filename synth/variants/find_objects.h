// Which objects a tunable affects when the spec does not say (`objects:` missing): the .c files
// that mention the macro, plus those including a header that uses it, kept when they are built
// in this configuration. Good enough to warn about and to build; the user can pin `objects:`.
#pragma once
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "synth/spec/spec.h"

namespace sie::synth {

struct ObjectSearch {
  std::vector<std::string> objects;  // sorted .o paths relative to root
  std::vector<std::string> skipped;  // candidate .c files not built in this config
};

// The files under `root` (relative, sorted as grep lists them) `grep -rl ARGS .` names, with
// `stdin_data` as its input (`-f -` patterns); no match is an empty list, not an error.
absl::StatusOr<std::vector<std::string>> GrepFiles(const std::filesystem::path& root,
                                                   const std::vector<std::string>& args,
                                                   const std::string& stdin_data = "");

// Searches `root` for objects affected by tunable `t`. `built_sources`, when given, is the set
// of .c paths (relative to root) compiled into the target; other candidates are skipped.
absl::StatusOr<ObjectSearch> FindAffectedObjects(const std::filesystem::path& root,
                                                 const TunableSpec& t,
                                                 const std::set<std::string>* built_sources);

// The source files (relative paths, as DW_AT_name of each compile unit) of a binary with DWARF,
// e.g. the -dbg vmlinux. Cached in `cache_file` (one path per line) when given.
absl::StatusOr<std::set<std::string>> CompileUnitSources(const std::filesystem::path& binary,
                                                         const std::filesystem::path& cache_file);

}  // namespace sie::synth
