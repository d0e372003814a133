// What the loader reads from (and writes to) the running kernel, outside BPF: the release,
// symbol addresses (/proc/kallsyms, module symbols included), code bytes (/proc/kcore), the
// kprobe list (which probes are [OPTIMIZED]), modules, and sie_kfuncs' control file.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::loader {

std::string KernelRelease();

struct KSym {
  uint64_t addr = 0;
  uint64_t size = 0;   // distance to the next symbol (upper bound of the function's size)
  std::string module;  // empty: vmlinux
};

// Symbol table of functions (text symbols) of the running kernel.
class Kallsyms {
 public:
  // Only the functions named in `wanted` are kept (all when empty), and the symbols of any
  // type (data too) named in `any_type`.
  static absl::StatusOr<Kallsyms> Load(const std::set<std::string>& wanted = {},
                                       const std::string& path = "/proc/kallsyms",
                                       const std::set<std::string>& any_type = {});
  // The function `name` in `binary` ("vmlinux" or a module name). Errors: not found (with a
  // hint when it exists in another binary), ambiguous (duplicate static symbols), or addresses
  // hidden by kptr_restrict.
  absl::StatusOr<KSym> Find(const std::string& name, const std::string& binary) const;
  // The one symbol `name` in vmlinux, else the one in any module; nullopt when there is none
  // or several.
  std::optional<uint64_t> FindAnywhere(const std::string& name) const;

 private:
  std::multimap<std::string, KSym> syms_;
  bool all_zero_ = false;
};

// Reads `n` bytes of kernel memory at `addr` through /proc/kcore's ELF segments.
absl::StatusOr<std::string> ReadKernelBytes(uint64_t addr, size_t n,
                                            const std::string& kcore = "/proc/kcore");

// Does `actual` match the expected hex (two chars per byte, "??" any byte)? For module code, a
// call/jmp rel32 whose displacement is all zero in the .ko (an unrelocated relocation) matches
// any displacement, and a `jmp __x86_return_thunk` also matches the `ret; int3` the kernel
// patches it into.
bool BytesMatch(absl::string_view expect_hex, absl::string_view actual, bool module_code);
// An armed int3 kprobe replaces only the first byte of the instruction at its address: does
// `actual` match but for an int3 (0xcc) there? (An optimized probe's jmp covers 5 bytes: no.)
bool BytesMatchUnderInt3(absl::string_view expect_hex, absl::string_view actual, bool module_code);
std::string ToHex(absl::string_view bytes);

struct KprobeEntry {
  uint64_t addr = 0;
  std::string type;   // "k" kprobe, "r" kretprobe
  std::string where;  // "func+0x12 [mod]"
  bool optimized = false;
  bool ftrace = false;
  bool disabled = false;
  bool gone = false;  // [GONE]: its module was unloaded; the kernel never re-arms it
};
// /sys/kernel/debug/kprobes/list (mounts debugfs if needed). One entry per registered probe:
// probes sharing an address (an aggregated kprobe) are listed once each.
absl::StatusOr<std::vector<KprobeEntry>> ReadKprobeList();
std::vector<KprobeEntry> ParseKprobeList(absl::string_view text);

// A function replaced by a livepatch: /sys/kernel/livepatch/<patch>/<object>/<function,sympos>/
// (object "vmlinux" or a module name). While its patch is enabled, calls to the function go to
// the replacement, so a kprobe inside the original never fires.
struct LivepatchedFunction {
  std::string patch, object, function;
  int sympos = 0;
  bool enabled = false;     // <patch>/enabled
  bool transition = false;  // <patch>/transition: some tasks are still switching
};
// Every function of every loaded patch (enabled or not), sorted; empty without livepatch.
absl::StatusOr<std::vector<LivepatchedFunction>> ReadLivepatches(
    const std::filesystem::path& root = "/sys/kernel/livepatch");

// The patch that redirects `function` of `object` ("vmlinux" or a module) now: the first whose
// patch is enabled or in transition (a disabled patch redirects nothing). nullptr when none.
const LivepatchedFunction* ActiveLivepatch(const std::vector<LivepatchedFunction>& lps,
                                           const std::string& function, const std::string& object);

bool ModuleLoaded(const std::string& name);
// The live address of section `section` of loaded module `module`
// (/sys/module/<module>/sections/<section>); nullopt when unknown.
std::optional<uint64_t> ModuleSectionAddress(const std::string& module, const std::string& section);
// Loads a .ko with finit_module(2).
absl::Status InsertModule(const std::string& path);

// The sie_kfuncs control file (one command per write).
inline constexpr char kKfuncsControl[] = "/sys/kernel/debug/sie_kfuncs/control";
absl::Status KfuncsCommand(const std::string& cmd);
// Cell ids currently registered (so a new constant picks free ones).
absl::StatusOr<std::vector<int>> KfuncsUsedCells();

// The sie_consistency control file (mode 2; syntax in kmod/include/sie/consistency.h). A refused
// command stores its errno in *err (EBUSY: running, EALREADY: already there, ENOENT: no such
// instance); 0 otherwise.
inline constexpr char kConsistencyDir[] = "/sys/kernel/debug/sie_consistency";
absl::Status ConsistencyCommand(const std::string& cmd, int* err = nullptr);
// An instance's status file as key -> value; empty when the instance does not exist.
std::map<std::string, std::string> ConsistencyStatus(int id);

// Makes sure debugfs is mounted at /sys/kernel/debug.
absl::Status EnsureDebugfs();

}  // namespace sie::loader
