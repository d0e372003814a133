// Stage 4: per tunable, the analysis core on the three builds of every object, the spans
// mapped onto the binary the guest runs, the spec's scope and overrides applied.
#include "synth/analysis/analyze.h"

#include <elf.h>

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/elf/elf_file.h"
#include "synth/pipeline/stages.h"
#include "synth/pipeline/traceable.h"
#include "synth/refusal.h"

namespace sie::synth::pipeline {
namespace fs = std::filesystem;
namespace {

// Functions of `object` in init or exit text: the kernel runs them once (boot, module load or
// unload) and frees init text afterwards, so a value they use can never change at runtime.
absl::StatusOr<std::set<std::string>> OneShotFunctions(const fs::path& object) {
  ASSIGN_OR_RETURN(elf, elf::ElfFile::Open(object.string()));
  std::set<std::string> out;
  for (const auto& sym : elf->symbols()) {
    if (sym.type != STT_FUNC || sym.shndx <= 0 ||
        sym.shndx >= static_cast<int>(elf->sections().size()))
      continue;
    const std::string& sec = elf->sections()[sym.shndx].name;
    if (absl::StartsWith(sec, ".init.") || absl::StartsWith(sec, ".exit.")) out.insert(sym.name);
  }
  return out;
}

absl::Status InitOnly(const std::string& functions) {
  return Classified(
      FailedWithHint(absl::StrCat("only init/exit code uses the value (", functions,
                                  "): it runs once and cannot be tuned at runtime"),
                     "set the value on the kernel command line or at build time instead"),
      Refusal::kInitOnly);
}

// Drops the spans (and their safe spans) in one-shot functions; refuses when none is left.
absl::Status DropOneShotSpans(const fs::path& object, AnalysisResult* r,
                              std::vector<std::string>* warnings) {
  ASSIGN_OR_RETURN(once, OneShotFunctions(object));
  std::set<std::string> dropped;
  auto one_shot = [&](const std::string& f) { return once.count(f) > 0; };
  for (const auto& s : r->spans)
    if (one_shot(s.function)) dropped.insert(s.function);
  if (dropped.empty()) return absl::OkStatus();
  std::erase_if(r->spans, [&](const auto& s) { return one_shot(s.function); });
  std::erase_if(r->safe_spans, [&](const auto& s) { return one_shot(s.function); });
  std::string names = absl::StrJoin(dropped, ", ");
  if (r->spans.empty()) return InitOnly(names);
  warnings->push_back(absl::StrCat("span(s) in init/exit code left out (", names,
                                   "): that code runs once, before any value can be set"));
  return absl::OkStatus();
}

// The analysis refused (`failed`) in init/exit code among others: that code runs once, before
// any value can be set, so the object is analysed again without it. Refused as init-only when
// nothing else uses the value; `failed` when no one-shot function was part of the refusal.
absl::StatusOr<AnalysisResult> AnalyzeWithoutOneShot(const fs::path& object,
                                                     const std::vector<VariantObject>& vs,
                                                     const absl::Status& failed,
                                                     AnalyzeOptions* opts) {
  ASSIGN_OR_RETURN(once, OneShotFunctions(object));
  std::vector<std::string> named;
  for (const std::string& f : once)
    if (absl::StrContains(failed.message(), absl::StrCat(f, "+0x"))) named.push_back(f);
  if (named.empty()) return failed;
  opts->skip.assign(once.begin(), once.end());
  auto again = AnalyzeVariants(vs, *opts);
  if (again.ok())
    again->warnings.push_back(absl::StrCat(
        "init/exit code also uses the value (", absl::StrJoin(named, ", "),
        "): left out, it runs once before any value can be set (what it computed keeps the "
        "shipped value)"));
  if (again.ok() || !absl::IsNotFound(again.status()) ||
      RefusalOf(again.status()) == Refusal::kSpec)
    return again;
  return InitOnly(absl::StrJoin(named, ", "));
}

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
    st.progress(absl::StrCat(
        "  ", ov.object, ": building ", t.name, "=", v,
        " (a further value: another shape at a planned one, or formulas to tell apart)"));
    auto p = BuildOtherValue(st.ctx, t, ov.object, v);
    if (!p.ok()) return p.status();
    return p->string();
  };
  auto r = AnalyzeVariants(vs, opts);
  if (!r.ok()) r = AnalyzeWithoutOneShot(ov.variant[0], vs, r.status(), &opts);
  if (!r.ok()) return r.status();
  RETURN_IF_ERROR(DropOneShotSpans(ov.variant[0], &*r, &r->warnings));
  // A generic target has no separate shipped binary: the V1 object already is the target.
  if (shipped.path != ov.variant[0]) {
    if (auto s = MapToShipped(ov.variant[0].string(), shipped.path.string(), &r->spans,
                              &r->safe_spans, &r->safe_spans_unbounded);
        !s.ok())
      return WithContext(s, absl::StrCat("mapping onto ", shipped.path.string()));
  }
  ASSIGN_OR_RETURN(traceable, TraceableFunctions(shipped.path.string()));
  if (traceable) RETURN_IF_ERROR(CheckTraceable(*traceable, r->spans, &r->warnings));
  if (st.opts.verbose)
    st.progress(absl::StrCat("  ", ov.object, ": ", r->spans.size(), " span(s), ",
                             r->safe_spans.size(), " safe span(s), ", r->data_initializers.size(),
                             " data initializer(s)"));
  out->spans.insert(out->spans.end(), r->spans.begin(), r->spans.end());
  out->safe_spans.insert(out->safe_spans.end(), r->safe_spans.begin(), r->safe_spans.end());
  if (out->safe_spans_unbounded.empty()) out->safe_spans_unbounded = r->safe_spans_unbounded;
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
  out->pow2_only |= r->pow2_only;
  return absl::OkStatus();
}

