// Synthesize: the stages of stages.h in order, timed, and the report built from their state.
#include "synth/pipeline/pipeline.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/base/diag.h"
#include "synth/pipeline/stages.h"

namespace sie::synth {
namespace fs = std::filesystem;
using pipeline::Clock;
using pipeline::Entry;
using pipeline::Ms;
using pipeline::State;

namespace pipeline {

int64_t Ms(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

void Entry::Fail(const absl::Status& s, Refusal cls) {
  if (!s.ok() && status.ok()) status = Classified(s, cls);
}

}  // namespace pipeline

namespace {

std::vector<std::string> ArtifactFiles(const fs::path& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(dir, ec))
    if (f.is_regular_file()) files.push_back(f.path().string());
  std::sort(files.begin(), files.end());  // deterministic output
  return files;
}

TunableReport ReportOf(const State& st, const Entry& e) {
  TunableReport r;
  r.id = e.id;
  r.name = e.t->name;
  r.objects = e.objects;
  r.status = e.status;
  r.reason = RefusalOf(e.status);
  r.ms = e.ms;
  r.warnings = e.result ? e.result->warnings : e.warnings;
  if (!e.result) return r;
  std::set<std::string> kinds, formulas;
  for (const auto& s : e.result->spans) {
    kinds.insert(SpanKindName(s.kind));
    formulas.insert(s.formula);
  }
  r.spans = e.result->spans.size();
  r.safe_spans = e.result->safe_spans.size();
  r.kinds.assign(kinds.begin(), kinds.end());
  r.formulas.assign(formulas.begin(), formulas.end());
  if (e.status.ok()) {
    r.const_json = st.out_dir / absl::StrCat(e.id) / "const.json";
    r.files = ArtifactFiles(st.out_dir / absl::StrCat(e.id));
  }
  return r;
}

// Removes the work dir on every return path unless --keep-work.
struct WorkCleanup {
  fs::path dir;
  bool keep;
  ~WorkCleanup() {
    std::error_code ec;
    if (!keep && !dir.empty()) fs::remove_all(dir, ec);
  }
};

}  // namespace

size_t SynthReport::failed() const {
  return std::count_if(tunables.begin(), tunables.end(),
                       [](const TunableReport& t) { return !t.ok(); });
}

absl::StatusOr<SynthReport> Synthesize(const SynthOptions& opts, const Progress& progress) {
  auto t_start = Clock::now();
  auto spec = ParseSpecFile(opts.spec);
  if (!spec.ok()) return spec.status();
  State st(
      opts, progress ? progress : [](const std::string&) {}, std::move(*spec));
  st.out_dir = fs::absolute(opts.out).lexically_normal();
  st.files = GuestKernelFiles::ForRelease();
  st.cache_root = DefaultCacheRoot();
  SynthReport rep;
  if (auto s = SelectTunables(&st); !s.ok()) return s;
  auto t_prep = Clock::now();
  if (auto s = PrepareTarget(&st); !s.ok()) return s;
  rep.timing.prepare_ms = Ms(Clock::now() - t_prep);
  pipeline::FindObjects(&st);

  auto work = pipeline::MakeWorkDir(st.cache_root, opts.keep_work);
  if (!work.ok()) return work.status();
  st.ctx.work_dir = *work;
  st.ctx.object_cache = st.cache_root / "objects";
  WorkCleanup cleanup{*work, opts.keep_work};
  auto t_compile = Clock::now();
  pipeline::BuildAll(&st);
  pipeline::FindBinaries(&st);
  rep.timing.compile_ms = Ms(Clock::now() - t_compile);
  if (opts.keep_work) st.progress(absl::StrCat("variants kept in ", work->string()));

  auto t_analysis = Clock::now();
  pipeline::AnalyzeAll(&st);
  rep.timing.analysis_ms = Ms(Clock::now() - t_analysis);
  auto t_output = Clock::now();
  if (auto s = pipeline::WriteAll(&st); !s.ok()) return s;
  rep.timing.output_ms = Ms(Clock::now() - t_output);

  rep.out = st.out_dir;
  rep.spec = st.spec.path;
  rep.kind = st.spec.kind;
  for (const Entry& e : st.entries) rep.tunables.push_back(ReportOf(st, e));
  rep.timing.total_ms = Ms(Clock::now() - t_start);
  return rep;
}

}  // namespace sie::synth
