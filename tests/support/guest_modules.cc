#include "tests/support/guest_modules.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "common/base/files.h"
#include "common/base/unique_fd.h"

namespace sie::guest {
namespace fs = std::filesystem;

fs::path KmodDir() { return SelfDir() / ".." / "kmod"; }

absl::Status UnloadModule(const std::string& name) {
  for (int i = 0; i < 100; i++) {
    if (syscall(SYS_delete_module, name.c_str(), O_NONBLOCK) == 0 || errno == ENOENT)
      return absl::OkStatus();
    if (errno != EBUSY && errno != EAGAIN)
      return absl::ErrnoToStatus(errno, "delete_module " + name);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::ErrnoToStatus(errno, "delete_module " + name + " (still busy after 10 s)");
}

absl::Status LoadModule(const std::string& name) {
  const fs::path ko = KmodDir() / (name + ".ko");
  UniqueFd fd(open(ko.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, "open " + ko.string());
  if (syscall(SYS_finit_module, fd.get(), "", 0) == 0) return absl::OkStatus();
  if (errno != EEXIST) return absl::ErrnoToStatus(errno, "finit_module " + ko.string());
  if (absl::Status st = UnloadModule(name); !st.ok()) return st;
  if (syscall(SYS_finit_module, fd.get(), "", 0) != 0)
    return absl::ErrnoToStatus(errno, "finit_module " + ko.string());
  return absl::OkStatus();
}

}  // namespace sie::guest
