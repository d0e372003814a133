// `sie metrics`: the loaded constants and the running policy in the Prometheus text exposition
// format (version 0.0.4), for node_exporter's textfile collector: per constant its value, the
// shipped value, mode, engine, probes and optimized probes, counters summed over spans (hits,
// applied, rejected, failed) and transition times; per policy whether its decisions apply, the
// log records it dropped, the named counters it keeps (sie_count(), sdk/README.md), its
// decisions by constant, kind and value, and in a shadow run how many differ from the default.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/loader/loader.h"
#include "runtime/policy/decisions.h"

namespace sie::policy {

// The SDK's shared maps of a running sie-run (pinned under /sys/fs/bpf by name).
struct PolicyMetrics {
  bool running = false;  // sie_run_txn is pinned
  bool active = false;   // its decisions apply (else every constant keeps its default)
  uint64_t flags = 0;    // enum sie_run_flags: shadow, canary
  uint64_t log_dropped = 0;
  uint64_t decisions_dropped = 0;
  std::map<std::string, uint64_t> counters;
  std::vector<Decision> decisions;
};

// The running policy's maps; running = false when there is none. Errors only for maps that
// exist but cannot be read.
absl::StatusOr<PolicyMetrics> ReadPolicyMetrics();

// The exposition text. `shipped` maps constant name to the value the kernel was compiled with
// (const.json values[0]), where known.
std::string MetricsText(const std::vector<loader::LoadedConst>& consts,
                        const std::map<std::string, int64_t>& shipped, const PolicyMetrics& pol);

}  // namespace sie::policy
