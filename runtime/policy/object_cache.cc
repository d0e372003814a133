#include "runtime/policy/object_cache.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/hash.h"
#include "common/stubgen/stub_build.h"

namespace sie::policy {
namespace fs = std::filesystem;

namespace {

constexpr char kFormat[] = "sie-policy-cache v1";
constexpr char kIncludePlaceholder[] = "@SIE_INCLUDE@";

bool Under(const fs::path& p, const fs::path& dir) {
  return absl::StartsWith(fs::path(p).lexically_normal().string(),
                          (dir.lexically_normal() / "").string());
}

}  // namespace

std::vector<std::string> ParseDepfile(const std::string& text) {
  // Join continuation lines, drop the target, split on unescaped blanks.
  std::string flat;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == '\n') {
      flat += ' ';
      ++i;
    } else if (text[i] == '\n') {
      flat += ' ';
    } else {
      flat += text[i];
    }
  }
  size_t colon = flat.find(": ");
  if (colon == std::string::npos) return {};
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = colon + 2; i < flat.size(); ++i) {
    char c = flat[i];
    if (c == '\\' && i + 1 < flat.size() && flat[i + 1] == ' ') {
      cur += ' ';
      ++i;
    } else if (c == ' ' || c == '\t') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

absl::StatusOr<std::string> PolicyCacheKey(const CacheKeyInputs& in) {
  std::string k = absl::StrCat(kFormat, "\n");
  struct stat st {};
  if (stat(in.clang.c_str(), &st) == 0)
    absl::StrAppend(&k, "clang ", fs::absolute(in.clang).string(), " ", st.st_size, " ",
                    st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, "\n");
  else
    absl::StrAppend(&k, "clang ", in.clang, " (not found)\n");
  const std::string inc = in.include_dir.string();
  for (std::string f : in.flags) {
    if (!inc.empty())
      for (size_t p; (p = f.find(inc)) != std::string::npos;)
        f.replace(p, inc.size(), kIncludePlaceholder);
    absl::StrAppend(&k, "flag ", f, "\n");
  }
  auto src = ReadFile(in.source);
  if (!src.ok()) return src.status();
  // One file, one key however it is spelled (tests/x/../p.bpf.c, a symlink, a relative path).
  std::error_code ec_path;
  absl::StrAppend(&k, "source ", fs::weakly_canonical(fs::absolute(in.source), ec_path).string(),
                  " ", ContentHash(*src), "\n");
  std::vector<fs::path> headers;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(in.include_dir, ec))
    if (e.is_regular_file()) headers.push_back(e.path());
  if (ec) return absl::InternalError(absl::StrCat("reading ", inc, ": ", ec.message()));
  std::sort(headers.begin(), headers.end());
  for (const auto& h : headers) {
    auto t = ReadFile(h);
    if (!t.ok()) return t.status();
    absl::StrAppend(&k, "header ", h.lexically_relative(in.include_dir).string(), " ",
                    ContentHash(*t), "\n");
  }
  return ContentHash(k);
}

std::optional<CacheHit> LookupPolicyObject(const std::vector<fs::path>& dirs,
                                           const std::string& key) {
  for (const fs::path& d : dirs) {
    fs::path entry = d / key;
    std::error_code ec;
    if (!fs::exists(entry / "policy.bpf.o", ec)) continue;
    auto deps = ReadFile(entry / "deps");
    if (!deps.ok()) continue;
    bool fresh = true;
    for (absl::string_view line : absl::StrSplit(*deps, '\n', absl::SkipEmpty())) {
      // "<hash> <path>"
      size_t sp = line.find(' ');
      if (sp == absl::string_view::npos) {
        fresh = false;
        break;
      }
      auto t = ReadFile(std::string(line.substr(sp + 1)));
      if (!t.ok() || ContentHash(*t) != line.substr(0, sp)) {
        fresh = false;
        break;
      }
    }
    if (!fresh) continue;
    CacheHit hit;
    hit.object = entry / "policy.bpf.o";
    if (auto diag = ReadFile(entry / "diagnostics"); diag.ok()) hit.diagnostics = *diag;
    return hit;
  }
  return std::nullopt;
}

absl::StatusOr<fs::path> StorePolicyObject(const fs::path& dir, const std::string& key,
                                           const fs::path& object, const fs::path& depfile,
                                           const CacheKeyInputs& in,
                                           const std::string& diagnostics) {
  auto dep_text = ReadFile(depfile);
  if (!dep_text.ok()) return dep_text.status();
  const fs::path source = fs::absolute(in.source).lexically_normal();
  std::string deps;
  std::set<std::string> seen;
  for (const std::string& d : ParseDepfile(*dep_text)) {
    fs::path p = fs::absolute(d).lexically_normal();
    if (p == source || Under(p, fs::absolute(in.include_dir))) continue;  // in the key
    if (!seen.insert(p.string()).second) continue;
    auto t = ReadFile(p);
    if (!t.ok()) return WithContext(t.status(), "hashing the policy's dependencies");
    absl::StrAppend(&deps, ContentHash(*t), " ", p.string(), "\n");
  }
  auto obj = ReadFile(object);
  if (!obj.ok()) return obj.status();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return FailedWithHint(
        absl::StrCat("cannot create the policy cache ", dir.string(), ": ", ec.message()),
        "set SIE_POLICY_CACHE to a writable folder");
  // Build the entry aside and rename it into place: readers see all of it or nothing.
  auto tmp = TempDir::Create(dir, ".entry-");
  if (!tmp.ok()) return tmp.status();
  for (const auto& [name, data] :
       {std::pair<const char*, const std::string*>{"policy.bpf.o", &*obj},
        {"deps", &deps},
        {"diagnostics", &diagnostics}})
    if (auto st = WriteFileAtomic(tmp->path() / name, *data); !st.ok()) return st;
  fs::path entry = dir / key;
  fs::remove_all(entry, ec);
  fs::rename(tmp->path(), entry, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("rename ", tmp->path().string(), " -> ", entry.string(), ": ", ec.message()));
  return entry / "policy.bpf.o";
}

std::vector<fs::path> PolicyCacheDirs(const fs::path& consts_dir) {
  std::vector<fs::path> dirs;
  if (const char* d = getenv("SIE_POLICY_CACHE"); d && *d) dirs.emplace_back(d);
  if (!consts_dir.empty()) dirs.push_back(consts_dir / "policy-cache");
  dirs.push_back(stubgen::CacheDir() / "policies");
  return dirs;
}

}  // namespace sie::policy
