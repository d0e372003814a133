#include "runtime/loader/attach.h"

#include <bpf/bpf.h>
#include <linux/perf_event.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/base/diag.h"
#include "common/base/fault.h"
#include "common/base/files.h"
#include "common/base/process.h"
#include "common/base/status_macros.h"
#include "kmod/include/sie/kfuncs.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/state.h"

namespace sie::loader {
namespace fs = std::filesystem;
using artifact::SpanKind;

namespace {

std::string LinkName(const ProbeInfo& p) {
  return absl::StrCat("link_", p.role, "_", p.span, p.point ? absl::StrCat("_", p.point) : "");
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

// x86-64 register number in sie_kfuncs' cell command (enum sie_reg), 255 for none, -1 unknown.
int RegNum(const std::string& r) {
  static const char* order[] = {"ax", "bx",  "cx",  "dx",  "si",  "di",  "bp",  "r8",
                                "r9", "r10", "r11", "r12", "r13", "r14", "r15", "sp"};
  if (r.empty()) return 255;
  for (int i = 0; i < 16; ++i)
    if (r == order[i]) return i;
  return -1;
}

// The kprobe perf event of `a`, at the exact address whose bytes were verified (the kernel's
// name lookup would refuse duplicate names, and a name could resolve to vmlinux before the
// module); errno-style failure as a status with a hint.
absl::StatusOr<UniqueFd> OpenKprobe(uint32_t type, const Attached& a) {
  UniqueFd pfd(OpenKprobeEvent(type, nullptr, a.info.address));
  if (pfd.valid()) return pfd;
  const int err = errno;
  pfd.reset(OpenKprobeEvent(type, a.info.function.c_str(), a.info.offset));
  if (pfd.valid()) return pfd;
  return FailedWithHint(
      absl::StrCat("attaching a kprobe at ", a.info.function, "+0x", absl::Hex(a.info.offset),
                   " failed: ", strerror(err)),
      "EINVAL: the function is notrace (no ftrace site: kprobe events refuse it without "
      "CONFIG_KPROBE_EVENTS_ON_NOTRACE; re-synthesize: sie synth refuses or marks such "
      "spans) or blacklisted for kprobes (NOKPROBE); EILSEQ: the offset is not on an "
      "instruction boundary");
}

}  // namespace

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

std::map<uint64_t, std::vector<size_t>> OpenOrder(const std::vector<Attached*>& probes) {
  // The kernel runs the handlers of one address newest first (add_new_kprobe puts each at the
  // head of the aggregate's list): the probe that must run last opens first.
  std::map<uint64_t, std::vector<size_t>> by_address;
  for (size_t i = probes.size(); i-- > 0;) by_address[probes[i]->info.address].push_back(i);
  for (auto& [addr, idx] : by_address)
    std::stable_sort(idx.begin(), idx.end(),
                     [&](size_t a, size_t b) { return probes[a]->run_rank > probes[b]->run_rank; });
  return by_address;
}

absl::Status OpenKprobes(const std::vector<Attached*>& probes) {
  auto type = KprobePmuType();
  if (!type.ok()) return type.status();
  for (const Attached* a : probes)  // fault injection steps stay in order, on this thread
    RETURN_IF_ERROR(
        KernelStep(absl::StrCat("kprobe at ", a->info.function, "+0x", absl::Hex(a->info.offset))));
  std::vector<absl::StatusOr<UniqueFd>> fds;
  for (size_t i = 0; i < probes.size(); ++i) fds.emplace_back(absl::UnknownError("not opened"));
  const std::map<uint64_t, std::vector<size_t>> by_address = OpenOrder(probes);
  {
    std::vector<std::jthread> threads;
    for (const auto& [addr, idx] : by_address)
      threads.emplace_back([&, &idx = idx] {
        for (size_t i : idx) fds[i] = OpenKprobe(*type, *probes[i]);
      });
  }
  for (size_t i = 0; i < probes.size(); ++i) {
    if (!fds[i].ok()) return fds[i].status();
    probes[i]->perf_fd = std::move(*fds[i]);
  }
  return absl::OkStatus();
}

absl::Status Attach(Attached& a, const std::string& pin_dir) {
  const std::string where = absl::StrCat(a.info.function, "+0x", absl::Hex(a.info.offset));
  UniqueFd pfd = std::move(a.perf_fd);
  if (!pfd.valid()) {
    auto type = KprobePmuType();
    if (!type.ok()) return type.status();
    RETURN_IF_ERROR(KernelStep(absl::StrCat("kprobe at ", where)));
    auto opened = OpenKprobe(*type, a);
    if (!opened.ok()) return opened.status();
    pfd = std::move(*opened);
  }
  RETURN_IF_ERROR(KernelStep(absl::StrCat("link the program at ", where)));
  LIBBPF_OPTS(bpf_link_create_opts, lo);
  lo.perf_event.bpf_cookie = a.info.cell >= 0 ? static_cast<uint64_t>(a.info.cell) : 0;
  UniqueFd lfd(bpf_link_create(bpf_program__fd(a.prog), pfd.get(), BPF_PERF_EVENT, &lo));
  if (!lfd.valid())
    return absl::InternalError(absl::StrCat("linking the program to the kprobe at ",
                                            a.info.function, "+0x", absl::Hex(a.info.offset), ": ",
                                            strerror(errno)));
  const std::string pin = (fs::path(pin_dir) / LinkName(a.info)).string();
  RETURN_IF_ERROR(KernelStep(absl::StrCat("pin the link at ", where)));
  if (bpf_obj_pin(lfd.get(), pin.c_str()) != 0)
    return absl::InternalError(absl::StrCat("pinning ", pin, ": ", strerror(errno)));
  a.perf_fd = std::move(pfd);
  a.link_fd = std::move(lfd);
  a.pin = pin;
  return absl::OkStatus();
}

void Detach(Attached& a) {
  if (!a.pin.empty()) unlink(a.pin.c_str());
  HandOver(a);
}

void HandOver(Attached& a) {
  a.pin.clear();
  a.link_fd.reset();
  a.perf_fd.reset();
}

absl::Status Register(const Attached& a, const artifact::CriticalSpan& s) {
  if (a.info.role != "apply") return absl::OkStatus();
  if (a.info.cell < 0) return KfuncsCommand(absl::StrCat("site 0x", absl::Hex(a.info.address)));
  const artifact::MemOperand& m = *s.target_mem;
  int base = RegNum(m.base), index = RegNum(m.index);
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

void UnregisterSites(const std::string& name, const std::vector<uint64_t>& addrs) {
  if (addrs.empty() || !ModuleLoaded("sie_kfuncs")) return;
  const std::set<uint64_t> others = AddressesOfOthers(name);
  for (uint64_t a : std::set<uint64_t>(addrs.begin(), addrs.end()))
    if (!others.count(a)) (void)KfuncsCommand(absl::StrCat("unsite 0x", absl::Hex(a)));
}

absl::Status AssignCells(const artifact::SynthesizedConst& c, std::vector<Attached>& probes) {
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
    while (next < SIE_MAX_CELLS && taken.count(next)) ++next;
    if (next >= SIE_MAX_CELLS)
      return FailedWithHint("no free sie_kfuncs memory cell",
                            "unload other constants (sie unload --all)");
    a.info.cell = next++;
  }
  return absl::OkStatus();
}

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

std::string DescribeKprobe(const KprobeEntry& e) {
  std::string s = e.where;
  if (e.type == "r") absl::StrAppend(&s, " (kretprobe)");
  if (e.optimized) absl::StrAppend(&s, " [OPTIMIZED]");
  if (e.ftrace) absl::StrAppend(&s, " [FTRACE]");
  if (e.disabled) absl::StrAppend(&s, " [DISABLED]");
  return s;
}

absl::Status WaitKprobesGone(const std::vector<uint64_t>& addrs, double timeout_s,
                             const std::map<uint64_t, int>& keep) {
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

absl::Status EnsureBpffs() {
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
  return FailedWithHint(absl::StrCat("cannot create ", kPinRoot, ": ", strerror(errno)),
                        "mount bpffs: mount -t bpf bpf /sys/fs/bpf (and run as root)");
}

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

absl::Status LoadModuleIfNeeded(const std::string& name, std::vector<std::string>* notes) {
  if (ModuleLoaded(name)) return absl::OkStatus();
  // sie's own modules (sie_target) are loaded from the build; the kernel's are the user's to
  // load: sie never loads a module the system did not.
  fs::path ko = SelfDir().parent_path() / "kmod" / (name + ".ko");
  if (!fs::exists(ko) && absl::StartsWith(name, "sie_") && InstalledDataDir()) {
    // Installed (the Debian package): sie's own modules are DKMS-built for each kernel.
    auto r = Run({"modprobe", name});
    if (r.ok() && r->ok() && ModuleLoaded(name)) {
      notes->push_back(absl::StrCat("loaded module ", name, " (modprobe)"));
      return absl::OkStatus();
    }
    return FailedWithHint(absl::StrCat("cannot load sie's module ", name, ": modprobe ", name,
                                       r.ok() ? absl::StrCat(": ", r->err) : ""),
                          "dkms status sie; dkms autoinstall -k $(uname -r) builds it");
  }
  if (!fs::exists(ko))
    return FailedWithHint(
        absl::StrCat("the constant's code is in module ", name, ", which is not loaded"),
        absl::StrCat("modprobe ", name, ", then sie set again"));
  if (auto st = InsertModule(ko.string()); !st.ok()) return st;
  notes->push_back(absl::StrCat("loaded module ", name, " from ", ko.string()));
  return absl::OkStatus();
}

void RecordOriginalBytes(const std::string& self, uint64_t addr, nlohmann::json& state) {
  const std::string key = absl::StrCat("0x", absl::Hex(addr));
  if (state.contains("original_bytes") && state["original_bytes"].contains(key)) return;
  auto live = ReadKernelBytes(addr, kOriginalBytes);
  if (!live.ok()) return;
  std::string bytes = *live;
  // 0xcc int3, 0xe9 jmp: another probe patched it first; its owner recorded what it replaced.
  const auto c0 = static_cast<unsigned char>(bytes[0]);
  if (c0 == 0xcc || c0 == 0xe9) {
    auto others = OriginalBytesOfOthers(self);
    auto it = others.find(addr);
    if (it == others.end()) return;
    bytes = it->second;
  }
  state["original_bytes"][key] = absl::BytesToHexString(bytes);
}

}  // namespace sie::loader
