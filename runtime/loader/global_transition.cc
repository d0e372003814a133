#include "runtime/loader/global_transition.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/diag.h"
#include "common/base/fault.h"
#include "common/base/status_macros.h"
#include "kmod/include/sie/consistency.h"
#include "runtime/loader/attach.h"
#include "runtime/loader/checks.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/loader.h"
#include "runtime/loader/state.h"

namespace sie::loader {

namespace {

// Waits until the instance's transition is no longer running. Polling is only how user space
// learns the outcome: the kernel switched the gate atomically, at the moment nobody was inside.
// Bounded by the module's own timeout (plus a margin for a slow guest).
GlobalStatus WaitGlobal(int id, double limit_s) {
  const auto until = Clock::now() + std::chrono::duration<double>(limit_s);
  for (;;) {
    GlobalStatus st = ConsistencyStatus(id);
    if (StatusValue(st, "result") != "running" || Clock::now() > until) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

std::string StatusValue(const GlobalStatus& st, const std::string& key) {
  auto it = st.find(key);
  return it == st.end() ? "" : it->second;
}

double ElapsedMs(const GlobalStatus& st) {
  uint64_t ns = 0;
  return absl::SimpleAtoi(StatusValue(st, "elapsed_ns"), &ns) ? ns / 1e6 : 0;
}

absl::StatusOr<GlobalStatus> RunGlobal(int id, bool forward, double timeout_s) {
  const int64_t ms =
      std::clamp<int64_t>(std::llround(timeout_s * 1000), 1, SIE_CONS_MAX_TIMEOUT_MS);
  const std::string cmd = absl::StrCat(forward ? "begin " : "revert ", id, " ", ms);
  int err = 0;
  absl::Status st = ConsistencyCommand(cmd, &err);
  if (!st.ok() && err == EBUSY) {
    WaitGlobal(id, SIE_CONS_MAX_TIMEOUT_MS / 1000.0);
    st = ConsistencyCommand(cmd, &err);
  }
  if (!st.ok() && err != EALREADY) return st;
  return WaitGlobal(id, ms / 1000.0 + 5);
}

std::string DescribeBlockers(const GlobalStatus& st) {
  std::string s = absl::StrCat(StatusValue(st, "frames"), " frame(s) inside the safe spans");
  const std::string b = StatusValue(st, "blocking");
  if (!b.empty() && b != "-") absl::StrAppend(&s, " (tasks ", b, ")");
  const std::string u = StatusValue(st, "unreliable");
  if (!u.empty() && u != "0")
    absl::StrAppend(&s, ", ", u, " task stack(s) that could not be walked reliably");
  return s;
}

std::string SpanCommand(int id, const GlobalSpan& g) {
  std::string cmd = absl::StrFormat("span %d 0x%x 0x%x 0x%x", id, g.start, g.end, g.entry);
  for (uint64_t e : g.exits) absl::StrAppendFormat(&cmd, " 0x%x", e);
  return cmd;
}

absl::StatusOr<int> NewSharedInstance(std::vector<std::string>* notes) {
  if (auto st = LoadModuleIfNeeded("sie_consistency", notes); !st.ok()) return st;
  auto id = FreeGlobalInstance(StatesExcept(""));
  if (!id.ok()) return id.status();
  // No state file claims it: an instance there is a leftover of a killed run.
  if (!ConsistencyStatus(*id).empty()) {
    if (auto st = ConsistencyCommand(absl::StrCat("remove ", *id)); !st.ok()) return st;
    notes->push_back(absl::StrCat("removed a leftover sie_consistency instance ", *id));
  }
  return *id;
}

absl::Status SwitchSharedInstance(int id, bool forward, double timeout_s, double* ms) {
  RETURN_IF_ERROR(KernelStep(forward ? "switch the policy's instance" : "switch it back"));
  auto st = RunGlobal(id, forward, timeout_s);
  if (!st.ok()) return st.status();
  if (StatusValue(*st, "state") != (forward ? "active" : "off"))
    return FailedWithHint(
        absl::StrCat(forward ? "the policy's constants did not switch to it"
                             : "the policy's constants did not switch back",
                     " within ", timeout_s, " s: ", DescribeBlockers(*st),
                     forward ? "; nothing applied" : "; its values stay active"),
        "give the tasks inside more time (--timeout S), or use --mode 1 (per task)");
  if (ms) *ms = ElapsedMs(*st);
  return absl::OkStatus();
}

void RemoveSharedInstance(int id) {
  if (id < 0) return;
  for (const auto& s : StatesExcept(""))
    if (GlobalInstanceIn(s) == id) return;
  int err = 0;
  (void)ConsistencyCommand(absl::StrCat("remove ", id), &err);
}

}  // namespace sie::loader
