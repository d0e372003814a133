// Where synthesized constants live per kernel release, and the refusal of a stale directory.
#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/artifact/consts_dir.h"
#include "common/base/diag.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/loader.h"

namespace sie::loader {
namespace fs = std::filesystem;

fs::path ConstsRoot() {
  if (const char* d = getenv("SIE_CONSTS_ROOT"); d && *d) return d;
  return "/var/lib/sie/consts";
}

fs::path DefaultConstsDir() {
  if (const char* d = getenv("SIE_CONSTS"); d && *d) return d;
  std::error_code ec;
  if (fs::path p = ConstsRoot() / KernelRelease(); fs::is_directory(p, ec)) return p;
  return "/etc/sie/consts";
}

namespace {

std::string RegenerateHint(const std::string& release) {
  return absl::StrCat("synthesize them for this kernel: sie synth SPEC --out ",
                      (ConstsRoot() / release).string(),
                      " (the spec that made the old ones works unchanged)");
}

}  // namespace

absl::Status CheckConstsFor(const fs::path& dir, const std::string& release) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    std::vector<std::string> others;
    for (const auto& e : fs::directory_iterator(ConstsRoot(), ec))
      if (e.is_directory()) others.push_back(e.path().filename().string());
    std::sort(others.begin(), others.end());
    if (!others.empty())
      return FailedWithHint(
          absl::StrCat("no constants for the running kernel ", release, " in ", dir.string(), "; ",
                       ConstsRoot().string(), " has only ", absl::StrJoin(others, ", "),
                       " (left from before a kernel update)"),
          RegenerateHint(release));
    return ErrorWithHint(absl::StatusCode::kNotFound,
                         absl::StrCat("constants directory ", dir.string(), " does not exist"),
                         absl::StrCat("write one: sie synth SPEC --out ", dir.string()));
  }
  auto all = artifact::ListConsts(dir);
  if (!all.ok()) return all.status();
  for (const auto& e : *all)
    if (e.c.target.kernel_release != release)
      return FailedWithHint(
          absl::StrCat(e.path.string(), " (", e.c.name, ") was synthesized for kernel ",
                       e.c.target.kernel_release, ", but this kernel is ", release),
          RegenerateHint(release));
  return absl::OkStatus();
}

}  // namespace sie::loader
