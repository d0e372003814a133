#include "runtime/loader/loader.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/base/diag.h"
#include "runtime/base/files.h"
#include "runtime/base/unique_fd.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/stub_build.h"
#include "synth/stubgen/const_reader.h"
#include "synth/stubgen/stubgen.h"

namespace sie::loader {
namespace fs = std::filesystem;
using nlohmann::json;
using synth::SpanKind;
using Clock = std::chrono::steady_clock;

namespace {

// Control keys and stats layout: bpf/include/sie/stub.bpf.h.
enum CtlKey : uint32_t { kCtlValue = 0, kCtlActive = 1, kCtlMode = 2, kCtlTarget = 3, kCtlNsafe = 4 };
constexpr uint32_t kStatNr = 8;
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
struct LinkDeleter {
  void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
using ObjPtr = std::unique_ptr<bpf_object, ObjDeleter>;
using LinkPtr = std::unique_ptr<bpf_link, LinkDeleter>;

// Serializes sie invocations that change kernel state (flock on /run/sie/lock).
class RunLock {
 public:
  static absl::StatusOr<RunLock> Take() {
    std::error_code ec;
    fs::create_directories(RunDir(), ec);
    UniqueFd fd(open((RunDir() / "lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid())
      return FailedWithHint(absl::StrCat("cannot open ", (RunDir() / "lock").string(), ": ",
                                         strerror(errno)),
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
    return FailedWithHint(absl::StrCat("cannot open pinned map ", p.string(), ": ",
                                       strerror(errno)),
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
  int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> out(nkeys, 0);
  if (ncpu <= 0) return out;
  std::vector<uint64_t> per(ncpu);
  for (uint32_t k = 0; k < nkeys; ++k)
    if (bpf_map_lookup_elem(fd, &k, per.data()) == 0)
      for (auto v : per) out[k] += v;
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
absl::Status WaitKprobesGone(const std::vector<uint64_t>& addrs, double timeout_s) {
  if (addrs.empty()) return absl::OkStatus();
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    auto list = ReadKprobeList();
    if (!list.ok()) return list.status();
    std::vector<std::string> left;
    for (const auto& e : *list)
      if (std::find(addrs.begin(), addrs.end(), e.addr) != addrs.end()) left.push_back(e.where);
    if (left.empty()) return absl::OkStatus();
    if (Clock::now() > deadline)
      return FailedWithHint(absl::StrCat("kprobes still present after ", timeout_s, " s: ",
                                         left[0], left.size() > 1 ? " ..." : ""),
                            "another program may hold the links (bpftool link list)");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

json ProbeToJson(const ProbeInfo& p) {
  return json{{"role", p.role},         {"span", p.span},       {"function", p.function},
              {"offset", p.offset},     {"address", p.address}, {"cell", p.cell},
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

// One attached probe of the constant being loaded.
struct Attached {
  ProbeInfo info;
  bpf_program* prog = nullptr;
  LinkPtr link;
  std::vector<uint64_t> candidates;  // apply probes of kind reg: other offsets to try
  size_t next_candidate = 0;
  uint64_t func_addr = 0;
};

absl::Status Attach(Attached& a, const std::string& pin_dir) {
  LIBBPF_OPTS(bpf_kprobe_opts, o);
  o.bpf_cookie = a.info.cell >= 0 ? static_cast<uint64_t>(a.info.cell) : 0;
  // The exact address whose bytes were verified: the kernel's name lookup would refuse
  // duplicate names, and a name could resolve to vmlinux before the module.
  o.offset = a.info.address;
  LibbpfLog().clear();
  bpf_link* l = bpf_program__attach_kprobe_opts(a.prog, nullptr, &o);
  if (!l) {
    int err = errno;
    // Fall back to name+offset (older libbpf refusing a NULL name).
    o.offset = a.info.offset;
    l = bpf_program__attach_kprobe_opts(a.prog, a.info.function.c_str(), &o);
    if (!l)
      return FailedWithHint(
          absl::StrCat("attaching a kprobe at ", a.info.function, "+0x", absl::Hex(a.info.offset),
                       " failed: ", strerror(err), "\n", LogTail(800)),
          "the function may be blacklisted for kprobes (NOKPROBE), or the offset is not on an "
          "instruction boundary (EILSEQ)");
  }
  a.link.reset(l);
  fs::path pin = fs::path(pin_dir) / LinkName(a.info);
  if (int err = bpf_link__pin(l, pin.c_str()); err)
    return absl::InternalError(absl::StrCat("pinning ", pin.string(), ": ", strerror(-err)));
  return absl::OkStatus();
}

void Detach(Attached& a) {
  if (!a.link) return;
  bpf_link__unpin(a.link.get());
  a.link.reset();
}

// Site / cell registration with sie_kfuncs for one probe.
absl::Status Register(const Attached& a, const synth::CriticalSpan& s) {
  if (a.info.role != "apply") return absl::OkStatus();
  if (a.info.cell < 0) return KfuncsCommand(absl::StrCat("site 0x", absl::Hex(a.info.address)));
  const synth::MemOperand& m = *s.target_mem;
  auto regnum = [](const std::string& r) -> int {
    static const char* order[] = {"ax", "bx", "cx", "dx", "si", "di", "bp", "r8",
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

absl::Status LoadModuleIfNeeded(const std::string& name, std::vector<std::string>* notes) {
  if (ModuleLoaded(name)) return absl::OkStatus();
  fs::path ko = SelfDir().parent_path() / "kmod" / (name + ".ko");
  if (!fs::exists(ko))
    return FailedWithHint(absl::StrCat("module ", name, " is not loaded and ", ko.string(),
                                       " does not exist"),
                          absl::StrCat("load it (modprobe ", name, ") or build it"));
  if (auto st = InsertModule(ko.string()); !st.ok()) return st;
  notes->push_back(absl::StrCat("loaded module ", name, " from ", ko.string()));
  return absl::OkStatus();
}

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

absl::StatusOr<SetResult> SetConst(const SetOptions& opts) {
  const auto t0 = Clock::now();
  libbpf_set_print(LibbpfPrint);
  // SIE_TRACE=1 prints the time of each step (load latency investigations in the guest).
  const bool trace = getenv("SIE_TRACE") != nullptr;
  auto mark = [&](const char* what) {
    if (trace) std::fprintf(stderr, "sie set: %8.1f ms  %s\n", MsSince(t0), what);
  };
  SetResult res;
  auto entry = stubgen::FindConst(opts.consts_dir, opts.name);
  if (!entry.ok()) return entry.status();
  mark("const.json read");
  const synth::SynthesizedConst& c = entry->c;
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
  if (opts.mode == 2)
    return fail(absl::UnimplementedError(
        "mode 2 (global, stop_machine) is not yet supported\nhint: use --mode 0 (immediate) or "
        "--mode 1 (per-task)"));
  if (opts.mode != 0 && opts.mode != 1)
    return fail(InvalidWithHint(absl::StrCat("unknown mode ", opts.mode), "modes are 0, 1, 2"));
  if (geteuid() != 0)
    return fail(FailedWithHint("sie set changes the running kernel and needs root",
                               "run it as root (or in the guest: sie vm -- sie set ...)"));
  auto lock = RunLock::Take();
  if (!lock.ok()) return fail(lock.status());
  mark("locked");

  // Already loaded: one map update.
  if (auto old = ReadState(StatePath(c.name)); old.ok()) {
    if ((*old).value("state", "") != "loaded")
      return fail(FailedWithHint(absl::StrCat(c.name, " was left half-loaded by process ",
                                              (*old).value("pid", 0)),
                                 absl::StrCat("remove it first: sie unload ", c.name)));
    if ((*old).value("mode", 0) != opts.mode)
      return fail(FailedWithHint(absl::StrCat(c.name, " is loaded in mode ",
                                              (*old).value("mode", 0)),
                                 absl::StrCat("changing the mode needs a reload: sie unload ",
                                              c.name, ", then sie set")));
    auto ctl = OpenPinned(c.name, "sie_ctl");
    if (!ctl.ok()) return fail(ctl.status());
    res.old_value = static_cast<int64_t>(CtlGet(ctl->get(), kCtlValue));
    if (auto st = CtlSet(ctl->get(), kCtlValue, static_cast<uint64_t>(opts.value)); !st.ok())
      return fail(st);
    (*old)["value"] = opts.value;
    (void)WriteState(c.name, *old);
    for (const auto& p : (*old)["probes"]) res.probes.push_back(ProbeFromJson(p));
    res.updated_only = true;
    res.latency_ms = MsSince(t0);
    journal["old_value"] = *res.old_value;
    journal["outcome"] = "updated";
    Journal(journal);
    return res;
  }
  if (!c.values.empty()) res.old_value = c.values[0];
  if (res.old_value) journal["old_value"] = *res.old_value;

  // --- verification: nothing attached yet ---
  const std::string release = KernelRelease();
  if (c.target.kernel_release != release)
    return fail(FailedWithHint(
        absl::StrCat(entry->path.string(), " was synthesized for kernel ",
                     c.target.kernel_release, ", but this kernel is ", release),
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

  std::vector<Attached> probes;
  int next_cell = 0;
  std::set<int> used_cells;
  bool need_cells = false;
  for (const auto& s : c.spans) need_cells |= s.kind == SpanKind::kMem;
  if (auto st = LoadModuleIfNeeded("sie_kfuncs", &res.notes); !st.ok()) return fail(st);
  if (need_cells) {
    auto used = KfuncsUsedCells();
    if (!used.ok()) return fail(used.status());
    used_cells.insert(used->begin(), used->end());
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
    if (!BytesMatch(s.expect_bytes, *bytes, in_module))
      return fail(FailedWithHint(
          absl::StrCat("the code at ", s.function, "+0x", absl::Hex(s.probe_offset), " is ",
                       ToHex(*bytes), ", but ", entry->path.string(), " expects ",
                       s.expect_bytes),
          "the running kernel is not the build synth analyzed (or another tool patched the "
          "code, e.g. a kprobe's int3): run 'sie synth' again"));
    if (s.kind == SpanKind::kMem) {
      while (next_cell < kMaxCells && used_cells.count(next_cell)) ++next_cell;
      if (next_cell >= kMaxCells)
        return fail(FailedWithHint("no free sie_kfuncs memory cell",
                                   "unload other constants (sie unload --all)"));
      a.info.cell = next_cell++;
    }
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
  // Mode 1: guards at the safe-span entries (whole CS functions when synth gave none).
  std::vector<std::pair<uint64_t, uint64_t>> safe_ranges;
  if (opts.mode == 1) {
    std::vector<synth::SafeSpan> ss = c.safe_spans;
    if (ss.empty()) {
      std::set<std::string> fns;
      for (const auto& s : c.spans) fns.insert(s.function);
      for (const auto& f : fns) ss.push_back({f, 0, 0, synth::SafeSpanHow::kWholeFunction});
    }
    if (ss.size() > static_cast<size_t>(kMaxSafe))
      return fail(FailedWithHint(absl::StrCat(c.name, " has ", ss.size(),
                                              " safe spans; mode 1 supports ", kMaxSafe),
                                 "use --mode 0"));
    for (size_t j = 0; j < ss.size(); ++j) {
      auto sym = ksyms->Find(ss[j].function, in_module ? c.target.binary : "vmlinux");
      if (!sym.ok()) return fail(WithContext(sym.status(), absl::StrCat("safe span ", j)));
      uint64_t end = ss[j].how == synth::SafeSpanHow::kWholeFunction || ss[j].end == 0
                         ? sym->size
                         : ss[j].end;
      safe_ranges.push_back({sym->addr + ss[j].start, sym->addr + end});
      Attached g;
      g.info = MakeProbe("guard", static_cast<int>(j), ss[j].function, ss[j].start, sym->addr);
      g.func_addr = sym->addr;
      probes.push_back(std::move(g));
    }
  }
  res.verify_ms = MsSince(t0);
  mark("verified");

  // --- build and load the stub ---
  auto tb = Clock::now();
  auto stub = BuildStub(*entry);
  if (!stub.ok()) return fail(stub.status());
  res.compiled = stub->compiled_now;
  fs::path obj_path = stub->object;
  std::optional<TempDir> link_tmp;
  if (!opts.policy_objects.empty()) {
    auto tmp = TempDir::Create(CacheDir(), ".link-");
    if (!tmp.ok()) return fail(tmp.status());
    link_tmp.emplace(std::move(*tmp));
    std::vector<fs::path> objs{stub->object};
    objs.insert(objs.end(), opts.policy_objects.begin(), opts.policy_objects.end());
    obj_path = link_tmp->path() / "linked.bpf.o";
    if (auto st = LinkObjects(objs, obj_path); !st.ok()) return fail(st);
  }
  res.build_ms = MsSince(tb);
  mark("stub ready");
  auto tl = Clock::now();
  LibbpfLog().clear();
  ObjPtr obj(bpf_object__open_file(obj_path.c_str(), nullptr));
  if (!obj)
    return fail(absl::InternalError(absl::StrCat("opening ", obj_path.string(), ": ",
                                                 strerror(errno), "\n", LogTail())));
  if (bpf_object__load(obj.get()) != 0)
    return fail(FailedWithHint(absl::StrCat("the kernel refused the stub of ", c.name, ":\n",
                                            LogTail()),
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
                      {kCtlActive, 0}})
    if (auto st = CtlSet(ctl, k, v); !st.ok()) return fail(st);
  for (auto& a : probes) {
    std::string pname = a.info.role == "guard" ? "sie_guard"
                                               : absl::StrCat("sie_", a.info.role, "_", a.info.span);
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
  auto rollback = [&](absl::Status st) {
    std::vector<uint64_t> addrs;
    for (auto& a : probes) {
      if (a.link) addrs.push_back(a.info.address);
      Detach(a);
    }
    (void)RemovePins(pin_dir);
    (void)WaitKprobesGone(addrs, 5);
    std::error_code ec;
    fs::remove(StatePath(c.name), ec);
    return fail(st);
  };
  // The state file first: a kill -9 from here on leaves something `sie unload --all` finds.
  if (auto st = WriteState(c.name, state); !st.ok()) return fail(st);
  if (mkdir(pin_dir.c_str(), 0700) != 0 && errno != EEXIST)
    return rollback(absl::InternalError(absl::StrCat("mkdir ", pin_dir, ": ", strerror(errno))));
  for (const char* m : {"sie_ctl", "sie_stats", "sie_task", "sie_safe"}) {
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
    const synth::CriticalSpan& s = c.spans[a.info.role == "guard" ? 0 : a.info.span];
    if (auto st = Register(a, s); !st.ok()) return rollback(st);
    if (auto st = Attach(a, pin_dir); !st.ok()) return rollback(st);
    if (auto st = record(a); !st.ok()) return rollback(st);
  }
  res.attach_ms = MsSince(ta);
  mark("attached");

  // --- jump optimization: while still inactive, move unoptimized apply probes of kind reg to
  // other equivalent offsets (detach + reattach, same program) ---
  auto to = Clock::now();
  auto refresh = [&]() {
    auto list = ReadKprobeList();
    if (!list.ok()) return;
    for (auto& a : probes)
      for (const auto& e : *list)
        if (e.addr == a.info.address) {
          a.info.optimized = e.optimized;
          a.info.kprobe_flags = e.optimized ? "[OPTIMIZED]" : e.ftrace ? "[FTRACE]" : "";
        }
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
        absl::Status st = Register(a, c.spans[a.info.span]);
        if (st.ok()) st = Attach(a, pin_dir);
        if (st.ok()) st = record(a);
        if (!st.ok()) {  // that candidate cannot be probed: back to the previous offset
          Detach(a);
          a.info = before;
          if (auto st2 = Attach(a, pin_dir); !st2.ok()) return rollback(st2);
          continue;
        }
        moved = true;
      }
      if (!moved) break;
      std::this_thread::sleep_for(std::chrono::duration<double>(opts.opt_wait_s));
      refresh();
    }
    for (auto& a : probes)
      if (a.info.role == "apply" && a.info.offset != c.spans[a.info.span].probe_offset)
        res.notes.push_back(absl::StrCat("span ", a.info.span, ": probe moved to ",
                                         a.info.function, "+0x", absl::Hex(a.info.offset),
                                         a.info.optimized ? " (jump-optimized)" : ""));
  } else {
    refresh();
  }
  res.optimize_ms = MsSince(to);

  // --- activate ---
  if (auto st = CtlSet(ctl, kCtlActive, 1); !st.ok()) return rollback(st);
  json pj = json::array();
  for (auto& a : probes) {
    pj.push_back(ProbeToJson(a.info));
    res.probes.push_back(a.info);
  }
  state["probes"] = pj;
  state["state"] = "loaded";
  state["pid"] = 0;
  if (auto st = WriteState(c.name, state); !st.ok()) return rollback(st);
  // The pins own the links now; dropping our references must not detach them.
  for (auto& a : probes) {
    bpf_link* l = a.link.release();
    if (!l) continue;
    bpf_link__disconnect(l);  // destroy then frees our handle without detaching
    bpf_link__destroy(l);
  }
  res.latency_ms = MsSince(t0);
  journal["outcome"] = "loaded";
  journal["latency_ms"] = res.latency_ms;
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
  std::vector<LoadedConst> out;
  for (const auto& n : names) {
    LoadedConst lc;
    auto st = ReadState(StatePath(n));
    lc.state = st.ok() ? *st : json{{"name", n}, {"state", "orphaned pins"}};
    lc.pins_present = fs::exists(PinDir(n) / "sie_ctl", ec);
    uint32_t nspans = lc.state.value("nspans", 0);
    if (lc.pins_present && nspans > 0) {
      auto fd = OpenPinned(n, "sie_stats");
      if (fd.ok()) {
        auto v = ReadStats(fd->get(), nspans * kStatNr);
        for (uint32_t i = 0; i < nspans; ++i) {
          const uint64_t* s = &v[i * kStatNr];
          lc.spans.push_back({s[0], s[1], s[2], s[3], s[4], s[5]});
        }
        lc.transitions = v[6];
        lc.unsafe = v[7];
      }
      auto ctl = OpenPinned(n, "sie_ctl");
      if (ctl.ok()) {
        lc.state["value"] = static_cast<int64_t>(CtlGet(ctl->get(), kCtlValue));
        lc.state["active"] = CtlGet(ctl->get(), kCtlActive);
      }
    }
    if (lc.state.contains("probes"))
      for (const auto& p : lc.state["probes"]) {
        ProbeInfo pi = ProbeFromJson(p);
        pi.optimized = false;
        pi.kprobe_flags = "(not attached)";
        if (list.ok())
          for (const auto& e : *list)
            if (e.addr == pi.address) {
              pi.optimized = e.optimized;
              pi.kprobe_flags = e.optimized ? "[OPTIMIZED]" : e.ftrace ? "[FTRACE]" : "";
            }
        lc.probes.push_back(pi);
      }
    out.push_back(std::move(lc));
  }
  return out;
}

absl::Status Unload(const std::string& name_in, bool all, double timeout_s) {
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
  absl::Status first = absl::OkStatus();
  for (const auto& n : names) {
    auto state = ReadState(StatePath(n));
    json journal{{"const", n}, {"new_value", nullptr}, {"outcome", "unloaded"}};
    if (state.ok()) {
      journal["old_value"] = (*state).value("value", int64_t{0});
      journal["mode"] = (*state).value("mode", 0);
    }
    auto ctl = OpenPinned(n, "sie_ctl");
    if (ctl.ok()) {
      const int mode = static_cast<int>(CtlGet(ctl->get(), kCtlMode));
      if (mode == 1 && CtlGet(ctl->get(), kCtlActive)) {
        // Reverse transition: tasks go back to the original value at their next guard with a
        // clean stack. Done when no apply hit has used the new value for 200 ms, or at the
        // timeout (then the kill switch below ends it for everyone).
        (void)CtlSet(ctl->get(), kCtlTarget, 0);
        auto stats = OpenPinned(n, "sie_stats");
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
    absl::Status st = RemovePins(PinDir(n));
    if (st.ok()) st = WaitKprobesGone(addrs, std::max(timeout_s, 2.0));
    if (st.ok()) fs::remove(StatePath(n), ec);
    if (!st.ok()) journal["outcome"] = "failed";
    Journal(journal);
    if (first.ok() && !st.ok()) first = st;
  }
  // With nothing loaded any more, forget every registered site and cell (sie_kfuncs has no
  // per-site removal; stale sites of an unloaded constant are inert: no program calls there).
  bool any_left = false;
  for (const auto& e : fs::directory_iterator(kPinRoot, ec)) any_left |= e.is_directory();
  if (!any_left && ModuleLoaded("sie_kfuncs")) (void)KfuncsCommand("clear");
  return first;
}

absl::StatusOr<std::vector<json>> ReadJournal() {
  std::vector<json> out;
  std::vector<fs::path> paths;
  if (const char* d = getenv("SIE_JOURNAL"); d && *d) paths.push_back(d);
  else paths = {"/var/log/sie/journal.jsonl", RunDir() / "journal.jsonl"};
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
