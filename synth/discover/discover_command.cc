// `sie discover PATH`: the ranked table (or --json), and the spec with --spec-out.
#include "synth/discover/discover_command.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/args.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "synth/discover/discover.h"
#include "synth/variants/kernel_tree.h"

namespace sie::synth::discover {
namespace {

struct CliOptions {
  DiscoverOptions d;
  std::vector<std::string> positionals;
  std::string spec_out;
  long top = 25;
  bool json = false, all = false, no_cpp = false, prepare = false;
};

void Progress(const std::string& line) { std::fprintf(stderr, "sie discover: %s\n", line.c_str()); }

std::string Kinds(const Candidate& c) {
  std::vector<std::string> out;
  for (const auto& [k, n] : c.kinds) out.push_back(absl::StrCat(UseKindName(k), ":", n));
  return absl::StrJoin(out, ",");
}

std::string Objects(const Candidate& c) {
  std::vector<std::string> out;
  for (const auto& o : c.objects)
    out.push_back(absl::StrCat(o.object, "(",
                               !o.built   ? "not built"
                               : o.module ? o.binary
                                          : "vmlinux",
                               ")"));
  return absl::StrJoin(out, " ");
}

void PrintTable(const DiscoverReport& r, const CliOptions& o) {
  std::vector<std::vector<std::string>> rows = {
      {"rank", "name", "kind", "value", "sites", "funcs", "objects", "uses", "verdict"}};
  int rank = 0;
  for (const Candidate& c : r.candidates) {
    if (!c.ok() && !o.all) continue;
    if (c.ok() && o.top > 0 && rank >= o.top) continue;
    rows.push_back({c.ok() ? absl::StrCat(++rank) : "-", c.def.name,
                    c.def.kind == DefKind::kMacro ? "macro" : "static const",
                    c.def.value ? absl::StrCat(*c.def.value) : "?", absl::StrCat(c.sites),
                    absl::StrCat(c.functions), Objects(c), Kinds(c),
                    c.ok() ? "candidate" : c.verdict});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i)
      absl::StrAppend(&line, row[i],
                      std::string(i + 1 < row.size() ? width[i] - row[i].size() + 2 : 0, ' '));
    std::printf("%s\n", line.c_str());
  }
}

nlohmann::json Json(const DiscoverReport& r) {
  nlohmann::json j = {{"path", r.path},
                      {"tree", r.root.string()},
                      {"files", r.files.size()},
                      {"preprocessed", r.preprocessed}};
  j["candidates"] = nlohmann::json::array();
  int rank = 0;
  for (const Candidate& c : r.candidates) {
    nlohmann::json row = {
        {"name", c.def.name}, {"kind", c.def.kind == DefKind::kMacro ? "macro" : "static_const"},
        {"file", c.def.file}, {"line", c.def.line},
        {"body", c.def.body}, {"from_cpp", c.def.from_cpp},
        {"sites", c.sites},   {"functions", c.functions},
        {"score", c.score},   {"verdict", c.ok() ? "candidate" : c.verdict}};
    if (c.ok()) row["rank"] = ++rank;
    if (c.def.value) row["value"] = *c.def.value;
    for (const auto& [k, n] : c.kinds) row["uses"][UseKindName(k)] = n;
    row["objects"] = nlohmann::json::array();
    for (const auto& o : c.objects)
      row["objects"].push_back(
          {{"object", o.object}, {"built", o.built}, {"module", o.module}, {"binary", o.binary}});
    if (c.values.size() == 3) {
      row["values"] = c.values;
      row["range"] = {c.range_min, c.range_max};
    }
    j["candidates"].push_back(row);
  }
  return j;
}

absl::Status Prepare() {
  auto files = GuestKernelFiles::ForRelease();
  auto t = KernelTree::PrepareGuest(files, DefaultCacheRoot(), Progress);
  return t.ok() ? absl::OkStatus() : t.status();
}

}  // namespace

int DiscoverCommand(const std::vector<std::string>& args) {
  CliOptions o;
  ArgParser p(
      "sie discover PATH [--spec-out FILE] [--json] [--top N] [--all] [--kernel-src DIR] "
      "[--no-cpp] [--prepare]",
      "Lists candidate performance constants of a kernel source file or directory (PATH, "
      "relative to the kernel tree: net/ipv4/tcp_bbr.c, mm/): object-like integer macros (the "
      "definition the kernel's configuration compiles, from gcc -E -dD with the object's kbuild "
      "command) and static const integers, used in executed code (comparisons, loop bounds, "
      "arithmetic, call arguments), not as array or struct sizes, bit-field widths, case labels, "
      "flags or masks, nor defined in uapi headers. Ranked by the code they reach: executed use "
      "sites, functions and objects (each resolved to vmlinux or its module). --spec-out "
      "writes a spec `sie synth` reads, with V2/V3 (half and double; +-1 for shifts) and a range.");
  p.String("--spec-out", "FILE", &o.spec_out, "write a spec of the top candidates to FILE");
  p.Int("--top", "N", &o.top, "candidates shown and written (default 25; 0: all)");
  p.Flag("--all", &o.all, "also list the ruled-out names with the reason");
  p.Flag("--json", &o.json, "print every name, ranked or ruled out, as JSON on stdout");
  p.String("--kernel-src", "DIR", &o.d.kernel_src,
           "a prepared kernel tree (default: sie's cached guest tree under $SIE_CACHE or "
           "~/.cache/sie)");
  p.Flag("--no-cpp", &o.no_cpp,
         "skip gcc -E -dD: macro definitions from the text and .config only");
  p.Flag("--prepare", &o.prepare, "prepare sie's cached guest kernel tree first if needed");
  p.Positionals("PATH", &o.positionals, 1, 1);
  if (auto s = p.Parse(args); !s.ok()) return ReportError("sie discover", s);
  if (p.help_requested()) return 0;
  if (o.prepare && o.d.kernel_src.empty())
    if (auto s = Prepare(); !s.ok()) return ReportError("sie discover", s);
  o.d.path = o.positionals[0];
  o.d.use_cpp = !o.no_cpp;
  o.d.progress = Progress;
  auto r = Discover(o.d);
  if (!r.ok()) return ReportError("sie discover", r.status());
  if (o.json)
    std::printf("%s\n", Json(*r).dump(2).c_str());
  else
    PrintTable(*r, o);
  if (!o.spec_out.empty()) {
    if (auto s = WriteFileAtomic(o.spec_out, SpecYaml(*r, o.top > 0 ? o.top : 0)); !s.ok())
      return ReportError("sie discover", s);
    Progress(absl::StrCat("wrote ", o.spec_out, " (check it with: sie synth ", o.spec_out, ")"));
  }
  return 0;
}

}  // namespace sie::synth::discover
