#include "runtime/loader/kernel.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/unique_fd.h"
#include "kmod/include/sie/kfuncs.h"

namespace sie::loader {
namespace fs = std::filesystem;

std::string KernelRelease() {
  struct utsname u {};
  if (uname(&u) != 0) return "";
  return u.release;
}

absl::StatusOr<Kallsyms> Kallsyms::Load(const std::set<std::string>& wanted,
                                        const std::string& path,
                                        const std::set<std::string>& any_type) {
  // /proc/kallsyms has ~200k lines; under emulation a generic split per line costs seconds, so
  // this scans with memchr and keeps only the wanted names.
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  Kallsyms k;
  bool nonzero = false;
  // Sizes: vmlinux's symbols come sorted, so theirs is the distance to the next line; a
  // module's are listed in its symbol table's order, so theirs is the distance to the next
  // higher module address (only those few are kept and sorted, not the whole table).
  KSym* pending = nullptr;  // the last kept vmlinux symbol, waiting for the next address
  std::vector<uint64_t> module_addrs;
  std::vector<KSym*> module_syms;
  const char* p = text->data();
  const char* end = p + text->size();
  while (p < end) {
    const char* nl = static_cast<const char*>(memchr(p, '\n', end - p));
    if (!nl) nl = end;
    absl::string_view line(p, nl - p);
    p = nl + 1;
    size_t sp1 = line.find(' ');
    if (sp1 == absl::string_view::npos || sp1 + 3 > line.size()) continue;
    uint64_t addr = 0;
    if (!absl::SimpleHexAtoi(line.substr(0, sp1), &addr)) continue;
    nonzero |= addr != 0;
    const bool in_module = line.back() == ']';
    if (in_module) {
      module_addrs.push_back(addr);
    } else if (pending) {
      pending->size = addr > pending->addr ? addr - pending->addr : 0;
      pending = nullptr;
    }
    char type = absl::ascii_tolower(line[sp1 + 1]);
    absl::string_view rest = line.substr(sp1 + 3);
    size_t tab = rest.find('\t');
    absl::string_view name = rest.substr(0, tab);
    const bool any = !any_type.empty() && any_type.count(std::string(name));
    if (!any && type != 't' && type != 'w') continue;
    if (!any && !wanted.empty() && !wanted.count(std::string(name))) continue;
    KSym sym;
    sym.addr = addr;
    if (tab != absl::string_view::npos) {
      absl::string_view mod = absl::StripAsciiWhitespace(rest.substr(tab + 1));
      if (mod.size() > 2 && mod.front() == '[')
        sym.module = std::string(mod.substr(1, mod.size() - 2));
    }
    KSym* kept = &k.syms_.emplace(std::string(name), sym)->second;
    if (in_module)
      module_syms.push_back(kept);
    else
      pending = kept;
  }
  std::sort(module_addrs.begin(), module_addrs.end());
  for (KSym* s : module_syms) {
    auto next = std::upper_bound(module_addrs.begin(), module_addrs.end(), s->addr);
    s->size = next == module_addrs.end() ? 0 : *next - s->addr;
  }
  k.all_zero_ = !nonzero;
  return k;
}

absl::StatusOr<KSym> Kallsyms::Find(const std::string& name, const std::string& binary) const {
  if (all_zero_)
    return FailedWithHint("/proc/kallsyms shows no addresses (kptr_restrict)",
                          "run sie as root (CAP_SYSLOG), or set kernel.kptr_restrict=0");
  const bool want_vmlinux = binary.empty() || binary == "vmlinux";
  std::vector<KSym> hits;
  std::vector<std::string> elsewhere;
  auto [b, e] = syms_.equal_range(name);
  for (auto it = b; it != e; ++it) {
    const KSym& s = it->second;
    if (want_vmlinux ? s.module.empty() : s.module == binary)
      hits.push_back(s);
    else
      elsewhere.push_back(s.module.empty() ? "vmlinux" : s.module);
  }
  if (hits.size() == 1) return hits[0];
  if (hits.empty()) {
    std::string hint = elsewhere.empty()
                           ? absl::StrCat("the running kernel does not have it (wrong kernel, or ",
                                          want_vmlinux ? "it was inlined)" : "module not loaded)")
                           : absl::StrCat("it exists in ", elsewhere[0],
                                          ": the const.json was made for another binary");
    return FailedWithHint(absl::StrCat("function ", name, " not found in ", binary), hint);
  }
  return FailedWithHint(absl::StrCat("function ", name, " is ambiguous in ", binary, " (",
                                     hits.size(), " symbols of that name)"),
                        "sie cannot tell duplicate static functions apart yet");
}

std::optional<uint64_t> Kallsyms::FindAnywhere(const std::string& name) const {
  if (all_zero_) return std::nullopt;
  std::vector<uint64_t> core, mods;
  auto [b, e] = syms_.equal_range(name);
  for (auto it = b; it != e; ++it)
    (it->second.module.empty() ? core : mods).push_back(it->second.addr);
  if (core.size() == 1) return core[0];
  if (core.empty() && mods.size() == 1) return mods[0];
  return std::nullopt;
}

std::optional<uint64_t> ModuleSectionAddress(const std::string& module,
                                             const std::string& section) {
  auto text = ReadFile(fs::path("/sys/module") / module / "sections" / section);
  uint64_t addr = 0;
  absl::string_view v = text.ok() ? absl::StripAsciiWhitespace(*text) : "";
  absl::ConsumePrefix(&v, "0x");
  if (!text.ok() || !absl::SimpleHexAtoi(v, &addr) || addr == 0) return std::nullopt;
  return addr;
}

absl::StatusOr<std::string> ReadKernelBytes(uint64_t addr, size_t n, const std::string& kcore) {
  UniqueFd fd(open(kcore.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid())
    return FailedWithHint(absl::StrCat("cannot open ", kcore, ": ", strerror(errno)),
                          "sie needs root and CONFIG_PROC_KCORE to verify the kernel's code");
  Elf64_Ehdr eh;
  if (pread(fd.get(), &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG))
    return absl::InternalError(absl::StrCat(kcore, " is not an ELF file"));
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (pread(fd.get(), &ph, sizeof(ph), eh.e_phoff + i * eh.e_phentsize) != sizeof(ph)) break;
    if (ph.p_type != PT_LOAD || addr < ph.p_vaddr || addr + n > ph.p_vaddr + ph.p_memsz) continue;
    std::string buf(n, '\0');
    ssize_t r = pread(fd.get(), buf.data(), n, ph.p_offset + (addr - ph.p_vaddr));
    if (r != static_cast<ssize_t>(n))
      return absl::InternalError(
          absl::StrCat("reading ", n, " bytes at 0x", absl::Hex(addr), " from ", kcore, " failed"));
    return buf;
  }
  return absl::NotFoundError(absl::StrCat("address 0x", absl::Hex(addr), " is not in ", kcore));
}

std::string ToHex(absl::string_view bytes) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (unsigned char c : bytes) {
    s += d[c >> 4];
    s += d[c & 15];
  }
  return s;
}

