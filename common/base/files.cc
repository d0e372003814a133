#include "common/base/files.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/unique_fd.h"

namespace sie {
namespace fs = std::filesystem;

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::NotFoundError(
        absl::StrCat("cannot read ", path.string(), ": ", std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status WriteFileAtomic(const fs::path& path, absl::string_view data, int mode) {
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  std::string tmp = absl::StrCat(path.string(), ".tmp.", getpid());
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd.valid())
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd.get(), data.data() + off, data.size() - off);
    if (n <= 0) {
      unlink(tmp.c_str());
      return absl::InternalError(absl::StrCat("write ", tmp, ": ", std::strerror(errno)));
    }
    off += n;
  }
  fd.reset();
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return absl::InternalError(
        absl::StrCat("rename to ", path.string(), ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<TempDir> TempDir::Create(const fs::path& parent, absl::string_view prefix) {
  std::error_code ec;
  fs::create_directories(parent, ec);
  std::string templ = (parent / absl::StrCat(prefix, "XXXXXX")).string();
  if (!mkdtemp(templ.data()))
    return absl::InternalError(
        absl::StrCat("mkdtemp in ", parent.string(), ": ", std::strerror(errno)));
  return TempDir(fs::path(templ));
}

TempDir::TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)), keep_(o.keep_) {
  o.keep_ = true;  // the moved-from object owns nothing
}

TempDir::~TempDir() {
  if (keep_ || path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

fs::path SelfDir() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : p.parent_path();
}

std::optional<fs::path> InstalledDataDir() {
  // Where the executable sits does not change: looked up once (stub builds ask per header).
  static const std::optional<fs::path> dir = []() -> std::optional<fs::path> {
    std::error_code ec;
    fs::path d = SelfDir().parent_path() / "share" / "sie";
    if (fs::exists(d / "bpf" / "include" / "sie" / "abi.h", ec)) return d;
    return std::nullopt;
  }();
  return dir;
}

}  // namespace sie
