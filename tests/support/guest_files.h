// debugfs/procfs files used by the programs that run in the guest (tests/vm, tests/consistency,
// benchmarks): their paths, and one-write / one-number access.
#pragma once
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::guest {

inline constexpr char kTargetDir[] = "/sys/kernel/debug/sie_target";
inline constexpr char kKfuncsControl[] = "/sys/kernel/debug/sie_kfuncs/control";
inline constexpr char kKprobeList[] = "/sys/kernel/debug/kprobes/list";
inline constexpr char kOptimization[] = "/proc/sys/debug/kprobes-optimization";

// Writes `data` with exactly one write(2) (debugfs files want one write per command); a short
// write is an error.
absl::Status WriteOnce(const std::string& path, absl::string_view data);

// The file's content as one decimal number (surrounding whitespace ignored).
absl::StatusOr<uint64_t> ReadU64(const std::string& path);

// kTargetDir/NAME: a debugfs file of sie_target.
std::string TargetFile(absl::string_view name);

}  // namespace sie::guest