bool BytesMatch(absl::string_view expect_hex, absl::string_view actual, bool module_code) {
  const size_t n = expect_hex.size() / 2;
  if (actual.size() < n) return false;
  std::vector<int> want(n);  // -1: any byte
  for (size_t i = 0; i < n; ++i) {
    absl::string_view h = expect_hex.substr(2 * i, 2);
    if (h == "??") {
      want[i] = -1;
      continue;
    }
    int v = 0;
    if (!absl::SimpleHexAtoi(h, &v)) return false;
    want[i] = v;
  }
  auto u = [&](size_t i) { return static_cast<unsigned char>(actual[i]); };
  auto unresolved = [&](size_t i) { return want[i] <= 0; };  // 0 on disk or '??'
  if (module_code && n == 5 && (want[0] == 0xe8 || want[0] == 0xe9) && unresolved(1) &&
      unresolved(2) && unresolved(3) && unresolved(4)) {
    if (u(0) == want[0]) return true;                  // relocated displacement
    if (want[0] == 0xe9 && u(0) == 0xc3) return true;  // return thunk -> ret; int3
    return false;
  }
  for (size_t i = 0; i < n; ++i) {
    if (want[i] < 0 || u(i) == want[i]) continue;
    // On one CPU the kernel rewrites a `lock` prefix (.smp_locks) to `ds`, a no-op prefix.
    if (i == 0 && want[i] == 0xf0 && u(i) == 0x3e) continue;
    return false;
  }
  return true;
}

