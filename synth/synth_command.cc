#include "synth/synth_command.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/artifact/const_json.h"
#include "common/artifact/consts_dir.h"
#include "common/base/args.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/elf/elf_file.h"
#include "common/stubgen/stub_build.h"
#include "synth/artifact_types.h"
#include "synth/output/output.h"
#include "synth/spec/spec.h"
#include "synth/variants/builder.h"
#include "synth/variants/find_objects.h"
#include "synth/variants/kernel_tree.h"

#if defined(SIE_HAVE_ANALYSIS) && __has_include("synth/analysis/analyze.h")
#include "synth/analysis/analyze.h"
#define SIE_ANALYSIS_READY 1
#endif

namespace sie::synth {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::vector<std::string> positionals;
  std::string out = "sie-out";
  std::string kernel_src;
  std::vector<std::string> only;
  bool json = false;
  bool verbose = false;
  bool keep_work = false;
  bool no_compile = false;
  long jobs = 2;
};

long Ms(Clock::duration d) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

void Progress(const std::string& line) { std::fprintf(stderr, "sie synth: %s\n", line.c_str()); }

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

// The binary whose code the spans are mapped onto.
struct Shipped {
  fs::path path;
  TargetBinary target;
};

#ifdef SIE_ANALYSIS_READY
absl::Status AnalyzeObjectWithCore(const TunableSpec& t, const ObjectVariants& ov,
                                   const Shipped& shipped, bool verbose, SynthesizedConst* out) {
  std::vector<VariantObject> vs;
  for (int i = 0; i < 3; ++i) vs.push_back({t.values[i], ov.variant[i].string()});
  AnalyzeOptions opts;
  opts.functions = t.functions;
  opts.range_min = t.range_min;
  opts.range_max = t.range_max;
  auto r = AnalyzeVariants(vs, opts);
  if (!r.ok()) return r.status();
  // A generic target has no separate shipped binary: the V1 object already is the target.
  if (shipped.path != ov.variant[0]) {
    if (auto s =
            MapToShipped(ov.variant[0].string(), shipped.path.string(), &r->spans, &r->safe_spans);
        !s.ok())
      return WithContext(s, absl::StrCat("mapping onto ", shipped.path.string()));
  }
  if (verbose)
    Progress(absl::StrCat("  ", ov.object, ": ", r->spans.size(), " span(s), ",
                          r->safe_spans.size(), " safe span(s), ", r->data_initializers.size(),
                          " data initializer(s)"));
  out->spans.insert(out->spans.end(), r->spans.begin(), r->spans.end());
  out->safe_spans.insert(out->safe_spans.end(), r->safe_spans.begin(), r->safe_spans.end());
  out->data_initializers.insert(out->data_initializers.end(), r->data_initializers.begin(),
                                r->data_initializers.end());
  for (const auto& w : r->warnings) out->warnings.push_back(absl::StrCat(ov.object, ": ", w));
  // The policy may only set values every object's formulas are valid for.
  out->range_min = std::max(out->range_min, r->range_min);
  out->range_max = std::min(out->range_max, r->range_max);
  return absl::OkStatus();
}
#endif