// Keeps only spans in the spec's `functions:` (when given), and their entries of `span_object`
// (the object each span came from). Functions may carry compiler suffixes (.isra.0,
// .constprop.0) in the binary, so the base name is compared.
void ApplyFunctionScope(const TunableSpec& t, SynthesizedConst* c,
                        std::vector<size_t>* span_object) {
  if (t.functions.empty()) return;
  auto in_scope = [&](const std::string& f) {
    std::string base = f.substr(0, f.find('.'));
    return std::find(t.functions.begin(), t.functions.end(), base) != t.functions.end() ||
           std::find(t.functions.begin(), t.functions.end(), f) != t.functions.end();
  };
  size_t before = c->spans.size(), kept = 0;
  for (size_t i = 0; i < c->spans.size(); ++i) {
    if (!in_scope(c->spans[i].function)) continue;
    if (kept != i) c->spans[kept] = std::move(c->spans[i]);  // a self-move would empty it
    (*span_object)[kept++] = (*span_object)[i];
  }
  c->spans.resize(kept);
  span_object->resize(kept);
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

// The binary each object's spans are mapped onto.
std::vector<Shipped> ShippedOf(const State& st, const Entry& e) {
  if (e.shipped.size() == e.variants.objects.size()) return e.shipped;
  std::vector<Shipped> out;
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
    out.push_back(std::move(osh));
  }
  return out;
}

absl::StatusOr<SynthesizedConst> AnalyzeTunable(const State& st, const Entry& e) {
  const TunableSpec& t = *e.t;
  SynthesizedConst c = Skeleton(e);
  const std::vector<Shipped> shipped = ShippedOf(st, e);
  std::vector<size_t> span_object;  // the object each span of `c` came from
  for (size_t i = 0; i < e.variants.objects.size(); ++i) {
    const ObjectVariants& ov = e.variants.objects[i];
    if (auto s = AnalyzeObject(e.built, ov, shipped[i], st, &c); !s.ok()) {
      // A shipped value rebuilt from `replace:` text is a new literal: a macro defined as
      // another (SWAP_CLUSTER_MAX, 32UL) becomes an int, and the code differs from the shipped.
      if (RefusalOf(s) == Refusal::kShippedMismatch && t.macro.empty())
        s = WithHint(s,
                     "the V1 build differs from the shipped code: check that 'replace:' at "
                     "the shipped value keeps the original's type (a U/UL suffix, a cast), or "
                     "use 'macro:', which keeps it");
      return WithContext(s, absl::StrCat("analysing ", ov.object, " for ", t.name));
    }
    span_object.resize(c.spans.size(), i);
  }
  ApplyFunctionScope(t, &c, &span_object);
  if (st.spec.kind == TargetKind::kGeneric) {
    // Each object is its own target there: the last one names it, as it always did.
    if (!shipped.empty()) c.target = shipped.back().target;
  } else {
    if (auto s = CheckOneBinary(span_object, e.variants.objects, shipped); !s.ok())
      return WithContext(s, t.name);
    // The target is the binary holding the spans (the first object's when there is none).
    if (!shipped.empty()) c.target = shipped[span_object.empty() ? 0 : span_object[0]].target;
  }
  // DWARF names the files of the variant build in the work dir: point into the user's tree.
  SourceRoots sources = Sources(st);
  for (auto& span : c.spans) span.source = RelativeSource(span.source, sources);
  if (!t.safe_spans.empty()) {
    // A manual override replaces what the analysis derived.
    c.safe_spans.clear();
    c.safe_spans_unbounded.clear();
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

absl::Status CheckOneBinary(const std::vector<size_t>& span_object,
                            const std::vector<ObjectVariants>& objects,
                            const std::vector<Shipped>& shipped) {
  for (size_t i : span_object) {
    const Shipped& a = shipped[span_object[0]];
    const Shipped& b = shipped[i];
    if (a.target.binary == b.target.binary) continue;
    return Classified(
        FailedWithHint(
            absl::StrCat("the spans are in two binaries: ", objects[span_object[0]].object,
                         " is built into ", a.target.binary, ", ", objects[i].object, " into ",
                         b.target.binary, "; a constant has one target binary"),
            "restrict the tunable to the objects of one binary with 'objects:' (or to its "
            "functions with 'functions:'), and make another tunable for the other"),
        Refusal::kSeveralBinaries);
  }
  return absl::OkStatus();
}

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
