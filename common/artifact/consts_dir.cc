#include "common/artifact/consts_dir.h"

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/artifact/const_json.h"
#include "common/base/diag.h"
#include "common/base/files.h"

namespace sie::artifact {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

absl::Status BadIndex(const fs::path& p, absl::string_view why) {
  return FailedWithHint(absl::StrCat(p.string(), " is not a valid sie index: ", why),
                        "restore it from the 'sie synth' that wrote it, or synthesize into a "
                        "fresh directory (sie synth SPEC --out NEWDIR)");
}

// The entries of "constants" or "retired" into `m`; ids unique across `taken`.
absl::Status ReadEntries(const fs::path& p, const json& list, std::map<std::string, int>& m,
                         std::map<int, std::string>& taken) {
  if (!list.is_array()) return BadIndex(p, "'constants' and 'retired' are lists");
  for (const auto& e : list) {
    if (!e.is_object() || !e.contains("name") || !e.contains("id") || !e["name"].is_string() ||
        !e["id"].is_number_integer())
      return BadIndex(p, "each entry has a string 'name' and an integer 'id'");
    const int id = e["id"].get<int>();
    const std::string name = e["name"].get<std::string>();
    if (id < 1 || id > kMaxConstId)
      return BadIndex(p, absl::StrCat(name, " has id ", id, ", outside 1..", kMaxConstId));
    if (auto [it, fresh] = taken.emplace(id, name); !fresh)
      return BadIndex(p, absl::StrCat("id ", id, " is given to both ", it->second, " and ", name));
    m[name] = id;
  }
  return absl::OkStatus();
}

absl::StatusOr<int> IntField(const fs::path& p, const json& j, const char* key, int dflt) {
  auto it = j.find(key);
  if (it == j.end()) return dflt;
  if (!it->is_number_integer()) return BadIndex(p, absl::StrCat("'", key, "' is an integer"));
  return it->get<int>();
}

}  // namespace

absl::StatusOr<IdIndex> ReadIdIndex(const fs::path& dir) {
  IdIndex idx;
  fs::path p = dir / "index.json";
  if (!fs::exists(p)) return idx;
  auto text = ReadFile(p);
  if (!text.ok()) return text.status();
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return BadIndex(p, "not a JSON object");
  std::map<int, std::string> taken;
  if (j.contains("constants"))
    if (auto st = ReadEntries(p, j["constants"], idx.ids, taken); !st.ok()) return st;
  if (j.contains("retired"))
    if (auto st = ReadEntries(p, j["retired"], idx.retired, taken); !st.ok()) return st;
  auto scheme = IntField(p, j, "id_scheme", kLegacyIdScheme);
  if (!scheme.ok()) return scheme.status();
  if (*scheme > kIdScheme)
    return FailedWithHint(absl::StrCat(p.string(), " uses id scheme ", *scheme,
                                       "; this sie knows schemes up to ", kIdScheme),
                          "use the sie that wrote it (a newer one)");
  idx.scheme = *scheme;
  auto next = IntField(p, j, "next_id", 1);
  if (!next.ok()) return next.status();
  if (*next < 1 || *next > kMaxConstId + 1)
    return BadIndex(p, absl::StrCat("'next_id' is outside 1..", kMaxConstId + 1));
  // Never below an id in use, even when the field was edited away.
  idx.next_id = std::max(*next, taken.empty() ? 1 : taken.rbegin()->first + 1);
  return idx;
}

