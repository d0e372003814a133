// Small file-system helpers with absl::Status errors that name the path.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie {

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path);
// Writes via a temporary file and rename, so readers never see a half-written file.
absl::Status WriteFileAtomic(const std::filesystem::path& path, absl::string_view data,
                             int mode = 0644);

// A directory removed (recursively) when the object dies, unless Keep() was called.
class TempDir {
 public:
  static absl::StatusOr<TempDir> Create(const std::filesystem::path& parent,
                                        absl::string_view prefix);
  TempDir(TempDir&& o) noexcept;
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  void Keep() { keep_ = true; }

 private:
  explicit TempDir(std::filesystem::path p) : path_(std::move(p)) {}
  std::filesystem::path path_;
  bool keep_ = false;
};

// The directory holding the running executable (e.g. build/bin).
std::filesystem::path SelfDir();

// sie's data files when installed (the Debian package): <prefix>/share/sie next to
// <prefix>/bin, holding bpf/include, kmod/include, sdk/include and vmlinux/vmlinux.h as the
// source tree and the build hold them. nullopt when running from a build tree.
std::optional<std::filesystem::path> InstalledDataDir();

}  // namespace sie
