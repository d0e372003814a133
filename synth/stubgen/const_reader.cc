#include "synth/stubgen/const_reader.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "runtime/base/diag.h"
#include "runtime/base/files.h"

namespace sie::stubgen {
namespace fs = std::filesystem;
using nlohmann::json;
using synth::CriticalSpan;
using synth::SynthesizedConst;

namespace {

// Collects the first error with its field path.
class Reader {
 public:
  explicit Reader(std::string origin) : origin_(std::move(origin)) {}

  absl::Status Bad(const std::string& field, absl::string_view what) const {
    return InvalidWithHint(absl::StrCat(origin_, ": field '", field, "' ", what),
                           "regenerate it with 'sie synth', or fix the field by hand");
  }

  absl::StatusOr<const json*> Get(const json& j, const std::string& path, const char* key,
                                  bool required = true) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      if (required) return Bad(path + key, "is missing");
      return nullptr;
    }
    return &*it;
  }
  absl::Status Str(const json& j, const std::string& path, const char* key, std::string* out,
                   bool required = true) const {
    auto v = Get(j, path, key, required);
    if (!v.ok()) return v.status();
    if (!*v) return absl::OkStatus();
    if (!(*v)->is_string()) return Bad(path + key, "must be a string");
    *out = (*v)->get<std::string>();
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status Int(const json& j, const std::string& path, const char* key, T* out,
                   bool required = true) const {
    auto v = Get(j, path, key, required);
    if (!v.ok()) return v.status();
    if (!*v) return absl::OkStatus();
    if (!(*v)->is_number_integer()) return Bad(path + key, "must be an integer");
    if constexpr (std::is_unsigned_v<T>) {
      if ((*v)->is_number_unsigned())
        *out = (*v)->get<uint64_t>();
      else if ((*v)->get<int64_t>() < 0)
        return Bad(path + key, "must not be negative");
      else
        *out = static_cast<T>((*v)->get<int64_t>());
    } else {
      *out = static_cast<T>((*v)->get<int64_t>());
    }
    return absl::OkStatus();
  }

 private:
  std::string origin_;
};

#define SIE_RETURN_IF_ERROR(expr) \
  do {                            \
    absl::Status _s = (expr);     \
    if (!_s.ok()) return _s;      \
  } while (0)

absl::StatusOr<synth::MemOperand> ParseMem(const Reader& r, const json& j,
                                           const std::string& path) {
  if (!j.is_object()) return r.Bad(path, "must be a memory operand object");
  synth::MemOperand m;
  SIE_RETURN_IF_ERROR(r.Str(j, path + ".", "base", &m.base, false));
  SIE_RETURN_IF_ERROR(r.Str(j, path + ".", "index", &m.index, false));
  SIE_RETURN_IF_ERROR(r.Int(j, path + ".", "scale", &m.scale, false));
  SIE_RETURN_IF_ERROR(r.Int(j, path + ".", "disp", &m.disp, false));
  if (m.scale != 1 && m.scale != 2 && m.scale != 4 && m.scale != 8)
    return r.Bad(path + ".scale", "must be 1, 2, 4 or 8");
  for (auto* reg : {&m.base, &m.index}) {
    if (reg->empty()) continue;
    std::string n = NormalizeReg(*reg);
    bool rip = (*reg == "ip" || *reg == "rip") && reg == &m.base;
    if (n.empty() && !rip) return r.Bad(path, absl::StrCat("names unknown register '", *reg, "'"));
    *reg = rip ? "ip" : n;
  }
  return m;
}

absl::StatusOr<CriticalSpan> ParseSpan(const Reader& r, const json& j, const std::string& p) {
  if (!j.is_object()) return r.Bad(p, "must be an object");
  CriticalSpan s;
  std::string pre = p + ".";
  SIE_RETURN_IF_ERROR(r.Str(j, pre, "function", &s.function));
  if (s.function.empty()) return r.Bad(pre + "function", "is empty");
  SIE_RETURN_IF_ERROR(r.Int(j, pre, "cs_start", &s.cs_start));
  SIE_RETURN_IF_ERROR(r.Int(j, pre, "cs_end", &s.cs_end));
  SIE_RETURN_IF_ERROR(r.Int(j, pre, "probe_offset", &s.probe_offset));
  if (auto c = j.find("candidates"); c != j.end() && !c->is_null()) {
    if (!c->is_array()) return r.Bad(pre + "candidates", "must be an array of offsets");
    for (const auto& e : *c) {
      if (!e.is_number_unsigned() && !(e.is_number_integer() && e.get<int64_t>() >= 0))
        return r.Bad(pre + "candidates", "must hold non-negative integers");
      s.candidates.push_back(e.get<uint64_t>());
    }
  }
  std::string kind;
  SIE_RETURN_IF_ERROR(r.Str(j, pre, "kind", &kind));
  static const std::map<std::string, synth::SpanKind> kinds = {
      {"reg", synth::SpanKind::kReg},
      {"mem", synth::SpanKind::kMem},
      {"flags", synth::SpanKind::kFlags},
      {"recompute", synth::SpanKind::kRecompute}};
  auto k = kinds.find(kind);
  if (k == kinds.end()) return r.Bad(pre + "kind", "must be reg, mem, flags or recompute");
  s.kind = k->second;
  auto target = r.Get(j, pre, "target", false);
  if (!target.ok()) return target.status();
  if (*target && (*target)->is_string()) {
    s.target_reg = NormalizeReg((*target)->get<std::string>());
    if (s.target_reg.empty() && !(*target)->get<std::string>().empty())
      return r.Bad(pre + "target", "names an unknown register");
  } else if (*target && (*target)->is_object()) {
    auto m = ParseMem(r, **target, pre + "target");
    if (!m.ok()) return m.status();
    s.target_mem = *m;
  } else if (*target) {
    return r.Bad(pre + "target", "must be a register name or a memory operand");
  }
  if (auto tm = j.find("target_mem"); tm != j.end() && !tm->is_null()) {
    auto m = ParseMem(r, *tm, pre + "target_mem");
    if (!m.ok()) return m.status();
    s.target_mem = *m;
  }
  SIE_RETURN_IF_ERROR(r.Int(j, pre, "width", &s.width));
  if (s.width != 1 && s.width != 2 && s.width != 4 && s.width != 8)
    return r.Bad(pre + "width", "must be 1, 2, 4 or 8");
  SIE_RETURN_IF_ERROR(r.Str(j, pre, "formula", &s.formula));
  uint64_t save = 0;
  auto so = r.Get(j, pre, "save_offset", false);
  if (!so.ok()) return so.status();
  if (*so) {
    SIE_RETURN_IF_ERROR(r.Int(j, pre, "save_offset", &save));
    s.save_offset = save;
  }
  SIE_RETURN_IF_ERROR(r.Str(j, pre, "save_reg", &s.save_reg, false));
  if (!s.save_reg.empty()) {
    std::string n = NormalizeReg(s.save_reg);
    if (n.empty()) return r.Bad(pre + "save_reg", "names an unknown register");
    s.save_reg = n;
  }
  SIE_RETURN_IF_ERROR(r.Str(j, pre, "flags_cc", &s.flags_cc, false));
  SIE_RETURN_IF_ERROR(r.Str(j, pre, "flags_op", &s.flags_op, false));
  SIE_RETURN_IF_ERROR(r.Str(j, pre, "x_from_probe", &s.x_from_probe, false));
  SIE_RETURN_IF_ERROR(r.Str(j, pre, "source", &s.source, false));
  SIE_RETURN_IF_ERROR(r.Str(j, pre, "expect_bytes", &s.expect_bytes));
  // Empty only for a plain object (no shipped binary to check): ParseConstJson enforces that.
  if (s.expect_bytes.size() % 2)
    return r.Bad(pre + "expect_bytes", "must be an even-length hex string");
  for (char c : s.expect_bytes)
    if (!absl::ascii_isxdigit(c) && c != '?')
      return r.Bad(pre + "expect_bytes",
                   "must be hex ('?"
                   "?' for a byte that may differ)");
  if (auto v = j.find("vars"); v != j.end() && v->is_array())
    for (const auto& e : *v)
      if (e.is_object())
        s.vars.push_back({e.value("name", ""), e.value("type", ""), e.value("location", "")});
  // Kind-specific requirements.
  switch (s.kind) {
    case synth::SpanKind::kReg:
      if (s.target_reg.empty()) return r.Bad(pre + "target", "must name a register (kind reg)");
      break;
    case synth::SpanKind::kMem:
      if (!s.target_mem) return r.Bad(pre + "target", "must be a memory operand (kind mem)");
      break;
    case synth::SpanKind::kFlags:
      if (s.target_reg.empty() && !s.target_mem)
        return r.Bad(pre + "target", "must name the compared operand (kind flags)");
      break;
    case synth::SpanKind::kRecompute:
      if (s.target_reg.empty()) return r.Bad(pre + "target", "must name a register (recompute)");
      if (s.save_reg.empty()) return r.Bad(pre + "save_reg", "is missing (kind recompute)");
      if (!s.save_offset && s.x_from_probe.empty())
        return r.Bad(pre + "save_offset", "is missing (kind recompute)");
      break;
  }
  return s;
}

}  // namespace

