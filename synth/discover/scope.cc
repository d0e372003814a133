#include "synth/discover/scope.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/process.h"
#include "synth/variants/find_objects.h"

namespace sie::synth::discover {
namespace fs = std::filesystem;
namespace {

bool IsSource(const fs::path& p) { return p.extension() == ".c" || p.extension() == ".h"; }

}  // namespace

absl::StatusOr<std::vector<std::string>> TargetFiles(const fs::path& root,
                                                     const std::string& path) {
  std::string rel = fs::path(path).lexically_normal().string();
  while (absl::EndsWith(rel, "/") && rel.size() > 1) rel.pop_back();
  const fs::path abs = root / rel;
  std::error_code ec;
  if (fs::is_regular_file(abs, ec)) {
    if (!IsSource(abs))
      return InvalidWithHint(absl::StrCat(path, " is not a C source or header"),
                             "give a .c or .h file or a directory of the kernel tree");
    return std::vector<std::string>{rel};
  }
  if (!fs::is_directory(abs, ec))
    return InvalidWithHint(absl::StrCat(path, " is not in the kernel tree ", root.string()),
                           "paths are relative to the tree, e.g. 'net/ipv4/tcp_bbr.c' or 'mm/'");
  std::vector<std::string> out;
  for (auto it = fs::recursive_directory_iterator(abs, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file() && IsSource(it->path()))
      out.push_back(fs::relative(it->path(), root).lexically_normal().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::vector<std::string>> FilesMentioning(const fs::path& root,
                                                         const std::set<std::string>& names) {
  if (names.empty()) return std::vector<std::string>{};
  auto files =
      GrepFiles(root,
                {"-w", "--exclude-dir=tools", "--exclude-dir=Documentation",
                 "--exclude-dir=scripts", "--include=*.c", "--include=*.h", "-F", "-f", "-"},
                absl::StrCat(absl::StrJoin(names, "\n"), "\n"));
  if (!files.ok()) return files.status();
  std::sort(files->begin(), files->end());
  return files;
}

std::vector<IncludeLine> IncludesOf(const std::string& text) {
  std::vector<IncludeLine> out;
  for (absl::string_view l : absl::StrSplit(text, '\n')) {
    l = absl::StripLeadingAsciiWhitespace(l);
    if (!absl::ConsumePrefix(&l, "#")) continue;
    l = absl::StripLeadingAsciiWhitespace(l);
    if (!absl::ConsumePrefix(&l, "include")) continue;
    l = absl::StripLeadingAsciiWhitespace(l);
    if (l.empty() || (l[0] != '"' && l[0] != '<')) continue;
    char close = l[0] == '"' ? '"' : '>';
    size_t end = l.find(close, 1);
    if (end == absl::string_view::npos) continue;
    out.push_back({std::string(l.substr(1, end - 1)), close == '"'});
  }
  return out;
}

const std::vector<std::string>& IncludeGraph::Direct(const std::string& file) {
  auto it = direct_.find(file);
  if (it != direct_.end()) return it->second;
  std::vector<std::string>& out = direct_[file];
  auto text = ReadFile(root_ / file);
  if (!text.ok()) return out;
  const fs::path dir = fs::path(file).parent_path();
  for (const IncludeLine& inc : IncludesOf(*text)) {
    std::vector<fs::path> tries;
    if (inc.quoted) tries.push_back(dir / inc.path);
    tries.push_back(fs::path("include") / inc.path);
    tries.push_back(fs::path("arch/x86/include") / inc.path);
    for (const fs::path& t : tries) {
      std::string n = t.lexically_normal().string();
      if (fs::exists(root_ / n)) {
        out.push_back(n);
        break;
      }
    }
  }
  return out;
}

bool IncludeGraph::Reaches(const std::string& user, const std::string& header, int depth) {
  if (user == header) return true;
  if (depth == 0) return false;
  for (const std::string& h : std::vector<std::string>(Direct(user)))
    if (h == header || Reaches(h, header, depth - 1)) return true;
  return false;
}

}  // namespace sie::synth::discover
