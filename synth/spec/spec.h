// The tunable spec (`sie synth SPEC.yaml`): which constants to make tunable, where they are
// defined, which three values to compile them with and what range a policy may set.
//
// Parsing never throws: yaml-cpp exceptions are caught here and every error names
// "FILE:LINE: what" plus a hint saying how to fix the spec.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::synth {

// What is compiled, and so what binary the spans are mapped onto.
enum class TargetKind {
  kKernel,   // objects of the guest kernel (vmlinux); neither `build` nor `module` given
  kModule,   // an out-of-tree module built with kbuild (`module: DIR`); target is its .ko
  kGeneric,  // any C project compiled with `build.command` ({src} {obj} placeholders)
};
const char* TargetKindName(TargetKind k);

struct SafeSpanSpec {
  std::string function;
  uint64_t start = 0;
  uint64_t end = 0;
  int line = 0;
};

struct TunableSpec {
  std::string name;
  std::string description;
  // Relative to the build root: the kernel tree, the module directory or source_dir.
  std::string file;
  // Exactly one of macro / match is set.
  std::string macro;                   // rewrite the value of '#define MACRO <v>'
  std::string match;                   // replace this exact text ...
  std::string replace;                 // ... with this one, where {V} is the value
  std::vector<std::string> objects;    // .o paths relative to the build root; may be empty
  std::vector<std::string> functions;  // optional scope: only spans in these functions
  std::vector<int64_t> values;         // V1 (shipped), V2, V3: distinct
  int64_t range_min = 0;
  int64_t range_max = 0;
  std::vector<SafeSpanSpec> safe_spans;  // manual override of the safe-span analysis
  int line = 0;                          // 1-based line of the entry (for later messages)
  int file_line = 0;                     // line of `file:` (edit errors point there)

  bool is_header() const;  // file ends in .h
};

struct Spec {
  std::filesystem::path path;      // the spec file as given (for messages)
  std::filesystem::path spec_dir;  // its directory: relative paths in the spec start here
  bool has_source_dir = false;
  std::filesystem::path source_dir;  // absolute; spec_dir when not given
  std::string build_command;         // kGeneric
  std::string module_dir;            // kModule, relative to source_dir
  // kModule, optional (`module_ko:`, relative to the spec file or absolute): the .ko the guest
  // really loads (e.g. the one CMake builds); the spans are mapped onto it. Its existence is
  // checked when synthesizing, not when parsing.
  std::filesystem::path module_ko;
  TargetKind kind = TargetKind::kKernel;
  std::vector<TunableSpec> tunables;

  // "SPEC:LINE" for messages.
  std::string Where(int line) const;
};

// Parses YAML text; `display_path` names the file in messages and fixes spec_dir.
absl::StatusOr<Spec> ParseSpecText(absl::string_view text,
                                   const std::filesystem::path& display_path);
absl::StatusOr<Spec> ParseSpecFile(const std::filesystem::path& path);

}  // namespace sie::synth
