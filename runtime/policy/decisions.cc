#include "runtime/policy/decisions.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "bpf/include/sie/abi.h"

namespace sie::policy {

const char* DecisionKindName(uint32_t kind) {
  switch (kind) {
    case SIE_DECISION_APPLIED:
      return "applied";
    case SIE_DECISION_SHADOW:
      return "shadow";
    case SIE_DECISION_OUTSIDE:
      return "outside";
  }
  return "unknown";
}

absl::StatusOr<std::vector<Decision>> ReadDecisions(int map_fd) {
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return absl::InternalError("cannot count the possible CPUs");
  std::vector<uint64_t> per_cpu(ncpu);  // a per-CPU u64 value is 8 bytes per CPU
  std::vector<Decision> out;
  sie_decision_key key{}, next{};
  void* prev = nullptr;
  while (bpf_map_get_next_key(map_fd, prev, &next) == 0) {
    if (bpf_map_lookup_elem(map_fd, &next, per_cpu.data()) == 0) {
      Decision d{next.cid, next.kind, next.value, 0};
      for (uint64_t n : per_cpu) d.count += n;
      out.push_back(d);
    } else if (errno != ENOENT) {
      return absl::InternalError(
          absl::StrCat("reading ", SIE_RUN_MAP_DECISIONS, ": ", strerror(errno)));
    }
    key = next;
    prev = &key;
  }
  std::sort(out.begin(), out.end(), [](const Decision& a, const Decision& b) {
    return std::tie(a.cid, a.kind, a.value) < std::tie(b.cid, b.kind, b.value);
  });
  return out;
}

DecisionSummary Summarize(const std::vector<Decision>& all, uint32_t cid, int64_t def) {
  DecisionSummary s;
  for (const Decision& d : all) {
    if (d.cid != cid) continue;
    s.total += d.count;
    s.by_kind[d.kind][d.value] += d.count;
    if (d.kind == SIE_DECISION_OUTSIDE)
      s.outside += d.count;
    else if (d.value != def)
      s.differ += d.count;
  }
  return s;
}

}  // namespace sie::policy
