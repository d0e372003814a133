// Stage 4: per tunable, the analysis core on the three builds of every object, the spans
// mapped onto the binary the guest runs, the spec's scope and overrides applied.
#include "synth/analysis/analyze.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "synth/pipeline/stages.h"

namespace sie::synth::pipeline {
namespace fs = std::filesystem;
namespace {

// The analysis core's part for one object: spans in the baseline build, mapped onto the
// shipped binary, merged into `out`.
absl::Status AnalyzeObject(const TunableSpec& t, const ObjectVariants& ov, const Shipped& shipped,
                           const State& st, SynthesizedConst* out) {
  std::vector<VariantObject> vs;
  for (int i = 0; i < 3; ++i) vs.push_back({t.values[i], ov.variant[i].string()});
  AnalyzeOptions opts;
  opts.functions = t.functions;
  opts.range_min = t.range_min;
  opts.range_max = t.range_max;
  // `t` is the tunable as built: its values after V1..V3 are the check values.
  for (size_t i = 3; i < t.values.size() && i < kMaxBuilds; ++i)
    opts.check.push_back({t.values[i], ov.variant[i].string()});
  opts.build = [&](int64_t v) -> absl::StatusOr<std::string> {
    st.progress(absl::StrCat("  ", ov.object, ": building ", t.name, "=", v,
                             " (the code has another shape at a planned value)"));
    auto p = BuildOtherValue(st.ctx, t, ov.object, v);
    if (!p.ok()) return p.status();
    return p->string();
  };
  auto r = AnalyzeVariants(vs, opts);
  if (!r.ok()) return r.status();
  // A generic target has no separate shipped binary: the V1 object already is the target.
  if (shipped.path != ov.variant[0]) {
    if (auto s =
            MapToShipped(ov.variant[0].string(), shipped.path.string(), &r->spans, &r->safe_spans);
        !s.ok())
      return WithContext(s, absl::StrCat("mapping onto ", shipped.path.string()));
  }
  if (st.opts.verbose)
    st.progress(absl::StrCat("  ", ov.object, ": ", r->spans.size(), " span(s), ",
                             r->safe_spans.size(), " safe span(s), ", r->data_initializers.size(),
                             " data initializer(s)"));
  out->spans.insert(out->spans.end(), r->spans.begin(), r->spans.end());
  out->safe_spans.insert(out->safe_spans.end(), r->safe_spans.begin(), r->safe_spans.end());
  out->data_initializers.insert(out->data_initializers.end(), r->data_initializers.begin(),
                                r->data_initializers.end());
  for (const auto& w : r->warnings) out->warnings.push_back(absl::StrCat(ov.object, ": ", w));
  // The values fitted, when the analysis replaced one (see AnalyzeOptions::build).
  if (!r->fitted.empty() &&
      r->fitted != std::vector<int64_t>(t.values.begin(), t.values.begin() + 3))
    out->values = r->fitted;
  // The policy may only set values every object's formulas are valid for.
  out->range_min = std::max(out->range_min, r->range_min);
  out->range_max = std::min(out->range_max, r->range_max);
  return absl::OkStatus();
}

// Keeps only spans in the spec's `functions:` (when given). Functions may carry compiler
// suffixes (.isra.0, .constprop.0) in the binary, so the base name is compared.
void ApplyFunctionScope(const TunableSpec& t, SynthesizedConst* c) {
  if (t.functions.empty()) return;
  auto in_scope = [&](const std::string& f) {
    std::string base = f.substr(0, f.find('.'));
    return std::find(t.functions.begin(), t.functions.end(), base) != t.functions.end() ||
           std::find(t.functions.begin(), t.functions.end(), f) != t.functions.end();
  };
  size_t before = c->spans.size();
  std::erase_if(c->spans, [&](const CriticalSpan& s) { return !in_scope(s.function); });
  if (c->spans.size() != before)
    c->warnings.push_back(
        absl::StrCat(before - c->spans.size(), " span(s) outside 'functions:' were left out"));
}

// The binary the spans of `e` are mapped onto.
Shipped ShippedFor(const State& st, const Entry& e) {
  Shipped sh = st.shipped;
  if (st.spec.kind != TargetKind::kModule) return sh;
  // The module the guest loads is what runs: `module_ko:` when given, else a .ko built in the
  // module directory; without either, the V1 build stands in.
  const TunableVariants& tv = e.variants;
  fs::path user_ko = st.ctx.source_root / absl::StrCat(tv.module_name, ".ko");
  sh.path = !st.spec.module_ko.empty() ? st.spec.module_ko
            : fs::exists(user_ko)      ? user_ko
                                       : tv.module_ko;
  sh.target.binary = tv.module_name;
  return sh;
}

SourceRoots Sources(const State& st) {
  SourceRoots sources;
  sources.work_dir = st.ctx.work_dir;
  if (st.spec.kind == TargetKind::kModule) sources.module_dir = st.spec.module_dir;
  if (st.tree) sources.roots.push_back(st.tree->root());
  if (st.spec.kind != TargetKind::kKernel) sources.roots.push_back(st.spec.source_dir);
  sources.roots.push_back(st.files.headers_dir);
  return sources;
}

// The spec's and the analysis's parts of the constant, before the objects are analysed.
SynthesizedConst Skeleton(const Entry& e) {
  const TunableSpec& t = *e.t;
  SynthesizedConst c;
  c.id = e.id;
  c.name = t.name;
  c.description = t.description;
  c.values = t.values;
  c.range_min = t.range_min;
  c.range_max = t.range_max;
  c.warnings = e.warnings;
  return c;
}

absl::StatusOr<SynthesizedConst> AnalyzeTunable(const State& st, const Entry& e) {
  const TunableSpec& t = *e.t;
  SynthesizedConst c = Skeleton(e);
  Shipped sh = ShippedFor(st, e);
  for (const auto& ov : e.variants.objects) {
    Shipped osh = sh;
    if (st.spec.kind == TargetKind::kGeneric) {
      // No separate shipped binary: the V1 (shipped-value) object is the target.
      osh.path = ov.variant[0];
      osh.target.binary = ov.object;
    }
    if (osh.target.build_id.empty() && !osh.path.empty())
      if (auto id = elf::ReadBuildId(osh.path); id.ok()) osh.target.build_id = *id;
    c.target = osh.target;
    if (auto s = AnalyzeObject(e.built, ov, osh, st, &c); !s.ok())
      return WithContext(s, absl::StrCat("analysing ", ov.object, " for ", t.name));
  }
  ApplyFunctionScope(t, &c);
  // DWARF names the files of the variant build in the work dir: point into the user's tree.
  SourceRoots sources = Sources(st);
  for (auto& span : c.spans) span.source = RelativeSource(span.source, sources);
  if (!t.safe_spans.empty()) {
    // A manual override replaces what the analysis derived.
    c.safe_spans.clear();
    for (const auto& s : t.safe_spans)
      c.safe_spans.push_back({s.function, s.start, s.end, SafeSpanHow::kManual});
  }
  if (c.spans.empty())
    c.warnings.push_back(
        "no Critical Span found: the value does not reach the code of the "
        "listed objects (check objects:/functions:)");
  return c;
}

}  // namespace

void AnalyzeAll(State* st) {
  size_t todo = std::count_if(st->entries.begin(), st->entries.end(),
                              [](const Entry& e) { return e.status.ok(); });
  Meter meter(todo);
  for (Entry& e : st->entries) {
    if (!e.status.ok()) continue;
    auto t0 = Clock::now();
    try {
      auto c = AnalyzeTunable(*st, e);
      if (c.ok())
        e.result = std::move(*c);
      else
        e.Fail(c.status(), Refusal::kUnclassified);
    } catch (const std::exception& ex) {
      // One constant the analysis cannot handle does not hold back the others.
      e.Fail(absl::InternalError(absl::StrCat("analysing ", e.t->name, ": ", ex.what())),
             Refusal::kUnclassified);
    }
    e.ms = Ms(Clock::now() - t0);
    st->progress(
        absl::StrCat(meter.Tick(), " ", e.t->name, ": ",
                     e.result ? absl::StrCat(e.result->spans.size(), " span(s)")
                              : absl::StrCat("refused (", RefusalName(RefusalOf(e.status)), ")")));
  }
}

}  // namespace sie::synth::pipeline
