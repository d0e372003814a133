#include "synth/variants/kernel_tree.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/process.h"
#include "common/base/unique_fd.h"
#include "common/elf/elf_file.h"

#ifndef SIE_DEFAULT_KERNEL_RELEASE
#define SIE_DEFAULT_KERNEL_RELEASE ""
#endif

namespace sie::synth {
namespace fs = std::filesystem;
namespace {

// Bumped whenever the preparation steps change, so older caches are redone.
constexpr char kStampVersion[] = "sie-kernel-prep v1";

// An exclusive flock on a file, released on destruction (also when the process dies, which is
// what makes an interrupted run safe for the next one).
class FileLock {
 public:
  static absl::StatusOr<FileLock> Acquire(const fs::path& path) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd.valid())
      return absl::InternalError(absl::StrCat("cannot open lock file ", path.string()));
    if (::flock(fd.get(), LOCK_EX) != 0)
      return absl::InternalError(absl::StrCat("cannot lock ", path.string()));
    return FileLock(std::move(fd));
  }

 private:
  explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;  // closing it drops the lock
};

}  // namespace

GuestKernelFiles GuestKernelFiles::ForRelease(std::string release) {
  if (release.empty())
    if (const char* r = std::getenv("SIE_KERNEL_RELEASE"); r && *r) release = r;
  if (release.empty()) release = SIE_DEFAULT_KERNEL_RELEASE;
  GuestKernelFiles f;
  f.release = release;
  // "6.12.117+deb12-amd64" -> linux-source-6.12.tar.xz
  std::string major_minor = release.substr(0, release.find('.', release.find('.') + 1));
  f.source_tarball = absl::StrCat("/usr/src/linux-source-", major_minor, ".tar.xz");
  f.headers_dir = absl::StrCat("/usr/src/linux-headers-", release);
  f.dbg_vmlinux = absl::StrCat("/usr/lib/debug/boot/vmlinux-", release);
  f.modules_dir = absl::StrCat("/lib/modules/", release);
  f.dbg_modules_dir = absl::StrCat("/usr/lib/debug/lib/modules/", release);
  return f;
}

fs::path DefaultCacheRoot() {
  if (const char* c = std::getenv("SIE_CACHE"); c && *c) return c;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "sie";
  const char* home = std::getenv("HOME");
  return fs::path(home && *home ? home : "/tmp") / ".cache/sie";
}

std::string CompilerIdentity(absl::string_view line) {
  // Both "GCC: (Debian 12.2.0-14+deb12u1) 12.2.0" and "x86_64-linux-gnu-gcc-12 (Debian
  // 12.2.0-14+deb12u1) 12.2.0" carry the same "(vendor version) version" part.
  size_t p = line.find('(');
  if (p == absl::string_view::npos) return std::string(absl::StripAsciiWhitespace(line));
  absl::string_view rest = line.substr(p);
  rest = rest.substr(0, rest.find('\n'));
  return std::string(absl::StripAsciiWhitespace(rest));
}

absl::Status CheckCompilerMatches(const GuestKernelFiles& files) {
  auto comment = elf::ReadElfSection(files.dbg_vmlinux, ".comment");
  if (!comment.ok())
    return FailedWithHint(
        absl::StrCat("cannot read the shipped kernel's compiler: ", comment.status().message()),
        absl::StrCat("install the debug image (apt-get install linux-image-", files.release,
                     "-dbg) so sie can compare against the shipped vmlinux"));
  // .comment holds NUL-separated strings; the kernel's own objects say "GCC: (...) x.y.z".
  std::string shipped;
  for (absl::string_view s : absl::StrSplit(*comment, '\0'))
    if (absl::StartsWith(s, "GCC:")) {
      shipped = CompilerIdentity(s);
      break;
    }
  auto ver = Run({files.cc, "--version"});
  if (!ver.ok() || !ver->ok())
    return FailedWithHint(absl::StrCat("the kernel's compiler ", files.cc, " is not installed"),
                          absl::StrCat("install it (apt-get install gcc-12); the shipped kernel "
                                       "was built with ",
                                       shipped));
  std::string host = CompilerIdentity(ver->out);
  if (shipped.empty() || host != shipped)
    return FailedWithHint(
        absl::StrCat("compiler mismatch: the shipped kernel was built with '", shipped, "' but ",
                     files.cc, " is '", host, "'"),
        "install the exact compiler the kernel was built with; rebuilt objects would not match "
        "the shipped code otherwise");
  return absl::OkStatus();
}

absl::StatusOr<std::string> ParseSavedCommand(absl::string_view text, absl::string_view cmd_file) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, "savedcmd_")) continue;
    size_t p = line.find(" := ");
    if (p == absl::string_view::npos) break;
    absl::string_view cmd = line.substr(p + 4);
    // Later commands (objtool, checks) follow after ';': only the compile is replayed.
    if (size_t semi = cmd.find(';'); semi != absl::string_view::npos) cmd = cmd.substr(0, semi);
    return std::string(absl::StripAsciiWhitespace(cmd));
  }
  return absl::InvalidArgumentError(absl::StrCat(cmd_file, " has no savedcmd line"));
}

