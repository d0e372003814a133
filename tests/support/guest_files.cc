#include "tests/support/guest_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/base/files.h"
#include "common/base/unique_fd.h"

namespace sie::guest {

absl::Status WriteOnce(const std::string& path, absl::string_view data) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, absl::StrCat("open ", path));
  ssize_t n = write(fd.get(), data.data(), data.size());
  if (n < 0) return absl::ErrnoToStatus(errno, absl::StrCat("write '", data, "' to ", path));
  if (static_cast<size_t>(n) != data.size()) return absl::InternalError("short write " + path);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ReadU64(const std::string& path) {
  absl::StatusOr<std::string> s = ReadFile(path);
  if (!s.ok()) return s.status();
  uint64_t v;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*s), &v))
    return absl::InternalError(absl::StrCat(path, ": not a number: ", *s));
  return v;
}

std::string TargetFile(absl::string_view name) { return absl::StrCat(kTargetDir, "/", name); }

}  // namespace sie::guest
