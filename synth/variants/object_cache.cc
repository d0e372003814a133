#include "synth/variants/object_cache.h"

#include <unistd.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/files.h"
#include "common/base/hash.h"
#include "common/base/process.h"
#include "common/base/status_macros.h"

namespace sie::synth {
namespace fs = std::filesystem;
namespace {

// Bumped when the key's recipe changes, so old entries are never matched.
constexpr char kKeyVersion[] = "sie pristine object 1";

// Size and modification time: a compiler or objtool rebuilt or upgraded in place changes them.
std::string FileIdentity(const fs::path& p) {
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  if (ec) return "missing";
  const auto mtime = fs::last_write_time(p, ec).time_since_epoch().count();
  return absl::StrCat(size, ":", mtime);
}

// The compiler the command runs (its first word), found on PATH.
fs::path CompilerPath(const std::string& savedcmd) {
  const std::string cc(absl::StripAsciiWhitespace(savedcmd.substr(0, savedcmd.find(' '))));
  auto found = FindInPath(cc);
  return found.ok() ? fs::path(*found) : fs::path(cc);
}

}  // namespace

std::vector<std::string> KbuildDeps(const std::string& cmd_text) {
  std::vector<std::string> deps;
  bool in_deps = false;
  for (absl::string_view line : absl::StrSplit(cmd_text, '\n')) {
    if (!in_deps) {
      in_deps = absl::StartsWith(line, "deps_") && absl::StrContains(line, " :=");
      continue;
    }
    absl::string_view body = absl::StripAsciiWhitespace(line);
    const bool more = absl::EndsWith(body, "\\");
    if (more) body = absl::StripAsciiWhitespace(body.substr(0, body.size() - 1));
    if (!body.empty() && !absl::StartsWith(body, "$(wildcard")) deps.emplace_back(body);
    if (!more) break;
  }
  return deps;
}

absl::StatusOr<std::string> PristineObjectKey(const fs::path& tree, const std::string& object,
                                              const std::string& savedcmd,
                                              const fs::path& objtool) {
  const fs::path obj(object);
  const fs::path cmd_file =
      tree / obj.parent_path() / absl::StrCat(".", obj.filename().string(), ".cmd");
  ASSIGN_OR_RETURN(cmd_text, ReadFile(cmd_file));
  const std::vector<std::string> deps = KbuildDeps(cmd_text);
  if (deps.empty())
    return absl::NotFoundError(absl::StrCat(cmd_file.string(), " lists no dependencies"));
  ASSIGN_OR_RETURN(config, ReadFile(tree / ".config"));
  std::string material = absl::StrCat(
      kKeyVersion, "\n", tree.string(), "\n", object, "\n", savedcmd, "\n", ContentHash(config),
      "\n", FileIdentity(CompilerPath(savedcmd)), "\n", FileIdentity(objtool), "\n");
  for (const std::string& d : deps) {
    ASSIGN_OR_RETURN(text, ReadFile(fs::path(d).is_absolute() ? fs::path(d) : tree / d));
    absl::StrAppend(&material, d, " ", ContentHash(text), "\n");
  }
  return ContentHash(material);
}

bool FetchCachedObject(const fs::path& cache, const std::string& key, const fs::path& dest) {
  std::error_code ec;
  const fs::path entry = cache / (key + ".o");
  if (!fs::exists(entry, ec)) return false;
  fs::create_directories(dest.parent_path(), ec);
  fs::copy_file(entry, dest, fs::copy_options::overwrite_existing, ec);
  if (ec) return false;
  fs::last_write_time(entry, fs::file_time_type::clock::now(), ec);  // recently used
  return true;
}

absl::Status StoreCachedObject(const fs::path& cache, const std::string& key,
                               const fs::path& object) {
  std::error_code ec;
  fs::create_directories(cache, ec);
  const fs::path tmp =
      cache / absl::StrCat(".", key, ".", getpid(), ".",
                           std::hash<std::thread::id>{}(std::this_thread::get_id()));
  fs::copy_file(object, tmp, fs::copy_options::overwrite_existing, ec);
  if (!ec) fs::rename(tmp, cache / (key + ".o"), ec);
  if (ec) {
    fs::remove(tmp, ec);
    return absl::InternalError(
        absl::StrCat("caching ", object.string(), " in ", cache.string(), ": ", ec.message()));
  }
  std::vector<std::pair<fs::file_time_type, fs::path>> entries;
  for (const auto& e : fs::directory_iterator(cache, ec))
    if (e.path().extension() == ".o" && !absl::StartsWith(e.path().filename().string(), "."))
      entries.emplace_back(e.last_write_time(ec), e.path());
  if (entries.size() <= kObjectCacheMaxEntries) return absl::OkStatus();
  std::sort(entries.begin(), entries.end());
  for (size_t i = 0; i + kObjectCacheMaxEntries < entries.size(); ++i)
    fs::remove(entries[i].second, ec);
  return absl::OkStatus();
}

}  // namespace sie::synth
