#include "synth/variants/find_objects.h"

#include <elfutils/libdw.h>
#include <fcntl.h>
#include <unistd.h>

#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/files.h"
#include "common/base/process.h"
#include "common/base/unique_fd.h"
#include "common/elf/dwarf_offline.h"

namespace sie::synth {
namespace fs = std::filesystem;

absl::StatusOr<std::vector<std::string>> GrepFiles(const fs::path& root,
                                                   const std::vector<std::string>& args,
                                                   const std::string& stdin_data) {
  std::vector<std::string> argv = {"grep", "-rl", "--exclude-dir=.git"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(".");
  RunOptions ro;
  ro.cwd = root.string();
  ro.timeout = std::chrono::minutes(10);
  ro.stdin_data = stdin_data;
  auto r = Run(argv, ro);
  if (!r.ok()) return r.status();
  if (r->exit_code > 1 || r->timed_out)
    return absl::InternalError(absl::StrCat("grep failed (", r->Describe(), "): ", r->err));
  std::vector<std::string> files;
  for (absl::string_view l : absl::StrSplit(r->out, '\n', absl::SkipEmpty()))
    files.push_back(fs::path(std::string(absl::StripPrefix(l, "./"))).lexically_normal().string());
  return files;
}

namespace {

// Does `c_text` include `header_rel` (by a path that ends the header's path)?
bool Includes(const std::string& c_text, const std::string& header_rel) {
  static const std::regex re(R"re(#\s*include\s*[<"]([^">]+)[">])re");
  for (auto it = std::sregex_iterator(c_text.begin(), c_text.end(), re);
       it != std::sregex_iterator(); ++it) {
    std::string inc = fs::path((*it)[1].str()).lexically_normal().string();
    while (absl::StartsWith(inc, "../")) inc = inc.substr(3);
    if (header_rel == inc || absl::EndsWith(header_rel, absl::StrCat("/", inc))) return true;
  }
  return false;
}

// Does the header use `word` anywhere but its own #define line?
bool UsesBeyondDefine(const std::string& text, const std::string& word) {
  static const std::regex def(R"(^\s*#\s*define\s+(\w+))");
  std::regex w(absl::StrCat("\\b", word, "\\b"));
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::string l(line);
    if (!std::regex_search(l, w)) continue;
    std::smatch m;
    if (std::regex_search(l, m, def) && m[1] == word) continue;
    return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<ObjectSearch> FindAffectedObjects(const fs::path& root, const TunableSpec& t,
                                                 const std::set<std::string>* built_sources) {
  ObjectSearch res;
  std::set<std::string> candidates;
  if (!t.is_header()) {
    candidates.insert(t.file);
  } else {
    std::vector<std::string> user_headers;
    if (!t.macro.empty()) {
      auto files = GrepFiles(root, {"-w", "--include=*.c", "--include=*.h", "-F", "-e", t.macro});
      if (!files.ok()) return files.status();
      for (const auto& f : *files) {
        if (absl::EndsWith(f, ".c")) {
          candidates.insert(f);
        } else if (f != t.file) {
          user_headers.push_back(f);
        } else if (auto text = ReadFile(root / f); text.ok() && UsesBeyondDefine(*text, t.macro)) {
          user_headers.push_back(f);
        }
      }
    } else {
      user_headers.push_back(t.file);  // match/replace: whatever includes the edited header
    }
    for (const auto& h : user_headers) {
      std::string base = fs::path(h).filename().string();
      auto files = GrepFiles(root, {"--include=*.c", "-F", "-e", base});
      if (!files.ok()) return files.status();
      for (const auto& f : *files)
        if (auto text = ReadFile(root / f); text.ok() && Includes(*text, h)) candidates.insert(f);
    }
  }
  for (const auto& c : candidates) {
    if (built_sources && !built_sources->count(c)) {
      res.skipped.push_back(c);
      continue;
    }
    res.objects.push_back(fs::path(c).replace_extension(".o").string());
  }
  std::sort(res.objects.begin(), res.objects.end());
  return res;
}

absl::StatusOr<std::set<std::string>> CompileUnitSources(const fs::path& binary,
                                                         const fs::path& cache_file) {
  std::set<std::string> out;
  if (!cache_file.empty())
    if (auto cached = ReadFile(cache_file); cached.ok()) {
      for (absl::string_view l : absl::StrSplit(*cached, '\n', absl::SkipEmpty()))
        out.insert(std::string(l));
      if (!out.empty()) return out;
    }
  // Through libdwfl: a module's .ko is relocatable, its CU names reached by relocations.
  if (!fs::exists(binary))
    return absl::NotFoundError(absl::StrCat("cannot open ", binary.string()));
  auto dw = OfflineDwarf::Open(binary.string());
  if (!dw.ok()) return dw.status();
  Dwarf_Die* cu = nullptr;
  Dwarf_Addr bias = 0;
  while ((cu = dwfl_module_nextcu(dw->module(), cu, &bias)) != nullptr)
    if (const char* name = dwarf_diename(cu)) {
      std::string n = fs::path(name).lexically_normal().string();
      out.insert(std::string(absl::StripPrefix(n, "./")));
    }
  if (out.empty())
    return absl::InvalidArgumentError(absl::StrCat(binary.string(), " has no DWARF compile units"));
  if (!cache_file.empty() && !out.empty())
    (void)WriteFileAtomic(cache_file, absl::StrCat(absl::StrJoin(out, "\n"), "\n"));
  return out;
}

}  // namespace sie::synth
