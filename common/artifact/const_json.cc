#include "common/artifact/const_json.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/artifact/formula.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/status_macros.h"

namespace sie::artifact {
namespace fs = std::filesystem;
using artifact::CriticalSpan;
using artifact::SynthesizedConst;
using nlohmann::json;

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

absl::StatusOr<artifact::MemOperand> ParseMem(const Reader& r, const json& j,
                                              const std::string& path) {
  if (!j.is_object()) return r.Bad(path, "must be a memory operand object");
  artifact::MemOperand m;
  RETURN_IF_ERROR(r.Str(j, path + ".", "base", &m.base, false));
  RETURN_IF_ERROR(r.Str(j, path + ".", "index", &m.index, false));
  RETURN_IF_ERROR(r.Int(j, path + ".", "scale", &m.scale, false));
  RETURN_IF_ERROR(r.Int(j, path + ".", "disp", &m.disp, false));
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

// One of a span's further inputs: {"name": "Y", "reg": "si"} or {"name": "Z", "mem": {...},
// "width": 4}.
absl::StatusOr<artifact::SpanInput> ParseInput(const Reader& r, const json& j,
                                               const std::string& p) {
  if (!j.is_object()) return r.Bad(p, "must be an object");
  artifact::SpanInput in;
  RETURN_IF_ERROR(r.Str(j, p + ".", "name", &in.name));
  if (in.name.size() != 1 || artifact::kExtraInputs.find(in.name[0]) == absl::string_view::npos)
    return r.Bad(p + ".name", absl::StrCat("must be one of ", artifact::kExtraInputs));
  RETURN_IF_ERROR(r.Str(j, p + ".", "reg", &in.reg, false));
  if (auto m = j.find("mem"); m != j.end() && !m->is_null()) {
    auto mem = ParseMem(r, *m, p + ".mem");
    if (!mem.ok()) return mem.status();
    if (mem->base == "ip") return r.Bad(p + ".mem", "must not be RIP-relative");
    in.mem = *mem;
  }
  if (in.reg.empty() == !in.mem) return r.Bad(p, "must name exactly one of reg and mem");
  if (!in.reg.empty()) {
    std::string n = NormalizeReg(in.reg);
    if (n.empty() || n == "sp" || n == "ip") return r.Bad(p + ".reg", "names an unusable register");
    in.reg = n;
  }
  RETURN_IF_ERROR(r.Int(j, p + ".", "width", &in.width, false));
  if (in.width != 1 && in.width != 2 && in.width != 4 && in.width != 8)
    return r.Bad(p + ".width", "must be 1, 2, 4 or 8");
  if (auto so = j.find("save_offset"); so != j.end() && !so->is_null()) {
    int64_t off = 0;
    RETURN_IF_ERROR(r.Int(j, p + ".", "save_offset", &off));
    if (off < 0) return r.Bad(p + ".save_offset", "must not be negative");
    if (in.reg.empty()) return r.Bad(p + ".save_offset", "saves a register: name reg, not mem");
    in.save_offset = static_cast<uint64_t>(off);
  }
  return in;
}

absl::Status ParseInputs(const Reader& r, const json& j, const std::string& pre, CriticalSpan* s) {
  auto v = j.find("inputs");
  if (v == j.end() || v->is_null()) return absl::OkStatus();
  if (!v->is_array()) return r.Bad(pre + "inputs", "must be an array");
  for (size_t i = 0; i < v->size(); ++i) {
    auto in = ParseInput(r, (*v)[i], absl::StrCat(pre, "inputs[", i, "]"));
    if (!in.ok()) return in.status();
    for (const artifact::SpanInput& o : s->inputs)
      if (o.name == in->name)
        return r.Bad(pre + "inputs", absl::StrCat("names ", o.name, " twice"));
    s->inputs.push_back(*in);
  }
  if (!s->inputs.empty() && s->kind == artifact::SpanKind::kFlags)
    return r.Bad(pre + "inputs", "are not read by flags spans");
  // A saved input is taken inside the CS, before the apply probe reads it.
  for (size_t i = 0; i < s->inputs.size(); ++i)
    if (const auto& so = s->inputs[i].save_offset;
        so && (*so < s->cs_start || *so >= s->probe_offset))
      return r.Bad(absl::StrCat(pre, "inputs[", i, "].save_offset"),
                   "must lie in [cs_start, probe_offset)");
  return absl::OkStatus();
}

// The path token: "path_token": true with "mark_offset", the CS's first instruction (the mark
// must run on every path through the CS and on none that bypasses it).
absl::Status ParsePathToken(const Reader& r, const json& j, const std::string& pre,
                            CriticalSpan* s) {
  auto t = j.find("path_token");
  const bool token = t != j.end() && !t->is_null();
  if (token && !t->is_boolean()) return r.Bad(pre + "path_token", "must be true or false");
  auto m = r.Get(j, pre, "mark_offset", false);
  if (!m.ok()) return m.status();
  if (!token || !t->get<bool>()) {
    if (*m) return r.Bad(pre + "mark_offset", "is set without \"path_token\": true");
    return absl::OkStatus();
  }
  uint64_t off = 0;
  RETURN_IF_ERROR(r.Int(j, pre, "mark_offset", &off));
  if (off != s->cs_start || s->cs_start >= s->cs_end || s->cs_end > s->probe_offset)
    return r.Bad(pre + "mark_offset",
                 absl::StrFormat("must be the CS's first instruction cs_start (0x%x), before "
                                 "cs_end (0x%x) and the probe (0x%x); it is 0x%x",
                                 s->cs_start, s->cs_end, s->probe_offset, off));
  s->mark_offset = off;
  return absl::OkStatus();
}

absl::Status CheckHexMasked(const Reader& r, const std::string& field, const std::string& hex) {
  if (hex.size() % 2) return r.Bad(field, "must be an even-length hex string");
  for (size_t k = 0; k < hex.size(); k += 2) {
    const bool masked = hex[k] == '?' && hex[k + 1] == '?';
    if (!masked && !(absl::ascii_isxdigit(hex[k]) && absl::ascii_isxdigit(hex[k + 1])))
      return r.Bad(field,
                   "must be hex ('?"
                   "?' for a byte that may differ)");
  }
  return absl::OkStatus();
}

absl::StatusOr<CodeReloc> ParseCodeReloc(const Reader& r, const json& j, const std::string& p,
                                         const CodeRange& range) {
  if (!j.is_object()) return r.Bad(p, "must be an object");
  CodeReloc c;
  const std::string pre = p + ".";
  RETURN_IF_ERROR(r.Int(j, pre, "offset", &c.offset));
  RETURN_IF_ERROR(r.Int(j, pre, "width", &c.width));
  if (c.width != 1 && c.width != 2 && c.width != 4 && c.width != 8)
    return r.Bad(pre + "width", "must be 1, 2, 4 or 8");
  RETURN_IF_ERROR(r.Str(j, pre, "kind", &c.kind));
  if (std::none_of(std::begin(kCodeRelocKinds), std::end(kCodeRelocKinds),
                   [&](const char* k) { return c.kind == k; }))
    return r.Bad(pre + "kind", "must be pc, abs, kaslr or kaslr_pc");
  const bool kaslr = absl::StartsWith(c.kind, "kaslr");
  RETURN_IF_ERROR(r.Str(j, pre, "symbol", &c.symbol, !kaslr));
  if (!kaslr && c.symbol.empty()) return r.Bad(pre + "symbol", "is empty");
  if (auto sec = j.find("section"); sec != j.end() && !sec->is_null()) {
    if (!sec->is_boolean()) return r.Bad(pre + "section", "must be true or false");
    c.section = sec->get<bool>();
  }
  RETURN_IF_ERROR(r.Int(j, pre, "addend", &c.addend, false));
  if (kaslr && range.link_address == 0)
    return r.Bad(pre + "kind", "needs the range's link_address");
  RETURN_IF_ERROR(r.Int(j, pre, "value", &c.value, kaslr));
  if (c.offset < range.offset || c.offset + c.width > range.end())
    return r.Bad(pre + "offset", "must lie inside the range");
  for (uint64_t k = c.offset - range.offset; k < c.offset - range.offset + c.width; ++k)
    if (range.bytes.compare(2 * k, 2, "??") != 0)
      return r.Bad(pre + "offset",
                   "must point at '?"
                   "?' bytes (a relocated field is not compared literally)");
  return c;
}

// "code": [{"offset": N, "bytes": "hex", "link_address": N, "relocs": [...]}], ascending and
// disjoint. Absent in older files.
absl::StatusOr<std::vector<CodeRange>> ParseCode(const Reader& r, const json& j,
                                                 const std::string& pre) {
  std::vector<CodeRange> out;
  auto v = j.find("code");
  if (v == j.end() || v->is_null()) return out;
  if (!v->is_array()) return r.Bad(pre + "code", "must be an array of code ranges");
  for (size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    const std::string p = absl::StrCat(pre, "code[", i, "]");
    if (!e.is_object()) return r.Bad(p, "must be an object");
    CodeRange c;
    RETURN_IF_ERROR(r.Int(e, p + ".", "offset", &c.offset));
    RETURN_IF_ERROR(r.Str(e, p + ".", "bytes", &c.bytes));
    if (c.bytes.empty()) return r.Bad(p + ".bytes", "is empty");
    RETURN_IF_ERROR(CheckHexMasked(r, p + ".bytes", c.bytes));
    RETURN_IF_ERROR(r.Int(e, p + ".", "link_address", &c.link_address, false));
    if (!out.empty() && c.offset < out.back().end())
      return r.Bad(p + ".offset", "must follow the previous range (ascending, disjoint)");
    if (auto rl = e.find("relocs"); rl != e.end() && !rl->is_null()) {
      if (!rl->is_array()) return r.Bad(p + ".relocs", "must be an array");
      for (size_t k = 0; k < rl->size(); ++k) {
        auto cr = ParseCodeReloc(r, (*rl)[k], absl::StrCat(p, ".relocs[", k, "]"), c);
        if (!cr.ok()) return cr.status();
        c.relocs.push_back(std::move(*cr));
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

json CodeToJson(const std::vector<CodeRange>& code) {
  json out = json::array();
  for (const CodeRange& c : code) {
    json e{{"offset", c.offset}, {"bytes", c.bytes}};
    if (c.link_address) e["link_address"] = c.link_address;
    if (!c.relocs.empty()) {
      json rl = json::array();
      for (const CodeReloc& x : c.relocs) {
        json y{{"offset", x.offset}, {"width", x.width}, {"kind", x.kind}};
        if (!x.symbol.empty()) y["symbol"] = x.symbol;
        if (x.section) y["section"] = true;
        if (x.addend) y["addend"] = x.addend;
        if (absl::StartsWith(x.kind, "kaslr")) y["value"] = x.value;
        rl.push_back(y);
      }
      e["relocs"] = rl;
    }
    out.push_back(e);
  }
  return out;
}

absl::StatusOr<CriticalSpan> ParseSpan(const Reader& r, const json& j, const std::string& p) {
  if (!j.is_object()) return r.Bad(p, "must be an object");
  CriticalSpan s;
  std::string pre = p + ".";
  RETURN_IF_ERROR(r.Str(j, pre, "function", &s.function));
  if (s.function.empty()) return r.Bad(pre + "function", "is empty");
  RETURN_IF_ERROR(r.Int(j, pre, "cs_start", &s.cs_start));
  RETURN_IF_ERROR(r.Int(j, pre, "cs_end", &s.cs_end));
  RETURN_IF_ERROR(r.Int(j, pre, "probe_offset", &s.probe_offset));
  if (auto c = j.find("candidates"); c != j.end() && !c->is_null()) {
    if (!c->is_array()) return r.Bad(pre + "candidates", "must be an array of offsets");
    for (const auto& e : *c) {
      if (!e.is_number_unsigned() && !(e.is_number_integer() && e.get<int64_t>() >= 0))
        return r.Bad(pre + "candidates", "must hold non-negative integers");
      s.candidates.push_back(e.get<uint64_t>());
    }
  }
  if (auto w = j.find("jump_windows"); w != j.end() && !w->is_null()) {
    auto bad = [&] { return r.Bad(pre + "jump_windows", "must be an array of [offset, limit]"); };
    if (!w->is_array()) return bad();
    s.jump_windows.emplace();
    for (const auto& e : *w) {
      if (!e.is_array() || e.size() != 2 || !e[0].is_number_unsigned() ||
          !e[1].is_number_unsigned() || e[1].get<uint64_t>() < 5 || e[1].get<uint64_t>() > 32)
        return bad();
      s.jump_windows->push_back({e[0].get<uint64_t>(), e[1].get<int>()});
    }
  }
  std::string kind;
  RETURN_IF_ERROR(r.Str(j, pre, "kind", &kind));
  static const std::map<std::string, artifact::SpanKind> kinds = {
      {"reg", artifact::SpanKind::kReg},
      {"mem", artifact::SpanKind::kMem},
      {"flags", artifact::SpanKind::kFlags},
      {"recompute", artifact::SpanKind::kRecompute}};
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
  RETURN_IF_ERROR(r.Int(j, pre, "width", &s.width));
  if (s.width != 1 && s.width != 2 && s.width != 4 && s.width != 8)
    return r.Bad(pre + "width", "must be 1, 2, 4 or 8");
  RETURN_IF_ERROR(r.Str(j, pre, "formula", &s.formula));
  uint64_t save = 0;
  auto so = r.Get(j, pre, "save_offset", false);
  if (!so.ok()) return so.status();
  if (*so) {
    RETURN_IF_ERROR(r.Int(j, pre, "save_offset", &save));
    s.save_offset = save;
  }
  RETURN_IF_ERROR(r.Str(j, pre, "save_reg", &s.save_reg, false));
  if (!s.save_reg.empty()) {
    std::string n = NormalizeReg(s.save_reg);
    if (n.empty()) return r.Bad(pre + "save_reg", "names an unknown register");
    s.save_reg = n;
  }
  RETURN_IF_ERROR(r.Str(j, pre, "flags_cc", &s.flags_cc, false));
  RETURN_IF_ERROR(r.Str(j, pre, "flags_op", &s.flags_op, false));
  RETURN_IF_ERROR(r.Str(j, pre, "x_from_probe", &s.x_from_probe, false));
  RETURN_IF_ERROR(ParseInputs(r, j, pre, &s));
  RETURN_IF_ERROR(ParsePathToken(r, j, pre, &s));
  RETURN_IF_ERROR(r.Str(j, pre, "source", &s.source, false));
  RETURN_IF_ERROR(r.Str(j, pre, "expect_bytes", &s.expect_bytes));
  // Empty only for a plain object (no shipped binary to check): ParseConstJson enforces that.
  if (s.expect_bytes.size() % 2)
    return r.Bad(pre + "expect_bytes", "must be an even-length hex string");
  for (char c : s.expect_bytes)
    if (!absl::ascii_isxdigit(c) && c != '?')
      return r.Bad(pre + "expect_bytes",
                   "must be hex ('?"
                   "?' for a byte that may differ)");
  auto code = ParseCode(r, j, pre);
  if (!code.ok()) return code.status();
  s.code = std::move(*code);
  if (auto v = j.find("vars"); v != j.end() && v->is_array())
    for (const auto& e : *v)
      if (e.is_object())
        s.vars.push_back(
            {e.value("name", ""), e.value("type", ""), Location::Parse(e.value("location", ""))});
  // Kind-specific requirements.
  switch (s.kind) {
    case artifact::SpanKind::kReg:
      if (s.target_reg.empty()) return r.Bad(pre + "target", "must name a register (kind reg)");
      break;
    case artifact::SpanKind::kMem:
      if (!s.target_mem) return r.Bad(pre + "target", "must be a memory operand (kind mem)");
      break;
    case artifact::SpanKind::kFlags:
      if (s.target_reg.empty() && !s.target_mem)
        return r.Bad(pre + "target", "must name the compared operand (kind flags)");
      break;
    case artifact::SpanKind::kRecompute:
      if (s.target_reg.empty()) return r.Bad(pre + "target", "must name a register (recompute)");
      if (s.save_reg.empty()) return r.Bad(pre + "save_reg", "is missing (kind recompute)");
      if (!s.save_offset && s.x_from_probe.empty())
        return r.Bad(pre + "save_offset", "is missing (kind recompute)");
      break;
  }
  return s;
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
  if (s.jump_windows) {
    j["jump_windows"] = json::array();
    for (const auto& w : *s.jump_windows) j["jump_windows"].push_back({w.offset, w.limit});
  }
  j["kind"] = SpanKindName(s.kind);
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
  // kRecompute and kFlags of add/sub: X from the register's value R at the probe.
  if ((s.kind == SpanKind::kRecompute || s.kind == SpanKind::kFlags) && !s.x_from_probe.empty())
    j["x_from_probe"] = s.x_from_probe;
  if (!s.inputs.empty()) {
    json ins = json::array();
    for (const artifact::SpanInput& in : s.inputs) {
      json e{{"name", in.name}};
      if (in.mem)
        e["mem"] = MemToJson(*in.mem);
      else
        e["reg"] = in.reg;
      e["width"] = in.width;
      if (in.save_offset) e["save_offset"] = *in.save_offset;
      ins.push_back(e);
    }
    j["inputs"] = ins;
  }
  if (s.mark_offset) {  // optional: older readers never see it on spans without a token
    j["path_token"] = true;
    j["mark_offset"] = *s.mark_offset;
  }
  if (s.kind == SpanKind::kFlags) {
    j["flags_cc"] = s.flags_cc;
    if (!s.flags_op.empty()) j["flags_op"] = s.flags_op;
  }
  j["source"] = s.source;
  j["expect_bytes"] = s.expect_bytes;
  if (!s.code.empty()) j["code"] = CodeToJson(s.code);
  json vars = json::array();
  for (const auto& v : s.vars)
    vars.push_back({{"name", v.name}, {"type", v.type}, {"location", v.location.ToString()}});
  j["vars"] = vars;
  return j;
}

// "bx+1344" / "sp-8" -> ("bx", 1344) / ("sp", -8).
std::optional<std::pair<std::string, int64_t>> RegOffset(absl::string_view s) {
  size_t k = s.find_first_of("+-");
  if (k == absl::string_view::npos || k == 0) return std::nullopt;
  uint64_t off = 0;
  std::string reg(s.substr(0, k));
  if (NormalizeReg(reg) != reg || !absl::SimpleAtoi(s.substr(k + 1), &off) ||
      !absl::ascii_isdigit(s[k + 1]) || off > uint64_t{INT64_MAX})
    return std::nullopt;
  return std::make_pair(reg, s[k] == '-' ? -static_cast<int64_t>(off) : static_cast<int64_t>(off));
}

std::string RegPlus(const std::string& reg, int64_t k) {
  return absl::StrCat(reg, k < 0 ? "-" : "+", k < 0 ? -static_cast<uint64_t>(k) : k);
}

}  // namespace

Location Location::Parse(absl::string_view text) {
  if (text.empty()) return {};
  absl::string_view rest = text;
  auto reg_only = [&](Kind k) -> Location {
    std::string r(rest);
    if (NormalizeReg(r) == r) return {k, r, 0, ""};
    return {Kind::kOther, "", 0, std::string(text)};
  };
  auto reg_offset = [&](Kind k) -> Location {
    if (auto ro = RegOffset(rest)) return {k, ro->first, ro->second, ""};
    return {Kind::kOther, "", 0, std::string(text)};
  };
  if (absl::ConsumePrefix(&rest, "reg:")) return reg_only(Kind::kReg);
  if (absl::ConsumePrefix(&rest, "entry:")) return reg_only(Kind::kEntry);
  if (absl::ConsumePrefix(&rest, "breg:")) return reg_offset(Kind::kMem);
  if (absl::ConsumePrefix(&rest, "val:")) return reg_offset(Kind::kValue);
  return {Kind::kOther, "", 0, std::string(text)};
}

std::string Location::ToString() const {
  switch (kind) {
    case Kind::kNone:
      return "";
    case Kind::kReg:
      return "reg:" + reg;
    case Kind::kEntry:
      return "entry:" + reg;
    case Kind::kMem:
      return "breg:" + RegPlus(reg, offset);
    case Kind::kValue:
      return "val:" + RegPlus(reg, offset);
    case Kind::kOther:
      return text;
  }
  return text;
}

const char* SafeSpanHowName(SafeSpanHow h) {
  switch (h) {
    case SafeSpanHow::kSlice:
      return "slice";
    case SafeSpanHow::kManual:
      return "manual";
    case SafeSpanHow::kWholeFunction:
      return "whole_function";
    case SafeSpanHow::kCaller:
      return "caller";
  }
  return "?";
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
  if (c.pow2_only) j["pow2_only"] = true;
  j["target"] = {{"binary", c.target.binary},
                 {"kernel_release", c.target.kernel_release},
                 {"build_id", c.target.build_id}};
  std::vector<const CriticalSpan*> spans;
  for (const auto& s : c.spans) spans.push_back(&s);
  std::stable_sort(spans.begin(), spans.end(), [](const auto* a, const auto* b) {
    return std::tie(a->function, a->cs_start, b->cs_end, a->probe_offset) <
           std::tie(b->function, b->cs_start, a->cs_end, b->probe_offset);
  });
  j["spans"] = json::array();
  for (const auto* s : spans) j["spans"].push_back(SpanToJson(*s));
  std::vector<SafeSpan> ss = c.safe_spans;
  std::stable_sort(ss.begin(), ss.end(), [](const SafeSpan& a, const SafeSpan& b) {
    return std::tie(a.function, a.start, a.end) < std::tie(b.function, b.start, b.end);
  });
  j["safe_spans"] = json::array();
  for (const auto& s : ss) {
    json e{{"function", s.function},
           {"start", s.start},
           {"end", s.end},
           {"how", SafeSpanHowName(s.how)}};
    if (!s.code.empty()) e["code"] = CodeToJson(s.code);
    j["safe_spans"].push_back(e);
  }
  if (!c.safe_spans_unbounded.empty()) j["safe_spans_unbounded"] = c.safe_spans_unbounded;
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
  RETURN_IF_ERROR(r.Int(j, "", "format_version", &version));
  if (version != kConstFormatVersion)
    return InvalidWithHint(
        absl::StrCat(origin, ": format_version ", version,
                     " is not supported (this sie reads version ", kConstFormatVersion, ")"),
        "regenerate it with this sie's 'sie synth'");
  SynthesizedConst c;
  RETURN_IF_ERROR(r.Int(j, "", "id", &c.id));
  RETURN_IF_ERROR(r.Str(j, "", "name", &c.name));
  if (c.name.empty()) return r.Bad("name", "is empty");
  for (char ch : c.name)
    if (!absl::ascii_isalnum(ch) && ch != '_')
      return r.Bad("name", "may only hold letters, digits and '_'");
  RETURN_IF_ERROR(r.Str(j, "", "description", &c.description, false));
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
  if (auto p = j.find("pow2_only"); p != j.end() && !p->is_null()) {
    if (!p->is_boolean()) return r.Bad("pow2_only", "must be true or false");
    c.pow2_only = p->get<bool>();
    if (c.pow2_only && c.range_min < 1)
      return r.Bad("range", "must start at 1 or more when pow2_only is set");
  }
  auto target = r.Get(j, "", "target");
  if (!target.ok()) return target.status();
  if (!(*target)->is_object()) return r.Bad("target", "must be an object");
  RETURN_IF_ERROR(r.Str(**target, "target.", "binary", &c.target.binary));
  RETURN_IF_ERROR(r.Str(**target, "target.", "kernel_release", &c.target.kernel_release));
  RETURN_IF_ERROR(r.Str(**target, "target.", "build_id", &c.target.build_id, false));
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
      artifact::SafeSpan s;
      RETURN_IF_ERROR(r.Str(e, p, "function", &s.function));
      RETURN_IF_ERROR(r.Int(e, p, "start", &s.start));
      RETURN_IF_ERROR(r.Int(e, p, "end", &s.end));
      std::string how;
      RETURN_IF_ERROR(r.Str(e, p, "how", &how, false));
      s.how = how == "manual"           ? artifact::SafeSpanHow::kManual
              : how == "whole_function" ? artifact::SafeSpanHow::kWholeFunction
              : how == "caller"         ? artifact::SafeSpanHow::kCaller
                                        : artifact::SafeSpanHow::kSlice;
      if (!how.empty() && how != "manual" && how != "whole_function" && how != "caller" &&
          how != "slice")
        return r.Bad(p + "how", "must be slice, manual, whole_function or caller");
      if (s.end < s.start) return r.Bad(p + "end", "is before start");
      auto code = ParseCode(r, e, p);
      if (!code.ok()) return code.status();
      s.code = std::move(*code);
      c.safe_spans.push_back(s);
    }
  RETURN_IF_ERROR(r.Str(j, "", "safe_spans_unbounded", &c.safe_spans_unbounded, false));
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

}  // namespace sie::artifact
