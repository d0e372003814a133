// Which files of the kernel tree `sie discover` reads: the files that define candidates (the
// path given: one file, or every .c/.h below a directory) and the files that may use them (the
// defining file, and for a header the .c/.h files that mention one of its names and include it,
// directly or through up to two other headers).
#pragma once
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sie::synth::discover {

// The .c and .h files `path` (relative to the tree, a file or a directory) stands for, sorted.
absl::StatusOr<std::vector<std::string>> TargetFiles(const std::filesystem::path& root,
                                                     const std::string& path);

// The .c/.h files of the tree that mention any of `names` as a word (grep -rlw).
absl::StatusOr<std::vector<std::string>> FilesMentioning(const std::filesystem::path& root,
                                                         const std::set<std::string>& names);

// The headers a file includes, resolved in the tree ("x.h" next to it, <x.h> under include/ and
// arch/x86/include/), memoized.
class IncludeGraph {
 public:
  explicit IncludeGraph(std::filesystem::path root) : root_(std::move(root)) {}
  const std::vector<std::string>& Direct(const std::string& file);
  // `user` is `header` or includes it within `depth` levels.
  bool Reaches(const std::string& user, const std::string& header, int depth = 3);

 private:
  std::filesystem::path root_;
  std::map<std::string, std::vector<std::string>> direct_;
};

// The include paths of `text`'s #include lines, as written ("net/tcp.h", quoted flag).
struct IncludeLine {
  std::string path;
  bool quoted = false;
};
std::vector<IncludeLine> IncludesOf(const std::string& text);

}  // namespace sie::synth::discover
