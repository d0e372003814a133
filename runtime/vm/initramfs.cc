#include "runtime/vm/initramfs.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/hash.h"
#include "common/base/process.h"
#include "runtime/vm/guest_init_script.h"  // generated from guest_init.sh

namespace sie::vm {
namespace fs = std::filesystem;

absl::string_view GuestInitScript() { return kGuestInitScript; }

namespace {

constexpr const char* kBusybox = "/bin/busybox";
// Modules the init needs before it can mount the host root; their dependencies come from
// modprobe so the load order is right for whichever kernel is chosen.
const std::vector<std::string> kBootModules = {"9pnet_virtio", "9p"};

absl::StatusOr<std::vector<std::string>> ModuleLoadOrder(const std::string& release) {
  std::vector<std::string> argv = {"modprobe", "-S", release, "-a", "--show-depends"};
  argv.insert(argv.end(), kBootModules.begin(), kBootModules.end());
  auto r = RunChecked(argv);
  if (!r.ok())
    return FailedWithHint(
        absl::StrCat("cannot resolve the guest's 9p modules: ", r.status().message()),
        absl::StrCat("is linux-image-", release, " installed? run scripts/setup"));
  std::vector<std::string> paths;
  for (absl::string_view line : absl::StrSplit(r->out, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    // "builtin x" lines need nothing; a shared dependency is listed once per module asking for it.
    if (f.size() >= 2 && f[0] == "insmod" &&
        std::find(paths.begin(), paths.end(), f[1]) == paths.end())
      paths.push_back(f[1]);
  }
  return paths;
}

std::string FileStamp(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return "missing";
  return absl::StrCat(st.st_size, ":", st.st_mtim.tv_sec);
}

}  // namespace

absl::StatusOr<Initramfs> EnsureInitramfs(const std::string& release, const fs::path& cache_dir) {
  auto start = std::chrono::steady_clock::now();
  if (!fs::exists(kBusybox))
    return FailedWithHint("busybox is missing (/bin/busybox)",
                          "run scripts/setup (busybox-static)");
  auto modules = ModuleLoadOrder(release);
  if (!modules.ok()) return modules.status();

  std::string key = absl::StrCat(release, "\n", GuestInitScript(), "\n", FileStamp(kBusybox));
  for (const auto& m : *modules) absl::StrAppend(&key, "\n", m, "@", FileStamp(m));
  fs::path out = cache_dir / absl::StrCat("initramfs-", release, "-", ContentHash(key), ".cpio");
  Initramfs result{out, false, 0};
  if (fs::exists(out)) return result;

  auto stage = TempDir::Create(cache_dir, "initramfs-stage-");
  if (!stage.ok()) return stage.status();
  const fs::path& root = stage->path();
  for (const char* d : {"bin", "proc", "sys", "dev", "newroot", "lib/modules"})
    fs::create_directories(root / d);
  std::error_code ec;
  fs::copy_file(kBusybox, root / "bin/busybox", ec);
  if (ec) return absl::InternalError(absl::StrCat("copy busybox: ", ec.message()));
  if (auto s = WriteFileAtomic(root / "init", GuestInitScript(), 0755); !s.ok()) return s;

  std::vector<std::string> names;
  for (const auto& m : *modules) {
    std::string name = fs::path(m).filename().string();
    fs::path dst = root / "lib/modules";
    // Debian 6.12 ships .ko.xz; busybox insmod wants plain .ko.
    if (absl::EndsWith(name, ".xz")) {
      name = std::string(absl::StripSuffix(name, ".xz"));
      auto r = RunChecked({"xz", "-dc", m});
      if (!r.ok()) return r.status();
      if (auto s = WriteFileAtomic(dst / name, r->out); !s.ok()) return s;
    } else if (absl::EndsWith(name, ".zst")) {
      name = std::string(absl::StripSuffix(name, ".zst"));
      auto r = RunChecked({"zstd", "-dc", m});
      if (!r.ok()) return r.status();
      if (auto s = WriteFileAtomic(dst / name, r->out); !s.ok()) return s;
    } else {
      fs::copy_file(m, dst / name, ec);
      if (ec) return absl::InternalError(absl::StrCat("copy ", m, ": ", ec.message()));
    }
    names.push_back(name);
  }
  if (auto s = WriteFileAtomic(root / "lib/modules/load.list", absl::StrJoin(names, "\n") + "\n");
      !s.ok())
    return s;

  RunOptions opts;
  opts.cwd = root.string();
  // Uncompressed: the kernel unpacks it fastest, and it is only a few MB.
  auto cpio = RunChecked({"sh", "-c", "find . | LC_ALL=C sort | cpio --quiet -o -H newc"}, opts);
  if (!cpio.ok()) return cpio.status();
  if (auto s = WriteFileAtomic(out, cpio->out); !s.ok()) return s;
  result.rebuilt = true;
  result.build_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace sie::vm
