// Stage 1: which tunables run (ids, --only) and the target they are built for.
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/diag.h"
#include "common/elf/elf_file.h"
#include "synth/pipeline/stages.h"

namespace sie::synth::pipeline {
namespace fs = std::filesystem;
namespace {

// --only takes a name (any case) or the ConstID `sie consts` shows.
bool Names(const std::string& arg, const std::string& name, int id) {
  return absl::EqualsIgnoreCase(arg, name) || arg == absl::StrCat(id);
}

bool Selected(const SynthOptions& o, const TunableSpec& t, const artifact::IdIndex& ids) {
  if (o.only.empty()) return true;
  for (const auto& s : o.only)
    if (Names(s, t.name, ids.ids.at(t.name))) return true;
  return false;
}

// The configuration the target was built with, from the tree's autoconf.h (`make prepare`
// writes it; the headers package ships it). Without it a macro defined under several #if
// branches stays ambiguous.
void LoadConfig(State* st, const fs::path& tree) {
  auto c = ReadAutoconf((tree / "include/generated/autoconf.h").string());
  if (c.ok()) st->ctx.config = std::move(*c);
}

absl::Status PrepareKernel(State* st) {
  std::string src = st->opts.kernel_src;
  if (src.empty())
    if (const char* e = std::getenv("SIE_KERNEL_SRC"); e && *e) src = e;
  if (src.empty() && st->spec.has_source_dir) src = st->spec.source_dir.string();
  auto kt = src.empty() ? KernelTree::PrepareGuest(st->files, st->cache_root, st->progress)
                        : KernelTree::UseExisting(src, st->files);
  if (!kt.ok()) return kt.status();
  st->tree.emplace(std::move(*kt));
  st->ctx.tree = &*st->tree;
  st->shipped.path = st->files.dbg_vmlinux;
  st->shipped.target.binary = "vmlinux";
  st->shipped.target.kernel_release = st->files.release;
  if (auto id = elf::ReadBuildId(st->files.dbg_vmlinux); id.ok()) st->shipped.target.build_id = *id;
  if (st->opts.verbose) st->progress(absl::StrCat("kernel tree: ", st->tree->root().string()));
  LoadConfig(st, st->tree->root());
  return absl::OkStatus();
}

absl::Status PrepareModule(State* st) {
  const Spec& spec = st->spec;
  st->ctx.source_root = (spec.source_dir / spec.module_dir).lexically_normal();
  st->ctx.headers_dir = st->files.headers_dir;
  st->shipped.target.kernel_release = st->files.release;
  LoadConfig(st, st->files.headers_dir);
  if (!fs::is_directory(st->ctx.source_root))
    return InvalidWithHint(
        absl::StrCat("module directory ", st->ctx.source_root.string(), " not found"),
        "'module:' is relative to source_dir (or the spec)");
  if (!spec.module_ko.empty() && !fs::is_regular_file(spec.module_ko))
    return InvalidWithHint(absl::StrCat("module_ko ", spec.module_ko.string(), " not found"),
                           "build the module first (for sie_target: ninja -C build "
                           "sie_target_ko); 'module_ko:' is relative to the spec file");
  return absl::OkStatus();
}

}  // namespace

absl::Status SelectTunables(State* st) {
  // Ids first: they depend only on the spec's names and what --out holds. A directory of the
  // older id scheme is renumbered by WriteAll (nothing is changed before the output stage).
  std::vector<std::string> names;
  for (const auto& t : st->spec.tunables) names.push_back(t.name);
  auto plan = artifact::PlanConstIds(st->out_dir, names);
  if (!plan.ok()) return plan.status();
  st->ids = plan->index;
  st->migration = std::move(*plan);
  for (const auto& s : st->opts.only) {
    bool found = false;
    for (const auto& [n, id] : st->ids.ids) found |= Names(s, n, id);
    if (!found)
      return InvalidWithHint(
          absl::StrCat("--only ", s, ": no such tunable in ", st->spec.path.string()),
          absl::StrCat("tunables: ", absl::StrJoin(names, ", ")));
  }
  for (const auto& t : st->spec.tunables) {
    if (!Selected(st->opts, t, st->ids)) continue;
    Entry e;
    e.t = &t;
    e.id = st->ids.ids.at(t.name);
    st->entries.push_back(std::move(e));
  }
  return absl::OkStatus();
}

absl::Status PrepareTarget(State* st) {
  BuildContext& ctx = st->ctx;
  ctx.kind = st->spec.kind;
  ctx.jobs = std::max(1, st->opts.jobs);
  ctx.verbose = st->opts.verbose;
  ctx.progress = st->progress;
  ctx.cc = st->files.cc;
  ctx.exclude = {st->out_dir};
  switch (st->spec.kind) {
    case TargetKind::kKernel:
    case TargetKind::kModule:
      // Both rebuild code that must match what the guest runs: same compiler or nothing.
      if (auto s = CheckCompilerMatches(st->files); !s.ok()) return s;
      return st->spec.kind == TargetKind::kKernel ? PrepareKernel(st) : PrepareModule(st);
    case TargetKind::kGeneric:
      ctx.source_root = st->spec.source_dir;
      ctx.build_command = st->spec.build_command;
      return absl::OkStatus();
  }
  return absl::InternalError("bad target kind");
}

}  // namespace sie::synth::pipeline
