// Finds kernel error reports (WARN, BUG, Oops, KASAN, lockdep, RCU stalls, hung tasks) in a
// dmesg log, so a guest run whose kernel complained fails even when its command succeeded.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"

namespace sie::vm {

struct KernelSplat {
  std::string kind;  // "WARN", "BUG", "Oops", "KASAN", "lockdep", "RCU stall", "hung task", ...
  int line = 0;      // 1-based line in the log
  std::string text;  // the matching line
};

std::vector<KernelSplat> ScanDmesg(absl::string_view dmesg);

}  // namespace sie::vm
