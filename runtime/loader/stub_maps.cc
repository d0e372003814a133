#include "runtime/loader/stub_maps.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "runtime/loader/state.h"

namespace sie::loader {
namespace fs = std::filesystem;

namespace {

// One counter of a per-CPU array, per CPU (zeros when it cannot be read).
std::vector<uint64_t> ReadPerCpu(int fd, uint32_t key) {
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> per(std::max(ncpu, 0), 0);
  if (!per.empty() && bpf_map_lookup_elem(fd, &key, per.data()) != 0)
    std::fill(per.begin(), per.end(), 0);
  return per;
}

// CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns, which the stubs stamp with.
uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

}  // namespace

absl::StatusOr<UniqueFd> OpenPinned(const std::string& name, const char* map) {
  fs::path p = PinDir(name) / map;
  int fd = bpf_obj_get(p.c_str());
  if (fd < 0)
    return FailedWithHint(
        absl::StrCat("cannot open pinned map ", p.string(), ": ", strerror(errno)),
        absl::StrCat("the constant's state is incomplete: sie unload ", name));
  return UniqueFd(fd);
}

absl::Status CtlSet(int fd, uint32_t key, uint64_t v) {
  if (bpf_map_update_elem(fd, &key, &v, BPF_ANY) != 0)
    return absl::InternalError(absl::StrCat("updating control word ", key, ": ", strerror(errno)));
  return absl::OkStatus();
}

uint64_t CtlGet(int fd, uint32_t key) {
  uint64_t v = 0;
  bpf_map_lookup_elem(fd, &key, &v);
  return v;
}

std::vector<uint64_t> ReadStats(int fd, uint32_t nkeys) {
  std::vector<uint64_t> out(nkeys, 0);
  for (uint32_t k = 0; k < nkeys; ++k)
    for (uint64_t v : ReadPerCpu(fd, k)) out[k] += v;
  return out;
}

absl::Status BeginEpoch(int ctl_fd, int stats_fd) {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return absl::InternalError("counting possible CPUs");
  std::vector<uint64_t> zeros(ncpu, 0);
  for (uint32_t key : {SIE_STAT_EPOCH_TASKS, SIE_STAT_EPOCH_SUM_NS, SIE_STAT_EPOCH_MAX_NS})
    if (bpf_map_update_elem(stats_fd, &key, zeros.data(), BPF_ANY) != 0)
      return absl::InternalError(absl::StrCat("resetting sie_stats: ", strerror(errno)));
  return CtlSet(ctl_fd, SIE_CTL_EPOCH_NS, MonotonicNs());
}

EpochStats ReadEpoch(int stats_fd) {
  EpochStats e;
  for (uint64_t v : ReadPerCpu(stats_fd, SIE_STAT_EPOCH_TASKS)) e.tasks += v;
  uint64_t sum = 0, max = 0;
  for (uint64_t v : ReadPerCpu(stats_fd, SIE_STAT_EPOCH_SUM_NS)) sum += v;
  for (uint64_t v : ReadPerCpu(stats_fd, SIE_STAT_EPOCH_MAX_NS)) max = std::max(max, v);
  if (e.tasks) e.mean_ms = sum / 1e6 / e.tasks;
  e.max_ms = max / 1e6;
  return e;
}

std::vector<BlockedTask> ReadBlocked(int blocked_fd, uint64_t epoch_ns) {
  std::vector<BlockedTask> out;
  uint32_t key = 0, next = 0;
  bool first = true;
  const uint64_t now = MonotonicNs();
  while (bpf_map_get_next_key(blocked_fd, first ? nullptr : &key, &next) == 0) {
    first = false;
    key = next;
    uint64_t seen = 0;
    if (bpf_map_lookup_elem(blocked_fd, &key, &seen) != 0 || seen < epoch_ns) continue;
    auto comm = ReadFile(absl::StrCat("/proc/", key, "/comm"));
    if (!comm.ok()) continue;  // exited
    out.push_back({key, std::string(absl::StripTrailingAsciiWhitespace(*comm)),
                   now > seen ? (now - seen) / 1e6 : 0});
  }
  std::sort(out.begin(), out.end(),
            [](const BlockedTask& a, const BlockedTask& b) { return a.last_ms > b.last_ms; });
  return out;
}

absl::StatusOr<std::vector<Holder>> ListHolders(const std::string& name) {
  const std::string pin = (PinDir(name) / SIE_PROG_REVERSE_CHECK).string();
  UniqueFd prog(bpf_obj_get(pin.c_str()));
  if (!prog.valid())
    return ErrorWithHint(absl::StatusCode::kNotFound,
                         absl::StrCat("no reverse check pinned at ", pin, ": ", strerror(errno)),
                         "only mode-1 constants have one");
  UniqueFd link(bpf_link_create(prog.get(), 0, BPF_TRACE_ITER, nullptr));
  if (!link.valid())
    return absl::InternalError(absl::StrCat("attaching the task iterator: ", strerror(errno)));
  UniqueFd it(bpf_iter_create(link.get()));
  if (!it.valid())
    return absl::InternalError(absl::StrCat("creating the task iterator: ", strerror(errno)));
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(it.get(), buf, sizeof(buf))) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return absl::InternalError(absl::StrCat("reading the task iterator: ", strerror(errno)));
    text.append(buf, n);
  }
  std::vector<Holder> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(' ', 2));
    Holder h;
    int blocking = 0;
    if (f.size() != 3 || !absl::SimpleAtoi(f[0], &h.tid) || !absl::SimpleAtoi(f[1], &blocking))
      continue;
    h.blocking = blocking != 0;
    h.comm = std::string(f[2]);
    out.push_back(std::move(h));
  }
  return out;
}

