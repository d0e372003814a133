// The stages of Synthesize (pipeline.h) and the state they share. Each stage is one file:
//   target.cc   the spec's target: compiler check, kernel tree or module/source directory
//   objects.cc  per tunable: the edit applies, the affected objects
//   build.cc    the work directory; five builds per object (V1..V3, two check values), in parallel
//   binaries.cc kernel targets: vmlinux or the module each object is built into
//   analyze.cc  per tunable: spans of every object, mapped onto the shipped binary
//   output.cc   per tunable: const.json and the runtime artifacts; the index
// A stage that fails for one tunable records it in that tunable's Entry and moves on.
#pragma once
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/artifact/consts_dir.h"
#include "common/base/diag.h"
#include "common/elf/elf_file.h"
#include "common/stubgen/stub_build.h"
#include "synth/artifact_types.h"
#include "synth/output/output.h"
#include "synth/pipeline/pipeline.h"
#include "synth/progress.h"
#include "synth/variants/builder.h"

namespace sie::synth::pipeline {

using Clock = std::chrono::steady_clock;
int64_t Ms(Clock::duration d);

// The binary whose code the spans are mapped onto.
struct Shipped {
  std::filesystem::path path;
  TargetBinary target;
};

// One selected tunable on its way through the stages.
struct Entry {
  const TunableSpec* t = nullptr;
  int id = 0;
  std::vector<std::string> objects;
  std::vector<std::string> warnings;
  // The spec's tunable with the check values (CheckValues) after V1..V3: what is built.
  TunableSpec built;
  TunableVariants variants;
  // kKernel: the binary each object of `variants` is built into (vmlinux or a module).
  std::vector<Shipped> shipped;
  std::optional<SynthesizedConst> result;  // set by the analysis
  absl::Status status;                     // the first error (classified), OK so far
  int64_t ms = 0;

  // Records the first error, with `cls` when the refusing code set no class.
  void Fail(const absl::Status& s, Refusal cls);
};

// What every stage reads: options, the spec, the target and its build context.
struct State {
  State(const SynthOptions& o, Progress p, Spec s)
      : opts(o), progress(std::move(p)), spec(std::move(s)) {}

  const SynthOptions& opts;
  Progress progress;
  Spec spec;
  artifact::IdIndex ids;
  artifact::IdPlan migration;  // migrate: --out holds ids of the older scheme, to renumber
  std::filesystem::path out_dir;
  GuestKernelFiles files;
  std::filesystem::path cache_root;
  std::optional<KernelTree> tree;
  BuildContext ctx;
  Shipped shipped;
  std::vector<Entry> entries;  // selected tunables, spec order
};

// target.cc: the ids, the selection (--only), then the tree/directories of the spec's target.
absl::Status SelectTunables(State* st);
absl::Status PrepareTarget(State* st);

// objects.cc: the edit of every entry, its objects (given or searched).
void FindObjects(State* st);

// build.cc: the work directory (work/<pid> under the cache; ones of dead processes are
// removed), then the variants of every entry still OK.
absl::StatusOr<std::filesystem::path> MakeWorkDir(const std::filesystem::path& cache_root,
                                                  bool keep);
void BuildAll(State* st);

// binaries.cc: kernel targets: the binary kbuild builds each object of every entry still OK
// into (vmlinux or a module, from the object's saved command), with its shipped file.
void FindBinaries(State* st);

// analyze.cc: every entry still OK through the analysis core.
void AnalyzeAll(State* st);
// One const.json has one target binary: refuses (several-binaries) spans of objects built into
// different binaries (vmlinux and a module, or two modules). span_object[i]: the index into
// `objects` and `shipped` of span i's object.
absl::Status CheckOneBinary(const std::vector<size_t>& span_object,
                            const std::vector<ObjectVariants>& objects,
                            const std::vector<Shipped>& shipped);

// output.cc: const.json and artifacts of every analysed entry, then index.json.
absl::Status WriteAll(State* st);

}  // namespace sie::synth::pipeline
