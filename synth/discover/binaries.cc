#include "synth/discover/binaries.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/files.h"
#include "synth/variants/find_objects.h"
#include "synth/variants/module_of.h"

namespace sie::synth::discover {
namespace fs = std::filesystem;

absl::StatusOr<std::optional<std::string>> BinaryResolver::FromSavedCommand(
    const std::string& object) {
  fs::path obj(object);
  fs::path cmd = root_ / obj.parent_path() / absl::StrCat(".", obj.filename().string(), ".cmd");
  auto text = ReadFile(cmd);
  if (!text.ok()) return std::optional<std::string>();
  auto saved = ParseSavedCommand(*text, cmd.string());
  if (!saved.ok()) return std::optional<std::string>();
  auto m = ModuleOfCommand(*saved);
  if (!m.ok()) return m.status();
  if (!*m) return std::optional<std::string>("vmlinux");
  if (!modules_order_) modules_order_ = ReadFile(files_.modules_dir / "modules.order").value_or("");
  auto ko = ModulePathInOrder(*modules_order_, object, **m);
  if (!ko.ok()) return ko.status();
  return std::optional<std::string>(*ko);
}

const std::set<std::string>& BinaryResolver::CompileUnits(const std::string& ko) {
  auto it = ko_units_.find(ko);
  if (it != ko_units_.end()) return it->second;
  std::string key = absl::StrReplaceAll(ko, {{"/", "_"}});
  // "discover-cu2": the lists of an older sie, read without the .ko's relocations, were wrong.
  auto units = CompileUnitSources(files_.dbg_modules_dir / ko,
                                  cache_dir_ / "discover-cu2" / absl::StrCat(key, ".cu"));
  return ko_units_[ko] = units.value_or(std::set<std::string>{});
}

// A module of modules.order in the source's directory or above whose debug .ko has the source
// as a compile unit.
std::optional<std::string> BinaryResolver::FromModules(const std::string& source) {
  if (!modules_order_) modules_order_ = ReadFile(files_.modules_dir / "modules.order").value_or("");
  const fs::path dir = fs::path(source).parent_path();
  for (absl::string_view line : absl::StrSplit(*modules_order_, '\n', absl::SkipWhitespace())) {
    line = absl::StripAsciiWhitespace(line);
    fs::path stem(std::string(absl::StripPrefix(line, "kernel/")));
    fs::path mdir = stem.parent_path();
    auto [a, b] = std::mismatch(mdir.begin(), mdir.end(), dir.begin(), dir.end());
    if (a != mdir.end()) continue;
    if (CompileUnits(std::string(line)).count(source)) return std::string(line);
  }
  return std::nullopt;
}

absl::StatusOr<ObjectBinary> BinaryResolver::Resolve(const std::string& object) {
  ObjectBinary b;
  b.object = object;
  std::string source = fs::path(object).replace_extension(".c").string();
  auto saved = FromSavedCommand(object);
  if (!saved.ok()) return saved.status();
  std::optional<std::string> bin = *saved;
  if (!bin) {
    if (!vmlinux_) {
      auto cu = CompileUnitSources(files_.dbg_vmlinux, cache_dir_ / "vmlinux-cu-sources.txt");
      if (!cu.ok()) return cu.status();
      vmlinux_ = std::move(*cu);
    }
    if (vmlinux_->count(source)) bin = "vmlinux";
  }
  if (!bin) bin = FromModules(source);
  if (!bin) return b;
  b.built = true;
  b.module = *bin != "vmlinux";
  b.binary = *bin;
  return b;
}

}  // namespace sie::synth::discover
