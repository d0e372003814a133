#include "common/base/fault.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

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

}  // namespace

absl::Status KernelStep(absl::string_view what) {
  const int n = ++g_steps;
  if (Trace())
    std::fprintf(stderr, "sie: kernel step %d: %.*s\n", n, static_cast<int>(what.size()),
                 what.data());
  if (n != FailAt()) return absl::OkStatus();
  return FailedWithHint(absl::StrCat("injected fault at kernel step ", n, " (", what, ")"),
                        "SIE_FAIL_STEP is set: unset it for a real run");
}

int KernelStepsTaken() { return g_steps.load(); }

}  // namespace sie