std::string NormalizeReg(absl::string_view reg_in) {
  std::string reg = absl::AsciiStrToLower(reg_in);
  if (!reg.empty() && reg[0] == '%') reg.erase(0, 1);
  static const std::map<std::string, std::string> names = [] {
    std::map<std::string, std::string> m;
    // The legacy eight: 64/32/16/8-bit names.
    const char* legacy[][5] = {{"ax", "rax", "eax", "al", "ah"}, {"bx", "rbx", "ebx", "bl", "bh"},
                               {"cx", "rcx", "ecx", "cl", "ch"}, {"dx", "rdx", "edx", "dl", "dh"},
                               {"si", "rsi", "esi", "sil", ""},  {"di", "rdi", "edi", "dil", ""},
                               {"bp", "rbp", "ebp", "bpl", ""},  {"sp", "rsp", "esp", "spl", ""}};
    for (auto& row : legacy)
      for (auto* n : row)
        if (*n) m[n] = row[0];
    for (int i = 8; i <= 15; ++i) {
      std::string r = absl::StrCat("r", i);
      for (const char* suf : {"", "d", "w", "b"}) m[r + suf] = r;
    }
    return m;
  }();
  auto it = names.find(reg);
  return it == names.end() ? "" : it->second;
}

absl::StatusOr<SynthesizedConst> ParseConstJson(absl::string_view text, absl::string_view origin) {
  Reader r{std::string(origin)};
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return InvalidWithHint(absl::StrCat(origin, " is not valid JSON"),
                           "regenerate it with 'sie synth'");
  int version = 0;
  SIE_RETURN_IF_ERROR(r.Int(j, "", "format_version", &version));
  if (version != 1)
    return InvalidWithHint(absl::StrCat(origin, ": format_version ", version,
                                        " is not supported (this sie reads version 1)"),
                           "regenerate it with this sie's 'sie synth'");
  SynthesizedConst c;
  SIE_RETURN_IF_ERROR(r.Int(j, "", "id", &c.id));
  SIE_RETURN_IF_ERROR(r.Str(j, "", "name", &c.name));
  if (c.name.empty()) return r.Bad("name", "is empty");
  for (char ch : c.name)
    if (!absl::ascii_isalnum(ch) && ch != '_')
      return r.Bad("name", "may only hold letters, digits and '_'");
  SIE_RETURN_IF_ERROR(r.Str(j, "", "description", &c.description, false));
  if (auto v = j.find("values"); v != j.end() && v->is_array())
    for (const auto& e : *v) {
      if (!e.is_number_integer()) return r.Bad("values", "must hold integers");
      c.values.push_back(e.get<int64_t>());
    }
  auto range = r.Get(j, "", "range");
  if (!range.ok()) return range.status();
  if (!(*range)->is_array() || (*range)->size() != 2 || !(**range)[0].is_number_integer() ||
      !(**range)[1].is_number_integer())
    return r.Bad("range", "must be [min, max] integers");
  c.range_min = (**range)[0].get<int64_t>();
  c.range_max = (**range)[1].get<int64_t>();
  if (c.range_min > c.range_max) return r.Bad("range", "has min > max");
  auto target = r.Get(j, "", "target");
  if (!target.ok()) return target.status();
  if (!(*target)->is_object()) return r.Bad("target", "must be an object");
  SIE_RETURN_IF_ERROR(r.Str(**target, "target.", "binary", &c.target.binary));
  SIE_RETURN_IF_ERROR(r.Str(**target, "target.", "kernel_release", &c.target.kernel_release));
  SIE_RETURN_IF_ERROR(r.Str(**target, "target.", "build_id", &c.target.build_id, false));
  auto spans = r.Get(j, "", "spans");
  if (!spans.ok()) return spans.status();
  if (!(*spans)->is_array()) return r.Bad("spans", "must be an array");
  for (size_t i = 0; i < (*spans)->size(); ++i) {
    auto s = ParseSpan(r, (**spans)[i], absl::StrCat("spans[", i, "]"));
    if (!s.ok()) return s.status();
    // A kernel or module target always has shipped bytes the loader must verify; only a plain
    // object (target without kernel_release: synthesized from source_dir + build) has none.
    if (s->expect_bytes.empty() && !c.target.kernel_release.empty())
      return r.Bad(absl::StrCat("spans[", i, "].expect_bytes"),
                   "must be a non-empty even-length hex string (the target is a kernel binary)");
    c.spans.push_back(std::move(*s));
  }
  if (auto ss = j.find("safe_spans"); ss != j.end() && ss->is_array())
    for (size_t i = 0; i < ss->size(); ++i) {
      const json& e = (*ss)[i];
      std::string p = absl::StrCat("safe_spans[", i, "].");
      synth::SafeSpan s;
      SIE_RETURN_IF_ERROR(r.Str(e, p, "function", &s.function));
      SIE_RETURN_IF_ERROR(r.Int(e, p, "start", &s.start));
      SIE_RETURN_IF_ERROR(r.Int(e, p, "end", &s.end));
      std::string how;
      SIE_RETURN_IF_ERROR(r.Str(e, p, "how", &how, false));
      s.how = how == "manual"           ? synth::SafeSpanHow::kManual
              : how == "whole_function" ? synth::SafeSpanHow::kWholeFunction
                                        : synth::SafeSpanHow::kSlice;
      if (s.end < s.start) return r.Bad(p + "end", "is before start");
      c.safe_spans.push_back(s);
    }
  if (auto w = j.find("warnings"); w != j.end() && w->is_array())
    for (const auto& e : *w)
      if (e.is_string()) c.warnings.push_back(e.get<std::string>());
  return c;
}

absl::StatusOr<SynthesizedConst> ReadConstFile(const fs::path& path) {
  auto text = ReadFile(path);
  if (!text.ok())
    return FailedWithHint(absl::StrCat("cannot read ", path.string()),
                          "check --consts (the directory 'sie synth --out' wrote)");
  return ParseConstJson(*text, path.string());
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
  return absl::NotFoundError(absl::StrCat("unknown constant '", name_or_id, "' in ", dir.string(),
                                          "\nhint: known constants: ", known,
                                          " (see 'sie consts')"));
}

}  // namespace sie::stubgen
