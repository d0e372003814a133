// The loader's records outside the kernel: /run/sie/<name>.json (what a constant loaded, so that
// status and unload work after the loading process died) and the run lock that serializes sie
// invocations changing kernel state. The journal is journal.h.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/unique_fd.h"
#include "runtime/loader/journal.h"
#include "runtime/loader/loader.h"

namespace sie::loader {

using Clock = std::chrono::steady_clock;
inline double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Serializes sie invocations that change kernel state (flock on /run/sie/lock).
class RunLock {
 public:
  static absl::StatusOr<RunLock> Take();

 private:
  UniqueFd fd_;
};

std::filesystem::path StatePath(const std::string& name);
std::filesystem::path PinDir(const std::string& name);

absl::Status WriteState(const std::string& name, const nlohmann::json& s);
absl::StatusOr<nlohmann::json> ReadState(const std::filesystem::path& p);
void RemoveState(const std::string& name);

// The readable state files of every constant but `except`, each with "name".
std::vector<nlohmann::json> StatesExcept(const std::string& except);
// Probe addresses that loaded constants other than `except` use (their state files), so that
// forgetting one constant's sie_kfuncs sites never takes a site another constant relies on.
std::set<uint64_t> AddressesOfOthers(const std::string& except);
// The loaded constant whose native probe sits at SYMBOL+0xOFF (`key`, NativeKey); "" when none
// claims it (another tool, or a load that died).
std::string NativeOwner(const std::string& key);
// The name of another loaded constant whose apply probe at `addr` verified `expect` at
// function+offset before its probe covered the code; "" when none.
std::string VerifiedUnderProbeOf(const std::string& self, uint64_t addr,
                                 const std::string& function, uint64_t offset,
                                 const std::string& expect);

// The code bytes loaded constants other than `except` recorded at their probe addresses before
// patching them ("original_bytes": what an int3 or a jump-optimized probe replaces), by address.
std::map<uint64_t, std::string> OriginalBytesOfOthers(const std::string& except);

// The loaded constant other than `self` that has a probe at `addr`; "" when none.
std::string ProbeOwnerAt(const std::string& self, uint64_t addr);

nlohmann::json ProbeToJson(const ProbeInfo& p);
ProbeInfo ProbeFromJson(const nlohmann::json& j);

}  // namespace sie::loader
