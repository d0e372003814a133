// The CLI of `sie synth`: arguments in, Synthesize (pipeline/pipeline.h), the report out as
// progress lines, a summary table on stderr and, with --json, a machine-readable summary.
#include "synth/synth_command.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/artifact/const_json.h"
#include "common/base/args.h"
#include "common/base/diag.h"
#include "synth/pipeline/pipeline.h"

namespace sie::synth {
namespace {

struct CliOptions {
  SynthOptions synth;
  std::vector<std::string> positionals;
  std::string out = "sie-out";
  long jobs = 2;
  bool json = false;
  bool no_compile = false;
};

void PrintProgress(const std::string& line) {
  std::fprintf(stderr, "sie synth: %s\n", line.c_str());
}

// One row per tunable, columns padded to their widest cell.
void PrintTable(const SynthReport& rep) {
  std::vector<std::vector<std::string>> rows = {
      {"name", "objects", "spans", "kinds", "formulas", "status", "reason"}};
  for (const auto& t : rep.tunables)
    rows.push_back({t.name, absl::StrCat(t.objects.size()), absl::StrCat(t.spans),
                    absl::StrJoin(t.kinds, ","), absl::StrJoin(t.formulas, "; "),
                    t.ok() ? "ok" : "failed", t.ok() ? "" : RefusalName(t.reason)});
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i)
      absl::StrAppend(&line, r[i],
                      std::string(i + 1 < r.size() ? width[i] - r[i].size() + 2 : 0, ' '));
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::fprintf(stderr, "  %s\n", line.c_str());
  }
}

nlohmann::json Json(const SynthReport& rep) {
  nlohmann::json j;
  j["out"] = rep.out.string();
  j["spec"] = rep.spec.string();
  j["target_kind"] = TargetKindName(rep.kind);
  j["timing_ms"] = {{"prepare", rep.timing.prepare_ms},
                    {"compile", rep.timing.compile_ms},
                    {"analysis", rep.timing.analysis_ms},
                    {"output", rep.timing.output_ms},
                    {"total", rep.timing.total_ms}};
  j["constants"] = nlohmann::json::array();
  j["failed"] = nlohmann::json::array();
  for (const auto& t : rep.tunables) {
    nlohmann::json row = {{"id", t.id},
                          {"name", t.name},
                          {"objects", t.objects},
                          {"spans", t.spans},
                          {"safe_spans", t.safe_spans},
                          {"kinds", t.kinds},
                          {"formulas", t.formulas},
                          {"warnings", t.warnings},
                          {"status", t.ok() ? "ok" : "failed"},
                          {"ms", t.ms}};
    if (t.ok()) {
      row["const_json"] = t.const_json.string();
      row["files"] = t.files;
      j["constants"].push_back(row);
    } else {
      row["reason"] = RefusalName(t.reason);
      row["error"] = std::string(t.status.message());
      if (std::string hint = Hint(t.status); !hint.empty()) row["hint"] = hint;
      j["failed"].push_back(row);
    }
  }
  return j;
}

int Report(const CliOptions& o, const SynthReport& rep) {
  for (const auto& t : rep.tunables)
    if (t.ok())
      PrintProgress(absl::StrCat(t.name, " -> ", t.const_json.string(), " (id ", t.id, ", ",
                                 t.spans, " span(s), ", t.safe_spans, " safe span(s), ",
                                 t.warnings.size(), " warning(s))"));
  if (o.synth.verbose)
    PrintProgress(absl::StrCat("time: tree preparation ", rep.timing.prepare_ms,
                               " ms, compilation ", rep.timing.compile_ms, " ms, analysis ",
                               rep.timing.analysis_ms, " ms, output (stubs) ", rep.timing.output_ms,
                               " ms, total ", rep.timing.total_ms, " ms"));
  PrintProgress("summary:");
  PrintTable(rep);
  if (o.json) std::fputs(artifact::JsonText(Json(rep)).c_str(), stdout);
  for (const auto& t : rep.tunables)
    if (!t.ok()) ReportError("sie synth", t.status);
  if (rep.failed() == 0) return 0;
  return ReportError("sie synth",
                     FailedWithHint(absl::StrCat(rep.failed(), " of ", rep.tunables.size(),
                                                 " tunable(s) could not be synthesized"),
                                    "see the errors above; the others were written"));
}

}  // namespace

int SynthCommand(const std::vector<std::string>& args) {
  CliOptions o;
  SynthOptions& so = o.synth;
  ArgParser p(
      "sie synth SPEC.yaml [--out DIR] [--kernel-src DIR] [--only NAME|ID] [--no-compile] "
      "[--json] [-v]",
      "Makes the constants listed in SPEC.yaml tunable at runtime: builds each affected "
      "object with three values (V1 = shipped, V2, V3) without touching any source tree, "
      "finds the Critical Spans where the value reaches the code, maps them onto the "
      "shipped binary and writes DIR/index.json and, per constant, DIR/<id>/: const.json, the "
      "BPF stub (stub.bpf.c, <name>.h), its compiled object (stub-<hash>.bpf.o, what "
      "`sie set` loads), the libbpf skeleton <name>.skel.h and a typed C++ view <name>.hpp. "
      "A tunable that cannot be synthesized does not stop the others: a summary table lists "
      "each with its status and reason class; the exit code is 1 when any failed.");
  p.String("-o,--out", "DIR", &o.out, "output directory (default: sie-out)");
  p.String("--kernel-src", "DIR", &so.kernel_src,
           "a prepared kernel tree to use read-only (default: $SIE_KERNEL_SRC, else sie's cached "
           "copy of the guest kernel under $SIE_CACHE or ~/.cache/sie)");
  p.StringList("--only", "NAME|ID", &so.only, "synthesize only this tunable (repeatable)");
  p.Int("-j,--jobs", "N", &o.jobs, "variants compiled at once (default: 2)");
  p.Flag("--no-compile", &o.no_compile,
         "write the stub sources only (no clang/bpftool): no object, skeleton or C++ view; the "
         "runtime then compiles the stub on first use");
  p.Flag("--json", &o.json, "print a machine-readable summary to stdout");
  p.Flag("--keep-work", &so.keep_work, "keep the variant objects (their path is printed)");
  p.Flag("-v,--verbose", &so.verbose, "print compile commands and the time of each phase");
  p.Positionals("SPEC.yaml", &o.positionals, 1, 1);
  if (auto s = p.Parse(args); !s.ok()) return ReportError("sie synth", s);
  if (p.help_requested()) return 0;
  so.spec = o.positionals[0];
  so.out = o.out;
  so.jobs = static_cast<int>(std::max(1L, o.jobs));
  so.compile_stubs = !o.no_compile;
  auto rep = Synthesize(so, PrintProgress);
  if (!rep.ok()) return ReportError("sie synth", rep.status());
  return Report(o, *rep);
}

}  // namespace sie::synth
