// `sie apply`: make the running kernel match a desired state (desired.h), all or nothing.
// Everything that needs no kernel change is checked first (names, ranges, kernel release of
// every constant, the policy file and its constants); then the plan (plan.h) runs step by step,
// each step recording its undo; a failing step undoes every earlier one, newest first, so the
// kernel is left as it was found.
#pragma once
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/apply/desired.h"
#include "runtime/apply/plan.h"

namespace sie::apply {

struct ApplyOptions {
  std::filesystem::path consts_dir;  // when the files name none (loader::DefaultConstsDir)
  double timeout_s = 5;              // reverse transitions and mode-2 switches
  bool dry_run = false;
  // Told each action as it completes ("done") or is undone ("undone").
  std::function<void(const Action&, const char* what, double ms)> progress;
};

// The desired state checked against the constants directory and the running kernel's release.
struct Target {
  std::vector<Resolved> consts;
  std::optional<ResolvedPolicy> policy;
  std::filesystem::path consts_dir;
};
absl::StatusOr<Target> Resolve(const DesiredState& d, const ApplyOptions& o,
                               const std::string& release);

// What is loaded now: /run/sie/<name>.json of every constant, and /run/sie/sie-run.json.
std::vector<Loaded> ReadLoaded();
std::optional<PinnedPolicy> ReadPinned();

struct ApplyResult {
  Plan plan;
  int done = 0;  // actions carried out (0 on a dry run)
};

// Resolves, plans and (unless dry_run) carries out the plan. On a failure every completed action
// is undone; the status names the failed action.
absl::StatusOr<ApplyResult> Apply(const DesiredState& d, const ApplyOptions& o);

}  // namespace sie::apply
