#include "runtime/loader/loader.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/artifact/consts_dir.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/unique_fd.h"
#include "common/stubgen/stub_build.h"
#include "common/stubgen/stubgen.h"
#include "kmod/include/sie/consistency.h"
#include "runtime/loader/global_spans.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/native.h"

namespace sie::loader {
namespace fs = std::filesystem;
using artifact::SpanKind;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Control keys and stats layout: bpf/include/sie/stub.bpf.h.
enum CtlKey : uint32_t {
  kCtlValue = 0,
  kCtlActive = 1,
  kCtlMode = 2,
  kCtlTarget = 3,
  kCtlNsafe = 4,
  kCtlInstance = 5,
  kCtlEpochNs = 6,
};
constexpr uint32_t kStatNr = 11;
// Span 0's guard counters and the per-task latency statistics of the current mode-1 epoch.
constexpr uint32_t kStatTransitions = 6, kStatUnsafe = 7;
constexpr uint32_t kStatEpochTasks = 8, kStatEpochSumNs = 9, kStatEpochMaxNs = 10;
constexpr int kMaxSafe = 8;  // sie_stack_clean's local copy
constexpr int kMaxCells = 64;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// libbpf's messages go to a buffer so errors can quote the verifier's log.
std::string& LibbpfLog() {
  static auto* s = new std::string;
  return *s;
}
int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[4096];
  int n = vsnprintf(buf, sizeof(buf), fmt, ap);
  std::string& log = LibbpfLog();
  log += buf;
  if (log.size() > 64 * 1024) log.erase(0, log.size() - 32 * 1024);
  return n;
}
std::string LogTail(size_t max = 3000) {
  const std::string& l = LibbpfLog();
  return l.size() > max ? "..." + l.substr(l.size() - max) : l;
}

struct ObjDeleter {
  void operator()(bpf_object* o) const { bpf_object__close(o); }
};
using ObjPtr = std::unique_ptr<bpf_object, ObjDeleter>;

