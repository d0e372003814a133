// V1 objects cached across tunables and runs. V1 is the shipped value, so the V1 build of an
// object is the pristine kernel object: the same for every tunable that uses the object and for
// every run, as long as nothing that goes into the compile changes. The key hashes all of that
// by content: the kbuild command, every file of the object's kbuild dependency list (the .cmd
// file's deps_ lines: the source and each header it included), the .config, and the identity of
// the compiler and objtool. Entries are whole files renamed into place (concurrent `sie synth`
// runs are safe); the oldest go once there are more than kMaxEntries.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sie::synth {

inline constexpr size_t kObjectCacheMaxEntries = 400;

// The key of the pristine build of `object` in `tree` (compiled by `savedcmd`, post-processed
// by `objtool`). Fails when the object's .cmd file has no dependency list.
absl::StatusOr<std::string> PristineObjectKey(const std::filesystem::path& tree,
                                              const std::string& object,
                                              const std::string& savedcmd,
                                              const std::filesystem::path& objtool);

// Copies the entry `key` of `cache` to `dest`; false when there is none.
bool FetchCachedObject(const std::filesystem::path& cache, const std::string& key,
                       const std::filesystem::path& dest);

// Stores `object` as entry `key` (atomically), then drops the oldest entries over the bound.
absl::Status StoreCachedObject(const std::filesystem::path& cache, const std::string& key,
                               const std::filesystem::path& object);

// Dependency files of a kbuild .cmd file's `deps_<object> :=` list (relative to the tree),
// without the $(wildcard ...) config markers. Exposed for tests.
std::vector<std::string> KbuildDeps(const std::string& cmd_text);

}  // namespace sie::synth