absl::StatusOr<KernelTree> KernelTree::PrepareGuest(const GuestKernelFiles& files,
                                                    const fs::path& cache_root,
                                                    const Progress& progress) {
  fs::path dir = cache_root / absl::StrCat("kernel-", files.release);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return FailedWithHint(
        absl::StrCat("cannot create cache directory ", dir.string(), ": ", ec.message()),
        "set SIE_CACHE to a writable directory");
  auto lock = FileLock::Acquire(dir / ".lock");
  if (!lock.ok()) return lock.status();

  fs::path root = dir / "linux";
  fs::path stamp = dir / "prepared.stamp";
  std::string want = absl::StrCat(kStampVersion, "\n", files.release, "\n");
  if (auto have = ReadFile(stamp); have.ok() && *have == want && fs::exists(root / "Makefile"))
    return KernelTree(root, files, true);

  // Anything here without a stamp is a leftover of an interrupted preparation.
  fs::remove(stamp, ec);
  fs::remove_all(root, ec);
  fs::path extract = dir / "extract.tmp";
  fs::remove_all(extract, ec);
  for (const fs::path& p : {files.source_tarball, files.headers_dir / ".config"})
    if (!fs::exists(p))
      return FailedWithHint(absl::StrCat("guest kernel file missing: ", p.string()),
                            absl::StrCat("install linux-source and linux-headers-", files.release,
                                         " (scripts/setup does)"));
  fs::create_directories(extract, ec);

  RunOptions ro;
  ro.timeout = std::chrono::minutes(15);
  progress(absl::StrCat("preparing kernel tree (once) in ", dir.string()));
  progress(absl::StrCat("  [1/4] extracting ", files.source_tarball.string()));
  if (auto r =
          RunChecked({"tar", "-xJf", files.source_tarball.string(), "-C", extract.string()}, ro);
      !r.ok())
    return WithContext(r.status(), "extracting the kernel source");
  fs::path top;
  for (const auto& e : fs::directory_iterator(extract, ec))
    if (e.is_directory()) top = e.path();
  if (top.empty()) return absl::InternalError("the kernel tarball has no top-level directory");
  fs::rename(top, root, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot move tree into place: ", ec.message()));
  fs::remove_all(extract, ec);

  progress(absl::StrCat("  [2/4] copying .config from ", files.headers_dir.string()));
  fs::copy_file(files.headers_dir / ".config", root / ".config",
                fs::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(absl::StrCat("copying .config: ", ec.message()));

  // RUSTC=/nonexistent: a host rustc would otherwise add Rust lines to the config.
  std::vector<std::string> make = {"make", "-C", root.string(), absl::StrCat("CC=", files.cc),
                                   "RUSTC=/nonexistent"};
  progress("  [3/4] make olddefconfig");
  auto args = make;
  args.push_back("olddefconfig");
  if (auto r = RunChecked(args, ro); !r.ok()) return WithContext(r.status(), "make olddefconfig");
  auto a = ReadFile(files.headers_dir / ".config"), b = ReadFile(root / ".config");
  if (a.ok() && b.ok() && *a != *b)
    progress("  warning: olddefconfig changed the shipped .config; objects may not match");

  progress("  [4/4] make -j2 prepare (about 15 s)");
  args = make;
  args.insert(args.begin() + 1, "-j2");
  args.push_back("prepare");
  if (auto r = RunChecked(args, ro); !r.ok()) return WithContext(r.status(), "make prepare");
  if (auto s = WriteFileAtomic(stamp, want); !s.ok()) return s;
  return KernelTree(root, files, true);
}

absl::StatusOr<KernelTree> KernelTree::UseExisting(const fs::path& dir,
                                                   const GuestKernelFiles& files) {
  fs::path root = fs::absolute(dir).lexically_normal();
  if (!fs::exists(root / "Makefile") || !fs::exists(root / "include/generated/autoconf.h"))
    return FailedWithHint(absl::StrCat(root.string(), " is not a prepared kernel tree"),
                          "run 'make olddefconfig prepare' there, or omit --kernel-src to let "
                          "sie prepare its own cached copy of the guest kernel");
  return KernelTree(root, files, false);
}

absl::StatusOr<std::string> KernelTree::SavedCommand(const std::string& object,
                                                     const Progress& progress) {
  fs::path obj(object);
  fs::path cmd_file =
      root_ / obj.parent_path() / absl::StrCat(".", obj.filename().string(), ".cmd");
  if (!fs::exists(cmd_file)) {
    if (!owned_)
      return FailedWithHint(
          absl::StrCat("no saved kbuild command for ", object, " in ", root_.string(), " (",
                       cmd_file.filename().string(), " is missing)"),
          absl::StrCat("sie never writes into your tree: run 'make ", object,
                       "' there once, or "
                       "omit --kernel-src to use sie's cached guest tree"));
    std::lock_guard<std::mutex> l(make_mu_);
    if (!fs::exists(cmd_file)) {
      auto lock = FileLock::Acquire(root_.parent_path() / ".lock");
      if (!lock.ok()) return lock.status();
      progress(absl::StrCat("  building ", object,
                            " once in the prepared tree (for its kbuild "
                            "command)"));
      RunOptions ro;
      ro.timeout = std::chrono::minutes(10);
      auto r = Run({"make", "-C", root_.string(), absl::StrCat("CC=", files_.cc),
                    "RUSTC=/nonexistent", object},
                   ro);
      if (!r.ok()) return r.status();
      if (!r->ok())
        return FailedWithHint(
            absl::StrCat("make ", object, " failed (", r->Describe(), "):\n",
                         r->err.size() > 4000 ? r->err.substr(r->err.size() - 4000) : r->err),
            absl::StrCat("check that ", object,
                         " is built in this config "
                         "(objects: in the spec)"));
    }
  }
  auto text = ReadFile(cmd_file);
  if (!text.ok()) return text.status();
  return ParseSavedCommand(*text, cmd_file.string());
}

}  // namespace sie::synth
