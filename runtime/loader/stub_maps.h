// The BPF stub's maps seen from user space (layout: bpf/include/sie/abi.h): control words,
// per-CPU counters, the mode-1 epoch statistics and blocked tasks, through the pins of a loaded
// constant or the fds of the object being loaded; (libbpf's log: libbpf_log.h).
#pragma once
#include <bpf/libbpf.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bpf/include/sie/abi.h"
#include "common/base/unique_fd.h"
#include "runtime/loader/libbpf_log.h"
#include "runtime/loader/loader.h"

namespace sie::loader {

struct ObjDeleter {
  void operator()(bpf_object* o) const { bpf_object__close(o); }
};
using ObjPtr = std::unique_ptr<bpf_object, ObjDeleter>;

// Pinned map access for a loaded constant (after the loading process is gone).
absl::StatusOr<UniqueFd> OpenPinned(const std::string& name, const char* map);

absl::Status CtlSet(int fd, uint32_t key, uint64_t v);
uint64_t CtlGet(int fd, uint32_t key);

// Counters 0..nkeys-1 of a per-CPU array, each summed over the CPUs.
std::vector<uint64_t> ReadStats(int fd, uint32_t nkeys);

// Mode 1: starts a new epoch (a new target or value): zeroes the per-task latency statistics,
// then stamps the request time the guards measure from.
absl::Status BeginEpoch(int ctl_fd, int stats_fd);
// The current epoch's per-task latencies, from the stats (the maximum is per CPU).
EpochStats ReadEpoch(int stats_fd);
// Mode 1: the tasks whose last guard in the current epoch found a safe-span frame on their
// stack and that have not switched since (the stub's sie_blocked map), oldest first.
std::vector<BlockedTask> ReadBlocked(int blocked_fd, uint64_t epoch_ns);

// Mode 1: the tasks that still hold the new value, from the stub's task iterator (pinned at
// <pin dir>/sie_reverse_check); `blocking` when one may be inside a safe span. NotFound when
// the constant has no iterator pinned (not mode 1).
struct Holder {
  uint32_t tid = 0;
  bool blocking = false;
  std::string comm;
};
absl::StatusOr<std::vector<Holder>> ListHolders(const std::string& name);

// Sets the u32 .rodata variable `name` of an opened, not yet loaded object (the verifier then
// knows its value and drops the code it disables).
absl::Status SetRodataU32(bpf_object* obj, const char* name, uint32_t v);

}  // namespace sie::loader
