// Stage 2: per tunable, the edit applies for all three values and the objects it affects are
// known (from `objects:` or searched). A tunable failing here is recorded and skipped.
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/diag.h"
#include "synth/pipeline/stages.h"
#include "synth/variants/find_objects.h"

namespace sie::synth::pipeline {
namespace {

// The objects of `t` the spec does not list: those using its macro/text, built into the
// target (for vmlinux: compile units of the -dbg vmlinux, read once into `built`). A header's
// objects are a guess: `warning` says which were taken.
absl::StatusOr<std::vector<std::string>> SearchObjects(State* st, const TunableSpec& t,
                                                       std::optional<std::set<std::string>>* built,
                                                       std::string* warning) {
  if (st->spec.kind == TargetKind::kKernel && !*built) {
    auto b = CompileUnitSources(
        st->files.dbg_vmlinux,
        st->cache_root / absl::StrCat("kernel-", st->files.release) / "vmlinux-cu-sources.txt");
    if (!b.ok()) return b.status();
    *built = std::move(*b);
  }
  auto found = FindAffectedObjects(BuildRoot(st->ctx), t, *built ? &**built : nullptr);
  if (!found.ok()) return found.status();
  if (found->objects.empty())
    return InvalidWithHint(
        absl::StrCat(
            st->spec.Where(t.line), ": no built object uses ", t.name,
            found->skipped.empty()
                ? ""
                : absl::StrCat(" (not built here: ", absl::StrJoin(found->skipped, ", "), ")")),
        "list the objects with 'objects: [dir/file.o]'");
  if (t.is_header()) {
    std::string msg = absl::StrCat("'objects:' not given for ", t.name, ": using ",
                                   absl::StrJoin(found->objects, ", "));
    if (!found->skipped.empty())
      absl::StrAppend(&msg, "; not built into this target: ", absl::StrJoin(found->skipped, ", "));
    absl::StrAppend(&msg, " (pin them with 'objects:')");
    st->progress(absl::StrCat("warning: ", msg));
    *warning = msg;
  }
  return found->objects;
}

}  // namespace

void FindObjects(State* st) {
  std::optional<std::set<std::string>> built;
  for (Entry& e : st->entries) {
    const TunableSpec& t = *e.t;
    auto w = CheckEdit(st->ctx, st->spec, t);
    if (!w.ok()) {
      e.Fail(w.status(), Refusal::kSpec);
      continue;
    }
    e.warnings = *w;
    for (const auto& msg : e.warnings) st->progress(absl::StrCat("warning: ", t.name, ": ", msg));
    e.objects = t.objects;
    if (!e.objects.empty()) continue;
    std::string warning;
    auto found = SearchObjects(st, t, &built, &warning);
    if (!found.ok()) {
      e.Fail(found.status(), Refusal::kSpec);
      continue;
    }
    e.objects = std::move(*found);
    if (!warning.empty()) e.warnings.push_back(warning);
  }
}

}  // namespace sie::synth::pipeline