absl::StatusOr<IdIndex> AssignConstIds(const std::vector<std::string>& names,
                                       const IdIndex& previous) {
  IdIndex out;
  out.next_id = previous.next_id;
  for (const auto* m : {&previous.ids, &previous.retired})
    for (const auto& [n, id] : *m) out.next_id = std::max(out.next_id, id + 1);
  // A name seen before (current or retired) keeps its id, so it never moves.
  for (const auto& n : names) {
    if (auto it = previous.ids.find(n); it != previous.ids.end())
      out.ids[n] = it->second;
    else if (auto r = previous.retired.find(n); r != previous.retired.end())
      out.ids[n] = r->second;
  }
  // Names that disappeared keep their ids reserved, so a policy or script written against an
  // older index can never address a different constant by mistake.
  for (const auto* m : {&previous.ids, &previous.retired})
    for (const auto& [n, id] : *m)
      if (!out.ids.count(n)) out.retired[n] = id;
  for (const auto& n : names) {
    if (out.ids.count(n)) continue;
    if (out.next_id > kMaxConstId)
      return ErrorWithHint(absl::StatusCode::kResourceExhausted,
                           absl::StrCat("no ConstID left for ", n, ": ids 1..", kMaxConstId,
                                        " were all given out (ids are never reused)"),
                           "synthesize into a fresh directory: sie synth SPEC --out NEWDIR");
    out.ids[n] = out.next_id++;
  }
  return out;
}

namespace {

// DIR/<n>/ holding a const.json, by number.
std::map<int, fs::path> NumberedConstDirs(const fs::path& dir) {
  std::map<int, fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    int n = 0;
    if (e.is_directory(ec) && absl::SimpleAtoi(e.path().filename().string(), &n) && n > 0 &&
        absl::StrCat(n) == e.path().filename().string() && fs::exists(e.path() / "const.json"))
      out[n] = e.path();
  }
  return out;
}

// The "name" of a const.json: all a renumbering needs, whatever else the file holds.
absl::StatusOr<std::string> NameIn(const fs::path& const_json) {
  auto text = ReadFile(const_json);
  if (!text.ok()) return text.status();
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("name") || !j["name"].is_string())
    return FailedWithHint(absl::StrCat(const_json.string(), " has no constant name"),
                          "remove that directory, or synthesize into a fresh directory "
                          "(sie synth SPEC --out NEWDIR)");
  return j["name"].get<std::string>();
}

// Every name a legacy directory knows with its old id: index entries, then constant
// directories the index does not list (a directory without index.json).
absl::StatusOr<std::map<std::string, int>> LegacyIds(const fs::path& dir, const IdIndex& idx,
                                                     const std::map<int, fs::path>& on_disk) {
  std::map<std::string, int> old = idx.ids;
  old.insert(idx.retired.begin(), idx.retired.end());
  std::map<int, std::string> by_id;
  for (const auto& [n, id] : old) by_id[id] = n;
  for (const auto& [id, path] : on_disk) {
    if (by_id.count(id)) continue;
    auto name = NameIn(path / "const.json");
    if (!name.ok()) return name.status();
    if (auto it = old.find(*name); it != old.end() && on_disk.count(it->second))
      return FailedWithHint(absl::StrCat(dir.string(), "/", id, " and ", dir.string(), "/",
                                         it->second, " both hold ", *name),
                            absl::StrCat("remove the copy the index does not list: rm -r ",
                                         (dir / absl::StrCat(id)).string()));
    old[*name] = id;
  }
  return old;
}

// New ids for a legacy directory: the spec's names first (spec order), then the others by
// their old id; ids the old scheme handed out are not kept.
IdPlan MigrationPlan(const std::map<std::string, int>& old, const std::vector<std::string>& names,
                     const std::map<int, fs::path>& on_disk) {
  std::vector<std::string> order;
  for (const auto& n : names)
    if (old.count(n) && std::find(order.begin(), order.end(), n) == order.end()) order.push_back(n);
  std::vector<std::pair<int, std::string>> rest;
  for (const auto& [n, id] : old)
    if (std::find(order.begin(), order.end(), n) == order.end()) rest.push_back({id, n});
  std::sort(rest.begin(), rest.end());
  for (const auto& [id, n] : rest) order.push_back(n);
  IdPlan plan;
  plan.migrate = true;
  for (size_t i = 0; i < order.size(); ++i) {
    const int id = static_cast<int>(i) + 1, was = old.at(order[i]);
    bool current = std::find(names.begin(), names.end(), order[i]) != names.end();
    (current ? plan.index.ids : plan.index.retired)[order[i]] = id;
    if (on_disk.count(was) && was != id) plan.renumber[was] = id;
  }
  plan.index.next_id = static_cast<int>(order.size()) + 1;
  return plan;
}

}  // namespace