// The analysis core's part for one object: spans in the baseline build, mapped onto the
// shipped binary. Kept in this one function so the core's interface is met in one place.
absl::Status AnalyzeObject(const TunableSpec& t, const ObjectVariants& ov, const Shipped& shipped,
                           bool verbose, SynthesizedConst* out) {
#ifdef SIE_ANALYSIS_READY
  return AnalyzeObjectWithCore(t, ov, shipped, verbose, out);
#else
  (void)t, (void)ov, (void)shipped, (void)verbose, (void)out;
  return FailedWithHint("the analysis core (synth/analysis/analyze.h) is not built in",
                        "build sie_synth_analysis; variants are kept with --keep-work");
#endif
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

bool Selected(const Options& o, const TunableSpec& t, const artifact::IdIndex& ids) {
  if (o.only.empty()) return true;
  for (const auto& s : o.only) {
    if (s == t.name) return true;
    int id;
    if (absl::SimpleAtoi(s, &id) && ids.ids.count(t.name) && ids.ids.at(t.name) == id) return true;
  }
  return false;
}

int Run(const Options& o) {
  auto t_start = Clock::now();
  auto spec = ParseSpecFile(o.positionals[0]);
  if (!spec.ok()) return ReportError("sie synth", spec.status());
  fs::path out_dir = fs::absolute(o.out).lexically_normal();
  GuestKernelFiles files = GuestKernelFiles::ForRelease();
  fs::path cache_root = DefaultCacheRoot();

  // Ids first: they depend only on the spec's names and the index already in --out.
  auto previous = artifact::ReadIdIndex(out_dir);
  if (!previous.ok()) return ReportError("sie synth", previous.status());
  std::vector<std::string> names;
  for (const auto& t : spec->tunables) names.push_back(t.name);
  auto ids = artifact::AssignConstIds(names, *previous);
  if (!ids.ok()) return ReportError("sie synth", ids.status());
  for (const auto& s : o.only) {
    bool found = false;
    for (const auto& [n, id] : ids->ids) found |= s == n || s == absl::StrCat(id);
    if (!found)
      return ReportError(
          "sie synth",
          InvalidWithHint(absl::StrCat("--only ", s, ": no such tunable in ", spec->path.string()),
                          absl::StrCat("tunables: ", absl::StrJoin(names, ", "))));
  }

  // --- target and tree ------------------------------------------------------------------------
  auto t_prep = Clock::now();
  std::optional<KernelTree> tree;
  BuildContext ctx;
  ctx.kind = spec->kind;
  ctx.jobs = static_cast<int>(std::max(1L, o.jobs));
  ctx.verbose = o.verbose;
  ctx.progress = Progress;
  ctx.cc = files.cc;
  ctx.exclude = {out_dir};
  Shipped shipped;
  if (spec->kind == TargetKind::kKernel || spec->kind == TargetKind::kModule) {
    // Both rebuild code that must match what the guest runs: same compiler or nothing.
    if (auto s = CheckCompilerMatches(files); !s.ok()) return ReportError("sie synth", s);
  }
  if (spec->kind == TargetKind::kKernel) {
    std::string src = o.kernel_src;
    if (src.empty())
      if (const char* e = std::getenv("SIE_KERNEL_SRC"); e && *e) src = e;
    if (src.empty() && spec->has_source_dir) src = spec->source_dir.string();
    auto kt = src.empty() ? KernelTree::PrepareGuest(files, cache_root, Progress)
                          : KernelTree::UseExisting(src, files);
    if (!kt.ok()) return ReportError("sie synth", kt.status());
    tree.emplace(std::move(*kt));
    ctx.tree = &*tree;
    shipped.path = files.dbg_vmlinux;
    shipped.target.binary = "vmlinux";
    shipped.target.kernel_release = files.release;
    if (auto id = elf::ReadBuildId(files.dbg_vmlinux); id.ok()) shipped.target.build_id = *id;
  } else if (spec->kind == TargetKind::kModule) {
    ctx.source_root = (spec->source_dir / spec->module_dir).lexically_normal();
    ctx.headers_dir = files.headers_dir;
    shipped.target.kernel_release = files.release;
    if (!fs::is_directory(ctx.source_root))
      return ReportError(
          "sie synth",
          InvalidWithHint(absl::StrCat("module directory ", ctx.source_root.string(), " not found"),
                          "'module:' is relative to source_dir (or the spec)"));
    if (!spec->module_ko.empty() && !fs::is_regular_file(spec->module_ko))
      return ReportError(
          "sie synth",
          InvalidWithHint(absl::StrCat("module_ko ", spec->module_ko.string(), " not found"),
                          "build the module first (for sie_target: ninja -C build sie_target_ko);"
                          " 'module_ko:' is relative to the spec file"));
  } else {
    ctx.source_root = spec->source_dir;
    ctx.build_command = spec->build_command;
  }
  auto prep_ms = Ms(Clock::now() - t_prep);
  if (o.verbose && tree) Progress(absl::StrCat("kernel tree: ", tree->root().string()));

  // --- objects and edits ----------------------------------------------------------------------
  std::vector<const TunableSpec*> selected;
  std::vector<std::vector<std::string>> objects;
  std::map<std::string, std::vector<std::string>> warnings;
  std::optional<std::set<std::string>> built;
  for (const auto& t : spec->tunables) {
    if (!Selected(o, t, *ids)) continue;
    auto w = CheckEdit(ctx, *spec, t);
    if (!w.ok()) return ReportError("sie synth", w.status());
    warnings[t.name] = *w;
    std::vector<std::string> objs = t.objects;
    if (objs.empty()) {
      if (spec->kind == TargetKind::kKernel && !built) {
        auto b = CompileUnitSources(
            files.dbg_vmlinux,
            cache_root / absl::StrCat("kernel-", files.release) / "vmlinux-cu-sources.txt");
        if (!b.ok()) return ReportError("sie synth", b.status());
        built = std::move(*b);
      }
      auto found = FindAffectedObjects(BuildRoot(ctx), t, built ? &*built : nullptr);
      if (!found.ok()) return ReportError("sie synth", found.status());
      if (found->objects.empty())
        return ReportError(
            "sie synth",
            InvalidWithHint(
                absl::StrCat(spec->Where(t.line), ": no built object uses ", t.name,
                             found->skipped.empty()
                                 ? ""
                                 : absl::StrCat(" (not built here: ",
                                                absl::StrJoin(found->skipped, ", "), ")")),
                "list the objects with 'objects: [dir/file.o]'"));
      objs = found->objects;
      if (t.is_header()) {
        std::string msg = absl::StrCat("'objects:' not given for ", t.name, ": using ",
                                       absl::StrJoin(objs, ", "));
        if (!found->skipped.empty())
          absl::StrAppend(&msg,
                          "; not built into this target: ", absl::StrJoin(found->skipped, ", "));
        absl::StrAppend(&msg, " (pin them with 'objects:')");
        Progress(absl::StrCat("warning: ", msg));
        warnings[t.name].push_back(msg);
      }
    }
    selected.push_back(&t);
    objects.push_back(objs);
  }
  for (const auto& [n, ws] : warnings)
    for (const auto& w : ws)
      if (w.rfind("'objects:'", 0) != 0) Progress(absl::StrCat("warning: ", n, ": ", w));

  // --- variants -------------------------------------------------------------------------------
  auto work = MakeWorkDir(cache_root, o.keep_work);
  if (!work.ok()) return ReportError("sie synth", work.status());
  ctx.work_dir = *work;
  // Removes the work dir on every return path unless --keep-work.
  struct WorkCleanup {
    fs::path dir;
    bool keep;
    ~WorkCleanup() {
      std::error_code ec;
      if (!keep) fs::remove_all(dir, ec);
    }
  } cleanup{*work, o.keep_work};
  size_t n_builds = 0;
  for (const auto& v : objects) n_builds += 3 * v.size();
  Progress(absl::StrCat("building ", n_builds, " object variant(s) for ", selected.size(),
                        " tunable(s), ", ctx.jobs, " at a time"));
  auto t_compile = Clock::now();
  auto variants = BuildVariants(ctx, selected, objects);
  if (!variants.ok()) return ReportError("sie synth", variants.status());
  auto compile_ms = Ms(Clock::now() - t_compile);
  if (o.keep_work) Progress(absl::StrCat("variants kept in ", work->string()));

  // --- analysis -------------------------------------------------------------------------------
  auto t_analysis = Clock::now();
  std::vector<SynthesizedConst> consts;
  std::vector<std::pair<std::string, absl::Status>> failures;
  std::map<std::string, std::vector<std::string>> objects_of;
  for (size_t i = 0; i < selected.size(); ++i) objects_of[selected[i]->name] = objects[i];
  SourceRoots sources;
  sources.work_dir = *work;
  if (spec->kind == TargetKind::kModule) sources.module_dir = spec->module_dir;
  if (tree) sources.roots.push_back(tree->root());
  if (spec->kind != TargetKind::kKernel) sources.roots.push_back(spec->source_dir);
  sources.roots.push_back(files.headers_dir);
  for (const auto& tv : *variants) {
    const TunableSpec& t = *tv.tunable;
    SynthesizedConst c;
    c.id = ids->ids.at(t.name);
    c.name = t.name;
    c.description = t.description;
    c.values = t.values;
    c.range_min = t.range_min;
    c.range_max = t.range_max;
    c.warnings = warnings[t.name];
    absl::Status failed;
    Shipped sh = shipped;
    if (spec->kind == TargetKind::kModule) {
      // The module the guest loads is what runs: `module_ko:` when given, else a .ko built in
      // the module directory; without either, the V1 build stands in.
      fs::path user_ko = ctx.source_root / absl::StrCat(tv.module_name, ".ko");
      sh.path = !spec->module_ko.empty() ? spec->module_ko
                : fs::exists(user_ko)    ? user_ko
                                         : tv.module_ko;
      sh.target.binary = tv.module_name;
    }
    for (const auto& ov : tv.objects) {
      Shipped osh = sh;
      if (spec->kind == TargetKind::kGeneric) {
        // No separate shipped binary: the V1 (shipped-value) object is the target.
        osh.path = ov.variant[0];
        osh.target.binary = ov.object;
        sh.target = osh.target;
      }
      if (osh.target.build_id.empty() && !osh.path.empty())
        if (auto id = elf::ReadBuildId(osh.path); id.ok()) osh.target.build_id = *id;
      c.target = osh.target;
      if (auto s = AnalyzeObject(t, ov, osh, o.verbose, &c); !s.ok()) {
        failed = WithContext(s, absl::StrCat("analysing ", ov.object, " for ", t.name));
        break;
      }
    }
    if (!failed.ok()) {
      // One constant the analysis cannot handle does not hold back the others.
      failures.push_back({t.name, failed});
      continue;
    }
    ApplyFunctionScope(t, &c);
    // DWARF names the files of the variant build in the work dir: point into the user's tree.
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
    consts.push_back(std::move(c));
  }
  auto analysis_ms = Ms(Clock::now() - t_analysis);

  // --- output ---------------------------------------------------------------------------------
  auto t_output = Clock::now();
  for (const auto& c : consts) {
    if (auto s = artifact::WriteConst(out_dir, c); !s.ok()) return ReportError("sie synth", s);
    stubgen::ArtifactOptions ao;
    ao.compile = !o.no_compile;
    ao.progress = Progress;
    if (auto s = stubgen::EmitArtifacts(out_dir / absl::StrCat(c.id), ao); !s.ok())
      return ReportError("sie synth", s);
  }
  auto stub_ms = Ms(Clock::now() - t_output);
  if (auto s = artifact::WriteIndex(out_dir, *ids); !s.ok()) return ReportError("sie synth", s);

  for (const auto& c : consts)
    Progress(absl::StrCat(c.name, " -> ", (out_dir / absl::StrCat(c.id) / "const.json").string(),
                          " (id ", c.id, ", ", c.spans.size(), " span(s), ", c.safe_spans.size(),
                          " safe span(s), ", c.warnings.size(), " warning(s))"));
  auto total_ms = Ms(Clock::now() - t_start);
  if (o.verbose)
    Progress(absl::StrCat("time: tree preparation ", prep_ms, " ms, compilation ", compile_ms,
                          " ms, analysis ", analysis_ms, " ms, output (stubs) ", stub_ms,
                          " ms, total ", total_ms, " ms"));
  if (o.json) {
    nlohmann::json j;
    j["out"] = out_dir.string();
    j["spec"] = spec->path.string();
    j["target_kind"] = TargetKindName(spec->kind);
    j["timing_ms"] = {{"prepare", prep_ms},
                      {"compile", compile_ms},
                      {"analysis", analysis_ms},
                      {"output", stub_ms},
                      {"total", total_ms}};
    j["constants"] = nlohmann::json::array();
    j["failed"] = nlohmann::json::array();
    for (const auto& [name, st] : failures)
      j["failed"].push_back(
          {{"name", name}, {"id", ids->ids.at(name)}, {"error", std::string(st.message())}});
    for (const auto& c : consts) {
      // Every artifact written for the constant (const.json, stub source and header, object,
      // skeleton, C++ view), sorted so the output is deterministic.
      std::vector<std::string> files;
      std::error_code ec;
      for (const auto& f : std::filesystem::directory_iterator(out_dir / absl::StrCat(c.id), ec))
        if (f.is_regular_file()) files.push_back(f.path().string());
      std::sort(files.begin(), files.end());
      j["constants"].push_back(
          {{"id", c.id},
           {"name", c.name},
           {"const_json", (out_dir / absl::StrCat(c.id) / "const.json").string()},
           {"files", files},
           {"objects", objects_of[c.name]},
           {"spans", c.spans.size()},
           {"safe_spans", c.safe_spans.size()},
           {"warnings", c.warnings}});
    }
    std::fputs(artifact::JsonText(j).c_str(), stdout);
  }
  for (const auto& [name, st] : failures) ReportError("sie synth", st);
  if (!failures.empty())
    return ReportError("sie synth",
                       FailedWithHint(absl::StrCat(failures.size(), " of ", selected.size(),
                                                   " tunable(s) could not be synthesized"),
                                      "see the errors above; the others were written"));
  return 0;
}

}  // namespace

