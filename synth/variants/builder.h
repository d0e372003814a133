// Builds V1, V2 and V3 of the objects a tunable affects (and the check values V4, V5 when the
// tunable passed in lists them after the three), and nothing else.
//
// Nothing is ever written into the user's tree or the prepared kernel tree: each variant gets
// its own directory under the work dir holding
//   kernel:  an overlay mirroring the tree layout (the edited file, the object's .c and its
//            sibling headers) searched before the tree, the kbuild command replayed with -o into
//            the variant dir, then objtool --hacks=jump_label --link on a copy;
//   module:  a copy of the module directory built with kbuild (make -C headers M=copy);
//   generic: a copy of source_dir where build.command runs.
// So an interrupted run leaves every tree as it was. Variants build in parallel.
#pragma once
#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "synth/spec/spec.h"
#include "synth/variants/config_if.h"
#include "synth/variants/kernel_tree.h"

namespace sie::synth {

// V1, V2, V3 and up to two check values (never fitted, see AnalyzeOptions::check).
inline constexpr size_t kMaxBuilds = 5;

struct ObjectVariants {
  std::string object;  // relative to the build root, e.g. block/blk-mq.o
  std::array<std::filesystem::path, kMaxBuilds> variant;  // V1, V2, V3 (V4, V5) object files
};

struct TunableVariants {
  const TunableSpec* tunable = nullptr;
  std::vector<ObjectVariants> objects;
  std::filesystem::path module_ko;  // kModule: the V1 build's .ko
  std::string module_name;          // kModule: its name (without .ko)
  absl::Status status;              // the first build error of this tunable (classified)
};

struct BuildContext {
  TargetKind kind = TargetKind::kKernel;
  KernelTree* tree = nullptr;         // kKernel
  std::filesystem::path source_root;  // kGeneric: source_dir; kModule: the module directory
  std::string build_command;          // kGeneric
  std::filesystem::path headers_dir;  // kModule: kbuild of the guest kernel
  std::string cc = "x86_64-linux-gnu-gcc-12";  // kModule/kKernel compiler
  // kKernel/kModule: the guest kernel's configuration (autoconf.h), which selects the active
  // definition of a macro defined under several #if branches. Absent: such a macro is refused.
  std::optional<KernelConfig> config;
  std::filesystem::path work_dir;  // variants are built below this directory
  // kKernel: pristine (V1) objects are cached here across tunables and runs (object_cache.h);
  // empty: none are.
  std::filesystem::path object_cache;
  // kKernel: builds of variants [0, n) keep the kernel's debug info; the others are built with
  // -g0 (a quarter of each compile), which GCC and clang guarantee leaves the code unchanged.
  // Only V1's DWARF is read (analysis annotates spans from it); other values are only diffed.
  int debug_info_variants = 1;
  std::vector<std::filesystem::path> exclude;  // kGeneric/kModule: never copied (e.g. --out)
  int jobs = 2;
  bool verbose = false;
  Progress progress;
};

// The root the spec's file/objects are relative to for this context.
std::filesystem::path BuildRoot(const BuildContext& ctx);

// Checks that the edit applies for all three values (macro defined exactly once / text found
// exactly once) and that V1 is the value in the pristine file. Returns warnings.
absl::StatusOr<std::vector<std::string>> CheckEdit(const BuildContext& ctx, const Spec& spec,
                                                   const TunableSpec& t);

// Builds all variants of `objects` for every tunable (objects[i] belongs to tunables[i]). A
// failed build fails only the tunables it belongs to (their `status`); the others are built.
std::vector<TunableVariants> BuildVariantsEach(
    const BuildContext& ctx, const std::vector<const TunableSpec*>& tunables,
    const std::vector<std::vector<std::string>>& objects);

// As BuildVariantsEach, but the first failed tunable's error fails the whole call.
absl::StatusOr<std::vector<TunableVariants>> BuildVariants(
    const BuildContext& ctx, const std::vector<const TunableSpec*>& tunables,
    const std::vector<std::vector<std::string>>& objects);

// One more build of `object` with `t` set to `value` (the analysis asks for it when the code has
// another shape at one of the planned values), in a directory of its own under the work dir.
absl::StatusOr<std::filesystem::path> BuildOtherValue(const BuildContext& ctx, const TunableSpec& t,
                                                      const std::string& object, int64_t value);

// Rewrites a kbuild command to compile `overlay_src` into `out`, searching `overlay` before
// every -I directory that exists in it and the original source directory via -iquote. Without
// `debug_info` the compile gets -g0 (same code, no DWARF).
// Exposed for tests.
absl::StatusOr<std::string> RewriteKbuildCommand(const std::string& savedcmd,
                                                 const std::filesystem::path& tree,
                                                 const std::filesystem::path& overlay,
                                                 const std::filesystem::path& out,
                                                 std::string* source_rel, bool debug_info = true);

// The source file kbuild compiles for a saved command (its last *.c / *.S operand).
std::string KbuildSource(const std::string& savedcmd);

}  // namespace sie::synth
