// From a constant to a loadable BPF object: generate the stub source (synth/stubgen), compile it
// with clang -target bpf against the guest kernel's vmlinux.h, cache the object by the hash of
// everything that goes into it, and optionally link a policy object over the weak decision hook
// (libbpf's static linker). `sie synth` also writes the object's libbpf skeleton and a typed C++
// view over it next to const.json (WriteArtifacts); the runtime only needs the object.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/artifact/consts_dir.h"
#include "common/stubgen/stubgen.h"

namespace sie::stubgen {

struct StubObject {
  std::filesystem::path object;  // the .bpf.o to open
  bool compiled_now = false;     // false: taken from a cache
  std::string hash;              // ContentHash of everything that goes into the object
};

// Where BPF code is compiled from: the source tree (bpf/, kmod/, sdk/ include folders) and the
// build's vmlinux.h, or <prefix>/share/sie when installed (InstalledDataDir). Stubs and policies
// both use it.
struct HeaderDirs {
  std::filesystem::path root;     // holds bpf/include, kmod/include, sdk/include
  std::filesystem::path vmlinux;  // holds vmlinux.h
};
HeaderDirs FindHeaderDirs();

// Where compiled objects are cached when DIR/<id>/ has none: $SIE_CACHE_DIR, else
// /run/sie/cache (root), else $TMPDIR/sie-cache.
std::filesystem::path CacheDir();

// Compiles (or finds) the object of `e`. A precompiled DIR/<id>/stub-<hash>.bpf.o is used when
// its hash matches; `into_const_dir` writes the compiled object there (for `sie consts --build`).
absl::StatusOr<StubObject> BuildStub(const artifact::ConstEntry& e, bool into_const_dir = false,
                                     const std::string& extra_cflags = "");

// The suffix of constant `id`'s names when its stub is one of a policy's (SIE_SUFFIX, "_<id>").
std::string StubSuffix(int id);

// The stubs of all constants of one policy as ONE object: one translation unit includes each
// stub's source under its own suffix (bpf/include/sie/stub.bpf.h, "Names"). Cached by content:
// found in any of `lookup`, else compiled into `store` (default CacheDir()/policy-stubs), e.g.
// ahead on the host (sie-run --compile-only) for a guest under TCG.
absl::StatusOr<StubObject> BuildStubs(const std::vector<artifact::ConstEntry>& entries,
                                      const std::string& extra_cflags = "",
                                      const std::vector<std::filesystem::path>& lookup = {},
                                      const std::filesystem::path& store = "");

// Statically links `objects` into `out` (bpf_linker__new/add_file/finalize). A strong
// definition of sie_decide_<name> in a policy object replaces the stub's __weak default.
absl::Status LinkObjects(const std::vector<std::filesystem::path>& objects,
                         const std::filesystem::path& out);

// `bpftool gen skeleton OBJECT name NAME` into `out` (atomically, only when the text changed).
absl::Status GenerateSkeleton(const std::filesystem::path& object, const std::string& name,
                              const std::filesystem::path& out);

struct ArtifactOptions {
  bool compile = true;       // false: sources only (no object, skeleton or C++ view)
  std::string extra_cflags;  // e.g. "-DSIE_NO_KFUNCS" (host tests); changes the object's hash
  std::function<void(const std::string&)> progress;  // "compiling stub of X" lines
};

struct Artifacts {
  std::filesystem::path object;    // DIR/<id>/stub-<hash>.bpf.o (the runtime's cache name)
  std::filesystem::path skeleton;  // DIR/<id>/<lname>.skel.h
  std::filesystem::path view;      // DIR/<id>/<lname>.hpp
  bool compiled_now = false;
};

// Everything of one constant next to its const.json (e.path): stub.bpf.c, <lname>.h and, unless
// !opts.compile, the compiled object, its skeleton and the typed C++ view (stubgen/cpp_view.h).
// Objects of an older hash in the same directory are removed. All files are deterministic.
absl::StatusOr<Artifacts> WriteArtifacts(const artifact::ConstEntry& e,
                                         const ArtifactOptions& opts);

// The same for the const.json in `const_dir`, read back as written: the stub is then exactly
// the one the runtime generates from that file (synth's output stage).
absl::Status EmitArtifacts(const std::filesystem::path& const_dir, const ArtifactOptions& opts);

}  // namespace sie::stubgen
