// `sie apply`'s plan: the difference between the desired state (desired.h) and what is loaded,
// as the fewest actions that make the kernel match it. Pure: it reads what it is given, so the
// host unit tests cover every case; apply.h carries a plan out.
//
// A constant the file names: loaded when it is not, its value updated when only the value
// differs, reloaded (unload, set) when its mode or engine differs. A loaded constant the file
// does not name is unloaded: the files are the whole desired state (--restore is an empty one).
// Constants a policy decides belong to the policy: the pinned one (sie-run --pin, or an earlier
// apply) is restarted when its file, content, constants, mode or knobs differ; constants of a
// foreground sie-run are never touched.
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "runtime/apply/desired.h"

namespace sie::apply {

// A loaded constant, from its state file (/run/sie/<name>.json).
struct Loaded {
  std::string name;
  int64_t value = 0;
  int mode = 0;
  std::string engine = "bpf";
  std::filesystem::path consts_dir;  // where it was loaded from
  bool complete = true;              // "loaded" (not left half-loaded by a killed sie set)
  bool by_policy = false;            // decided by a policy (sie-run), not by a fixed value
};

// The pinned policy, from /run/sie/sie-run.json, in the form a desired policy is compared in.
struct PinnedPolicy {
  std::filesystem::path file;
  std::string hash;  // content hash of the file when it was started ("" from an older sie)
  std::vector<std::string> consts;
  int mode = 0;
  std::vector<std::string> sets;  // NAME=VALUE, sorted
  std::filesystem::path consts_dir;
  bool shadow = false;
  std::filesystem::path cgroup;
};

// A desired constant resolved against its constants directory.
struct Resolved {
  DesiredConst want;
  std::string name;  // canonical (const.json)
  std::filesystem::path consts_dir;
};

// The desired policy with what is compared: content hash, constants (canonical, sorted), sets.
struct ResolvedPolicy {
  DesiredPolicy want;
  std::string hash;
  std::vector<std::string> consts;
  std::vector<std::string> sets;
  std::filesystem::path consts_dir;
};

enum class Op { kStopPolicy, kUnload, kReload, kUpdate, kLoad, kStartPolicy };
const char* OpName(Op op);

struct Action {
  Op op;
  std::string name;  // the constant, or the policy file
  std::optional<Loaded> before;
  std::optional<Resolved> after;
  std::optional<PinnedPolicy> policy_before;
  std::optional<ResolvedPolicy> policy_after;
  std::string why;  // "value 128 -> 256", "mode 0 -> 1", "not in the desired state", ...
};

struct Plan {
  std::vector<Action> actions;  // in the order to run them (Op's order)
  bool changes() const { return !actions.empty(); }
};

// The plan from the desired state (resolved), the loaded constants and the pinned policy.
// Errors: a constant both set by value and decided by the desired policy, or set by value while a
// foreground policy decides it.
absl::StatusOr<Plan> MakePlan(const std::vector<Resolved>& want,
                              const std::optional<ResolvedPolicy>& want_policy,
                              const std::vector<Loaded>& loaded,
                              const std::optional<PinnedPolicy>& pinned);

// One line per action ("+ load X = 5 (mode 0, engine auto)"), for people.
std::string Describe(const Action& a);
nlohmann::json ToJson(const Action& a);

}  // namespace sie::apply