// Serializes sie invocations that change kernel state (flock on /run/sie/lock).
class RunLock {
 public:
  static absl::StatusOr<RunLock> Take() {
    std::error_code ec;
    fs::create_directories(RunDir(), ec);
    UniqueFd fd(open((RunDir() / "lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid())
      return FailedWithHint(
          absl::StrCat("cannot open ", (RunDir() / "lock").string(), ": ", strerror(errno)),
          "sie must run as root");
    if (flock(fd.get(), LOCK_EX) != 0) return absl::InternalError("flock failed");
    RunLock l;
    l.fd_ = std::move(fd);
    return l;
  }

 private:
  UniqueFd fd_;
};

fs::path StatePath(const std::string& name) { return RunDir() / (name + ".json"); }
fs::path PinDir(const std::string& name) { return fs::path(kPinRoot) / name; }

absl::Status EnsureBpffs() {
  struct stat st {};
  std::error_code ec;
  if (!fs::exists("/sys/fs/bpf/", ec))
    return FailedWithHint("/sys/fs/bpf does not exist", "the kernel needs CONFIG_BPF_SYSCALL");
  // A bpffs mount has its own magic; checking for an existing sie dir or mounting is enough.
  if (fs::exists(kPinRoot, ec)) return absl::OkStatus();
  if (mkdir(kPinRoot, 0700) == 0) return absl::OkStatus();
  if (errno == EPERM || errno == EACCES || errno == EROFS) {
    if (mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr) == 0 && mkdir(kPinRoot, 0700) == 0)
      return absl::OkStatus();
  }
  (void)st;
  return FailedWithHint(absl::StrCat("cannot create ", kPinRoot, ": ", strerror(errno)),
                        "mount bpffs: mount -t bpf bpf /sys/fs/bpf (and run as root)");
}

std::string UserName() {
  struct passwd* pw = getpwuid(getuid());
  const char* sudo = getenv("SUDO_USER");
  return absl::StrCat(pw ? pw->pw_name : std::to_string(getuid()),
                      sudo ? absl::StrCat(" (sudo by ", sudo, ")") : "");
}

void Journal(const json& entry) {
  json e = entry;
  e["time"] = static_cast<int64_t>(time(nullptr));
  e["pid"] = getpid();
  e["user"] = UserName();
  fs::path p = JournalPath();
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  UniqueFd fd(open(p.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
  if (!fd.valid()) return;  // the journal never blocks a change; status shows the state
  std::string line = e.dump() + "\n";
  // O_APPEND + one write: concurrent writers never interleave within a line.
  (void)!write(fd.get(), line.data(), line.size());
}

absl::Status WriteState(const std::string& name, const json& s) {
  return WriteFileAtomic(StatePath(name), s.dump(2) + "\n", 0600);
}

absl::StatusOr<json> ReadState(const fs::path& p) {
  auto t = ReadFile(p);
  if (!t.ok()) return t.status();
  json j = json::parse(*t, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return absl::DataLossError(absl::StrCat(p.string(), " is corrupt"));
  return j;
}

// Pinned map access for a loaded constant (after the loading process is gone).
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

// One counter of a per-CPU array, per CPU (zeros when it cannot be read).
std::vector<uint64_t> ReadPerCpu(int fd, uint32_t key) {
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> per(std::max(ncpu, 0), 0);
  if (!per.empty() && bpf_map_lookup_elem(fd, &key, per.data()) != 0)
    std::fill(per.begin(), per.end(), 0);
  return per;
}

// Counters 0..nkeys-1, each summed over the CPUs.
std::vector<uint64_t> ReadStats(int fd, uint32_t nkeys) {
  std::vector<uint64_t> out(nkeys, 0);
  for (uint32_t k = 0; k < nkeys; ++k)
    for (uint64_t v : ReadPerCpu(fd, k)) out[k] += v;
  return out;
}

// CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns, which the stubs stamp with.
uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

// Mode 1: starts a new epoch (a new target or value): zeroes the per-task latency statistics,
// then stamps the request time the guards measure from.
absl::Status BeginEpoch(int ctl_fd, int stats_fd) {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return absl::InternalError("counting possible CPUs");
  std::vector<uint64_t> zeros(ncpu, 0);
  for (uint32_t key : {kStatEpochTasks, kStatEpochSumNs, kStatEpochMaxNs})
    if (bpf_map_update_elem(stats_fd, &key, zeros.data(), BPF_ANY) != 0)
      return absl::InternalError(absl::StrCat("resetting sie_stats: ", strerror(errno)));
  return CtlSet(ctl_fd, kCtlEpochNs, MonotonicNs());
}

// The current epoch's per-task latencies, from the pinned stats (the maximum is per CPU).
EpochStats ReadEpoch(int stats_fd) {
  EpochStats e;
  for (uint64_t v : ReadPerCpu(stats_fd, kStatEpochTasks)) e.tasks += v;
  uint64_t sum = 0, max = 0;
  for (uint64_t v : ReadPerCpu(stats_fd, kStatEpochSumNs)) sum += v;
  for (uint64_t v : ReadPerCpu(stats_fd, kStatEpochMaxNs)) max = std::max(max, v);
  if (e.tasks) e.mean_ms = sum / 1e6 / e.tasks;
  e.max_ms = max / 1e6;
  return e;
}

// Mode 1: the tasks whose last guard in the current epoch found a safe-span frame on their
// stack and that have not switched since (the stub's sie_blocked map), oldest first.
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

// Removes a pin directory: unlinking the links' pins detaches the kprobes (the last reference
// of each link goes away).
absl::Status RemovePins(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return absl::OkStatus();
  // Links first, so no probe runs with half of its maps' pins gone (harmless, but tidy).
  std::vector<fs::path> links, rest;
  for (const auto& e : fs::directory_iterator(dir, ec))
    (absl::StartsWith(e.path().filename().string(), "link_") ? links : rest).push_back(e.path());
  for (const auto* v : {&links, &rest})
    for (const auto& p : *v)
      if (unlink(p.c_str()) != 0 && errno != ENOENT)
        return absl::InternalError(absl::StrCat("unlink ", p.string(), ": ", strerror(errno)));
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT)
    return absl::InternalError(absl::StrCat("rmdir ", dir.string(), ": ", strerror(errno)));
  return absl::OkStatus();
}

// Links are released from a workqueue after their last reference goes, so a kprobe can
// outlive its pin by a moment: wait until none of `addrs` is in the kprobe list.
// Waits until the kprobes at `addrs` are gone, except `keep[addr]` of them at each address:
// other tools' kprobes that were there before (they stay).
absl::Status WaitKprobesGone(const std::vector<uint64_t>& addrs, double timeout_s,
                             const std::map<uint64_t, int>& keep = {}) {
  if (addrs.empty()) return absl::OkStatus();
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    auto list = ReadKprobeList();
    if (!list.ok()) return list.status();
    std::map<uint64_t, int> here;
    std::map<uint64_t, std::string> where;
    for (const auto& e : *list)
      if (std::find(addrs.begin(), addrs.end(), e.addr) != addrs.end()) {
        here[e.addr]++;
        where[e.addr] = e.where;
      }
    std::vector<std::string> left;
    for (const auto& [addr, n] : here) {
      auto k = keep.find(addr);
      if (n > (k == keep.end() ? 0 : k->second)) left.push_back(where[addr]);
    }
    if (left.empty()) return absl::OkStatus();
    if (Clock::now() > deadline)
      return FailedWithHint(absl::StrCat("kprobes still present after ", timeout_s, " s: ", left[0],
                                         left.size() > 1 ? " ..." : ""),
                            "another program may hold the links (bpftool link list)");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// How many kprobes at each of `addrs` are not among `own` (this constant's, by address).
std::map<uint64_t, int> ForeignKprobes(const std::vector<uint64_t>& addrs,
                                       const std::map<uint64_t, int>& own) {
  std::map<uint64_t, int> out;
  auto list = ReadKprobeList();
  if (!list.ok()) return out;
  for (const auto& e : *list)
    if (std::find(addrs.begin(), addrs.end(), e.addr) != addrs.end()) out[e.addr]++;
  for (auto& [addr, n] : out) {
    auto o = own.find(addr);
    n = std::max(0, n - (o == own.end() ? 0 : o->second));
  }
  return out;
}

json ProbeToJson(const ProbeInfo& p) {
  return json{{"role", p.role},           {"span", p.span},         {"function", p.function},
              {"offset", p.offset},       {"address", p.address},   {"cell", p.cell},
              {"optimized", p.optimized}, {"flags", p.kprobe_flags}};
}
ProbeInfo ProbeFromJson(const json& j) {
  ProbeInfo p;
  p.role = j.value("role", "");
  p.span = j.value("span", 0);
  p.function = j.value("function", "");
  p.offset = j.value("offset", uint64_t{0});
  p.address = j.value("address", uint64_t{0});
  p.cell = j.value("cell", -1);
  p.optimized = j.value("optimized", false);
  p.kprobe_flags = j.value("flags", "");
  return p;
}

ProbeInfo MakeProbe(const char* role, int span, const std::string& fn, uint64_t off,
                    uint64_t func_addr) {
  ProbeInfo p;
  p.role = role;
  p.span = span;
  p.function = fn;
  p.offset = off;
  p.address = func_addr + off;
  return p;
}

std::string LinkName(const ProbeInfo& p) { return absl::StrCat("link_", p.role, "_", p.span); }

// One attached probe of the constant being loaded. The loader owns the kprobe's perf event
// and the BPF link as plain fds (no bpf_link object): libbpf 1.1 has no way to hand a pinned
// perf link over without either disabling its perf event (bpf_link__destroy) or leaking both
// fds (bpf_link__disconnect), and a long-lived caller (sie-run) must not keep the kprobe
// registered after `Unload` removed the pins.
struct Attached {
  ProbeInfo info;
  bpf_program* prog = nullptr;
  UniqueFd perf_fd, link_fd;
  std::string pin;                   // the link's pin while attached
  std::vector<uint64_t> candidates;  // apply probes of kind reg: other offsets to try
  size_t next_candidate = 0;
  uint64_t func_addr = 0;
  bool attached() const { return link_fd.valid(); }
};

// Each probe's state as the kernel lists it now ([OPTIMIZED], [FTRACE]) from kprobes/list.
void RefreshProbeStates(std::vector<Attached>& probes) {
  auto list = ReadKprobeList();
  if (!list.ok()) return;
  for (auto& a : probes)
    for (const auto& e : *list)
      if (e.addr == a.info.address) {
        a.info.optimized = e.optimized;
        a.info.kprobe_flags = e.optimized ? "[OPTIMIZED]" : e.ftrace ? "[FTRACE]" : "";
      }
}

// The constant is loaded: its probes go into the state file (for status/unload) and the result.
void RecordLoaded(const std::vector<Attached>& probes, json& state, SetResult& res) {
  json pj = json::array();
  for (const auto& a : probes) {
    pj.push_back(ProbeToJson(a.info));
    res.probes.push_back(a.info);
  }
  state["probes"] = pj;
  state["state"] = "loaded";
  state["pid"] = 0;
}

// The kprobe PMU's perf type (/sys/bus/event_source/devices/kprobe/type).
absl::StatusOr<uint32_t> KprobePmuType() {
  static int type = -1;
  if (type >= 0) return static_cast<uint32_t>(type);
  auto t = ReadFile("/sys/bus/event_source/devices/kprobe/type");
  int v = 0;
  if (!t.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*t), &v))
    return FailedWithHint("the kernel has no kprobe PMU (/sys/bus/event_source/devices/kprobe)",
                          "the kernel needs CONFIG_KPROBE_EVENTS and CONFIG_PERF_EVENTS");
  type = v;
  return static_cast<uint32_t>(v);
}

// perf_event_open of a kprobe at `name`+`offset`, or at the address `offset` when name is null.
int OpenKprobeEvent(uint32_t type, const char* name, uint64_t offset) {
  perf_event_attr attr{};
  attr.size = sizeof(attr);
  attr.type = type;
  attr.config1 = reinterpret_cast<uint64_t>(name);  // kprobe_func
  attr.config2 = offset;                            // probe_offset, or kprobe_addr
  return static_cast<int>(syscall(SYS_perf_event_open, &attr, -1 /*pid*/, 0 /*cpu*/, -1 /*group*/,
                                  PERF_FLAG_FD_CLOEXEC));
}

absl::Status Attach(Attached& a, const std::string& pin_dir) {
  auto type = KprobePmuType();
  if (!type.ok()) return type.status();
  // The exact address whose bytes were verified: the kernel's name lookup would refuse
  // duplicate names, and a name could resolve to vmlinux before the module.
  UniqueFd pfd(OpenKprobeEvent(*type, nullptr, a.info.address));
  if (!pfd.valid()) {
    const int err = errno;
    pfd.reset(OpenKprobeEvent(*type, a.info.function.c_str(), a.info.offset));
    if (!pfd.valid())
      return FailedWithHint(
          absl::StrCat("attaching a kprobe at ", a.info.function, "+0x", absl::Hex(a.info.offset),
                       " failed: ", strerror(err)),
          "the function may be blacklisted for kprobes (NOKPROBE), or the offset is not on an "
          "instruction boundary (EILSEQ)");
  }
  LIBBPF_OPTS(bpf_link_create_opts, lo);
  lo.perf_event.bpf_cookie = a.info.cell >= 0 ? static_cast<uint64_t>(a.info.cell) : 0;
  UniqueFd lfd(bpf_link_create(bpf_program__fd(a.prog), pfd.get(), BPF_PERF_EVENT, &lo));
  if (!lfd.valid())
    return absl::InternalError(absl::StrCat("linking the program to the kprobe at ",
                                            a.info.function, "+0x", absl::Hex(a.info.offset), ": ",
                                            strerror(errno)));
  const std::string pin = (fs::path(pin_dir) / LinkName(a.info)).string();
  if (bpf_obj_pin(lfd.get(), pin.c_str()) != 0)
    return absl::InternalError(absl::StrCat("pinning ", pin, ": ", strerror(errno)));
  a.perf_fd = std::move(pfd);
  a.link_fd = std::move(lfd);
  a.pin = pin;
  return absl::OkStatus();
}

// Detaches a probe of the load in progress: its pin and both fds go, so the link's last
// reference is dropped (the kprobe itself leaves the kernel asynchronously).
void Detach(Attached& a) {
  if (!a.pin.empty()) unlink(a.pin.c_str());
  a.pin.clear();
  a.link_fd.reset();
  a.perf_fd.reset();
}

// The pin owns the link from now on: only our references go.
void HandOver(Attached& a) {
  a.pin.clear();
  a.link_fd.reset();
  a.perf_fd.reset();
}

// Site / cell registration with sie_kfuncs for one probe.
absl::Status Register(const Attached& a, const artifact::CriticalSpan& s) {
  if (a.info.role != "apply") return absl::OkStatus();
  if (a.info.cell < 0) return KfuncsCommand(absl::StrCat("site 0x", absl::Hex(a.info.address)));
  const artifact::MemOperand& m = *s.target_mem;
  auto regnum = [](const std::string& r) -> int {
    static const char* order[] = {"ax", "bx",  "cx",  "dx",  "si",  "di",  "bp",  "r8",
                                  "r9", "r10", "r11", "r12", "r13", "r14", "r15", "sp"};
    if (r.empty()) return 255;
    for (int i = 0; i < 16; ++i)
      if (r == order[i]) return i;
    return -1;
  };
  int base = regnum(m.base), index = regnum(m.index);
  int64_t disp = m.disp;
  if (m.base == "ip") {
    // RIP-relative: relative to the end of the storing instruction, the CS end.
    base = 255;
    disp = static_cast<int64_t>(a.func_addr + s.cs_end) + m.disp;
  }
  if (base < 0 || index < 0)
    return InvalidWithHint("memory operand with an unsupported register", "");
  return KfuncsCommand(absl::StrCat("cell ", a.info.cell, " 0x", absl::Hex(a.info.address), " ",
                                    base, " ", index, " ", m.scale, " ", disp, " ", s.width));
}

// The readable state files (/run/sie/<name>.json) of every constant but `except`, with "name".
std::vector<json> StatesExcept(const std::string& except) {
  std::vector<json> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(RunDir(), ec)) {
    if (e.path().extension() != ".json" || e.path().stem() == except) continue;
    auto st = ReadState(e.path());
    if (!st.ok()) continue;
    if (!st->contains("name")) (*st)["name"] = e.path().stem().string();
    out.push_back(std::move(*st));
  }
  return out;
}

// Probe addresses that loaded constants other than `except` use (their state files), so that
// forgetting one constant's sie_kfuncs sites never takes a site another constant relies on.
std::set<uint64_t> AddressesOfOthers(const std::string& except) {
  std::set<uint64_t> out;
  for (const json& st : StatesExcept(except)) {
    for (const auto& a : st.value("attached_addresses", json::array()))
      if (a.is_number_unsigned()) out.insert(a.get<uint64_t>());
    for (const auto& p : st.value("probes", json::array()))
      out.insert(p.value("address", uint64_t{0}));
  }
  return out;
}

// A probe (int3, or the jump of an optimized probe) covers the code at its address, so /proc/kcore
// shows the patch, not the instruction. When that probe is another loaded constant's apply probe
// whose span expects the same bytes at the same place, that constant verified them before its
// probe covered them: the name of that constant, else "".
std::string VerifiedUnderProbeOf(const std::string& self, uint64_t addr,
                                 const std::string& function, uint64_t offset,
                                 const std::string& expect) {
  for (const json& st : StatesExcept(self)) {
    if (st.value("state", "") != "loaded") continue;
    for (const auto& p : st.value("probes", json::array())) {
      if (p.value("role", "") != "apply" || p.value("address", uint64_t{0}) != addr) continue;
      auto other = artifact::ReadConstFile(st.value("const_path", ""));
      const int span = p.value("span", -1);
      if (!other.ok() || span < 0 || span >= static_cast<int>(other->spans.size())) continue;
      const artifact::CriticalSpan& s = other->spans[span];
      if (s.function == function && s.probe_offset == offset &&
          p.value("offset", uint64_t{0}) == offset && s.expect_bytes == expect)
        return st.value("name", "");
    }
  }
  return "";
}

// Is an armed, unoptimized kprobe (its int3 in the code) registered at addr?
bool Int3KprobeAt(uint64_t addr) {
  auto list = ReadKprobeList();
  if (!list.ok()) return false;
  for (const KprobeEntry& e : *list)
    if (e.addr == addr && !e.optimized && !e.ftrace && !e.disabled) return true;
  return false;
}

// Is the code at span s's probe place (`bytes`, read at `addr`) what synth analyzed? Exactly, or
// under a probe that cannot hide a difference: another loaded constant's probe that verified the
// same bytes, or another kprobe's int3 on the first byte (the rest still compared). Returns ""
// or a note saying which; an error (the place and its bytes) otherwise.
absl::StatusOr<std::string> CheckProbeBytes(const std::string& self,
                                            const artifact::CriticalSpan& s, uint64_t addr,
                                            const std::string& bytes, bool in_module) {
  if (BytesMatch(s.expect_bytes, bytes, in_module)) return std::string();
  const std::string where = absl::StrCat(s.function, "+0x", absl::Hex(s.probe_offset));
  const std::string by =
      VerifiedUnderProbeOf(self, addr, s.function, s.probe_offset, s.expect_bytes);
  if (!by.empty())
    return absl::StrCat("the code at ", where, " is under ", by,
                        "'s probe, which verified the same bytes");
  if (BytesMatchUnderInt3(s.expect_bytes, bytes, in_module) && Int3KprobeAt(addr))
    return absl::StrCat("the first byte at ", where,
                        " is another kprobe's int3 (kprobes/list); the other ", bytes.size() - 1,
                        " byte(s) match");
  return absl::FailedPreconditionError(absl::StrCat("the code at ", where, " is ", ToHex(bytes)));
}

// Forgets the sie_kfuncs sites (and their cells) at `addrs` that no other constant uses: a
// program still attached there afterwards could change nothing. Best effort (a site that is
// not registered any more is fine).
void UnregisterSites(const std::string& name, const std::vector<uint64_t>& addrs) {
  if (addrs.empty() || !ModuleLoaded("sie_kfuncs")) return;
  const std::set<uint64_t> others = AddressesOfOthers(name);
  for (uint64_t a : std::set<uint64_t>(addrs.begin(), addrs.end()))
    if (!others.count(a)) (void)KfuncsCommand(absl::StrCat("unsite 0x", absl::Hex(a)));
}

std::string DescribeKprobe(const KprobeEntry& e) {
  std::string s = e.where;
  if (e.type == "r") absl::StrAppend(&s, " (kretprobe)");
  if (e.optimized) absl::StrAppend(&s, " [OPTIMIZED]");
  if (e.ftrace) absl::StrAppend(&s, " [FTRACE]");
  if (e.disabled) absl::StrAppend(&s, " [DISABLED]");
  return s;
}

// Refuses when one of `functions` of `object` ("vmlinux" or a module) is replaced by a
// livepatch that is enabled or switching.
absl::Status CheckLivepatches(const std::set<std::string>& functions, const std::string& object) {
  auto lps = ReadLivepatches();
  if (!lps.ok()) return lps.status();
  for (const std::string& fn : functions) {
    const LivepatchedFunction* p = ActiveLivepatch(*lps, fn, object);
    if (!p) continue;
    const LivepatchedFunction& lf = *p;
    return FailedWithHint(
        absl::StrCat(lf.function, " (", object, ") is replaced by livepatch '", lf.patch, "' (",
                     lf.transition ? "in transition" : "enabled",
                     "): its callers run the patch's copy, so sie's probes inside the original "
                     "would never fire; nothing was attached"),
        absl::StrCat("disable the patch first (echo 0 > /sys/kernel/livepatch/", lf.patch,
                     "/enabled), or synthesize the constant against the patched code"));
  }
  return absl::OkStatus();
}

// The loaded constant whose native probe sits at SYMBOL+0xOFF (`key`, NativeKey), from the
// state files; "" when none claims it (another tool, or a load that died).
std::string NativeOwner(const std::string& key) {
  for (const json& st : StatesExcept("")) {
    if (st.value("engine", "bpf") != "native") continue;
    for (const auto& np : st.value("native", json::array()))
      if (NativeKey(np.value("symbol", ""), np.value("offset", uint64_t{0})) == key)
        return st.value("name", "");
  }
  return "";
}

// Why the native engine cannot take `probes` now: the first place sie_native already probes
// (another constant's, which it would refuse with EEXIST), with its owner; "" when all are free
// or the listing cannot be read (then a refused add still falls back, SetNative).
std::string NativePlaceTaken(const std::vector<NativeProbe>& probes) {
  auto listing = ReadFile(kNativeControl);
  if (!listing.ok()) return "";
  const int i = NativeConflict(probes, ParseNativeListing(*listing));
  if (i < 0) return "";
  const std::string key = NativeKey(probes[i].symbol, probes[i].offset);
  const std::string owner = NativeOwner(key);
  return absl::StrCat("span ", probes[i].span, " (", key, ") is already probed natively by ",
                      owner.empty() ? "another constant or tool" : owner,
                      " (sie_native keeps one probe per place)");
}

absl::Status LoadModuleIfNeeded(const std::string& name, std::vector<std::string>* notes) {
  if (ModuleLoaded(name)) return absl::OkStatus();
  fs::path ko = SelfDir().parent_path() / "kmod" / (name + ".ko");
  if (!fs::exists(ko))
    return FailedWithHint(
        absl::StrCat("module ", name, " is not loaded and ", ko.string(), " does not exist"),
        absl::StrCat("load it (modprobe ", name, ") or build it"));
  if (auto st = InsertModule(ko.string()); !st.ok()) return st;
  notes->push_back(absl::StrCat("loaded module ", name, " from ", ko.string()));
  return absl::OkStatus();
}

// Sets the u32 .rodata variable `name` of an opened, not yet loaded object (the verifier then
// knows its value and drops the code it disables).
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

// ---- mode 2: sie_consistency instances (one per constant, numbered by the constant's id) ----

using GlobalStatus = std::map<std::string, std::string>;

std::string StatusValue(const GlobalStatus& st, const std::string& key) {
  auto it = st.find(key);
  return it == st.end() ? "" : it->second;
}

double ElapsedMs(const GlobalStatus& st) {
  uint64_t ns = 0;
  return absl::SimpleAtoi(StatusValue(st, "elapsed_ns"), &ns) ? ns / 1e6 : 0;
}

// Waits until the instance's transition is no longer running. Polling is only how user space
// learns the outcome: the kernel switched the gate atomically, at the moment nobody was inside.
// Bounded by the module's own timeout (plus a margin for a slow guest).
GlobalStatus WaitGlobal(int id, double limit_s) {
  const auto until = Clock::now() + std::chrono::duration<double>(limit_s);
  for (;;) {
    GlobalStatus st = ConsistencyStatus(id);
    if (StatusValue(st, "result") != "running" || Clock::now() > until) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// One transition of instance `id` (forward: to the new value), run to its end. A transition
// still running (a `sie set` killed while waiting) is waited for first; one that is already
// where it should go (EALREADY) is done.
absl::StatusOr<GlobalStatus> RunGlobal(int id, bool forward, double timeout_s) {
  const int64_t ms =
      std::clamp<int64_t>(std::llround(timeout_s * 1000), 1, SIE_CONS_MAX_TIMEOUT_MS);
  const std::string cmd = absl::StrCat(forward ? "begin " : "revert ", id, " ", ms);
  int err = 0;
  absl::Status st = ConsistencyCommand(cmd, &err);
  if (!st.ok() && err == EBUSY) {
    WaitGlobal(id, SIE_CONS_MAX_TIMEOUT_MS / 1000.0);
    st = ConsistencyCommand(cmd, &err);
  }
  if (!st.ok() && err != EALREADY) return st;
  return WaitGlobal(id, ms / 1000.0 + 5);
}

// "2 frame(s) of tasks 812,813 stayed inside" and friends, for errors and status.
std::string DescribeBlockers(const GlobalStatus& st) {
  std::string s = absl::StrCat(StatusValue(st, "frames"), " frame(s) inside the safe spans");
  const std::string b = StatusValue(st, "blocking");
  if (!b.empty() && b != "-") absl::StrAppend(&s, " (tasks ", b, ")");
  const std::string u = StatusValue(st, "unreliable");
  if (!u.empty() && u != "0")
    absl::StrAppend(&s, ", ", u, " task stack(s) that could not be walked reliably");
  return s;
}

// Removes the instance unless released: a `sie set --mode 2` that fails after sending its
// spans leaves no instance and no counting kprobe behind.
class GlobalInstance {
 public:
  explicit GlobalInstance(int id) : id_(id) {}
  GlobalInstance(const GlobalInstance&) = delete;
  GlobalInstance& operator=(const GlobalInstance&) = delete;
  ~GlobalInstance() {
    if (id_ >= 0) (void)ConsistencyCommand(absl::StrCat("remove ", id_));
  }
  void Release() { id_ = -1; }

 private:
  int id_;
};

// The span command of sie_consistency's control file.
std::string SpanCommand(int id, const GlobalSpan& g) {
  std::string cmd = absl::StrFormat("span %d 0x%x 0x%x 0x%x", id, g.start, g.end, g.entry);
  for (uint64_t e : g.exits) absl::StrAppendFormat(&cmd, " 0x%x", e);
  return cmd;
}

absl::Status UnloadOne(const std::string& n, double timeout_s, const LoadedConst* before = nullptr,
                       json* summary = nullptr);

}  // namespace

fs::path RunDir() {
  if (const char* d = getenv("SIE_RUN_DIR"); d && *d) return d;
  return "/run/sie";
}

fs::path JournalPath() {
  if (const char* d = getenv("SIE_JOURNAL"); d && *d) return d;
  std::error_code ec;
  fs::create_directories("/var/log/sie", ec);
  if (!ec && access("/var/log/sie", W_OK) == 0) return "/var/log/sie/journal.jsonl";
  return RunDir() / "journal.jsonl";
}

// The BPF stub reaches a kMem span's cell through sie_kfuncs: a free cell id for each (the
// native engine writes the cell itself and needs none).
static absl::Status AssignCells(const artifact::SynthesizedConst& c,
                                std::vector<Attached>& probes) {
  bool need = false;
  for (const Attached& a : probes)
    need |= a.info.role == "apply" && c.spans[a.info.span].kind == SpanKind::kMem;
  if (!need) return absl::OkStatus();
  auto used = KfuncsUsedCells();
  if (!used.ok()) return used.status();
  const std::set<int> taken(used->begin(), used->end());
  int next = 0;
  for (Attached& a : probes) {
    if (a.info.role != "apply" || c.spans[a.info.span].kind != SpanKind::kMem) continue;
    while (next < kMaxCells && taken.count(next)) ++next;
    if (next >= kMaxCells)
      return FailedWithHint("no free sie_kfuncs memory cell",
                            "unload other constants (sie unload --all)");
    a.info.cell = next++;
  }
  return absl::OkStatus();
}

// The native engine's load (native.h): every probe is registered INERT first (writing the
// shipped value's result, which the Critical Span has just computed, changes nothing), its
// address is checked in the kprobe list, jump-optimizable candidates are tried while still
// inert, and only then each probe gets the new value. Any failure removes every probe (they
// were inert), so the kernel is left as it was.
// With `place_taken` (auto engine), a place sie_native refuses because another probe took it
// since the check in SetConst (EEXIST) sets *place_taken once this load's probes are removed
// again, journals nothing and returns the refusal with `probes` as they came (the candidate
// moves come later): the caller falls back to BPF.
static absl::StatusOr<SetResult> SetNative(const artifact::SynthesizedConst& c,
                                           const artifact::ConstEntry& entry,
                                           const SetOptions& opts, const std::string& release,
                                           bool in_module, std::vector<Attached>& probes,
                                           Clock::time_point t0, SetResult res, json journal,
                                           bool* place_taken) {
  auto fail = [&](absl::Status st) {
    journal["outcome"] = "refused";
    journal["error"] = std::string(st.message().substr(0, st.message().find('\n')));
    Journal(journal);
    return st;
  };
  auto np = NativeProbes(c, in_module ? c.target.binary : "vmlinux");
  if (!np.ok()) return fail(np.status());
  std::vector<uint64_t> inert, vals;
  for (const NativeProbe& p : *np) {
    auto o = NativeValue(*p.cs, c.values[0]);
    auto v = NativeValue(*p.cs, opts.value);
    if (!o.ok()) return fail(o.status());
    if (!v.ok()) return fail(v.status());
    inert.push_back(*o);
    vals.push_back(*v);
  }
  // probes[i] is span i's apply probe (mode 0, kinds reg/mem: no save or guard probes).
  if (probes.size() != np->size()) return fail(absl::InternalError("native: probe count"));
  auto ta = Clock::now();
  json state{{"name", c.name},
             {"id", c.id},
             {"const_path", fs::absolute(entry.path).string()},
             {"kernel_release", release},
             {"binary", c.target.binary},
             {"engine", "native"},
             {"mode", 0},
             {"value", opts.value},
             {"nspans", c.spans.size()},
             {"state", "loading"},
             {"pid", getpid()},
             {"loaded_at", static_cast<int64_t>(time(nullptr))},
             {"native", json::array()},
             {"attached_addresses", json::array()}};
  // The places where this load's probes are registered now (never another constant's: a place
  // whose add failed, e.g. EEXIST, is not ours to remove).
  std::set<std::pair<std::string, uint64_t>> mine;
  int add_err = 0;
  auto add = [&](const NativeProbe& p, uint64_t v) {
    absl::Status st = NativeCommand(NativeAddCommand(p, v), &add_err);
    if (st.ok()) mine.insert({p.symbol, p.offset});
    return st;
  };
  auto remove = [&](const NativeProbe& p) {
    absl::Status st = NativeCommand(NativeRemoveCommand(p.symbol, p.offset));
    if (st.ok()) mine.erase({p.symbol, p.offset});
    return st;
  };
  auto rollback = [&](absl::Status st) {
    for (const auto& [sym, off] : mine) (void)NativeCommand(NativeRemoveCommand(sym, off));
    std::error_code ec;
    fs::remove(StatePath(c.name), ec);
    return fail(st);
  };
  auto record = [&](size_t i) {
    state["native"].push_back(
        {{"span", (*np)[i].span}, {"symbol", (*np)[i].symbol}, {"offset", (*np)[i].offset}});
    state["attached_addresses"].push_back(probes[i].info.address);
    return WriteState(c.name, state);
  };
  if (auto st = WriteState(c.name, state); !st.ok()) return fail(st);
  auto before = ReadKprobeList();
  if (!before.ok()) return rollback(before.status());
  for (size_t i = 0; i < np->size(); ++i) {
    if (auto st = record(i); !st.ok()) return rollback(st);
    if (auto st = add((*np)[i], inert[i]); !st.ok()) {
      if (add_err != EEXIST || !place_taken) return rollback(st);
      // Taken meanwhile: remove what this load added (inert, so nothing changed), then let
      // the caller use BPF. A probe that cannot be removed is an error, not a fallback.
      absl::Status undo = absl::OkStatus();
      for (const auto& [sym, off] : std::set(mine))
        if (auto rm = NativeCommand(NativeRemoveCommand(sym, off)); rm.ok())
          mine.erase({sym, off});
        else if (undo.ok())
          undo = rm;
      if (!undo.ok()) return rollback(undo);
      std::error_code ec;
      fs::remove(StatePath(c.name), ec);
      *place_taken = true;
      return st;
    }
  }
  res.attach_ms = MsSince(ta);
  auto to = Clock::now();
  auto refresh = [&]() { RefreshProbeStates(probes); };
  if (opts.optimize) {
    // Same search as the BPF path: move unoptimized reg probes to equivalent offsets while inert.
    std::this_thread::sleep_for(std::chrono::duration<double>(opts.opt_wait_s));
    refresh();
    for (int round = 0; round < 3; ++round) {
      bool moved = false;
      for (size_t i = 0; i < probes.size(); ++i) {
        Attached& a = probes[i];
        NativeProbe& p = (*np)[i];
        if (a.info.optimized || a.next_candidate >= a.candidates.size()) continue;
        const ProbeInfo old_info = a.info;
        const uint64_t old_off = p.offset;
        if (auto st = remove(p); !st.ok()) return rollback(st);
        p.offset = a.candidates[a.next_candidate++];
        a.info.offset = p.offset;
        a.info.address = a.func_addr + p.offset;
        absl::Status st = record(i);
        if (st.ok()) st = add(p, inert[i]);
        if (!st.ok()) {  // that candidate cannot be probed: back to the previous offset
          p.offset = old_off;
          a.info = old_info;
          if (auto st2 = add(p, inert[i]); !st2.ok()) return rollback(st2);
          continue;
        }
        moved = true;
      }
      if (!moved) break;
      std::this_thread::sleep_for(std::chrono::duration<double>(opts.opt_wait_s));
      refresh();
    }
    for (auto& a : probes)
      if (a.info.offset != c.spans[a.info.span].probe_offset)
        res.notes.push_back(absl::StrCat("span ", a.info.span, ": probe moved to ", a.info.function,
                                         "+0x", absl::Hex(a.info.offset),
                                         a.info.optimized ? " (jump-optimized)" : ""));
  } else {
    refresh();
  }
  res.optimize_ms = MsSince(to);
  // sie_native resolved each probe by name: it must sit at the address whose bytes were
  // verified (one more kprobe there than before), else it probes something else.
  auto after = ReadKprobeList();
  if (!after.ok()) return rollback(after.status());
  std::map<uint64_t, int> want;
  for (const auto& a : probes) want[a.info.address]++;
  for (const auto& [addr, n] : want) {
    auto count = [&](const std::vector<KprobeEntry>& l) {
      return static_cast<int>(
          std::count_if(l.begin(), l.end(), [&](const KprobeEntry& e) { return e.addr == addr; }));
    };
    if (count(*after) - count(*before) != n)
      return rollback(FailedWithHint(
          absl::StrCat("sie_native's probe did not land at 0x", absl::Hex(addr),
                       ", the verified address (the symbol name resolves elsewhere?)"),
          "use --engine bpf (it attaches at the exact address)"));
  }
  // --- activate: each probe from inert to the new value ---
  for (size_t i = 0; i < np->size(); ++i)
    if (auto st = NativeCommand(NativeValueCommand((*np)[i], vals[i])); !st.ok())
      return rollback(st);
  RecordLoaded(probes, state, res);
  json places = json::array();  // where the probes are now (status, value changes, unload)
  for (const NativeProbe& p : *np)
    places.push_back({{"span", p.span}, {"symbol", p.symbol}, {"offset", p.offset}});
  json all_places = state["native"];
  state["native"] = places;
  if (auto st = WriteState(c.name, state); !st.ok()) {
    state["native"] = all_places;
    return rollback(st);
  }
  res.latency_ms = MsSince(t0);
  journal["outcome"] = "loaded";
  journal["latency_ms"] = res.latency_ms;
  Journal(journal);
  return res;
}

absl::StatusOr<SetResult> SetConst(const SetOptions& opts) {
  const auto t0 = Clock::now();
  libbpf_set_print(LibbpfPrint);
  // SIE_TRACE=1 prints the time of each step (load latency investigations in the guest).
  const bool trace = getenv("SIE_TRACE") != nullptr;
  auto mark = [&](const char* what) {
    if (trace) std::fprintf(stderr, "sie set: %8.1f ms  %s\n", MsSince(t0), what);
  };
  SetResult res;
  auto entry = artifact::FindConst(opts.consts_dir, opts.name);
  if (!entry.ok()) return entry.status();
  mark("const.json read");
  const artifact::SynthesizedConst& c = entry->c;
  res.name = c.name;
  res.value = opts.value;
  res.mode = opts.mode;
  json journal{{"const", c.name}, {"new_value", opts.value}, {"mode", opts.mode}};
  auto fail = [&](absl::Status st) {
    journal["outcome"] = "refused";
    journal["error"] = std::string(st.message().substr(0, st.message().find('\n')));
    Journal(journal);
    return st;
  };
  // Refusals that need nothing from the kernel come first: nothing is touched.
  if (opts.value < c.range_min || opts.value > c.range_max)
    return fail(InvalidWithHint(absl::StrCat("value ", opts.value, " is outside the range of ",
                                             c.name, " [", c.range_min, ", ", c.range_max, "]"),
                                "the range comes from the constant's spec (const.json 'range')"));
  if (opts.mode == 2 && (c.id < 0 || c.id >= SIE_CONS_MAX_ID))
    return fail(FailedWithHint(absl::StrCat(c.name, " has id ", c.id,
                                            "; sie_consistency numbers "
                                            "instances 0..",
                                            SIE_CONS_MAX_ID - 1),
                               "use --mode 1 (per-task)"));
  if (opts.mode < 0 || opts.mode > 2)
    return fail(InvalidWithHint(absl::StrCat("unknown mode ", opts.mode), "modes are 0, 1, 2"));
  if (geteuid() != 0)
    return fail(FailedWithHint("sie set changes the running kernel and needs root",
                               "run it as root (or in the guest: sie vm -- sie set ...)"));
  auto lock = RunLock::Take();
  if (!lock.ok()) return fail(lock.status());
  mark("locked");

  if (opts.engine != "auto" && opts.engine != "bpf" && opts.engine != "native")
    return fail(InvalidWithHint(absl::StrCat("unknown engine '", opts.engine, "'"),
                                "--engine takes auto, bpf or native"));

  // Already loaded: one map update.
  if (auto old = ReadState(StatePath(c.name)); old.ok()) {
    if ((*old).value("state", "") != "loaded")
      return fail(FailedWithHint(
          absl::StrCat(c.name, " was left half-loaded by process ", (*old).value("pid", 0)),
          absl::StrCat("remove it first: sie unload ", c.name)));
    const std::string loaded_engine = (*old).value("engine", "bpf");
    // The value changed in place: record it, journal it, report the probes as they are.
    auto updated = [&](const char* engine) {
      (*old)["value"] = opts.value;
      (void)WriteState(c.name, *old);
      for (const auto& p : (*old)["probes"]) res.probes.push_back(ProbeFromJson(p));
      res.updated_only = true;
      res.engine = engine;
      res.latency_ms = MsSince(t0);
      journal["old_value"] = *res.old_value;
      journal["engine"] = engine;
      journal["outcome"] = "updated";
      Journal(journal);
      return res;
    };
    if (opts.engine != "auto" && opts.engine != loaded_engine)
      return fail(
          FailedWithHint(absl::StrCat(c.name, " is loaded with the ", loaded_engine, " engine"),
                         absl::StrCat("changing the engine needs a reload: sie unload ", c.name,
                                      ", then sie set --engine ", opts.engine)));
    if (loaded_engine == "native") {
      if (opts.mode != 0)
        return fail(FailedWithHint(absl::StrCat(c.name, " is loaded in mode 0 (native engine)"),
                                   absl::StrCat("changing the mode needs a reload: sie unload ",
                                                c.name, ", then sie set")));
      auto np = NativeProbes(c, (*old).value("binary", "vmlinux"));
      if (!np.ok()) return fail(np.status());
      std::vector<uint64_t> vals, olds;
      res.old_value = (*old).value("value", int64_t{0});
      for (const NativeProbe& p : *np) {
        auto v = NativeValue(*p.cs, opts.value);
        auto o = NativeValue(*p.cs, *res.old_value);
        if (!v.ok()) return fail(v.status());
        vals.push_back(*v);
        olds.push_back(o.ok() ? *o : 0);
      }
      // The probes' current offsets (a candidate move changed some) from the state.
      const json& nat = (*old)["native"];
      for (size_t i = 0; i < np->size(); ++i)
        for (const auto& n : nat)
          if (n.value("span", -1) == (*np)[i].span)
            (*np)[i].offset = n.value("offset", uint64_t{0});
      for (size_t i = 0; i < np->size(); ++i)
        if (auto st = NativeCommand(NativeValueCommand((*np)[i], vals[i])); !st.ok()) {
          for (size_t j = 0; j < i; ++j) (void)NativeCommand(NativeValueCommand((*np)[j], olds[j]));
          return fail(st);
        }
      return updated("native");
    }
    if ((*old).value("mode", 0) != opts.mode)
      return fail(FailedWithHint(
          absl::StrCat(c.name, " is loaded in mode ", (*old).value("mode", 0)),
          absl::StrCat("changing the mode needs a reload: sie unload ", c.name, ", then sie set")));
    auto ctl = OpenPinned(c.name, "sie_ctl");
    if (!ctl.ok()) return fail(ctl.status());
    res.old_value = static_cast<int64_t>(CtlGet(ctl->get(), kCtlValue));
    if (opts.mode == 2 && *res.old_value != opts.value) {
      // A global constant changes value through the original one: a reverse transition, the map
      // update while the gate is closed, a forward transition. Each switch happens at an instant
      // with no task inside a span, so no span ever sees two of the values. (Writing the map
      // while active would switch at once, mid-span, like mode 0.)
      auto rv = RunGlobal(c.id, false, opts.timeout_s);
      if (!rv.ok()) return fail(rv.status());
      if (StatusValue(*rv, "state") != "off")
        return fail(FailedWithHint(
            absl::StrCat("the reverse transition of ", c.name, " did not finish within ",
                         opts.timeout_s, " s: ", DescribeBlockers(*rv), "; the value stays ",
                         *res.old_value),
            "retry with a larger --timeout, or reload in mode 1 (sie unload, then sie set "
            "--mode 1)"));
      if (auto st = CtlSet(ctl->get(), kCtlValue, static_cast<uint64_t>(opts.value)); !st.ok())
        return fail(st);
      auto fw = RunGlobal(c.id, true, opts.timeout_s);
      if (!fw.ok() || StatusValue(*fw, "state") != "active") {
        // At the original value now: unload the rest, so nothing stays attached for nothing.
        (void)UnloadOne(c.name, opts.timeout_s);
        return fail(FailedWithHint(
            absl::StrCat("the global transition of ", c.name, " to ", opts.value,
                         " did not finish within ", opts.timeout_s, " s: ",
                         fw.ok() ? DescribeBlockers(*fw) : std::string(fw.status().message()),
                         "; it is back at its original value and unloaded"),
            "use --mode 1 (per-task), or give the tasks more time: --timeout S"));
      }
      res.transition_ms = ElapsedMs(*fw);
      res.transition_result = StatusValue(*fw, "result");
    } else {
      if (opts.mode == 1) {
        // Tasks move to the new value at their next clean guard: a new epoch to measure.
        auto stats = OpenPinned(c.name, "sie_stats");
        if (!stats.ok()) return fail(stats.status());
        if (auto st = BeginEpoch(ctl->get(), stats->get()); !st.ok()) return fail(st);
      }
      if (auto st = CtlSet(ctl->get(), kCtlValue, static_cast<uint64_t>(opts.value)); !st.ok())
        return fail(st);
    }
    return updated("bpf");
  }
  if (!c.values.empty()) res.old_value = c.values[0];
  if (res.old_value) journal["old_value"] = *res.old_value;

  // --- engine: native where sie_native covers every span with equal safety (native.h) ---
  std::string why_not = NativeUnsupported(c, opts.mode, !opts.policy_objects.empty());
  if (why_not.empty() && c.values.empty())
    why_not = "the shipped value is unknown (const.json 'values'), so probes cannot start inert";
  if (why_not.empty())
    for (const auto& s : c.spans)
      if (auto v = NativeValue(s, opts.value); !v.ok()) {
        why_not = std::string(v.status().message());
        break;
      }
  bool native = false;
  if (opts.engine == "native") {
    if (!why_not.empty())
      return fail(FailedWithHint(absl::StrCat(c.name, " cannot use the native engine: ", why_not),
                                 "use --engine bpf (or auto, which picks it)"));
    native = true;
    res.engine_reason = "forced by --engine native";
  } else if (opts.engine == "bpf") {
    res.engine_reason = "forced by --engine bpf";
  } else if (why_not.empty()) {
    native = true;
    res.engine_reason = "sie_native covers every span (mode 0, fixed value, reg/mem kinds)";
  } else {
    res.engine_reason = absl::StrCat("sie_native cannot: ", why_not);
  }

  // --- verification: nothing attached yet ---
  const std::string release = KernelRelease();
  if (c.target.kernel_release != release)
    return fail(FailedWithHint(
        absl::StrCat(entry->path.string(), " was synthesized for kernel ", c.target.kernel_release,
                     ", but this kernel is ", release),
        "run 'sie synth' for the running kernel; offsets and bytes differ between builds"));
  if (auto st = EnsureDebugfs(); !st.ok()) return fail(st);
  if (auto st = EnsureBpffs(); !st.ok()) return fail(st);
  mark("fs ready");
  const bool in_module = !c.target.binary.empty() && c.target.binary != "vmlinux";
  if (in_module)
    if (auto st = LoadModuleIfNeeded(c.target.binary, &res.notes); !st.ok()) return fail(st);
  std::set<std::string> wanted;
  for (const auto& s : c.spans) wanted.insert(s.function);
  for (const auto& s : c.safe_spans) wanted.insert(s.function);
  auto ksyms = Kallsyms::Load(wanted);
  if (!ksyms.ok()) return fail(ksyms.status());
  mark("kallsyms");
  // A livepatched function is never entered again (its callers reach the replacement through
  // ftrace), so probes inside it would never fire: the new value would silently not apply.
  if (auto st = CheckLivepatches(wanted, in_module ? c.target.binary : "vmlinux"); !st.ok())
    return fail(st);

  std::vector<Attached> probes;
  if (native) {
    if (auto st = LoadModuleIfNeeded("sie_native", &res.notes); !st.ok()) {
      if (opts.engine == "native") return fail(st);
      native = false;
      res.engine_reason = absl::StrCat("sie_native is not available: ",
                                       st.message().substr(0, st.message().find('\n')));
    }
  }
  // sie_native keeps one probe per place: one of another constant there makes it refuse ours.
  // SIE_NATIVE_NO_PRECHECK=1 skips this check (tests of the race it cannot see, SetNative).
  if (native && !getenv("SIE_NATIVE_NO_PRECHECK")) {
    auto np = NativeProbes(c, in_module ? c.target.binary : "vmlinux");
    if (!np.ok()) return fail(np.status());
    if (std::string taken = NativePlaceTaken(*np); !taken.empty()) {
      if (opts.engine == "native")
        return fail(FailedWithHint(
            absl::StrCat(c.name, " cannot use the native engine: ", taken),
            "use --engine bpf (or auto, which falls back to it), or unload the other constant"));
      native = false;
      res.engine_reason = absl::StrCat("sie_native cannot: ", taken);
    }
  }
  res.engine = native ? "native" : "bpf";
  journal["engine"] = res.engine;
  if (!native)
    if (auto st = LoadModuleIfNeeded("sie_kfuncs", &res.notes); !st.ok()) return fail(st);
  if (opts.mode == 2) {
    if (auto st = LoadModuleIfNeeded("sie_consistency", &res.notes); !st.ok()) return fail(st);
    // No state file, so an instance of this id is a leftover of a killed `sie set`: its spans
    // may be stale, and its counting probes would look like foreign kprobes below.
    if (!ConsistencyStatus(c.id).empty()) {
      if (auto st = ConsistencyCommand(absl::StrCat("remove ", c.id)); !st.ok()) return fail(st);
      res.notes.push_back(absl::StrCat("removed a leftover sie_consistency instance ", c.id));
    }
  }
  for (size_t i = 0; i < c.spans.size(); ++i) {
    const auto& s = c.spans[i];
    auto sym = ksyms->Find(s.function, in_module ? c.target.binary : "vmlinux");
    if (!sym.ok()) return fail(WithContext(sym.status(), absl::StrCat("span ", i)));
    Attached a;
    a.info = MakeProbe("apply", static_cast<int>(i), s.function, s.probe_offset, sym->addr);
    a.func_addr = sym->addr;
    const size_t n = s.expect_bytes.size() / 2;
    auto bytes = ReadKernelBytes(a.info.address, n);
    if (!bytes.ok()) return fail(bytes.status());
    auto covered = CheckProbeBytes(c.name, s, a.info.address, *bytes, in_module);
    if (!covered.ok())
      return fail(FailedWithHint(absl::StrCat(covered.status().message(), ", but ",
                                              entry->path.string(), " expects ", s.expect_bytes),
                                 "the running kernel is not the build synth analyzed (run 'sie "
                                 "synth' again), or another tool patched the code there (e.g. a "
                                 "jump-optimized kprobe: see /sys/kernel/debug/kprobes/list)"));
    if (!covered->empty()) res.notes.push_back(absl::StrCat("span ", i, ": ", *covered));
    if (s.kind == SpanKind::kReg)
      for (uint64_t off : s.candidates)
        if (off != s.probe_offset) a.candidates.push_back(off);
    probes.push_back(std::move(a));
    if (s.kind == SpanKind::kRecompute && s.x_from_probe.empty()) {
      Attached sv;
      sv.info = MakeProbe("save", static_cast<int>(i), s.function, *s.save_offset, sym->addr);
      sv.func_addr = sym->addr;
      probes.push_back(std::move(sv));
    }
  }
  if (!native)
    if (auto st = AssignCells(c, probes); !st.ok()) return fail(st);
  // Safe spans (whole CS functions when synth gave none). Mode 1: guards at their entries.
  // Mode 2: sie_consistency's spans, with exits from the live code.
  std::vector<std::pair<uint64_t, uint64_t>> safe_ranges;
  std::vector<GlobalSpan> global_spans;
  if (opts.mode == 1 || opts.mode == 2) {
    std::vector<artifact::SafeSpan> ss = c.safe_spans;
    if (ss.empty()) {
      std::set<std::string> fns;
      for (const auto& s : c.spans) fns.insert(s.function);
      for (const auto& f : fns) ss.push_back({f, 0, 0, artifact::SafeSpanHow::kWholeFunction});
    }
    const size_t max_spans = opts.mode == 1 ? kMaxSafe : SIE_CONS_MAX_SPANS;
    if (ss.size() > max_spans)
      return fail(FailedWithHint(absl::StrCat(c.name, " has ", ss.size(), " safe spans; mode ",
                                              opts.mode, " supports ", max_spans),
                                 opts.mode == 1 ? "use --mode 0" : "use --mode 1 or 0"));
    std::vector<KprobeEntry> foreign;  // mode 2: kprobes that patch code we disassemble
    if (opts.mode == 2) {
      auto list = ReadKprobeList();
      if (!list.ok()) return fail(list.status());
      for (const auto& e : *list)
        if (!e.ftrace && !e.disabled) foreign.push_back(e);
    }
    for (size_t j = 0; j < ss.size(); ++j) {
      auto sym = ksyms->Find(ss[j].function, in_module ? c.target.binary : "vmlinux");
      if (!sym.ok()) return fail(WithContext(sym.status(), absl::StrCat("safe span ", j)));
      uint64_t end = ss[j].how == artifact::SafeSpanHow::kWholeFunction || ss[j].end == 0
                         ? sym->size
                         : ss[j].end;
      safe_ranges.push_back({sym->addr + ss[j].start, sym->addr + end});
      if (opts.mode == 2) {
        const std::string where = absl::StrCat("safe span ", j, " (", ss[j].function, "+0x",
                                               absl::Hex(ss[j].start), "..0x", absl::Hex(end), ")");
        const uint64_t fn_size = std::min<uint64_t>(std::max(sym->size, end), 1 << 20);
        for (const auto& e : foreign)
          if (e.addr >= sym->addr && e.addr < sym->addr + fn_size)
            return fail(FailedWithHint(
                absl::StrCat(where, ": the code is patched by a kprobe at ", e.where,
                             " (another constant or tool); its exits cannot be read"),
                "unload what probes that function (sie status; kprobes/list), or use --mode 1"));
        auto code = ReadKernelBytes(sym->addr, fn_size);
        if (!code.ok()) return fail(WithContext(code.status(), where));
        auto g = AnalyzeGlobalSpan(*code, sym->addr, sym->addr + ss[j].start, sym->addr + end,
                                   SIE_CONS_MAX_EXITS);
        if (!g.ok()) return fail(WithContext(g.status(), where));
        global_spans.push_back(std::move(*g));
        continue;
      }
      Attached g;
      g.info = MakeProbe("guard", static_cast<int>(j), ss[j].function, ss[j].start, sym->addr);
      g.func_addr = sym->addr;
      probes.push_back(std::move(g));
    }
  }
  // Mode 2: the unguard of an exit runs before a CS probe at the same address (consistency.h),
  // so the last task out would see the new value at that use only: refused when the span has
  // other uses. Candidate offsets on any exit are dropped for the same reason.
  for (const GlobalSpan& g : global_spans) {
    auto is_exit = [&](uint64_t a) {
      return std::find(g.exits.begin(), g.exits.end(), a) != g.exits.end();
    };
    int uses = 0;
    const Attached* on_exit = nullptr;
    for (const Attached& a : probes) {
      if (a.info.role != "apply") continue;
      const bool exit = is_exit(a.info.address);
      if ((a.info.address >= g.start && a.info.address < g.end) || exit) ++uses;
      if (exit) on_exit = &a;
    }
    if (on_exit && uses > 1)
      return fail(FailedWithHint(
          absl::StrCat("span ", on_exit->info.span, " of ", c.name, " is probed at ",
                       on_exit->info.function, "+0x", absl::Hex(on_exit->info.offset),
                       ", an exit of a safe span with ", uses,
                       " uses: mode 2 would apply the new value there only for the last task "
                       "out"),
          "use --mode 1 (per-task)"));
    for (Attached& a : probes)
      std::erase_if(a.candidates, [&](uint64_t off) { return is_exit(a.func_addr + off); });
  }
  // Other kprobes at our probe addresses (another tool, another constant): both run on each
  // hit, in registration order. Not refused (kprobes share addresses safely), but told, and
  // listed by `sie status`.
  if (auto list = ReadKprobeList(); list.ok()) {
    for (Attached& a : probes) {
      for (const auto& e : *list)
        if (e.addr == a.info.address) a.info.others.push_back(DescribeKprobe(e));
      a.info.others_count = static_cast<int>(a.info.others.size());
      if (!a.info.others.empty())
        res.warnings.push_back(
            absl::StrCat(a.info.role, " probe of span ", a.info.span, " at ", a.info.function,
                         "+0x", absl::Hex(a.info.offset), ": ", a.info.others.size(),
                         " other kprobe(s) already registered there (",
                         absl::StrJoin(a.info.others, "; "), "); they run on the same hits"));
    }
  }
  res.verify_ms = MsSince(t0);
  mark("verified");
  if (native) {
    bool place_taken = false;
    auto r = SetNative(c, *entry, opts, release, in_module, probes, t0, res, journal,
                       opts.engine == "auto" ? &place_taken : nullptr);
    if (!place_taken) return r;
    // Another native probe took one of our places after the check above (a race): BPF shares
    // places with any kprobe.
    native = false;
    res.engine = "bpf";
    journal["engine"] = "bpf";
    const absl::string_view msg = r.status().message();
    res.engine_reason =
        absl::StrCat("sie_native refused a place taken meanwhile (", msg.substr(0, msg.find('\n')),
                     "); its probes of this load were removed");
    if (auto st = LoadModuleIfNeeded("sie_kfuncs", &res.notes); !st.ok()) return fail(st);
    if (auto st = AssignCells(c, probes); !st.ok()) return fail(st);
    mark("native place taken: bpf");
  }

  // --- build and load the stub ---
  auto tb = Clock::now();
  auto stub = stubgen::BuildStub(*entry);
  if (!stub.ok()) return fail(stub.status());
  res.compiled = stub->compiled_now;
  fs::path obj_path = stub->object;
  std::optional<TempDir> link_tmp;
  if (!opts.policy_objects.empty()) {
    auto tmp = TempDir::Create(stubgen::CacheDir(), ".link-");
    if (!tmp.ok()) return fail(tmp.status());
    link_tmp.emplace(std::move(*tmp));
    std::vector<fs::path> objs{stub->object};
    objs.insert(objs.end(), opts.policy_objects.begin(), opts.policy_objects.end());
    obj_path = link_tmp->path() / "linked.bpf.o";
    if (auto st = stubgen::LinkObjects(objs, obj_path); !st.ok()) return fail(st);
  }
  res.build_ms = MsSince(tb);
  mark("stub ready");
  auto tl = Clock::now();
  LibbpfLog().clear();
  ObjPtr obj(bpf_object__open_file(obj_path.c_str(), nullptr));
  if (!obj)
    return fail(absl::InternalError(
        absl::StrCat("opening ", obj_path.string(), ": ", strerror(errno), "\n", LogTail())));
  // Only mode-2 stubs call sie_consistency's kfunc (and so need the module loaded).
  if (opts.mode == 2)
    if (auto st = SetRodataU32(obj.get(), "sie_global_kfunc", 1); !st.ok()) return fail(st);
  if (bpf_object__load(obj.get()) != 0)
    return fail(
        FailedWithHint(absl::StrCat("the kernel refused the stub of ", c.name, ":\n", LogTail()),
                       "sie_kfuncs.ko must be loaded (kfuncs) and the kernel needs BTF"));
  bpf_map* ctl_map = bpf_object__find_map_by_name(obj.get(), "sie_ctl");
  bpf_map* safe_map = bpf_object__find_map_by_name(obj.get(), "sie_safe");
  if (!ctl_map || !safe_map) return fail(absl::InternalError("stub without sie_ctl/sie_safe"));
  const int ctl = bpf_map__fd(ctl_map);
  for (size_t j = 0; j < safe_ranges.size(); ++j) {
    uint32_t k = j;
    uint64_t r[2] = {safe_ranges[j].first, safe_ranges[j].second};
    bpf_map_update_elem(bpf_map__fd(safe_map), &k, r, BPF_ANY);
  }
  for (auto [k, v] : {std::pair<uint32_t, uint64_t>{kCtlValue, static_cast<uint64_t>(opts.value)},
                      {kCtlMode, static_cast<uint64_t>(opts.mode)},
                      {kCtlTarget, 1},
                      {kCtlNsafe, safe_ranges.size()},
                      {kCtlInstance, static_cast<uint64_t>(c.id)},
                      {kCtlActive, 0}})
    if (auto st = CtlSet(ctl, k, v); !st.ok()) return fail(st);
  for (auto& a : probes) {
    std::string pname =
        a.info.role == "guard" ? "sie_guard" : absl::StrCat("sie_", a.info.role, "_", a.info.span);
    a.prog = bpf_object__find_program_by_name(obj.get(), pname.c_str());
    if (!a.prog) return fail(absl::InternalError("stub has no program " + pname));
  }
  res.load_ms = MsSince(tl);
  mark("loaded");

  // --- attach all or none ---
  auto ta = Clock::now();
  const std::string pin_dir = PinDir(c.name);
  json state{{"name", c.name},
             {"id", c.id},
             {"const_path", fs::absolute(entry->path).string()},
             {"kernel_release", release},
             {"binary", c.target.binary},
             {"mode", opts.mode},
             {"value", opts.value},
             {"nspans", c.spans.size()},
             {"state", "loading"},
             {"pid", getpid()},
             {"pin_dir", pin_dir},
             {"loaded_at", static_cast<int64_t>(time(nullptr))}};
  // Mode 2: the constant's sie_consistency instance, removed again unless the load succeeds.
  std::optional<GlobalInstance> instance;
  std::vector<uint64_t> registered_sites;  // sie_kfuncs sites of this load (apply probes)
  auto rollback = [&](absl::Status st) {
    std::vector<uint64_t> addrs;
    std::map<uint64_t, int> keep;  // other tools' kprobes found there before ours
    for (auto& a : probes) {
      if (a.attached()) addrs.push_back(a.info.address);
      keep[a.info.address] = std::max(keep[a.info.address], a.info.others_count);
      Detach(a);
    }
    (void)RemovePins(pin_dir);
    instance.reset();  // its counting probes may share addresses with the CS probes
    (void)WaitKprobesGone(addrs, 5, keep);
    UnregisterSites(c.name, registered_sites);
    std::error_code ec;
    fs::remove(StatePath(c.name), ec);
    return fail(st);
  };
  // The state file first: a kill -9 from here on leaves something `sie unload --all` finds.
  if (auto st = WriteState(c.name, state); !st.ok()) return fail(st);
  // Mode 2: the instance before any probe, so the gate exists (closed) when the first CS runs.
  if (opts.mode == 2) {
    json ca = json::array();
    for (const GlobalSpan& g : global_spans) {
      ca.push_back(g.entry);
      for (uint64_t e : g.exits) ca.push_back(e);
    }
    state["consistency_addresses"] = ca;
    if (auto st = WriteState(c.name, state); !st.ok()) return rollback(st);
    instance.emplace(c.id);
    for (const GlobalSpan& g : global_spans)
      if (auto st = ConsistencyCommand(SpanCommand(c.id, g)); !st.ok()) return rollback(st);
  }
  if (mkdir(pin_dir.c_str(), 0700) != 0 && errno != EEXIST)
    return rollback(absl::InternalError(absl::StrCat("mkdir ", pin_dir, ": ", strerror(errno))));
  for (const char* m : {"sie_ctl", "sie_stats", "sie_task", "sie_safe", "sie_blocked"}) {
    bpf_map* map = bpf_object__find_map_by_name(obj.get(), m);
    if (!map) continue;
    if (int err = bpf_map__pin(map, (fs::path(pin_dir) / m).c_str()); err)
      return rollback(absl::InternalError(absl::StrCat("pinning ", m, ": ", strerror(-err))));
  }
  // Every address ever attached is recorded before the next step, so `sie unload --all` after
  // a kill -9 knows which kprobes must disappear (link release is asynchronous).
  state["attached_addresses"] = json::array();
  auto record = [&](const Attached& a) {
    state["attached_addresses"].push_back(a.info.address);
    return WriteState(c.name, state);
  };
  for (auto& a : probes) {
    const artifact::CriticalSpan& s = c.spans[a.info.role == "guard" ? 0 : a.info.span];
    if (a.info.role == "apply") registered_sites.push_back(a.info.address);
    if (auto st = Register(a, s); !st.ok()) return rollback(st);
    if (auto st = Attach(a, pin_dir); !st.ok()) return rollback(st);
    if (auto st = record(a); !st.ok()) return rollback(st);
  }
  res.attach_ms = MsSince(ta);
  mark("attached");

  // --- jump optimization: while still inactive, move unoptimized apply probes of kind reg to
  // other equivalent offsets (detach + reattach, same program) ---
  auto to = Clock::now();
  auto refresh = [&]() { RefreshProbeStates(probes); };
  // A site this load no longer probes (a candidate left or refused), unless another of its
  // probes sits at the same address.
  auto drop_site = [&](uint64_t addr) {
    for (const auto& p : probes)
      if (p.info.address == addr) return;
    UnregisterSites(c.name, {addr});
  };
  if (opts.optimize) {
    std::this_thread::sleep_for(std::chrono::duration<double>(opts.opt_wait_s));
    refresh();
    for (int round = 0; round < 3; ++round) {
      bool moved = false;
      for (auto& a : probes) {
        if (a.info.role != "apply" || a.info.optimized || a.next_candidate >= a.candidates.size())
          continue;
        ProbeInfo before = a.info;
        Detach(a);
        a.info.offset = a.candidates[a.next_candidate++];
        a.info.address = a.func_addr + a.info.offset;
        const uint64_t cand_addr = a.info.address;
        registered_sites.push_back(cand_addr);
        absl::Status st = Register(a, c.spans[a.info.span]);
        if (st.ok()) st = Attach(a, pin_dir);
        if (st.ok()) st = record(a);
        if (!st.ok()) {  // that candidate cannot be probed: back to the previous offset
          Detach(a);
          a.info = before;
          if (auto st2 = Attach(a, pin_dir); !st2.ok()) return rollback(st2);
          drop_site(cand_addr);
          continue;
        }
        // The old offset is no probe of this constant any more: its site goes too.
        drop_site(before.address);
        moved = true;
      }
      if (!moved) break;
      std::this_thread::sleep_for(std::chrono::duration<double>(opts.opt_wait_s));
      refresh();
    }
    for (auto& a : probes)
      if (a.info.role == "apply" && a.info.offset != c.spans[a.info.span].probe_offset)
        res.notes.push_back(absl::StrCat("span ", a.info.span, ": probe moved to ", a.info.function,
                                         "+0x", absl::Hex(a.info.offset),
                                         a.info.optimized ? " (jump-optimized)" : ""));
  } else {
    refresh();
  }
  res.optimize_ms = MsSince(to);

  // --- activate ---
  if (opts.mode == 1) {
    bpf_map* stats_map = bpf_object__find_map_by_name(obj.get(), "sie_stats");
    if (!stats_map) return rollback(absl::InternalError("stub without sie_stats"));
    if (auto st = BeginEpoch(ctl, bpf_map__fd(stats_map)); !st.ok()) return rollback(st);
  }
  if (auto st = CtlSet(ctl, kCtlActive, 1); !st.ok()) return rollback(st);
  if (opts.mode == 2) {
    // The gate stays closed until sie_consistency flips it at an instant with no task inside a
    // span. On timeout the module rolled back (never active): detach everything.
    auto tt = Clock::now();
    auto fw = RunGlobal(c.id, true, opts.timeout_s);
    if (!fw.ok()) return rollback(fw.status());
    if (StatusValue(*fw, "state") != "active")
      return rollback(FailedWithHint(
          absl::StrCat("the global transition of ", c.name, " did not finish within ",
                       opts.timeout_s, " s: ", DescribeBlockers(*fw),
                       "; nothing was applied and nothing is left attached"),
          "use --mode 1 (per-task), or give the tasks more time: --timeout S"));
    res.transition_ms = ElapsedMs(*fw);
    res.transition_result = StatusValue(*fw, "result");
    state["global"] = {{"result", res.transition_result},
                       {"transition_ms", res.transition_ms},
                       {"wait_ms", MsSince(tt)}};
    mark("global transition done");
  }
  RecordLoaded(probes, state, res);
  if (auto st = WriteState(c.name, state); !st.ok()) return rollback(st);
  // The pins own the links now; dropping our references does not detach them.
  for (auto& a : probes) HandOver(a);
  if (instance) instance->Release();
  res.latency_ms = MsSince(t0);
  journal["outcome"] = "loaded";
  journal["latency_ms"] = res.latency_ms;
  if (opts.mode == 2) journal["transition_ms"] = res.transition_ms;
  Journal(journal);
  return res;
}

absl::StatusOr<std::vector<LoadedConst>> Status() {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(RunDir(), ec))
    if (e.path().extension() == ".json" && e.path().filename() != "journal.json")
      names.insert(e.path().stem().string());
  for (const auto& e : fs::directory_iterator(kPinRoot, ec))
    if (e.is_directory()) names.insert(e.path().filename().string());
  auto list = ReadKprobeList();
  // A livepatch enabled after `sie set` bypasses probes inside the functions it replaces.
  auto lps = ReadLivepatches();
  std::vector<LoadedConst> out;
  for (const auto& n : names) {
    LoadedConst lc;
    auto st = ReadState(StatePath(n));
    lc.state = st.ok() ? *st : json{{"name", n}, {"state", "orphaned pins"}};
    lc.pins_present = fs::exists(PinDir(n) / "sie_ctl", ec);
    lc.engine = lc.state.value("engine", "bpf");
    uint32_t nspans = lc.state.value("nspans", 0);
    if (lc.engine == "native") {
      // sie_native's own counters: a fixed value has no range rejections and no gate, so
      // applied = hits - faults, failed = faults.
      auto listing = ReadFile(kNativeControl);
      const auto counters =
          listing.ok() ? ParseNativeListing(*listing) : std::map<std::string, NativeCounters>{};
      lc.spans.assign(nspans, SpanCounters{});
      bool all = true;
      for (const auto& np : lc.state.value("native", json::array())) {
        const int span = np.value("span", -1);
        auto it = counters.find(NativeKey(np.value("symbol", ""), np.value("offset", uint64_t{0})));
        if (it == counters.end() || span < 0 || span >= static_cast<int>(nspans)) {
          all = false;
          continue;
        }
        lc.spans[span] = {
            it->second.hits, it->second.hits - it->second.faults, 0, it->second.faults, 0, 0};
      }
      lc.pins_present = all;  // every native probe is registered
    }
    if (lc.engine == "bpf" && lc.pins_present && nspans > 0) {
      auto fd = OpenPinned(n, "sie_stats");
      if (fd.ok()) {
        auto v = ReadStats(fd->get(), nspans * kStatNr);
        for (uint32_t i = 0; i < nspans; ++i) {
          const uint64_t* s = &v[i * kStatNr];
          lc.spans.push_back({s[0], s[1], s[2], s[3], s[4], s[5]});
        }
        lc.transitions = v[kStatTransitions];
        lc.unsafe = v[kStatUnsafe];
        lc.epoch = ReadEpoch(fd->get());
      }
      auto ctl = OpenPinned(n, "sie_ctl");
      auto blocked = OpenPinned(n, "sie_blocked");
      if (ctl.ok() && blocked.ok() && CtlGet(ctl->get(), kCtlMode) == 1)
        lc.blocked = ReadBlocked(blocked->get(), CtlGet(ctl->get(), kCtlEpochNs));
      if (ctl.ok()) {
        lc.state["value"] = static_cast<int64_t>(CtlGet(ctl->get(), kCtlValue));
        lc.state["active"] = CtlGet(ctl->get(), kCtlActive);
        if (CtlGet(ctl->get(), kCtlMode) == 2)
          lc.global = ConsistencyStatus(static_cast<int>(CtlGet(ctl->get(), kCtlInstance)));
      }
    }
    if (lc.state.contains("probes")) {
      const std::string binary = lc.state.value("binary", "");
      const std::string object = binary.empty() ? "vmlinux" : binary;
      // How many of the kprobes at an address are this constant's own: its probes there and
      // the counting probes of its sie_consistency instance (mode 2).
      std::map<uint64_t, int> own;
      for (const auto& p : lc.state["probes"]) own[p.value("address", uint64_t{0})]++;
      for (const auto& a : lc.state.value("consistency_addresses", json::array()))
        if (a.is_number_unsigned()) own[a.get<uint64_t>()]++;
      for (const auto& p : lc.state["probes"]) {
        ProbeInfo pi = ProbeFromJson(p);
        pi.optimized = false;
        pi.kprobe_flags = "(not attached)";
        if (list.ok()) {
          std::vector<std::string> here;
          for (const auto& e : *list)
            if (e.addr == pi.address) {
              pi.optimized = e.optimized;
              pi.kprobe_flags = e.optimized ? "[OPTIMIZED]" : e.ftrace ? "[FTRACE]" : "";
              here.push_back(DescribeKprobe(e));
            }
          // The list cannot tell whose probe is whose: report the count beyond our own.
          const int extra = static_cast<int>(here.size()) - own[pi.address];
          if (extra > 0) {
            pi.others.assign(here.begin(), here.end());
            pi.others_count = extra;
          }
        }
        if (lps.ok())
          if (const LivepatchedFunction* lf = ActiveLivepatch(*lps, pi.function, object)) {
            pi.livepatched_by = lf->patch;
            pi.livepatch_transition = lf->transition;
          }
        lc.probes.push_back(pi);
      }
      // One warning per patch, naming the functions it takes away from this constant.
      std::map<std::string, std::set<std::string>> by_patch;
      for (const ProbeInfo& pi : lc.probes)
        if (!pi.livepatched_by.empty()) by_patch[pi.livepatched_by].insert(pi.function);
      for (const auto& [patch, fns] : by_patch)
        lc.warnings.push_back(
            {absl::StrCat("livepatch '", patch, "' replaces ", absl::StrJoin(fns, ", "), " (",
                          object,
                          "): its callers run the patch's copy, so the probes there never fire "
                          "and the value does not apply there"),
             absl::StrCat("sie unload ", n,
                          ", or disable the patch (echo 0 > /sys/kernel/livepatch/", patch,
                          "/enabled)")});
    }
    out.push_back(std::move(lc));
  }
  return out;
}

namespace {

// Unload of one constant; the caller holds the run lock.
// What a constant did while it was loaded (the journal entry of its unload and the summary
// `sie unload` prints): how long, and its probes' counters summed over spans.
void AddLifetimeSummary(const LoadedConst& lc, json& journal) {
  const json& s = lc.state;
  journal["engine"] = lc.engine;
  if (s.contains("loaded_at"))
    journal["loaded_s"] = static_cast<int64_t>(time(nullptr)) - s.value("loaded_at", int64_t{0});
  SpanCounters sum;
  for (const auto& c : lc.spans) {
    sum.hits += c.hits;
    sum.applied += c.applied;
    sum.rejected += c.rejected;
    sum.failed += c.failed;
    sum.gated += c.gated;
  }
  journal["probes"] = lc.probes.size();
  journal["hits"] = sum.hits;
  journal["applied"] = sum.applied;
  journal["rejected"] = sum.rejected;
  journal["failed"] = sum.failed;
  journal["gated"] = sum.gated;
}

absl::Status UnloadOne(const std::string& n, double timeout_s, const LoadedConst* before,
                       json* summary) {
  std::error_code ec;
  auto state = ReadState(StatePath(n));
  json journal{{"const", n}, {"new_value", nullptr}, {"outcome", "unloaded"}};
  if (state.ok()) {
    journal["old_value"] = (*state).value("value", int64_t{0});
    journal["mode"] = (*state).value("mode", 0);
  }
  if (before) AddLifetimeSummary(*before, journal);
  auto ctl = OpenPinned(n, "sie_ctl");
  // Mode 2: the constant's sie_consistency instance (from the pinned control words, else from
  // the state file of a load that died before pinning them).
  int global_id = -1;
  if (ctl.ok() && CtlGet(ctl->get(), kCtlMode) == 2)
    global_id = static_cast<int>(CtlGet(ctl->get(), kCtlInstance));
  else if (!ctl.ok() && state.ok() && (*state).value("mode", 0) == 2)
    global_id = (*state).value("id", -1);
  if (global_id >= 0 && !ModuleLoaded("sie_consistency")) global_id = -1;
  if (global_id >= 0 && !ConsistencyStatus(global_id).empty()) {
    // Back to the original value at one instant with no task inside a span. If that does not
    // happen in time the new value stays active (the module never switches mid-span), so
    // everything stays loaded: detaching now would switch mid-span, like mode 0.
    auto rv = RunGlobal(global_id, false, timeout_s);
    if (!rv.ok() || StatusValue(*rv, "state") != "off") {
      const std::string why = rv.ok() ? DescribeBlockers(*rv) : std::string(rv.status().message());
      journal["outcome"] = "refused";
      journal["error"] = absl::StrCat("reverse transition did not finish: ", why);
      Journal(journal);
      if (summary) *summary = journal;
      return FailedWithHint(
          absl::StrCat("the reverse transition of ", n, " did not finish within ", timeout_s,
                       " s: ", why, "; it stays loaded with its new value"),
          absl::StrCat("retry with a larger --timeout (sie unload ", n,
                       " --timeout S); see 'sie status' for the tasks inside"));
    }
    journal["reverse_transition"] = StatusValue(*rv, "result");
    journal["transition_ms"] = ElapsedMs(*rv);
  }
  if (ctl.ok()) {
    const int mode = static_cast<int>(CtlGet(ctl->get(), kCtlMode));
    if (mode == 1 && CtlGet(ctl->get(), kCtlActive)) {
      // Reverse transition: tasks go back to the original value at their next guard with a
      // clean stack. Done when no apply hit has used the new value for 200 ms, or at the
      // timeout (then the kill switch below ends it for everyone).
      auto stats = OpenPinned(n, "sie_stats");
      if (stats.ok()) (void)BeginEpoch(ctl->get(), stats->get());
      (void)CtlSet(ctl->get(), kCtlTarget, 0);
      uint32_t nspans = state.ok() ? (*state).value("nspans", 0) : 0;
      auto applied = [&]() {
        uint64_t sum = 0;
        if (!stats.ok()) return sum;
        auto v = ReadStats(stats->get(), nspans * kStatNr);
        for (uint32_t i = 0; i < nspans; ++i) sum += v[i * kStatNr + 1];
        return sum;
      };
      const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
      uint64_t last = applied();
      auto quiet_since = Clock::now();
      bool converged = false;
      while (Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        uint64_t now = applied();
        if (now != last) {
          last = now;
          quiet_since = Clock::now();
        } else if (MsSince(quiet_since) >= 200) {
          converged = true;
          break;
        }
      }
      journal["reverse_transition"] = converged ? "converged" : "timed out";
      if (stats.ok()) {
        // The tasks that moved back, and the slowest one's time from the request (kernel clock).
        const EpochStats e = ReadEpoch(stats->get());
        journal["reverse_tasks"] = e.tasks;
        journal["reverse_max_ms"] = e.max_ms;
      }
    }
    (void)CtlSet(ctl->get(), kCtlActive, 0);
  }
  std::vector<uint64_t> addrs;
  if (state.ok()) {
    for (const auto& a : (*state).value("attached_addresses", json::array()))
      if (a.is_number_unsigned()) addrs.push_back(a.get<uint64_t>());
    for (const auto& p : (*state).value("probes", json::array()))
      addrs.push_back(p.value("address", uint64_t{0}));
  }
  // Kprobes of other tools at our addresses stay: count them before anything is removed.
  std::map<uint64_t, int> own;
  if (state.ok()) {
    const json& s = *state;
    if (s.contains("probes"))
      for (const auto& p : s["probes"]) own[p.value("address", uint64_t{0})]++;
    else
      for (const auto& a : s.value("attached_addresses", json::array()))
        if (a.is_number_unsigned()) own[a.get<uint64_t>()]++;
    for (const auto& a : s.value("consistency_addresses", json::array()))
      if (a.is_number_unsigned()) own[a.get<uint64_t>()]++;
  }
  const std::map<uint64_t, int> keep = ForeignKprobes(addrs, own);
  std::vector<uint64_t> sites;  // apply probes, and every address a candidate move left
  if (state.ok()) {
    for (const auto& p : (*state).value("probes", json::array()))
      if (p.value("role", "") == "apply") sites.push_back(p.value("address", uint64_t{0}));
    for (const auto& a : (*state).value("attached_addresses", json::array()))
      if (a.is_number_unsigned()) sites.push_back(a.get<uint64_t>());
  }
  absl::Status st = absl::OkStatus();
  if (state.ok() && (*state).value("engine", "bpf") == "native" && ModuleLoaded("sie_native")) {
    // unregister_kprobe is synchronous: once removed, no handler of it runs any more.
    for (const auto& np : (*state).value("native", json::array())) {
      int err = 0;
      auto rm = NativeCommand(
          NativeRemoveCommand(np.value("symbol", ""), np.value("offset", uint64_t{0})), &err);
      if (!rm.ok() && err != ENOENT && st.ok()) st = rm;
    }
  }
  if (st.ok()) st = RemovePins(PinDir(n));
  // The instance after the stub: its gate is off already; removing it unregisters the counting
  // probes, which may share an address with a CS probe (a use on a span exit), so before the
  // wait for those addresses to leave the kprobe list.
  if (st.ok() && global_id >= 0) {
    int err = 0;
    if (auto rm = ConsistencyCommand(absl::StrCat("remove ", global_id), &err);
        !rm.ok() && err != ENOENT)
      st = rm;
  }
  if (st.ok()) st = WaitKprobesGone(addrs, std::max(timeout_s, 2.0), keep);
  // Per-site unregistration: once the probes are gone, the constant's sites and cells leave
  // sie_kfuncs, so nothing attached there later (a leftover, another tool) can write.
  if (st.ok()) UnregisterSites(n, sites);
  if (st.ok()) fs::remove(StatePath(n), ec);
  if (!st.ok()) journal["outcome"] = "failed";
  Journal(journal);
  if (summary) *summary = journal;
  return st;
}

}  // namespace

absl::Status Unload(const std::string& name_in, bool all, double timeout_s,
                    std::vector<nlohmann::json>* summaries) {
  if (geteuid() != 0)
    return FailedWithHint("sie unload changes the running kernel and needs root", "run as root");
  auto lock = RunLock::Take();
  if (!lock.ok()) return lock.status();
  std::vector<std::string> names;
  std::error_code ec;
  if (all) {
    std::set<std::string> s;
    for (const auto& e : fs::directory_iterator(RunDir(), ec))
      if (e.path().extension() == ".json") s.insert(e.path().stem().string());
    for (const auto& e : fs::directory_iterator(kPinRoot, ec))
      if (e.is_directory()) s.insert(e.path().filename().string());
    names.assign(s.begin(), s.end());
  } else {
    // Accept the name in any case (state files use the const.json name).
    for (const auto& e : fs::directory_iterator(RunDir(), ec))
      if (e.path().extension() == ".json" &&
          absl::EqualsIgnoreCase(e.path().stem().string(), name_in))
        names.push_back(e.path().stem().string());
    if (names.empty() && fs::exists(PinDir(name_in), ec)) names.push_back(name_in);
    if (names.empty())
      return absl::NotFoundError(absl::StrCat(name_in, " is not loaded\nhint: see 'sie status'"));
  }
  // Counters and lifetimes before anything is removed, for the summaries.
  std::map<std::string, LoadedConst> before;
  if (auto loaded = Status(); loaded.ok())
    for (auto& lc : *loaded) before[lc.state.value("name", "")] = std::move(lc);
  absl::Status first = absl::OkStatus();
  for (const auto& n : names) {
    auto it = before.find(n);
    json summary;
    absl::Status st = UnloadOne(n, timeout_s, it == before.end() ? nullptr : &it->second, &summary);
    if (summaries && summary.is_object()) summaries->push_back(std::move(summary));
    if (first.ok() && !st.ok()) first = st;
  }
  // With nothing loaded any more, forget every registered site and cell (also those of a load
  // killed before its state file listed them).
  bool any_left = false;
  for (const auto& e : fs::directory_iterator(kPinRoot, ec)) any_left |= e.is_directory();
  if (!any_left && ModuleLoaded("sie_kfuncs")) (void)KfuncsCommand("clear");
  // Same for sie_native once no constant's state is left (a load killed between registering a
  // probe and its state... cannot happen: the state lists a probe before it is registered).
  bool any_state = false;
  for (const auto& e : fs::directory_iterator(RunDir(), ec))
    any_state |= e.path().extension() == ".json" && e.path().filename() != "journal.json";
  if (!any_state && all && ModuleLoaded("sie_native")) (void)NativeCommand("clear");
  return first;
}

absl::StatusOr<std::vector<json>> ReadJournal() {
  std::vector<json> out;
  std::vector<fs::path> paths;
  if (const char* d = getenv("SIE_JOURNAL"); d && *d)
    paths.push_back(d);
  else
    paths = {"/var/log/sie/journal.jsonl", RunDir() / "journal.jsonl"};
  for (const fs::path& p : paths) {
    auto t = ReadFile(p);
    if (!t.ok()) continue;
    size_t pos = 0;
    while (pos < t->size()) {
      size_t nl = t->find('\n', pos);
      if (nl == std::string::npos) nl = t->size();
      json j = json::parse(t->substr(pos, nl - pos), nullptr, false);
      if (!j.is_discarded()) out.push_back(j);
      pos = nl + 1;
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return a.value("time", int64_t{0}) < b.value("time", int64_t{0});
  });
  return out;
}

}  // namespace sie::loader
