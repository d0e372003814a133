#include "common/base/fault.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/diag.h"

namespace sie {
namespace {

std::atomic<int> g_steps{0};

int FailAt() {
  static const int n = [] {
    int v = 0;
    const char* e = std::getenv("SIE_FAIL_STEP");
    return e && absl::SimpleAtoi(e, &v) && v > 0 ? v : 0;
  }();
  return n;
}

bool Trace() {
  static const bool on = [] {
    const char* e = std::getenv("SIE_FAIL_TRACE");
    return e && *e && std::string_view(e) != "0";
  }();
  return on;
}

// The text of SIE_STOP_AT, empty when unset.
const std::string& StopAt() {
  static const std::string at = [] {
    const char* e = std::getenv("SIE_STOP_AT");
    return std::string(e ? e : "");
  }();
  return at;
}

// Stops the whole process (SIGSTOP) before the first step naming SIE_STOP_AT, so a test can
// kill -9 it at a known point instead of racing a poll against the command.
void MaybeStop(int n, absl::string_view what) {
  static std::atomic<bool> stopped{false};
  if (StopAt().empty() || !absl::StrContains(what, StopAt()) || stopped.exchange(true)) return;
  std::fprintf(stderr, "sie: stopped before kernel step %d: %.*s\n", n,
               static_cast<int>(what.size()), what.data());
  std::fflush(stderr);
  std::raise(SIGSTOP);
}

}  // namespace

absl::Status KernelStep(absl::string_view what) {
  const int n = ++g_steps;
  if (Trace())
    std::fprintf(stderr, "sie: kernel step %d: %.*s\n", n, static_cast<int>(what.size()),
                 what.data());
  MaybeStop(n, what);
  if (n != FailAt()) return absl::OkStatus();
  return FailedWithHint(absl::StrCat("injected fault at kernel step ", n, " (", what, ")"),
                        "SIE_FAIL_STEP is set: unset it for a real run");
}

int KernelStepsTaken() { return g_steps.load(); }

}  // namespace sie