absl::Status SetRodataU32(bpf_object* obj, const char* name, uint32_t v) {
  const btf* b = bpf_object__btf(obj);
  const int sec = b ? btf__find_by_name_kind(b, ".rodata", BTF_KIND_DATASEC) : -1;
  bpf_map* m = nullptr;
  bpf_object__for_each_map(m, obj) {
    if (sec < 0) break;
    if (!bpf_map__is_internal(m) || !absl::EndsWith(bpf_map__name(m), ".rodata")) continue;
    const btf_type* t = btf__type_by_id(b, sec);
    const btf_var_secinfo* vi = btf_var_secinfos(t);
    for (int i = 0; i < btf_vlen(t); ++i, ++vi) {
      const btf_type* var = btf__type_by_id(b, vi->type);
      if (strcmp(btf__name_by_offset(b, var->name_off), name) != 0) continue;
      size_t size = 0;
      const auto* data = static_cast<const char*>(bpf_map__initial_value(m, &size));
      if (!data || vi->offset + sizeof(v) > size || vi->size != sizeof(v)) break;
      std::string copy(data, size);  // libbpf 1.1 hands out a const view: set a modified copy
      memcpy(copy.data() + vi->offset, &v, sizeof(v));
      if (bpf_map__set_initial_value(m, copy.data(), copy.size()) != 0) break;
      return absl::OkStatus();
    }
  }
  return absl::InternalError(
      absl::StrCat("the stub has no .rodata variable ", name, " (built with other sie headers?)"));
}

absl::Status PrepareStub(bpf_object* obj, const std::string& suffix, int mode) {
  // Only mode-2 stubs call sie_consistency's kfunc (and so need the module loaded).
  if (mode == 2)
    if (auto st = SetRodataU32(obj, ("sie_global_kfunc" + suffix).c_str(), 1); !st.ok()) return st;
  // The reverse check (a task iterator) is mode 1's only; other modes do not load it.
  const std::string check = SIE_PROG_REVERSE_CHECK + suffix;
  if (bpf_program* p = bpf_object__find_program_by_name(obj, check.c_str()))
    bpf_program__set_autoload(p, mode == 1);
  return absl::OkStatus();
}

}  // namespace sie::loader