bool BytesMatchUnderInt3(absl::string_view expect_hex, absl::string_view actual, bool module_code) {
  if (actual.empty() || static_cast<unsigned char>(actual[0]) != 0xcc || expect_hex.size() < 2)
    return false;
  int first = 0;
  if (!absl::SimpleHexAtoi(expect_hex.substr(0, 2), &first)) return false;
  std::string restored(actual);
  restored[0] = static_cast<char>(first);
  return BytesMatch(expect_hex, restored, module_code);
}

absl::Status EnsureDebugfs() {
  if (fs::exists("/sys/kernel/debug/kprobes") || fs::exists("/sys/kernel/debug/tracing"))
    return absl::OkStatus();
  if (mount("debugfs", "/sys/kernel/debug", "debugfs", 0, nullptr) != 0 && errno != EBUSY)
    return FailedWithHint(absl::StrCat("cannot mount debugfs: ", strerror(errno)),
                          "mount -t debugfs debugfs /sys/kernel/debug");
  return absl::OkStatus();
}

std::vector<KprobeEntry> ParseKprobeList(absl::string_view text) {
  std::vector<KprobeEntry> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 3) continue;
    KprobeEntry e;
    if (!absl::SimpleHexAtoi(f[0], &e.addr)) continue;
    e.type = std::string(f[1]);
    e.where = std::string(f[2]);
    // 6.12 prints the module bare after "sym+0xoff" (older kernels: "[mod]"); flags follow.
    if (f.size() > 3 && f[3].front() != '[')
      absl::StrAppend(&e.where, " [", f[3], "]");
    else if (f.size() > 3 && !absl::StartsWith(f[3], "[OPT") && !absl::StartsWith(f[3], "[FTR") &&
             !absl::StartsWith(f[3], "[DIS") && !absl::StartsWith(f[3], "[GONE"))
      absl::StrAppend(&e.where, " ", f[3]);
    e.optimized = absl::StrContains(line, "[OPTIMIZED]");
    e.ftrace = absl::StrContains(line, "[FTRACE]");
    e.disabled = absl::StrContains(line, "[DISABLED]");
    e.gone = absl::StrContains(line, "[GONE]");
    out.push_back(e);
  }
  return out;
}

absl::StatusOr<std::vector<KprobeEntry>> ReadKprobeList() {
  if (auto st = EnsureDebugfs(); !st.ok()) return st;
  auto text = ReadFile("/sys/kernel/debug/kprobes/list");
  if (!text.ok()) return text.status();
  return ParseKprobeList(*text);
}

absl::StatusOr<std::vector<LivepatchedFunction>> ReadLivepatches(const fs::path& root) {
  std::vector<LivepatchedFunction> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;  // no CONFIG_LIVEPATCH, or nothing ever loaded
  auto flag = [](const fs::path& p) {
    auto t = ReadFile(p);
    return t.ok() && absl::StripAsciiWhitespace(*t) == "1";
  };
  std::vector<fs::path> patches;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory(ec)) patches.push_back(e.path());
  if (ec)
    return FailedWithHint(absl::StrCat("cannot list ", root.string(), ": ", ec.message()),
                          "sie must run as root");
  std::sort(patches.begin(), patches.end());
  for (const fs::path& patch : patches) {
    const bool enabled = flag(patch / "enabled"), transition = flag(patch / "transition");
    std::vector<fs::path> objects;
    for (const auto& o : fs::directory_iterator(patch, ec))
      if (o.is_directory(ec)) objects.push_back(o.path());
    std::sort(objects.begin(), objects.end());
    for (const fs::path& obj : objects) {
      std::vector<std::string> funcs;
      for (const auto& f : fs::directory_iterator(obj, ec))
        if (f.is_directory(ec)) funcs.push_back(f.path().filename().string());
      std::sort(funcs.begin(), funcs.end());
      for (const std::string& f : funcs) {
        // "<function>,<sympos>" (klp_init_func: sympos 1 when the patch gave none).
        const size_t comma = f.rfind(',');
        if (comma == std::string::npos) continue;
        LivepatchedFunction lf;
        lf.patch = patch.filename().string();
        lf.object = obj.filename().string();
        lf.function = f.substr(0, comma);
        if (!absl::SimpleAtoi(f.substr(comma + 1), &lf.sympos)) continue;
        lf.enabled = enabled;
        lf.transition = transition;
        out.push_back(std::move(lf));
      }
    }
  }
  return out;
}

