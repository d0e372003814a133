// Mode 2 from user space: the constant's sie_consistency instance (one per constant, numbered by
// its id; contract in kmod/include/sie/consistency.h), its transitions and their outcome.
#pragma once
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/loader/global_spans.h"

namespace sie::loader {

using GlobalStatus = std::map<std::string, std::string>;

std::string StatusValue(const GlobalStatus& st, const std::string& key);
double ElapsedMs(const GlobalStatus& st);

// One transition of instance `id` (forward: to the new value), run to its end. A transition
// still running (a `sie set` killed while waiting) is waited for first; one that is already
// where it should go (EALREADY) is done.
absl::StatusOr<GlobalStatus> RunGlobal(int id, bool forward, double timeout_s);

// "2 frame(s) of tasks 812,813 stayed inside" and friends, for errors and status.
std::string DescribeBlockers(const GlobalStatus& st);

// The span command of sie_consistency's control file.
std::string SpanCommand(int id, const GlobalSpan& g);

}  // namespace sie::loader
