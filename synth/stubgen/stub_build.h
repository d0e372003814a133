// From a constant to a loadable BPF object: generate the stub source (synth/stubgen), compile it
// with clang -target bpf against the guest kernel's vmlinux.h, cache the object by the hash of
// everything that goes into it, and optionally link a policy object over the weak decision hook
// (libbpf's static linker).
#pragma once
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "synth/stubgen/const_reader.h"
#include "synth/stubgen/stubgen.h"

namespace sie::stubgen {

struct StubObject {
  std::filesystem::path object;  // the .bpf.o to open
  bool compiled_now = false;     // false: taken from a cache
  uint64_t hash = 0;
};

// Where compiled objects are cached when DIR/<id>/ has none: $SIE_CACHE_DIR, else
// /run/sie/cache (root), else $TMPDIR/sie-cache.
std::filesystem::path CacheDir();

// Compiles (or finds) the object of `e`. A precompiled DIR/<id>/stub-<hash>.bpf.o is used when
// its hash matches; `into_const_dir` writes the compiled object there (for `sie consts --build`).
absl::StatusOr<StubObject> BuildStub(const ConstEntry& e, bool into_const_dir = false,
                                     const std::string& extra_cflags = "");

// Statically links `objects` into `out` (bpf_linker__new/add_file/finalize). A strong
// definition of sie_decide_<name> in a policy object replaces the stub's __weak default.
absl::Status LinkObjects(const std::vector<std::filesystem::path>& objects,
                         const std::filesystem::path& out);

}  // namespace sie::stubgen
