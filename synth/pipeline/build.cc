// Stage 3: the work directory, then the builds of every object of every tunable still OK, in
// parallel (synth/variants/builder.h): V1..V3 and two check values the formulas derived from
// V1..V3 must also hold at (synth/analysis/analyze.h). A failed build fails only its tunables.
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/diag.h"
#include "synth/analysis/analyze.h"
#include "synth/pipeline/stages.h"

namespace sie::synth::pipeline {
namespace fs = std::filesystem;

// Work directories live under the cache as work/<pid>; ones whose process is gone were left by
// an interrupted run and are removed here.
absl::StatusOr<fs::path> MakeWorkDir(const fs::path& cache_root, bool keep) {
  // Kept work dirs go elsewhere so the sweep below never removes them.
  fs::path base = cache_root / (keep ? "kept" : "work");
  std::error_code ec;
  fs::create_directories(base, ec);
  if (ec)
    return FailedWithHint(absl::StrCat("cannot create ", base.string(), ": ", ec.message()),
                          "set SIE_CACHE to a writable directory");
  for (const auto& e : fs::directory_iterator(base, ec)) {
    if (keep) break;
    int pid;
    if (absl::SimpleAtoi(e.path().filename().string(), &pid) && pid > 0 && ::kill(pid, 0) != 0 &&
        errno == ESRCH)
      fs::remove_all(e.path(), ec);
  }
  fs::path dir = base / absl::StrCat(::getpid());
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  return dir;
}

void BuildAll(State* st) {
  std::vector<const TunableSpec*> tunables;
  std::vector<std::vector<std::string>> objects;
  std::vector<Entry*> building;
  size_t n_builds = 0;
  for (Entry& e : st->entries) {
    if (!e.status.ok()) continue;
    e.built = *e.t;
    for (int64_t v : CheckValues(e.t->values, e.t->range_min, e.t->range_max))
      e.built.values.push_back(v);
    tunables.push_back(&e.built);
    objects.push_back(e.objects);
    building.push_back(&e);
    n_builds += e.built.values.size() * e.objects.size();
  }
  st->progress(absl::StrCat("building ", n_builds, " object variant(s) for ", tunables.size(),
                            " tunable(s), ", st->ctx.jobs, " at a time"));
  std::vector<TunableVariants> built = BuildVariantsEach(st->ctx, tunables, objects);
  for (size_t i = 0; i < building.size(); ++i) {
    building[i]->Fail(built[i].status, Refusal::kBuild);
    building[i]->variants = std::move(built[i]);
  }
}

}  // namespace sie::synth::pipeline
