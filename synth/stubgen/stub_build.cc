#include "synth/stubgen/stub_build.h"

#include <unistd.h>

#include <cstdlib>

#include <bpf/libbpf.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "runtime/base/diag.h"
#include "runtime/base/files.h"
#include "runtime/base/process.h"

#ifndef SIE_SOURCE_DIR
#error "SIE_SOURCE_DIR must be defined by the build"
#endif

namespace sie::stubgen {
namespace fs = std::filesystem;

namespace {

// Headers that every stub includes: a change in any of them must invalidate cached objects.
const char* const kStubHeaders[] = {"bpf/include/sie/stub.bpf.h", "bpf/include/sie/kfuncs.bpf.h",
                                    "kmod/include/sie/kfuncs.h",
                                    "bpf/include/sie/consistency.bpf.h",
                                    "kmod/include/sie/consistency.h"};

std::string Clang() {
#ifdef SIE_BPF_CLANG
  if (fs::exists(SIE_BPF_CLANG)) return SIE_BPF_CLANG;
#endif
  return "clang";
}

}  // namespace

fs::path CacheDir() {
  if (const char* d = getenv("SIE_CACHE_DIR"); d && *d) return d;
  if (geteuid() == 0) return "/run/sie/cache";
  const char* t = getenv("TMPDIR");
  return fs::path(t && *t ? t : "/tmp") / "sie-cache";
}

absl::StatusOr<StubObject> BuildStub(const ConstEntry& e, bool into_const_dir,
                                     const std::string& extra_cflags) {
  auto files = GenerateStub(e.c);
  if (!files.ok()) return files.status();
  std::string key = files->source + files->header + extra_cflags + SIE_VMLINUX_H_DIR;
  for (const char* h : kStubHeaders) {
    auto t = ReadFile(fs::path(SIE_SOURCE_DIR) / h);
    if (!t.ok()) return WithContext(t.status(), "stub headers");
    key += *t;
  }
  StubObject so;
  so.hash = Fnv1a64(key);
  const std::string stem = absl::StrCat("stub-", Hex64(so.hash), ".bpf.o");
  fs::path const_dir = e.path.parent_path();
  fs::path cache = CacheDir() / LowerIdent(e.c.name);
  for (const fs::path& p : {const_dir / stem, cache / stem})
    if (fs::exists(p)) {
      so.object = p;
      return so;
    }
  std::error_code ec;
  fs::path out_dir = into_const_dir ? const_dir : cache;
  fs::create_directories(out_dir, ec);
  auto tmp = TempDir::Create(out_dir, ".stub-");
  if (!tmp.ok())
    return FailedWithHint(absl::StrCat("cannot write the stub object in ", out_dir.string()),
                          "set SIE_CACHE_DIR to a writable directory");
  if (auto st = WriteFileAtomic(tmp->path() / "stub.bpf.c", files->source); !st.ok()) return st;
  if (auto st = WriteFileAtomic(tmp->path() / files->header_name, files->header); !st.ok())
    return st;
  fs::path obj = tmp->path() / stem;
  std::vector<std::string> argv = {Clang(), "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86",
                                   "-Wall", "-Wno-unused-function", "-Wno-unused-variable",
                                   absl::StrCat("-I", SIE_VMLINUX_H_DIR),
                                   absl::StrCat("-I", SIE_SOURCE_DIR, "/bpf/include"),
                                   absl::StrCat("-I", SIE_SOURCE_DIR, "/kmod/include"),
                                   "-I" + tmp->path().string(),
                                   "-idirafter", "/usr/include/x86_64-linux-gnu"};
  for (absl::string_view f : absl::StrSplit(extra_cflags, ' ', absl::SkipEmpty()))
    argv.emplace_back(f);
  argv.insert(argv.end(), {"-c", (tmp->path() / "stub.bpf.c").string(), "-o", obj.string()});
  auto r = Run(argv);
  if (!r.ok()) return r.status();
  if (!r->ok())
    return FailedWithHint(absl::StrCat("compiling the stub of ", e.c.name, " failed (",
                                       r->Describe(), "):\n", r->err),
                          "the const.json may hold a span the stub generator cannot express");
  fs::rename(obj, out_dir / stem, ec);
  if (ec) return absl::InternalError(absl::StrCat("rename ", obj.string(), ": ", ec.message()));
  so.object = out_dir / stem;
  so.compiled_now = true;
  return so;
}

absl::Status LinkObjects(const std::vector<fs::path>& objects, const fs::path& out) {
  LIBBPF_OPTS(bpf_linker_opts, opts);
  std::unique_ptr<bpf_linker, void (*)(bpf_linker*)> linker(bpf_linker__new(out.c_str(), &opts),
                                                           bpf_linker__free);
  if (!linker)
    return absl::InternalError(absl::StrCat("bpf_linker__new(", out.string(), ") failed"));
  for (const auto& o : objects)
    if (int err = bpf_linker__add_file(linker.get(), o.c_str(), nullptr); err)
      return InvalidWithHint(absl::StrCat("linking ", o.string(), " failed (", err, ")"),
                             "a policy must define sie_decide_<name> with the stub's signature "
                             "(see DIR/<id>/<name>.h) and be compiled with -g");
  if (int err = bpf_linker__finalize(linker.get()); err)
    return absl::InternalError(absl::StrCat("bpf_linker__finalize failed (", err, ")"));
  return absl::OkStatus();
}

}  // namespace sie::stubgen
