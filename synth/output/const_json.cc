#include "synth/output/const_json.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "runtime/base/diag.h"
#include "runtime/base/files.h"
#include "synth/stubgen/const_reader.h"
#include "synth/stubgen/stubgen.h"

namespace sie::synth {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* HowName(SafeSpanHow h) {
  switch (h) {
    case SafeSpanHow::kSlice:
      return "slice";
    case SafeSpanHow::kManual:
      return "manual";
    case SafeSpanHow::kWholeFunction:
      return "whole_function";
  }
  return "?";
}

json MemToJson(const MemOperand& m) {
  return json{{"base", m.base}, {"index", m.index}, {"scale", m.scale}, {"disp", m.disp}};
}

json SpanToJson(const CriticalSpan& s) {
  json j;
  j["function"] = s.function;
  j["cs_start"] = s.cs_start;
  j["cs_end"] = s.cs_end;
  j["probe_offset"] = s.probe_offset;
  j["candidates"] = s.candidates;
  j["kind"] = synth::SpanKindName(s.kind);
  // target: a register name, or the memory operand the span wrote/compared.
  if (s.target_mem && (s.kind == SpanKind::kMem || s.target_reg.empty()))
    j["target"] = MemToJson(*s.target_mem);
  else
    j["target"] = s.target_reg;
  if (s.target_mem) j["target_mem"] = MemToJson(*s.target_mem);
  j["width"] = s.width;
  j["formula"] = s.formula;
  j["save_offset"] = s.save_offset ? json(*s.save_offset) : json(nullptr);
  // The register holding X: for recompute, saved at save_offset; for reg, read at the probe
  // (the analysis checked it is still intact there). Without it a reg formula in X is ambiguous.
  if (!s.save_reg.empty()) j["save_reg"] = s.save_reg;
  if (s.kind == SpanKind::kRecompute && !s.x_from_probe.empty()) j["x_from_probe"] = s.x_from_probe;
  if (s.kind == SpanKind::kFlags) {
    j["flags_cc"] = s.flags_cc;
    if (!s.flags_op.empty()) j["flags_op"] = s.flags_op;
  }
  j["source"] = s.source;
  j["expect_bytes"] = s.expect_bytes;
  json vars = json::array();
  for (const auto& v : s.vars)
    vars.push_back({{"name", v.name}, {"type", v.type}, {"location", v.location}});
  j["vars"] = vars;
  return j;
}

}  // namespace

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

nlohmann::json ConstToJson(const SynthesizedConst& c) {
  json j;
  j["_generated"] = kGeneratedBanner;
  j["format_version"] = kConstFormatVersion;
  j["id"] = c.id;
  j["name"] = c.name;
  j["description"] = c.description;
  j["values"] = c.values;
  j["range"] = {c.range_min, c.range_max};
  j["target"] = {{"binary", c.target.binary},
                 {"kernel_release", c.target.kernel_release},
                 {"build_id", c.target.build_id}};
  std::vector<const CriticalSpan*> spans;
  for (const auto& s : c.spans) spans.push_back(&s);
  std::stable_sort(spans.begin(), spans.end(), [](const auto* a, const auto* b) {
    return std::tie(a->function, a->cs_start, a->probe_offset) <
           std::tie(b->function, b->cs_start, b->probe_offset);
  });
  j["spans"] = json::array();
  for (const auto* s : spans) j["spans"].push_back(SpanToJson(*s));
  std::vector<SafeSpan> ss = c.safe_spans;
  std::stable_sort(ss.begin(), ss.end(), [](const SafeSpan& a, const SafeSpan& b) {
    return std::tie(a.function, a.start, a.end) < std::tie(b.function, b.start, b.end);
  });
  j["safe_spans"] = json::array();
  for (const auto& s : ss)
    j["safe_spans"].push_back(
        {{"function", s.function}, {"start", s.start}, {"end", s.end}, {"how", HowName(s.how)}});
  std::vector<DataInitializer> di = c.data_initializers;
  std::stable_sort(di.begin(), di.end(), [](const auto& a, const auto& b) {
    return std::tie(a.symbol, a.offset) < std::tie(b.symbol, b.offset);
  });
  j["data_initializers"] = json::array();
  for (const auto& d : di)
    j["data_initializers"].push_back(
        {{"symbol", d.symbol}, {"offset", d.offset}, {"width", d.width}, {"values", d.values}});
  j["warnings"] = c.warnings;
  return j;
}

std::string RelativeSource(const std::string& source, const SourceRoots& r) {
  // "file:line": the line is whatever follows the last ':' when it is all digits.
  std::string file = source, line;
  if (size_t c = source.rfind(':'); c != std::string::npos && c + 1 < source.size() &&
                                    std::all_of(source.begin() + c + 1, source.end(), ::isdigit)) {
    file = source.substr(0, c);
    line = source.substr(c);
  }
  fs::path p = fs::path(file).lexically_normal();
  if (!p.is_absolute()) return source;
  auto under = [&](const fs::path& root) -> std::optional<fs::path> {
    if (root.empty()) return std::nullopt;
    fs::path rel = p.lexically_relative(fs::path(root).lexically_normal());
    if (rel.empty() || *rel.begin() == "..") return std::nullopt;
    return rel;
  };
  if (auto rel = under(r.work_dir)) {
    // <tunable>/vN/<kind>/...
    std::vector<fs::path> parts(rel->begin(), rel->end());
    if (parts.size() >= 4) {
      const std::string kind = parts[2].string();
      size_t from = kind == "overlay"                                  ? 4
                    : (kind == "module" || kind.rfind("src-", 0) == 0) ? 3
                                                                       : 0;
      if (from && parts.size() > from) {
        fs::path out = kind == "module" ? fs::path(r.module_dir) : fs::path();
        for (size_t i = from; i < parts.size(); ++i) out /= parts[i];
        return out.lexically_normal().string() + line;
      }
    }
    return source;
  }
  for (const auto& root : r.roots)
    if (auto rel = under(root)) return rel->string() + line;
  return source;
}

std::string JsonText(const nlohmann::json& j) { return j.dump(2) + "\n"; }

absl::Status WriteConst(const fs::path& out_dir, const SynthesizedConst& c) {
  fs::path dir = out_dir / absl::StrCat(c.id);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return FailedWithHint(absl::StrCat("cannot create ", dir.string(), ": ", ec.message()),
                          "choose a writable --out directory");
  return WriteFileAtomic(dir / "const.json", JsonText(ConstToJson(c)));
}

absl::Status WriteIndex(const fs::path& out_dir, const IdIndex& index) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  return WriteFileAtomic(out_dir / "index.json", JsonText(IndexToJson(index)));
}

absl::Status EmitRuntimeArtifacts(const fs::path& const_dir, const stubgen::ArtifactOptions& opts) {
  stubgen::ConstEntry e;
  e.path = const_dir / "const.json";
  auto c = stubgen::ReadConstFile(e.path);
  if (!c.ok()) return c.status();
  e.c = std::move(*c);
  auto a = stubgen::WriteArtifacts(e, opts);
  return a.ok() ? absl::OkStatus() : a.status();
}

}  // namespace sie::synth
