// Stage 5: per analysed tunable, DIR/<id>/const.json and the runtime artifacts next to it;
// then DIR/index.json. A tunable whose artifacts fail (e.g. its stub does not compile) is
// recorded as failed; the others are still written. A --out of the older id scheme is
// renumbered first, and the artifacts of its constants this run does not write are generated
// again (they embed the id).
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "synth/pipeline/stages.h"

namespace sie::synth::pipeline {
namespace fs = std::filesystem;
namespace {

// const.json, then the stub and its artifacts from it; a stub generator's refusal (or a
// failed stub compile) is classified as such.
absl::Status WriteOne(const State& st, const SynthesizedConst& c) {
  if (auto s = artifact::WriteConst(st.out_dir, c); !s.ok()) return s;
  stubgen::ArtifactOptions ao;
  ao.compile = st.opts.compile_stubs;
  ao.progress = st.progress;
  return Classified(stubgen::EmitArtifacts(st.out_dir / absl::StrCat(c.id), ao), Refusal::kStub);
}

absl::Status Renumber(const State& st) {
  const artifact::IdPlan& m = st.migration;
  if (!m.migrate) return absl::OkStatus();
  if (auto s = artifact::ApplyIdMigration(st.out_dir, m); !s.ok()) return s;
  std::vector<std::string> moves;
  for (const auto& [was, id] : m.renumber) moves.push_back(absl::StrCat(was, " -> ", id));
  st.progress(absl::StrCat("renumbered ", st.out_dir.string(), " to sequential ConstIDs",
                           moves.empty() ? "" : ": ", absl::StrJoin(moves, ", ")));
  return absl::OkStatus();
}

// A renumbered constant this run did not write: its stub, object, skeleton and view again, from
// its const.json. A failure leaves the const.json alone, which the runtime still loads (it
// compiles the stub itself), so it is a warning.
void Regenerate(const State& st, const std::set<int>& written) {
  stubgen::ArtifactOptions ao;
  ao.compile = st.opts.compile_stubs;
  ao.progress = st.progress;
  for (const auto& [was, id] : st.migration.renumber) {
    if (written.count(id)) continue;
    const fs::path dir = st.out_dir / absl::StrCat(id);
    if (auto s = stubgen::EmitArtifacts(dir, ao); !s.ok())
      st.progress(absl::StrCat("warning: the artifacts of ", dir.string(),
                               " were not generated again: ", s.message(),
                               "; run 'sie consts "
                               "--consts ",
                               st.out_dir.string(), " --build'"));
  }
}

}  // namespace

absl::Status WriteAll(State* st) {
  if (auto s = Renumber(*st); !s.ok()) return s;
  std::set<int> written;
  for (Entry& e : st->entries) {
    if (!e.status.ok() || !e.result) continue;
    auto t0 = Clock::now();
    if (auto s = WriteOne(*st, *e.result); !s.ok())
      e.Fail(WithContext(s, absl::StrCat("writing ", e.t->name)), Refusal::kUnclassified);
    else
      written.insert(e.id);
    e.ms += Ms(Clock::now() - t0);
  }
  Regenerate(*st, written);
  return artifact::WriteIndex(st->out_dir, st->ids);
}

}  // namespace sie::synth::pipeline
