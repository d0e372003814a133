// Stage 5: per analysed tunable, DIR/<id>/const.json and the runtime artifacts next to it;
// then DIR/index.json. A tunable whose artifacts fail (e.g. its stub does not compile) is
// recorded as failed; the others are still written.
#include "absl/strings/str_cat.h"
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

}  // namespace

absl::Status WriteAll(State* st) {
  for (Entry& e : st->entries) {
    if (!e.status.ok() || !e.result) continue;
    auto t0 = Clock::now();
    if (auto s = WriteOne(*st, *e.result); !s.ok())
      e.Fail(WithContext(s, absl::StrCat("writing ", e.t->name)), Refusal::kUnclassified);
    e.ms += Ms(Clock::now() - t0);
  }
  return artifact::WriteIndex(st->out_dir, st->ids);
}

}  // namespace sie::synth::pipeline
