// Stage 3b (kernel targets): the binary every built object's code runs in. kbuild compiles an
// object for a module with -DMODULE and -DKBUILD_MODNAME (its saved command says so); such an
// object's spans belong in that module, whose unstripped .ko the -dbg package ships below
// /usr/lib/debug/lib/modules/<release> (the guest loads the compressed copy of
// /lib/modules/<release>, with the same code). Everything else is in vmlinux.
#include <map>

#include "absl/strings/str_cat.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "synth/pipeline/stages.h"
#include "synth/variants/module_of.h"

namespace sie::synth::pipeline {
namespace fs = std::filesystem;
namespace {

// modules.order of the release (kbuild's list of every module, as installed), read once.
absl::StatusOr<const std::string*> ModulesOrder(const State& st,
                                                std::optional<std::string>* cache) {
  if (*cache) return &**cache;
  const fs::path p = st.files.modules_dir / "modules.order";
  auto text = ReadFile(p);
  if (!text.ok())
    return FailedWithHint(absl::StrCat("cannot read ", p.string(), ": ", text.status().message()),
                          absl::StrCat("install linux-image-", st.files.release,
                                       " (its modules.order names each module's file)"));
  cache->emplace(std::move(*text));
  return &**cache;
}

absl::StatusOr<Shipped> BinaryOf(State* st, const std::string& object,
                                 std::optional<std::string>* order) {
  auto cmd = st->tree->SavedCommand(object, st->progress);
  if (!cmd.ok()) return cmd.status();
  auto mod = ModuleOfCommand(*cmd);
  if (!mod.ok()) return mod.status();
  if (!*mod) return st->shipped;
  auto text = ModulesOrder(*st, order);
  if (!text.ok()) return text.status();
  auto rel = ModulePathInOrder(**text, object, **mod);
  if (!rel.ok()) return rel.status();
  Shipped sh;
  sh.path = st->files.dbg_modules_dir / *rel;
  if (!fs::is_regular_file(sh.path))
    return FailedWithHint(absl::StrCat(object, " is built into module ", (*mod)->name, ", but ",
                                       sh.path.string(), " (its unstripped code) does not exist"),
                          absl::StrCat("install linux-image-", st->files.release, "-dbg"));
  sh.target.binary = (*mod)->name;
  sh.target.kernel_release = st->files.release;
  if (auto id = elf::ReadBuildId(sh.path); id.ok()) sh.target.build_id = *id;
  return sh;
}

}  // namespace

void FindBinaries(State* st) {
  if (st->spec.kind != TargetKind::kKernel) return;
  std::map<std::string, Shipped> known;
  std::optional<std::string> order;
  for (Entry& e : st->entries) {
    if (!e.status.ok()) continue;
    e.shipped.clear();
    for (const auto& ov : e.variants.objects) {
      auto it = known.find(ov.object);
      if (it == known.end()) {
        auto sh = BinaryOf(st, ov.object, &order);
        if (!sh.ok()) {
          e.Fail(WithContext(sh.status(), absl::StrCat("finding the binary of ", ov.object)),
                 Refusal::kModuleNotFound);
          break;
        }
        it = known.emplace(ov.object, std::move(*sh)).first;
      }
      e.shipped.push_back(it->second);
    }
  }
}

}  // namespace sie::synth::pipeline