int SynthCommand(const std::vector<std::string>& args) {
  Options o;
  ArgParser p(
      "sie synth SPEC.yaml [--out DIR] [--kernel-src DIR] [--only NAME|ID] [--no-compile] "
      "[--json] [-v]",
      "Makes the constants listed in SPEC.yaml tunable at runtime: builds each affected "
      "object with three values (V1 = shipped, V2, V3) without touching any source tree, "
      "finds the Critical Spans where the value reaches the code, maps them onto the "
      "shipped binary and writes DIR/index.json and, per constant, DIR/<id>/: const.json, the "
      "BPF stub (stub.bpf.c, <name>.h), its compiled object (stub-<hash>.bpf.o, what "
      "`sie set` loads), the libbpf skeleton <name>.skel.h and a typed C++ view <name>.hpp.");
  p.String("-o,--out", "DIR", &o.out, "output directory (default: sie-out)");
  p.String("--kernel-src", "DIR", &o.kernel_src,
           "a prepared kernel tree to use read-only (default: $SIE_KERNEL_SRC, else sie's cached "
           "copy of the guest kernel under $SIE_CACHE or ~/.cache/sie)");
  p.StringList("--only", "NAME|ID", &o.only, "synthesize only this tunable (repeatable)");
  p.Int("-j,--jobs", "N", &o.jobs, "variants compiled at once (default: 2)");
  p.Flag("--no-compile", &o.no_compile,
         "write the stub sources only (no clang/bpftool): no object, skeleton or C++ view; the "
         "runtime then compiles the stub on first use");
  p.Flag("--json", &o.json, "print a machine-readable summary to stdout");
  p.Flag("--keep-work", &o.keep_work, "keep the variant objects (their path is printed)");
  p.Flag("-v,--verbose", &o.verbose, "print compile commands and the time of each phase");
  p.Positionals("SPEC.yaml", &o.positionals, 1, 1);
  if (auto s = p.Parse(args); !s.ok()) return ReportError("sie synth", s);
  if (p.help_requested()) return 0;
  return Run(o);
}

}  // namespace sie::synth