const LivepatchedFunction* ActiveLivepatch(const std::vector<LivepatchedFunction>& lps,
                                           const std::string& function, const std::string& object) {
  for (const LivepatchedFunction& lf : lps)
    if (lf.object == object && lf.function == function && (lf.enabled || lf.transition)) return &lf;
  return nullptr;
}

bool ModuleLoaded(const std::string& name) {
  return fs::exists(fs::path("/sys/module") / name / "initstate") ||
         fs::exists(fs::path("/sys/module") / name / "sections");
}

absl::Status InsertModule(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid())
    return FailedWithHint(absl::StrCat("cannot open module ", path, ": ", strerror(errno)),
                          "build it: ninja -C build sie_kfuncs_ko sie_target_ko");
  if (syscall(SYS_finit_module, fd.get(), "", 0) != 0 && errno != EEXIST)
    return FailedWithHint(absl::StrCat("cannot load module ", path, ": ", strerror(errno)),
                          "check dmesg; the module must be built for this kernel");
  return absl::OkStatus();
}

absl::Status KfuncsCommand(const std::string& cmd) {
  UniqueFd fd(open(kKfuncsControl, O_WRONLY | O_CLOEXEC));
  if (!fd.valid())
    return FailedWithHint(absl::StrCat("cannot open ", kKfuncsControl, ": ", strerror(errno)),
                          "is sie_kfuncs.ko loaded and debugfs mounted?");
  if (write(fd.get(), cmd.data(), cmd.size()) != static_cast<ssize_t>(cmd.size())) {
    int err = errno;
    std::string what = absl::StrCat("sie_kfuncs rejected '", cmd, "': ", strerror(err));
    if (err == ENOSPC)
      return FailedWithHint(what, absl::StrCat("every loaded constant's probe sites and memory "
                                               "cells share one table (",
                                               SIE_MAX_SITES, " sites, ", SIE_MAX_CELLS,
                                               " cells): unload constants you no longer tune"));
    return absl::InternalError(what);
  }
  return absl::OkStatus();
}

absl::Status ConsistencyCommand(const std::string& cmd, int* err) {
  const std::string control = absl::StrCat(kConsistencyDir, "/control");
  if (err) *err = 0;
  UniqueFd fd(open(control.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (err) *err = errno;
    return FailedWithHint(absl::StrCat("cannot open ", control, ": ", strerror(errno)),
                          "is sie_consistency.ko loaded and debugfs mounted?");
  }
  // One command per write(2): the module parses each write as one line.
  if (write(fd.get(), cmd.data(), cmd.size()) != static_cast<ssize_t>(cmd.size())) {
    if (err) *err = errno;
    return absl::InternalError(
        absl::StrCat("sie_consistency rejected '", cmd, "': ", strerror(errno)));
  }
  return absl::OkStatus();
}

std::map<std::string, std::string> ConsistencyStatus(int id) {
  std::map<std::string, std::string> m;
  auto text = ReadFile(absl::StrCat(kConsistencyDir, "/", id, "/status"));
  if (!text.ok()) return m;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    m[kv.first] = kv.second;
  }
  return m;
}

absl::StatusOr<std::vector<int>> KfuncsUsedCells() {
  auto text = ReadFile(kKfuncsControl);
  if (!text.ok()) return text.status();
  std::vector<int> cells;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int id = 0;
    if (f.size() >= 2 && f[0] == "cell" && absl::SimpleAtoi(f[1], &id)) cells.push_back(id);
  }
  return cells;
}

}  // namespace sie::loader
