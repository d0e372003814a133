#include "synth/variants/module_of.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/diag.h"

namespace sie::synth {
namespace fs = std::filesystem;
namespace {

// The value of `-D<name>=...` in `command`, quotes removed (kbuild writes '"bfq"').
std::optional<std::string> Define(absl::string_view command, absl::string_view name) {
  const std::string key = absl::StrCat("-D", name, "=");
  for (absl::string_view tok : absl::StrSplit(command, absl::ByAnyChar(" \t\n"), absl::SkipEmpty()))
    if (absl::ConsumePrefix(&tok, key)) {
      std::string v(tok);
      std::erase_if(v, [](char c) { return c == '\'' || c == '"'; });
      return v;
    }
  return std::nullopt;
}

bool HasFlag(absl::string_view command, absl::string_view flag) {
  for (absl::string_view tok : absl::StrSplit(command, absl::ByAnyChar(" \t\n"), absl::SkipEmpty()))
    if (tok == flag) return true;
  return false;
}

// A modules.order entry without "kernel/" and the extension: "block/bfq".
std::string EntryStem(absl::string_view entry) {
  absl::ConsumePrefix(&entry, "kernel/");
  if (!absl::ConsumeSuffix(&entry, ".ko")) absl::ConsumeSuffix(&entry, ".o");
  return std::string(entry);
}

std::string NameFix(std::string s) {
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
}

// `dir` is `object_dir` or one of its parents.
bool Holds(const fs::path& dir, const fs::path& object_dir) {
  auto [d, o] = std::mismatch(dir.begin(), dir.end(), object_dir.begin(), object_dir.end());
  return d == dir.end();
}

}  // namespace

absl::StatusOr<std::optional<ObjectModule>> ModuleOfCommand(absl::string_view command) {
  if (!HasFlag(command, "-DMODULE")) return std::optional<ObjectModule>();
  ObjectModule m;
  auto name = Define(command, "KBUILD_MODNAME");
  if (!name || name->empty())
    return InvalidWithHint("a module's compile command has no -DKBUILD_MODNAME",
                           "the kbuild command is not one kbuild wrote; rebuild the object with "
                           "make in the kernel tree");
  m.name = NameFix(*name);
  if (auto file = Define(command, "KBUILD_MODFILE")) m.file = *file;
  return std::optional<ObjectModule>(std::move(m));
}

absl::StatusOr<std::string> ModulePathInOrder(absl::string_view modules_order,
                                              const std::string& object, const ObjectModule& m) {
  const fs::path object_dir = fs::path(object).parent_path();
  std::vector<std::string> found;
  for (absl::string_view line : absl::StrSplit(modules_order, '\n', absl::SkipWhitespace())) {
    line = absl::StripAsciiWhitespace(line);
    const std::string stem = EntryStem(line);
    const fs::path p(stem);
    const bool match = !m.file.empty() ? stem == m.file
                                       : NameFix(p.filename().string()) == m.name &&
                                             Holds(p.parent_path(), object_dir);
    if (match) found.push_back(absl::StrCat("kernel/", stem, ".ko"));
  }
  if (found.size() == 1) return found[0];
  if (found.empty())
    return FailedWithHint(
        absl::StrCat(object, " is built into module ", m.name,
                     ", which modules.order does not list"),
        "the kernel's modules (/lib/modules/<release>) must be the ones of the synthesized "
        "release: install its linux-image package");
  return FailedWithHint(
      absl::StrCat(object, " is built into module ", m.name,
                   ", which modules.order lists several times: ", absl::StrJoin(found, ", ")),
      "list the objects of one module only with 'objects:'");
}

}  // namespace sie::synth
