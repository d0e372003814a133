// A running policy's decisions, counted by the SDK per constant, kind and value in the per-CPU
// map sie_run_decisions (bpf/include/sie/abi.h): read and summed here for sie-run's summary and
// `sie metrics`, so both say the same thing.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sie::policy {

struct Decision {
  uint32_t cid = 0;
  uint32_t kind = 0;  // enum sie_decision_kind
  int64_t value = 0;
  uint64_t count = 0;  // summed over CPUs
};

// "applied", "shadow", "outside" (the Prometheus label and the JSON key).
const char* DecisionKindName(uint32_t kind);

// Every entry of the map, summed over CPUs, in (cid, kind, value) order.
absl::StatusOr<std::vector<Decision>> ReadDecisions(int map_fd);

// One constant's decisions: by kind then value, and how many of the policy's own (applied or
// shadow) differ from `def`, the value the constant keeps without the policy.
struct DecisionSummary {
  uint64_t total = 0, differ = 0, outside = 0;
  std::map<uint32_t, std::map<int64_t, uint64_t>> by_kind;
};
DecisionSummary Summarize(const std::vector<Decision>& all, uint32_t cid, int64_t def);

}  // namespace sie::policy
