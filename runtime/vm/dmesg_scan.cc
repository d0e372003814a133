#include "runtime/vm/dmesg_scan.h"

#include <regex>

#include "absl/strings/str_split.h"

namespace sie::vm {
namespace {

struct Pattern {
  const char* kind;
  std::regex re;
};

const std::vector<Pattern>& Patterns() {
  // Anchored on the kernel's own report headers (see lib/bug.c, kernel/panic.c, mm/kasan,
  // kernel/locking/lockdep.c, kernel/rcu/tree_stall.h, kernel/hung_task.c).
  static const auto* p = new std::vector<Pattern>{
      {"soft lockup", std::regex(R"(watchdog: BUG: soft lockup)")},  // before the generic BUG
      {"WARN", std::regex(R"(WARNING: CPU: \d+ PID: \d+ at )")},
      {"WARN", std::regex(R"(------------\[ cut here \]------------)")},
      {"BUG", std::regex(R"(\bBUG: )")},
      {"BUG", std::regex(R"(kernel BUG at )")},
      {"Oops", std::regex(R"(\bOops: )")},
      {"Oops", std::regex(R"(general protection fault)")},
      {"panic", std::regex(R"(Kernel panic - not syncing)")},
      {"KASAN", std::regex(R"(\bKASAN: )")},
      {"UBSAN", std::regex(R"(\bUBSAN: )")},
      {"lockdep", std::regex(R"(possible circular locking dependency detected)")},
      {"lockdep", std::regex(R"(WARNING: possible recursive locking detected)")},
      {"lockdep", std::regex(R"(inconsistent lock state)")},
      {"lockdep", std::regex(R"(suspicious RCU usage)")},
      {"RCU stall", std::regex(R"(rcu: INFO: rcu_\w+ (self-)?detected (stalls|stall))")},
      {"RCU stall", std::regex(R"(rcu_\w+ detected stalls on CPUs/tasks)")},
      {"hung task", std::regex(R"(INFO: task .+ blocked for more than \d+ seconds)")},
  };
  return *p;
}

}  // namespace

std::vector<KernelSplat> ScanDmesg(absl::string_view dmesg) {
  std::vector<KernelSplat> out;
  int n = 0;
  for (absl::string_view line : absl::StrSplit(dmesg, '\n')) {
    ++n;
    std::string l(line);
    for (const auto& p : Patterns()) {
      if (std::regex_search(l, p.re)) {
        // A "cut here" line is always followed by the WARNING/BUG line itself: report that one.
        if (l.find("cut here") != std::string::npos) break;
        out.push_back({p.kind, n, l});
        break;
      }
    }
  }
  return out;
}

}  // namespace sie::vm
