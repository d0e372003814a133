// Stage: the values `sie synth` compiles a candidate with, its range, and the spec text.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "synth/discover/discover.h"

namespace sie::synth::discover {
namespace {

// The largest value the candidate's type holds (a macro: int, or unsigned int with a U suffix).
int64_t TypeMax(const Definition& d) {
  const std::string& t = d.type;
  auto has = [&](const char* w) { return absl::StrContains(absl::StrCat(" ", t, " "), w); };
  if (d.kind == DefKind::kMacro)
    return absl::StrContains(d.body, "UL") || absl::StrContains(d.body, "ul")
               ? std::numeric_limits<int64_t>::max()
               : std::numeric_limits<int32_t>::max();
  if (has(" u8 ") || has(" __u8 ") || (has(" unsigned ") && has(" char "))) return 255;
  if (has(" s8 ") || has(" char ")) return 127;
  if (has(" u16 ") || (has(" unsigned ") && has(" short "))) return 65535;
  if (has(" s16 ") || has(" short ")) return 32767;
  if (has(" long ") || has(" u64 ") || has(" s64 ") || has(" size_t "))
    return std::numeric_limits<int64_t>::max();
  if (has(" u32 ") || has(" unsigned ")) return std::numeric_limits<uint32_t>::max();
  return std::numeric_limits<int32_t>::max();
}

bool IsShift(const Candidate& c) {
  if (absl::StrContains(c.def.name, "SHIFT") || absl::StrContains(c.def.name, "shift")) return true;
  auto it = c.kinds.find(UseKind::kShift);
  return it != c.kinds.end() && it->second == c.sites && c.def.value && *c.def.value < 32;
}

std::string Quoted(absl::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out.push_back('\\');
    out.push_back(ch);
  }
  return out + "\"";
}

// The static const's declaration with its initializer replaced by {V}.
std::string ReplaceText(const std::string& decl) {
  size_t eq = decl.find('=');
  size_t semi = decl.rfind(';');
  if (eq == std::string::npos || semi == std::string::npos || semi < eq) return "";
  return absl::StrCat(decl.substr(0, eq + 1), " {V}", decl.substr(semi));
}

}  // namespace

void ChooseValues(Candidate* c) {
  if (!c->def.value) return;
  const int64_t v1 = *c->def.value, top = TypeMax(c->def);
  int64_t v2, v3;
  if (IsShift(*c)) {
    v2 = v1 > 1 ? v1 - 1 : v1 + 2;
    v3 = v1 + 1;
    c->range_min = 1;
    c->range_max = std::max<int64_t>(v1 + 2, std::min<int64_t>(2 * v1, 31));
  } else {
    v2 = v1 >= 2 ? v1 / 2 : v1 + 2;
    v3 = v1 <= top / 2 ? v1 * 2 : v1 - 1;
    if (v3 == v2) v3 = v1 + 1;
    c->range_min = 1;
    c->range_max = v1 <= top / 4 ? std::max<int64_t>(4 * v1, 4) : top;
  }
  c->range_max = std::min(c->range_max, top);
  c->values = {v1, v2, v3};
}

std::string SpecYaml(const DiscoverReport& r, size_t limit) {
  std::string out = absl::StrCat("# Written by `sie discover ", r.path,
                                 "`: candidate constants, most executed code first.\n"
                                 "# Review the values and ranges before synthesizing.\n"
                                 "tunables:\n");
  size_t n = 0;
  for (const Candidate& c : r.candidates) {
    std::vector<std::string> objects;
    for (const auto& o : c.objects)
      if (o.built) objects.push_back(o.object);
    if (!c.ok() || objects.empty() || c.values.size() != 3) continue;
    if (c.def.kind == DefKind::kStaticConst && ReplaceText(c.def.decl).empty()) continue;
    if (limit && n >= limit) break;
    ++n;
    absl::StrAppend(&out, "  - name: ", absl::AsciiStrToUpper(c.def.name), "\n",
                    "    description: ",
                    Quoted(absl::StrCat(c.sites, " executed use(s) in ", c.functions,
                                        " function(s), shipped value ", c.values[0])),
                    "\n    file: ", c.def.file, "\n");
    if (c.def.kind == DefKind::kMacro)
      absl::StrAppend(&out, "    macro: ", c.def.name, "\n");
    else
      absl::StrAppend(&out, "    match: ", Quoted(c.def.decl),
                      "\n    replace: ", Quoted(ReplaceText(c.def.decl)), "\n");
    absl::StrAppend(&out, "    objects: [", absl::StrJoin(objects, ", "), "]\n", "    values: [",
                    absl::StrJoin(c.values, ", "), "]\n", "    range: [", c.range_min, ", ",
                    c.range_max, "]\n\n");
  }
  return out;
}

}  // namespace sie::synth::discover
