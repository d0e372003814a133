// A content-keyed cache of compiled policy objects, so sie-run can skip clang (under QEMU TCG
// compiling a policy takes ~24 s; `sie-run --compile-only` fills the cache on the build host).
//
// An entry is <dir>/<key>/ holding policy.bpf.o, `deps` and `diagnostics` (clang's warnings,
// shown again on a hit). The key hashes what decides the object and is known before compiling:
//   the cache format, the clang binary (path, size, mtime), clang's flags (the per-run include
//   folder replaced by a placeholder), the policy's path and content, and the generated
//   per-constant headers (which encode the constants' const.json).
// `deps` lists every other file clang read (its -MD depfile: the SDK headers, vmlinux.h, libbpf's
// headers...) with a hash of the content; a hit needs each of them unchanged. Any change in any
// input is a miss, never a stale object.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sie::policy {

struct CacheKeyInputs {
  std::string clang;                  // path of the compiler
  std::vector<std::string> flags;     // clang's flags, without -c SOURCE -o OUT and colors
  std::filesystem::path source;       // the policy
  std::filesystem::path include_dir;  // the generated headers (hashed by content)
};

// The entry's name (hex). Fails when the source or a generated header cannot be read.
absl::StatusOr<std::string> PolicyCacheKey(const CacheKeyInputs& in);

struct CacheHit {
  std::filesystem::path object;  // inside the cache (read-only is fine)
  std::string diagnostics;       // clang's warnings when the entry was made
};

// The first entry for `key` in `dirs` (in order) whose recorded dependencies are unchanged.
std::optional<CacheHit> LookupPolicyObject(const std::vector<std::filesystem::path>& dirs,
                                           const std::string& key);

// Adds `object` under dir/key with the dependencies of `depfile` (clang -MD -MF), minus the
// source and the generated headers (both in the key). Returns the entry's object path.
absl::StatusOr<std::filesystem::path> StorePolicyObject(
    const std::filesystem::path& dir, const std::string& key, const std::filesystem::path& object,
    const std::filesystem::path& depfile, const CacheKeyInputs& in, const std::string& diagnostics);

// The files listed in a make-style depfile ("out.o: a.c b.h \\\n c.h"), in order.
std::vector<std::string> ParseDepfile(const std::string& text);

// Where sie-run looks, in order: $SIE_POLICY_CACHE, <consts_dir>/policy-cache (what
// `sie-run --compile-only` fills next to the constants, readable by the guest), and the
// runtime's own cache (stubgen::CacheDir()/policies).
std::vector<std::filesystem::path> PolicyCacheDirs(const std::filesystem::path& consts_dir);

}  // namespace sie::policy
