// Fault injection for the tests of rollback (issue: "nothing half-applied"): every step of a
// command that changes the running kernel (a program load, a kprobe attach, a pin, a map
// update, a sie_native or sie_consistency command) calls KernelStep first.
//   SIE_FAIL_STEP=N   the N-th step of this process fails (1-based) before it runs
//   SIE_FAIL_TRACE=1  every step is listed on stderr as "sie: kernel step N: <what>"
//   SIE_STOP_AT=TEXT  the process stops (SIGSTOP) before the first step whose text contains
//                     TEXT, e.g. "activate ": a test kills it there (a deterministic kill -9)
// Without them KernelStep is one counter increment.
#pragma once
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace sie {

absl::Status KernelStep(absl::string_view what);

// Steps taken so far by this process (tests).
int KernelStepsTaken();

}  // namespace sie