absl::StatusOr<IdPlan> PlanConstIds(const fs::path& dir, const std::vector<std::string>& names) {
  auto idx = ReadIdIndex(dir);
  if (!idx.ok()) return idx.status();
  const std::map<int, fs::path> on_disk = NumberedConstDirs(dir);
  const bool has_index = fs::exists(dir / "index.json");
  IdPlan plan;
  if (has_index ? idx->scheme < kIdScheme : !on_disk.empty()) {
    auto old = LegacyIds(dir, *idx, on_disk);
    if (!old.ok()) return old.status();
    plan = MigrationPlan(*old, names, on_disk);
  } else {
    plan.index = std::move(*idx);
    // A constant directory copied in by hand keeps its number from being handed out.
    for (const auto& [n, path] : on_disk)
      if (n <= kMaxConstId) plan.index.next_id = std::max(plan.index.next_id, n + 1);
  }
  auto ids = AssignConstIds(names, plan.index);
  if (!ids.ok()) return ids.status();
  plan.index = std::move(*ids);
  return plan;
}

namespace {

constexpr char kStaging[] = ".sie-renumber";

// DIR/<id>/ keeps only its const.json, with the new id: everything else was generated from the
// old one and embeds the old id.
absl::Status Renumbered(const fs::path& const_dir, int id) {
  const fs::path p = const_dir / "const.json";
  auto text = ReadFile(p);
  if (!text.ok()) return text.status();
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return FailedWithHint(absl::StrCat(p.string(), " is not JSON"), "restore or remove it");
  j["id"] = id;
  if (auto st = WriteFileAtomic(p, JsonText(j)); !st.ok()) return st;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(const_dir, ec))
    if (f.path().filename() != "const.json") fs::remove_all(f.path(), ec);
  return absl::OkStatus();
}

absl::Status MoveDir(const fs::path& from, const fs::path& to, const fs::path& stage) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (!ec) return absl::OkStatus();
  return FailedWithHint(absl::StrCat("renumbering constants: cannot move ", from.string(), " to ",
                                     to.string(), ": ", ec.message()),
                        absl::StrCat("the constants moved so far are in ", stage.string(),
                                     "; synthesize into a fresh directory (sie synth SPEC --out "
                                     "NEWDIR)"));
}

}  // namespace

absl::Status ApplyIdMigration(const fs::path& dir, const IdPlan& plan) {
  if (!plan.migrate) return absl::OkStatus();
  const fs::path stage = dir / kStaging;
  std::error_code ec;
  if (fs::exists(stage, ec))
    return FailedWithHint(
        absl::StrCat("an earlier renumbering of ", dir.string(),
                     " was interrupted: ", stage.string(), " holds constants moved out of it"),
        "synthesize into a fresh directory (sie synth SPEC --out NEWDIR), then remove this one");
  fs::create_directories(stage, ec);
  if (ec)
    return FailedWithHint(absl::StrCat("cannot create ", stage.string(), ": ", ec.message()),
                          "choose a writable --out directory");
  // Old and new numbers overlap: everything leaves first, then everything arrives.
  for (const auto& [was, id] : plan.renumber)
    if (auto st = MoveDir(dir / absl::StrCat(was), stage / absl::StrCat(id), stage); !st.ok())
      return st;
  for (const auto& [was, id] : plan.renumber)
    if (auto st = Renumbered(stage / absl::StrCat(id), id); !st.ok()) return st;
  for (const auto& [was, id] : plan.renumber)
    if (auto st = MoveDir(stage / absl::StrCat(id), dir / absl::StrCat(id), stage); !st.ok())
      return st;
  fs::remove(stage, ec);
  return WriteIndex(dir, plan.index);
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
  j["id_scheme"] = index.scheme;
  j["next_id"] = index.next_id;
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
