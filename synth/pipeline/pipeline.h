// `sie synth` as a library call: spec -> target -> objects -> variant builds -> analysis ->
// artifacts, one stage per file in this directory (see stages.h). The CLI (synth_command.cc)
// only parses arguments and prints the report.
//
// Tunables are isolated: a spec, build or analysis error of one tunable is recorded in its
// row of the report with a Refusal class and the others are still synthesized and written.
// Only errors that stop every tunable (unreadable spec, kernel tree, output directory) make
// Synthesize itself fail.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "synth/refusal.h"
#include "synth/spec/spec.h"
#include "synth/variants/kernel_tree.h"

namespace sie::synth {

struct SynthOptions {
  std::filesystem::path spec;  // SPEC.yaml
  std::filesystem::path out = "sie-out";
  std::string kernel_src;         // a prepared kernel tree (else $SIE_KERNEL_SRC, the cache)
  std::vector<std::string> only;  // names or ids; empty: every tunable
  int jobs = 2;                   // variants compiled at once
  bool compile_stubs = true;      // false: stub sources only (--no-compile)
  bool keep_work = false;         // keep the variant objects
  bool verbose = false;           // compile commands and per-object details
};

// One tunable's row of the summary.
struct TunableReport {
  int id = 0;
  std::string name;
  std::vector<std::string> objects;  // relative to the build root
  size_t spans = 0, safe_spans = 0;
  std::vector<std::string> kinds;     // distinct span kinds ("reg", "flags", ...), sorted
  std::vector<std::string> formulas;  // distinct formulas, sorted
  std::vector<std::string> warnings;
  absl::Status status;                      // OK: const.json and artifacts written
  Refusal reason = Refusal::kUnclassified;  // when !status.ok()
  std::filesystem::path const_json;         // when written
  std::vector<std::string> files;           // every artifact written, sorted
  int64_t ms = 0;                           // analysis and output time of this tunable

  bool ok() const { return status.ok(); }
};

struct SynthTiming {
  int64_t prepare_ms = 0, compile_ms = 0, analysis_ms = 0, output_ms = 0, total_ms = 0;
};

struct SynthReport {
  std::filesystem::path out;  // absolute
  std::filesystem::path spec;
  TargetKind kind = TargetKind::kKernel;
  SynthTiming timing;
  std::vector<TunableReport> tunables;  // the selected tunables, in spec order

  size_t failed() const;
};

// Runs the whole pipeline. `progress` receives one line per step (builds, n/N of the
// analysis with elapsed time and an estimate, warnings); it may be empty.
absl::StatusOr<SynthReport> Synthesize(const SynthOptions& opts, const Progress& progress);

}  // namespace sie::synth
