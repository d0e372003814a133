// The policy plane behind `sie-run`: compile a policy (clang -target bpf against the SDK and the
// per-run constant headers), link it with the stubs of all its constants into one object
// (bpf_linker; each stub's names suffixed), load that once with per-program verifier logs
// translated to the policy's source lines, attach every constant through the runtime with the
// decisions held at the shipped value, then switch all constants of the file at once (the
// transaction word), stream the policy's log, and on stop switch them back at once before
// detaching.
#pragma once
#include <bpf/libbpf.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/artifact/consts_dir.h"

namespace sie::policy {

// Where the SDK, vmlinux.h and clang's system headers are (the build's; tests override).
struct Toolchain {
  std::string clang;
  std::filesystem::path sdk_include;
  std::filesystem::path abi_include;  // bpf/include: sie/abi.h, which the SDK header includes
  std::filesystem::path vmlinux_dir;
  std::vector<std::string> sys_includes;  // "-idirafter", "/usr/include/...", ...
  static Toolchain FromBuild();
};

// The constants named on the command line (names, case-insensitive, or ids). An unknown name
// is an error listing the known ones.
absl::StatusOr<std::vector<artifact::ConstEntry>> ResolveConsts(
    const std::filesystem::path& consts_dir, const std::vector<std::string>& names);

struct CompileResult {
  std::filesystem::path object;
  std::string diagnostics;  // clang's warnings (empty when clean)
  bool cache_hit = false;   // clang did not run: the object came from the policy cache
  std::string cache_note;   // where the object came from or went (for -v), or why not cached
};

// The policy-object cache (runtime/policy/object_cache.h): where to look, in order, and where
// to add a freshly compiled object (empty: nowhere).
struct CacheOptions {
  std::vector<std::filesystem::path> lookup;
  std::filesystem::path store;
};

// Compiles `source` into `out_obj` against headers generated into `include_dir`. On failure the
// status message is clang's diagnostics as-is, followed by sie's own explanation when it
// recognizes the cause (a variable not live at the span, an unknown constant). With `cache`,
// an unchanged policy (same source, headers, constants, flags, clang) is copied from the cache
// instead of compiled, and a fresh compile is added to it.
absl::StatusOr<CompileResult> CompilePolicy(const Toolchain& tc,
                                            const std::filesystem::path& source,
                                            const std::vector<artifact::ConstEntry>& consts,
                                            const std::filesystem::path& include_dir,
                                            const std::filesystem::path& out_obj,
                                            const CacheOptions* cache = nullptr);

// Loads an object (maps not pinned) with per-program verifier logs; on a rejection the error
// names the policy's line ("file:line: message\nhint: ..."). `raw_log` receives the failing
// program's full log. Used to explain a refusal, and on the host (stubs built with
// -DSIE_NO_KFUNCS) by the unit tests. Nothing stays loaded.
absl::Status VerifyObject(const std::filesystem::path& obj, const std::filesystem::path& source,
                          std::string* raw_log);

// The policy file's one object: the stubs of all constants as one unit, each under its own
// names (stubgen::BuildStubs; `stub_cflags` adds flags, e.g. -DSIE_NO_KFUNCS on the host),
// linked with `policy_obj` into `out`. `stub_programs` (optional) receives the stubs' program
// names: the loader attaches those, sie-run the policy's own.
absl::Status LinkPolicyObject(const std::vector<artifact::ConstEntry>& consts,
                              const std::filesystem::path& policy_obj,
                              const std::filesystem::path& out, const std::string& stub_cflags,
                              std::set<std::string>* stub_programs = nullptr,
                              const CacheOptions* cache = nullptr);

struct RunOptions {
  std::filesystem::path source;
  std::vector<std::string> consts;
  std::filesystem::path consts_dir;
  std::vector<std::string> sets;  // --set NAME=VALUE: start settings and live knobs' start values
  int mode = 0;
  double reverse_timeout_s = 5;
  double duration_s = 0;  // 0: until SIGINT/SIGTERM
  bool pin = false;
  bool json = false;
  bool verbose = false;
  bool shadow = false;           // decide and count, but keep the defaults (--shadow)
  std::filesystem::path cgroup;  // canary: decide only for tasks in this cgroup v2 (--cgroup)
  bool optimize = true;          // let the loader look for jump-optimizable probe offsets
  bool use_cache = true;         // look for the compiled policy in PolicyCacheDirs(consts_dir)
};

// `sie-run --compile-only`: compiles the policy (or finds it cached) and adds it to the first
// of PolicyCacheDirs(consts_dir) ($SIE_POLICY_CACHE, else <consts>/policy-cache), where a later
// sie-run, e.g. in the guest, finds it. Needs no root and attaches nothing.
absl::Status CompileOnly(const RunOptions& opts);

// `sie-run --describe`: the policy's constants (from --const, else its SIE_POLICYs), start
// settings and live knobs with types and defaults, from the compiled object's BTF. Compiles
// (or finds in the cache) but loads nothing; no root needed.
absl::Status Describe(const RunOptions& opts);

// The constants a policy decides, by its SIE_POLICY(<lower-case name>, ...) lines.
absl::StatusOr<std::vector<std::string>> PolicyConstNames(const std::filesystem::path& source,
                                                          const std::filesystem::path& consts_dir);

struct Timings {
  double compile_ms = 0, link_ms = 0, verify_ms = 0, load_ms = 0, attach_ms = 0, transition_ms = 0,
         reverse_ms = 0;
};

// Runs a policy until stopped. Output (log lines, summary) goes to stdout; returns the exit
// status: OK, or the error to report. `stop` is polled (set it from a signal handler).
absl::Status RunPolicy(const RunOptions& opts, const std::atomic<bool>& stop);

// /run/sie/sie-run.json: what a --pin run left loaded.
std::filesystem::path StatePath();
// Undoes a --pin run: every constant of the policy back to its default at once, then detach.
absl::Status StopPinned(double reverse_timeout_s);

}  // namespace sie::policy
