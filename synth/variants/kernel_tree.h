// The guest kernel's source tree, prepared once so single objects can be rebuilt exactly as the
// shipped binary was built (same config, same compiler, same flags).
//
// The prepared tree is a cache sie owns (~/.cache/sie/kernel-<release>/ or $SIE_CACHE); the
// user's trees are never written. A tree given with --kernel-src is used read-only: it must
// already hold the saved kbuild command (.<obj>.cmd) of every object sie rebuilds.
#pragma once
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::synth {

using Progress = std::function<void(const std::string&)>;

// Where the guest kernel's pieces live on the host (Debian package layout).
struct GuestKernelFiles {
  std::string release;                    // 6.12.117+deb12-amd64
  std::filesystem::path source_tarball;   // /usr/src/linux-source-6.12.tar.xz
  std::filesystem::path headers_dir;      // /usr/src/linux-headers-<release> (its .config)
  std::filesystem::path dbg_vmlinux;      // /usr/lib/debug/boot/vmlinux-<release>
  std::filesystem::path modules_dir;      // /lib/modules/<release> (modules.order, the .ko.xz)
  std::filesystem::path dbg_modules_dir;  // /usr/lib/debug/lib/modules/<release> (unstripped .ko)
  std::string cc = "x86_64-linux-gnu-gcc-12";

  // Default paths for `release` ($SIE_KERNEL_RELEASE, else the one sie was configured for).
  static GuestKernelFiles ForRelease(std::string release = "");
};

// The compiler named in the shipped vmlinux's .comment ("GCC: (Debian 12.2.0-14+deb12u1)
// 12.2.0") must be the host's `cc --version`; otherwise rebuilt objects would not match the
// shipped code and every offset would be wrong. Returns an error naming both.
absl::Status CheckCompilerMatches(const GuestKernelFiles& files);

// The "(Debian 12.2.0-14+deb12u1) 12.2.0" part of a "GCC: ..." comment or a --version line.
std::string CompilerIdentity(absl::string_view line);

class KernelTree {
 public:
  // Prepares (or reuses) the cached tree for `files`: extract, copy .config, olddefconfig,
  // make prepare. A stamp file written last marks a complete preparation, so an interrupted
  // one is redone from scratch. Holds a lock file while preparing.
  static absl::StatusOr<KernelTree> PrepareGuest(const GuestKernelFiles& files,
                                                 const std::filesystem::path& cache_root,
                                                 const Progress& progress);
  // A user-given tree, used read-only.
  static absl::StatusOr<KernelTree> UseExisting(const std::filesystem::path& dir,
                                                const GuestKernelFiles& files);

  const std::filesystem::path& root() const { return root_; }
  const GuestKernelFiles& files() const { return files_; }
  bool owned() const { return owned_; }
  std::filesystem::path objtool() const { return root_ / "tools/objtool/objtool"; }

  // The compiler command kbuild used for `object` (relative, e.g. "block/blk-mq.o"): the
  // savedcmd line of .<obj>.cmd, up to the first ';'. In an owned tree the object is built
  // once with make to produce it. Thread-safe.
  absl::StatusOr<std::string> SavedCommand(const std::string& object, const Progress& progress);

  KernelTree(KernelTree&& o) noexcept
      : root_(std::move(o.root_)), files_(std::move(o.files_)), owned_(o.owned_) {}

 private:
  KernelTree(std::filesystem::path root, GuestKernelFiles files, bool owned)
      : root_(std::move(root)), files_(std::move(files)), owned_(owned) {}
  std::filesystem::path root_;
  GuestKernelFiles files_;
  bool owned_ = false;
  std::mutex make_mu_;  // one `make` at a time in the cached tree
};

// The default cache root: $SIE_CACHE, else $XDG_CACHE_HOME/sie, else ~/.cache/sie.
std::filesystem::path DefaultCacheRoot();

// Extracts the command from a .cmd file's text ("savedcmd_X := CMD"), cut at the first ';'.
absl::StatusOr<std::string> ParseSavedCommand(absl::string_view cmd_file_text,
                                              absl::string_view cmd_file);

}  // namespace sie::synth
