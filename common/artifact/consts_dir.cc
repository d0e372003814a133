#include "common/artifact/consts_dir.h"

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/artifact/const_json.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/hash.h"

namespace sie::artifact {
namespace fs = std::filesystem;
using nlohmann::json;

absl::StatusOr<IdIndex> ReadIdIndex(const fs::path& dir) {
  IdIndex idx;
  fs::path p = dir / "index.json";
  if (!fs::exists(p)) return idx;
  auto text = ReadFile(p);
  if (!text.ok()) return text.status();
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  auto bad = [&] {
    return FailedWithHint(absl::StrCat(p.string(), " is not a valid sie index"),
                          "delete it (ids are then derived afresh) or choose another --out");
  };
  if (j.is_discarded() || !j.is_object()) return bad();
  for (const char* key : {"constants", "retired"}) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    if (!it->is_array()) return bad();
    for (const auto& e : *it) {
      if (!e.is_object() || !e.contains("name") || !e.contains("id") || !e["name"].is_string() ||
          !e["id"].is_number_integer())
        return bad();
      int id = e["id"].get<int>();
      if (id < 1 || id > kMaxConstId) return bad();
      (std::string(key) == "constants" ? idx.ids : idx.retired)[e["name"].get<std::string>()] = id;
    }
  }
  return idx;
}

absl::StatusOr<IdIndex> AssignConstIds(const std::vector<std::string>& names,
                                       const IdIndex& previous) {
  if (names.size() > static_cast<size_t>(kMaxConstId))
    return absl::InvalidArgumentError("too many constants for the ConstID space");
  IdIndex out;
  std::set<int> taken;
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  // Keep every id a name had before (current or retired) so it never moves.
  for (const auto& n : sorted) {
    int id = 0;
    if (auto it = previous.ids.find(n); it != previous.ids.end())
      id = it->second;
    else if (auto r = previous.retired.find(n); r != previous.retired.end())
      id = r->second;
    if (id > 0 && !taken.count(id)) {
      out.ids[n] = id;
      taken.insert(id);
    }
  }
  // Names that disappeared keep their ids reserved, so a policy compiled against an older
  // index can never address a different constant by mistake.
  for (const auto* m : {&previous.ids, &previous.retired})
    for (const auto& [n, id] : *m)
      if (!out.ids.count(n) && !taken.count(id) &&
          std::find(sorted.begin(), sorted.end(), n) == sorted.end()) {
        out.retired[n] = id;
        taken.insert(id);
      }
  if (taken.size() + (sorted.size() - out.ids.size()) > static_cast<size_t>(kMaxConstId))
    return absl::ResourceExhaustedError("ConstID space exhausted: delete retired ids");
  for (const auto& n : sorted) {
    if (out.ids.count(n)) continue;
    int id = static_cast<int>(Fnv1a64(n) % kMaxConstId) + 1;
    while (taken.count(id)) id = id % kMaxConstId + 1;
    out.ids[n] = id;
    taken.insert(id);
  }
  return out;
}

nlohmann::json IndexToJson(const IdIndex& index) {
  auto list = [](const std::map<std::string, int>& m) {
    std::vector<std::pair<int, std::string>> v;
    for (const auto& [n, id] : m) v.push_back({id, n});
    std::sort(v.begin(), v.end());
    json a = json::array();
    for (const auto& [id, n] : v) a.push_back({{"id", id}, {"name", n}, {"dir", absl::StrCat(id)}});
    return a;
  };
  json j;
  j["_generated"] = kGeneratedBanner;
  j["format_version"] = kConstFormatVersion;
  j["constants"] = list(index.ids);
  j["retired"] = list(index.retired);
  return j;
}

absl::Status WriteIndex(const fs::path& out_dir, const IdIndex& index) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  return WriteFileAtomic(out_dir / "index.json", JsonText(IndexToJson(index)));
}

absl::StatusOr<std::vector<ConstEntry>> ListConsts(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return FailedWithHint(absl::StrCat("constants directory ", dir.string(), " does not exist"),
                          "pass --consts DIR (the directory 'sie synth --out' wrote)");
  std::vector<ConstEntry> out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    fs::path p = e.path() / "const.json";
    if (!e.is_directory() || !fs::exists(p)) continue;
    auto c = ReadConstFile(p);
    if (!c.ok()) return c.status();
    out.push_back({p, std::move(*c)});
  }
  std::sort(out.begin(), out.end(),
            [](const ConstEntry& a, const ConstEntry& b) { return a.c.name < b.c.name; });
  return out;
}

absl::StatusOr<ConstEntry> FindConst(const fs::path& dir, absl::string_view name_or_id) {
  auto all = ListConsts(dir);
  if (!all.ok()) return all.status();
  int id = 0;
  bool numeric = absl::SimpleAtoi(name_or_id, &id);
  std::vector<std::string> names;
  for (auto& e : *all) {
    if ((numeric && e.c.id == id) || absl::EqualsIgnoreCase(e.c.name, name_or_id))
      return std::move(e);
    names.push_back(e.c.name);
  }
  std::string known = names.empty() ? "none" : "";
  for (size_t i = 0; i < names.size() && i < 8; ++i)
    absl::StrAppend(&known, i ? ", " : "", names[i]);
  if (names.size() > 8) absl::StrAppend(&known, ", ...");
  return ErrorWithHint(absl::StatusCode::kNotFound,
                       absl::StrCat("unknown constant '", name_or_id, "' in ", dir.string()),
                       absl::StrCat("known constants: ", known, " (see 'sie consts')"));
}

}  // namespace sie::artifact
