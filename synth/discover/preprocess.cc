#include "synth/discover/preprocess.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/process.h"
#include "synth/variants/kernel_tree.h"

namespace sie::synth::discover {
namespace fs = std::filesystem;
namespace {

std::string Relative(absl::string_view file, const fs::path& root) {
  std::string f(file);
  std::string r = root.string() + "/";
  if (absl::StartsWith(f, r)) f = f.substr(r.size());
  return fs::path(std::string(absl::StripPrefix(f, "./"))).lexically_normal().string();
}

// `# 12 "./include/net/tcp.h" 1`: the next line is line 12 of that file.
bool LineMarker(absl::string_view l, int* line, std::string* file) {
  if (!absl::ConsumePrefix(&l, "# ")) return false;
  size_t sp = l.find(' ');
  if (sp == absl::string_view::npos || !absl::SimpleAtoi(l.substr(0, sp), line)) return false;
  l.remove_prefix(sp + 1);
  if (!absl::ConsumePrefix(&l, "\"")) return false;
  *file = std::string(l.substr(0, l.find('"')));
  return true;
}

// The saved command of the object of `source`, when kbuild built it.
absl::StatusOr<std::string> SavedCommandOf(const fs::path& root, const fs::path& obj) {
  fs::path cmd = root / obj.parent_path() / absl::StrCat(".", obj.filename().string(), ".cmd");
  auto text = ReadFile(cmd);
  if (!text.ok()) return text.status();
  return ParseSavedCommand(*text, cmd.string());
}

// Any saved kernel-object command in `dir` (not a host tool's).
absl::StatusOr<std::string> AnySavedIn(const fs::path& root, const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root / dir, ec)) {
    std::string n = e.path().filename().string();
    if (!absl::StartsWith(n, ".") || !absl::EndsWith(n, ".o.cmd")) continue;
    auto text = ReadFile(e.path());
    if (!text.ok()) continue;
    auto cmd = ParseSavedCommand(*text, e.path().string());
    if (cmd.ok() && absl::StrContains(*cmd, "-D__KERNEL__") && absl::StrContains(*cmd, " -c "))
      return cmd;
  }
  return absl::NotFoundError("none");
}

}  // namespace

std::vector<CppDefine> ParseDashDD(absl::string_view out, const fs::path& root) {
  std::map<std::string, CppDefine> defs;
  int line = 0;
  std::string file;
  for (absl::string_view l : absl::StrSplit(out, '\n')) {
    int n;
    std::string f;
    if (LineMarker(l, &n, &f)) {
      line = n;
      file = Relative(f, root);
      continue;
    }
    if (absl::ConsumePrefix(&l, "#undef ")) {
      defs.erase(std::string(absl::StripAsciiWhitespace(l)));
    } else if (absl::ConsumePrefix(&l, "#define ")) {
      size_t end = 0;
      while (end < l.size() && (absl::ascii_isalnum(l[end]) || l[end] == '_')) ++end;
      CppDefine d{std::string(l.substr(0, end)), "", file, line, l.substr(end, 1) == "("};
      size_t body = d.function_like ? l.find(')', end) : end;
      if (body != absl::string_view::npos)
        d.body =
            std::string(absl::StripAsciiWhitespace(l.substr(body + (d.function_like ? 1 : 0))));
      defs[d.name] = std::move(d);
    }
    ++line;
  }
  std::vector<CppDefine> res;
  for (auto& [n, d] : defs) res.push_back(std::move(d));
  return res;
}

std::string PreprocessCommand(absl::string_view saved, const std::string& source) {
  std::vector<std::string> argv;
  std::vector<absl::string_view> toks =
      absl::StrSplit(saved, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  for (size_t i = 0; i < toks.size(); ++i) {
    absl::string_view t = toks[i];
    if (t == "-o") {
      ++i;
      continue;
    }
    if (t == "-c" || absl::StartsWith(t, "-Wp,-MMD") || absl::StartsWith(t, "-DKBUILD_") ||
        absl::StartsWith(t, "-D__KBUILD_") || t == "-DMODULE" || absl::EndsWith(t, ".c") ||
        absl::EndsWith(t, ".S"))
      continue;
    argv.emplace_back(t);
  }
  std::string dir = fs::path(source).parent_path().string();
  return absl::StrCat(absl::StrJoin(argv, " "), " -I./", dir.empty() ? "." : dir, " -E -dD ",
                      source);
}

absl::StatusOr<std::string> KbuildCommandNear(const fs::path& root, const std::string& source) {
  fs::path obj = fs::path(source).replace_extension(".o");
  if (auto own = SavedCommandOf(root, obj); own.ok()) return own;
  for (fs::path dir = obj.parent_path();; dir = dir.parent_path()) {
    if (auto any = AnySavedIn(root, dir); any.ok()) return any;
    if (dir.empty() || dir == dir.parent_path()) break;
  }
  for (const char* dir : {"kernel", "mm", "block", "net/core", "init", "lib"})
    if (auto any = AnySavedIn(root, dir); any.ok()) return any;
  return FailedWithHint(absl::StrCat("no saved kbuild command in ", root.string()),
                        "prepare the tree with a kernel spec: sie synth SPEC.yaml builds objects "
                        "once there");
}

absl::StatusOr<std::vector<CppDefine>> PreprocessDefines(const fs::path& root,
                                                         const std::string& source) {
  auto cmd = KbuildCommandNear(root, source);
  if (!cmd.ok()) return cmd.status();
  RunOptions ro;
  ro.cwd = root.string();
  ro.timeout = std::chrono::minutes(2);
  auto r = Run({"sh", "-c", PreprocessCommand(*cmd, source)}, ro);
  if (!r.ok()) return r.status();
  if (!r->ok())
    return absl::InternalError(absl::StrCat("preprocessing ", source, " failed (", r->Describe(),
                                            "): ", r->err.substr(0, 400)));
  return ParseDashDD(r->out, root);
}

}  // namespace sie::synth::discover
