// The driver of `sie discover`: tree, target files, definitions (text, then the compiler's
// preprocessor), uses in every file that can see them, objects, verdicts and ranking.
#include "synth/discover/discover.h"

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "synth/discover/preprocess.h"
#include "synth/discover/scope.h"

namespace sie::synth::discover {
namespace fs = std::filesystem;
namespace {

bool IsHeader(const std::string& f) { return absl::EndsWith(f, ".h"); }

absl::StatusOr<fs::path> TreeRoot(const DiscoverOptions& o, const GuestKernelFiles& files) {
  if (!o.kernel_src.empty()) {
    if (!fs::is_directory(fs::path(o.kernel_src) / "include/generated"))
      return FailedWithHint(absl::StrCat(o.kernel_src, " is not a prepared kernel tree"),
                            "give a tree where 'make prepare' ran (include/generated exists)");
    return fs::path(o.kernel_src);
  }
  fs::path dir = DefaultCacheRoot() / absl::StrCat("kernel-", files.release);
  if (!fs::exists(dir / "prepared.stamp") || !fs::exists(dir / "linux/Makefile"))
    return FailedWithHint(
        absl::StrCat("no prepared kernel tree for ", files.release, " at ",
                     (dir / "linux").string()),
        "prepare it once with 'sie discover --prepare PATH' (extracts linux-source and runs "
        "make prepare, a few minutes), or pass --kernel-src DIR");
  return dir / "linux";
}

struct Work {
  const DiscoverOptions& o;
  fs::path root;
  KernelConfig config;
  MacroTable macros;
  std::vector<Definition> defs;
  std::set<std::string> targets;
  DiscoverReport report;
};

void ReadDefinitions(Work* w) {
  for (const std::string& f : w->report.files) {
    auto text = ReadFile(w->root / f);
    if (!text.ok()) continue;
    for (Definition& d : DefinitionsInText(Tokenize(*text), *text, f, w->config)) {
      if (d.kind == DefKind::kMacro) w->macros.emplace(d.name, d.body);
      w->defs.push_back(std::move(d));
    }
  }
}

// The compiler's view: the active definition (and line) of every macro a TU sees.
bool MergeCpp(Work* w, const std::string& source) {
  auto defs = PreprocessDefines(w->root, source);
  if (!defs.ok()) {
    w->o.progress(absl::StrCat("warning: ", defs.status().message(), " (text definitions kept)"));
    return false;
  }
  ++w->report.preprocessed;
  std::map<std::string, const CppDefine*> in_targets;
  for (const CppDefine& d : *defs) {
    if (!d.function_like) w->macros[d.name] = d.body;
    if (w->targets.count(d.file) && !d.function_like) in_targets[d.name] = &d;
  }
  for (Definition& d : w->defs) {
    auto it = in_targets.find(d.name);
    if (d.kind != DefKind::kMacro || it == in_targets.end() || it->second->file != d.file) continue;
    d.body = it->second->body;
    d.line = it->second->line;
    d.from_cpp = true;
  }
  return true;
}

// kbuild built it (its own saved command), then near the header, then any other.
int Preference(const fs::path& root, const std::string& user, const std::string& header) {
  fs::path obj = fs::path(user).replace_extension(".o");
  if (fs::exists(root / obj.parent_path() / absl::StrCat(".", obj.filename().string(), ".cmd")))
    return 0;
  return absl::StartsWith(user, fs::path(header).parent_path().string()) ? 1 : 2;
}

// The translation units that show the target's macros to the compiler: each target .c file,
// and for each target header up to three .c files that include it (tried in turn).
std::vector<std::vector<std::string>> CppSources(Work* w, const std::vector<std::string>& users,
                                                 IncludeGraph* g) {
  std::vector<std::vector<std::string>> out;
  for (const std::string& f : w->report.files)
    if (!IsHeader(f)) out.push_back({f});
  for (const std::string& h : w->report.files) {
    if (!IsHeader(h)) continue;
    std::vector<std::pair<int, std::string>> ranked;
    for (const std::string& u : users)
      if (!IsHeader(u) && g->Reaches(u, h)) ranked.push_back({Preference(w->root, u, h), u});
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> tries;
    for (size_t i = 0; i < ranked.size() && i < 3; ++i) tries.push_back(ranked[i].second);
    if (!tries.empty()) out.push_back(tries);
  }
  return out;
}

std::set<std::string> LocalMacros(const std::vector<Token>& toks) {
  std::set<std::string> out;
  for (size_t i = 0; i + 1 < toks.size(); ++i)
    if (toks[i].directive_start && toks[i].directive == "define") out.insert(toks[i + 1].text);
  return out;
}

// The uses in `file` of every candidate that file can see, those through a macro defined in the
// same file included (`#define X(a) ((a) * N)` then `X(y) < z`).
void UsesInFile(Work* w, const std::string& file, const std::multimap<std::string, size_t>& by_name,
                IncludeGraph* g, std::vector<Candidate>* cands) {
  auto text = ReadFile(w->root / file);
  if (!text.ok()) return;
  std::vector<Token> toks = Tokenize(*text);
  std::set<std::string> names = LocalMacros(toks);
  for (const auto& [n, i] : by_name) names.insert(n);
  std::multimap<std::string, Use> uses;
  for (Use& u : ClassifyUses(toks, names)) {
    u.file = file;
    uses.emplace(u.name, std::move(u));
  }
  for (const auto& [name, use] : uses) {
    auto [lo, hi] = by_name.equal_range(name);
    for (auto it = lo; it != hi; ++it) {
      Candidate& c = (*cands)[it->second];
      if (file != c.def.file && !(IsHeader(c.def.file) && g->Reaches(file, c.def.file))) continue;
      if (file == c.def.file && use.line == c.def.line) continue;  // the definition itself
      c.uses.push_back(use);
      if (use.kind != UseKind::kMacroBody || use.via.empty() || use.via == name) continue;
      auto [vlo, vhi] = uses.equal_range(use.via);
      for (auto v = vlo; v != vhi; ++v) {
        if (v->second.kind == UseKind::kMacroBody) continue;
        Use through = v->second;
        through.name = name;
        through.via = use.via;
        c.uses.push_back(std::move(through));
      }
    }
  }
}

void CollectUses(Work* w, const std::vector<std::string>& users, IncludeGraph* g,
                 std::vector<Candidate>* cands) {
  std::multimap<std::string, size_t> by_name;
  for (size_t i = 0; i < cands->size(); ++i) by_name.emplace((*cands)[i].def.name, i);
  std::set<std::string> files(w->targets.begin(), w->targets.end());
  files.insert(users.begin(), users.end());
  size_t done = 0;
  for (const std::string& f : files) {
    if (++done % 200 == 0)
      w->o.progress(absl::StrCat("reading uses: ", done, "/", files.size(), " files"));
    UsesInFile(w, f, by_name, g, cands);
  }
}

// The objects of the .c files where a candidate is executed, resolved to vmlinux or a module.
absl::Status ResolveObjects(Work* w, BinaryResolver* res, std::vector<Candidate>* cands) {
  std::map<std::string, ObjectBinary> cache;
  for (Candidate& c : *cands) {
    std::set<std::string> objects;
    for (const Use& u : c.uses)
      if (IsExecuted(u.kind) && absl::EndsWith(u.file, ".c"))
        objects.insert(fs::path(u.file).replace_extension(".o").string());
    for (const std::string& o : objects) {
      if (!cache.count(o)) {
        auto b = res->Resolve(o);
        if (!b.ok()) return b.status();
        cache[o] = *b;
      }
      c.objects.push_back(cache[o]);
    }
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace sie::synth::discover

namespace sie::synth::discover {
namespace {

void AddKnownMacros(MacroTable* m) {
  m->emplace("HZ", "CONFIG_HZ");
  m->emplace("PAGE_SHIFT", "12");
  m->emplace("PAGE_SIZE", "(1UL << 12)");
  m->emplace("MSEC_PER_SEC", "1000L");
  m->emplace("USEC_PER_MSEC", "1000L");
  m->emplace("USEC_PER_SEC", "1000000L");
  m->emplace("NSEC_PER_USEC", "1000L");
  m->emplace("NSEC_PER_MSEC", "1000000L");
  m->emplace("NSEC_PER_SEC", "1000000000L");
}

// Candidates, each judged, valued and ranked; ruled-out ones after the ranked ones.
std::vector<Candidate> Finish(Work* w, std::vector<Candidate> cands) {
  for (Candidate& c : cands) {
    Judge(&c.def, w->macros, w->config);
    Rank(&c);
    ChooseValues(&c);
  }
  std::stable_sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) {
    if (a.ok() != b.ok()) return a.ok();
    return a.score > b.score;
  });
  return cands;
}

}  // namespace

absl::StatusOr<DiscoverReport> Discover(const DiscoverOptions& o) {
  GuestKernelFiles files = GuestKernelFiles::ForRelease();
  auto root = TreeRoot(o, files);
  if (!root.ok()) return root.status();
  Work w{o, *root, {}, {}, {}, {}, {}};
  w.report.root = *root;
  w.report.path = o.path;
  auto targets = TargetFiles(w.root, o.path);
  if (!targets.ok()) return targets.status();
  if (targets->empty())
    return InvalidWithHint(absl::StrCat(o.path, " holds no .c or .h file"),
                           "give a kernel source file or a directory of them");
  w.report.files = *targets;
  w.targets.insert(targets->begin(), targets->end());
  if (auto c = ReadAutoconf((w.root / "include/generated/autoconf.h").string()); c.ok())
    w.config = std::move(*c);
  AddKnownMacros(&w.macros);
  o.progress(absl::StrCat("reading ", targets->size(), " file(s) under ", o.path));
  ReadDefinitions(&w);
  std::set<std::string> header_names;
  for (const Definition& d : w.defs)
    if (IsHeader(d.file)) header_names.insert(d.name);
  if (!header_names.empty())
    o.progress(
        absl::StrCat("searching the tree for users of ", header_names.size(), " header name(s)"));
  auto users = FilesMentioning(w.root, header_names);
  if (!users.ok()) return users.status();
  IncludeGraph graph(w.root);
  if (o.use_cpp) {
    auto sources = CppSources(&w, *users, &graph);
    for (size_t i = 0; i < sources.size(); ++i) {
      if (sources.size() > 3)
        o.progress(absl::StrCat("gcc -E -dD ", i + 1, "/", sources.size(), ": ", sources[i][0]));
      for (const std::string& tu : sources[i])
        if (MergeCpp(&w, tu)) break;
    }
  }
  std::vector<Candidate> cands;
  for (Definition& d : w.defs) cands.push_back(Candidate{std::move(d)});
  CollectUses(&w, *users, &graph, &cands);
  fs::path cache = DefaultCacheRoot() / absl::StrCat("kernel-", files.release);
  std::error_code ec;
  fs::create_directories(cache / "discover-cu", ec);
  BinaryResolver res(w.root, files, cache);
  if (auto s = ResolveObjects(&w, &res, &cands); !s.ok()) return s;
  w.report.candidates = Finish(&w, std::move(cands));
  return std::move(w.report);
}

}  // namespace sie::synth::discover
