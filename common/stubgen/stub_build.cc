#include "common/stubgen/stub_build.h"

#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/artifact/const_json.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/hash.h"
#include "common/base/process.h"
#include "common/stubgen/cpp_view.h"

#ifndef SIE_SOURCE_DIR
#error "SIE_SOURCE_DIR must be defined by the build"
#endif

namespace sie::stubgen {
namespace fs = std::filesystem;

namespace {

// Headers that every stub includes: a change in any of them must invalidate cached objects.
const char* const kStubHeaders[] = {
    "bpf/include/sie/stub.bpf.h",        "bpf/include/sie/abi.h",
    "bpf/include/sie/kfuncs.bpf.h",      "kmod/include/sie/kfuncs.h",
    "bpf/include/sie/consistency.bpf.h", "kmod/include/sie/consistency.h"};

// Bumped when the compile recipe below changes in a way that changes the object's bytes.
constexpr char kRecipe[] = "recipe 2: -fdebug-prefix-map";

std::string Clang() {
#ifdef SIE_BPF_CLANG
  if (fs::exists(SIE_BPF_CLANG)) return SIE_BPF_CLANG;
#endif
  return "clang";
}

std::string Bpftool() {
#ifdef SIE_BPFTOOL
  if (fs::exists(SIE_BPFTOOL)) return SIE_BPFTOOL;
#endif
  return "bpftool";
}

// Writes `text` to `p` unless it already holds exactly that (keeps mtimes of unchanged files).
absl::Status WriteIfChanged(const fs::path& p, const std::string& text) {
  auto old = ReadFile(p);
  if (old.ok() && *old == text) return absl::OkStatus();
  return WriteFileAtomic(p, text);
}

}  // namespace

HeaderDirs FindHeaderDirs() {
  if (auto d = InstalledDataDir()) return {*d, *d / "vmlinux"};
  return {SIE_SOURCE_DIR, SIE_VMLINUX_H_DIR};
}

fs::path CacheDir() {
  if (const char* d = getenv("SIE_CACHE_DIR"); d && *d) return d;
  if (geteuid() == 0) return "/run/sie/cache";
  const char* t = getenv("TMPDIR");
  return fs::path(t && *t ? t : "/tmp") / "sie-cache";
}

namespace {

// The cache key of a compile: its sources and flags, the vmlinux.h it compiles against, the
// recipe and every header the stubs include.
absl::StatusOr<std::string> CompileKey(const std::string& sources, const std::string& extra_cflags,
                                       const HeaderDirs& dirs) {
  std::string key = sources + extra_cflags + dirs.vmlinux.string() + std::string(kRecipe);
  for (const char* h : kStubHeaders) {
    auto t = ReadFile(dirs.root / h);
    if (!t.ok()) return WithContext(t.status(), "stub headers");
    key += *t;
  }
  return ContentHash(key);
}

// Compiles `src_dir`/`main` into `obj` with the stubs' recipe; `what` names it in errors.
absl::Status CompileStubSource(const fs::path& src_dir, const std::string& main,
                               const fs::path& obj, const std::string& extra_cflags,
                               const std::string& what, const HeaderDirs& dirs) {
  std::vector<std::string> argv = {
      Clang(), "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", "-Wall",
      "-Wno-unused-function", "-Wno-unused-variable", "-I" + dirs.vmlinux.string(),
      "-I" + (dirs.root / "bpf/include").string(), "-I" + (dirs.root / "kmod/include").string(),
      "-I" + src_dir.string(), "-idirafter", "/usr/include/x86_64-linux-gnu",
      // No temporary path or cwd in the DWARF/BTF: same input, same
      // bytes (synth's output is deterministic).
      absl::StrCat("-fdebug-prefix-map=", src_dir.string(), "=."), "-fdebug-compilation-dir=."};
  for (absl::string_view f : absl::StrSplit(extra_cflags, ' ', absl::SkipEmpty()))
    argv.emplace_back(f);
  argv.insert(argv.end(), {"-c", (src_dir / main).string(), "-o", obj.string()});
  auto r = Run(argv);
  if (!r.ok())
    return FailedWithHint(absl::StrCat("cannot run ", argv[0], ": ", r.status().message()),
                          "install clang (Debian: clang), or use a precompiled const dir");
  if (!r->ok())
    return FailedWithHint(
        absl::StrCat("compiling ", what, " failed (", r->Describe(), "):\n", r->err),
        "the const.json may hold a span the stub generator cannot express");
  return absl::OkStatus();
}

// A temporary directory in `out_dir` to compile in (renamed into place when done).
absl::StatusOr<TempDir> CompileDir(const fs::path& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  auto tmp = TempDir::Create(out_dir, ".stub-");
  if (!tmp.ok())
    return FailedWithHint(absl::StrCat("cannot write the stub object in ", out_dir.string()),
                          "set SIE_CACHE_DIR to a writable directory");
  return tmp;
}

}  // namespace

std::string StubSuffix(int id) { return absl::StrCat("_", id); }

absl::StatusOr<StubObject> BuildStub(const artifact::ConstEntry& e, bool into_const_dir,
                                     const std::string& extra_cflags) {
  auto files = GenerateStub(e.c);
  if (!files.ok()) return files.status();
  const HeaderDirs dirs = FindHeaderDirs();
  auto hash = CompileKey(files->source + files->header, extra_cflags, dirs);
  if (!hash.ok()) return hash.status();
  StubObject so;
  so.hash = *hash;
  const std::string stem = absl::StrCat("stub-", so.hash, ".bpf.o");
  fs::path const_dir = e.path.parent_path();
  fs::path cache = CacheDir() / LowerIdent(e.c.name);
  std::error_code ec;
  if (fs::exists(const_dir / stem)) {
    so.object = const_dir / stem;
    return so;
  }
  if (fs::exists(cache / stem)) {
    if (!into_const_dir) {
      so.object = cache / stem;
      return so;
    }
    // Same hash, same bytes: a copy is as good as a compile.
    auto tmp = TempDir::Create(const_dir, ".stub-");
    if (tmp.ok() && fs::copy_file(cache / stem, tmp->path() / stem, ec) && !ec) {
      fs::rename(tmp->path() / stem, const_dir / stem, ec);
      if (!ec) {
        so.object = const_dir / stem;
        return so;
      }
    }
  }
  fs::path out_dir = into_const_dir ? const_dir : cache;
  auto tmp = CompileDir(out_dir);
  if (!tmp.ok()) return tmp.status();
  if (auto st = WriteFileAtomic(tmp->path() / "stub.bpf.c", files->source); !st.ok()) return st;
  if (auto st = WriteFileAtomic(tmp->path() / files->header_name, files->header); !st.ok())
    return st;
  fs::path obj = tmp->path() / stem;
  if (auto st = CompileStubSource(tmp->path(), "stub.bpf.c", obj, extra_cflags,
                                  absl::StrCat("the stub of ", e.c.name), dirs);
      !st.ok())
    return st;
  fs::rename(obj, out_dir / stem, ec);
  if (ec) return absl::InternalError(absl::StrCat("rename ", obj.string(), ": ", ec.message()));
  so.object = out_dir / stem;
  so.compiled_now = true;
  return so;
}

absl::StatusOr<StubObject> BuildStubs(const std::vector<artifact::ConstEntry>& entries,
                                      const std::string& extra_cflags,
                                      const std::vector<fs::path>& lookup, const fs::path& store) {
  // One unit including each stub's source under its suffix; the per-stub part of stub.bpf.h is
  // included again for each (bpf/include/sie/stub.bpf.h, "Names").
  std::string unit =
      absl::StrCat("/* ", kStubBanner, ". The stubs of one policy's constants. */\n");
  std::vector<std::pair<std::string, std::string>> files;  // name, text
  for (const auto& e : entries) {
    auto f = GenerateStub(e.c);
    if (!f.ok()) return WithContext(f.status(), e.c.name);
    const std::string src = absl::StrCat("stub_", e.c.id, ".bpf.c");
    absl::StrAppend(&unit, "\n#define SIE_SUFFIX ", StubSuffix(e.c.id), "\n#include \"", src,
                    "\"\n#undef SIE_SUFFIX\n#undef SIE_NSPANS\n#undef SIE_NSAVES\n");
    files.emplace_back(src, f->source);
    files.emplace_back(f->header_name, f->header);
  }
  const HeaderDirs dirs = FindHeaderDirs();
  std::string sources = unit;
  for (const auto& [name, text] : files) absl::StrAppend(&sources, name, "\n", text);
  auto hash = CompileKey(sources, extra_cflags, dirs);
  if (!hash.ok()) return hash.status();
  StubObject so;
  so.hash = *hash;
  const fs::path out_dir = store.empty() ? CacheDir() / "policy-stubs" : store;
  const std::string stem = absl::StrCat("stubs-", so.hash, ".bpf.o");
  for (const fs::path& d : lookup)
    if (fs::exists(d / stem)) {
      so.object = d / stem;
      return so;
    }
  so.object = out_dir / stem;
  if (fs::exists(so.object)) return so;
  auto tmp = CompileDir(out_dir);
  if (!tmp.ok()) return tmp.status();
  files.emplace_back("stubs.bpf.c", unit);
  for (const auto& [name, text] : files)
    if (auto st = WriteFileAtomic(tmp->path() / name, text); !st.ok()) return st;
  fs::path obj = tmp->path() / stem;
  if (auto st = CompileStubSource(tmp->path(), "stubs.bpf.c", obj, extra_cflags, "the stubs", dirs);
      !st.ok())
    return st;
  std::error_code ec;
  fs::rename(obj, so.object, ec);
  if (ec) return absl::InternalError(absl::StrCat("rename ", obj.string(), ": ", ec.message()));
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

absl::Status GenerateSkeleton(const fs::path& object, const std::string& name,
                              const fs::path& out) {
  std::vector<std::string> argv = {Bpftool(), "gen", "skeleton", object.string(), "name", name};
  auto r = Run(argv);
  if (!r.ok())
    return FailedWithHint(absl::StrCat("cannot run ", argv[0], ": ", r.status().message()),
                          "install bpftool (Debian: bpftool), or pass --no-compile");
  if (!r->ok())
    return FailedWithHint(absl::StrCat("bpftool gen skeleton of ", object.string(), " failed (",
                                       r->Describe(), "):\n", r->err),
                          "the object must be a BPF ELF object built with -g (BTF)");
  return WriteIfChanged(out, r->out);
}

absl::StatusOr<Artifacts> WriteArtifacts(const artifact::ConstEntry& e,
                                         const ArtifactOptions& opts) {
  const fs::path dir = e.path.parent_path();
  if (auto st = WriteStub(dir, e.c); !st.ok()) return st;
  Artifacts a;
  if (!opts.compile) return a;
  auto files = GenerateStub(e.c);
  if (!files.ok()) return files.status();
  if (opts.progress) opts.progress(absl::StrCat("compiling stub of ", e.c.name));
  auto so = BuildStub(e, /*into_const_dir=*/true, opts.extra_cflags);
  if (!so.ok())
    return WithContext(
        so.status(), absl::StrCat("compiling the stub of ", e.c.name, " (skip with --no-compile)"));
  a.object = so->object;
  a.compiled_now = so->compiled_now;
  // Objects of an older const.json (another hash) would only be found by nobody.
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(dir, ec)) {
    const std::string n = f.path().filename().string();
    if (n.rfind("stub-", 0) == 0 && n.size() > 11 && n.substr(n.size() - 6) == ".bpf.o" &&
        f.path() != a.object)
      fs::remove(f.path(), ec);
  }
  const std::string lname = LowerIdent(e.c.name);
  a.skeleton = dir / (lname + ".skel.h");
  // The skeleton embeds a statically linked copy (like cmake/BpfObject.cmake's `bpftool gen
  // object`): same programs, maps and BTF, without the DWARF of vmlinux.h (~800 KB -> ~14 KB).
  auto tmp = TempDir::Create(dir, ".skel-");
  if (!tmp.ok()) return tmp.status();
  const fs::path linked = tmp->path() / "stub.bpf.o";
  if (auto st = LinkObjects({a.object}, linked); !st.ok()) return st;
  if (auto st = GenerateSkeleton(linked, SkeletonName(e.c), a.skeleton); !st.ok()) return st;
  a.view = dir / (lname + ".hpp");
  if (auto st = WriteIfChanged(a.view, GenerateCppView(e.c, *files)); !st.ok()) return st;
  return a;
}

absl::Status EmitArtifacts(const fs::path& const_dir, const ArtifactOptions& opts) {
  artifact::ConstEntry e;
  e.path = const_dir / "const.json";
  auto c = artifact::ReadConstFile(e.path);
  if (!c.ok()) return c.status();
  e.c = std::move(*c);
  auto a = WriteArtifacts(e, opts);
  return a.ok() ? absl::OkStatus() : a.status();
}

}  // namespace sie::stubgen
