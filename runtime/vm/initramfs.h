// The guest's initramfs: busybox, the virtio/9p modules of the guest kernel and sie's /init.
// Cached by a hash of its inputs and rebuilt only when they change.
#pragma once
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::vm {

struct Initramfs {
  std::filesystem::path path;
  bool rebuilt = false;  // false: served from the cache
  double build_seconds = 0;
};

// `cache_dir` holds initramfs-<release>-<hash>.cpio files.
absl::StatusOr<Initramfs> EnsureInitramfs(const std::string& kernel_release,
                                          const std::filesystem::path& cache_dir);

// The /init script baked into every initramfs (runtime/vm/guest_init.sh).
absl::string_view GuestInitScript();

}  // namespace sie::vm
