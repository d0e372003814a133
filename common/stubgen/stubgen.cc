#include "common/stubgen/stubgen.h"

#include <climits>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/artifact/const_json.h"
#include "common/artifact/formula.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/status_macros.h"

namespace sie::stubgen {
namespace fs = std::filesystem;
using artifact::CriticalSpan;
using artifact::SpanKind;

namespace {

// An int64 as a C literal (INT64_MIN has no literal of its own).
std::string I64Lit(int64_t v) {
  if (v == INT64_MIN) return "(-9223372036854775807LL - 1)";
  return absl::StrCat(v, "LL");
}

std::string SieRegEnum(const std::string& preg) {
  return absl::StrCat("SIE_REG_", absl::AsciiStrToUpper(preg));
}

// C expression for the address of a memory operand, from the probed frame's registers.
std::string AddrExpr(const artifact::MemOperand& m) {
  std::string e = "(__u64)(";
  if (!m.base.empty()) absl::StrAppend(&e, "ctx->", m.base, " + ");
  if (!m.index.empty()) absl::StrAppend(&e, "ctx->", m.index, " * ", m.scale, " + ");
  absl::StrAppend(&e, "(", m.disp, "LL))");
  return e;
}

absl::Status SpanError(const artifact::SynthesizedConst& c, size_t i, absl::string_view what,
                       absl::string_view hint) {
  return InvalidWithHint(absl::StrCat(c.name, " span ", i, " (", c.spans[i].function, "+0x",
                                      absl::Hex(c.spans[i].probe_offset), "): ", what),
                         hint);
}

}  // namespace

std::string LowerIdent(const std::string& name) {
  std::string s;
  for (char ch : name) s += absl::ascii_isalnum(ch) ? absl::ascii_tolower(ch) : '_';
  if (s.empty() || absl::ascii_isdigit(s[0])) s = "c_" + s;
  return s;
}

namespace {

// A span's formulas, parsed and checked against what its kind can do.
struct SpanFormulas {
  artifact::Formula formula;            // in V and X
  std::optional<artifact::Formula> xr;  // recompute: X from the register R at the probe
};

// The instructions whose flags the stub recomputes (sie_set_flags_op), by flags_op.
const char* FlagsOpEnum(const std::string& op) {
  if (op == "add") return "SIE_FLAGS_OP_ADD";
  if (op == "test" || op == "and") return "SIE_FLAGS_OP_AND";
  if (op == "sub" || op == "cmp" || op.empty()) return "SIE_FLAGS_OP_SUB";
  return nullptr;
}

// An instruction that writes its register (add/sub/and): the probe sees the result, so X (the
// register before it) is recovered through x_from_probe, and the result is written again.
bool FlagsOpWrites(const std::string& op) { return op == "add" || op == "sub" || op == "and"; }

absl::Status CheckFlagsSpan(const artifact::SynthesizedConst& c, size_t i, SpanFormulas* p) {
  const CriticalSpan& s = c.spans[i];
  if (s.flags_op == "pred") {
    if (!artifact::PredicateFlagsOperands(s.flags_cc))
      return SpanError(c, i,
                       absl::StrCat("a predicate flags span feeds `", s.flags_cc,
                                    "`, whose flags the stub cannot set"),
                       "re-run sie synth");
    return absl::OkStatus();
  }
  if (!FlagsOpEnum(s.flags_op))
    return ErrorWithHint(absl::StatusCode::kUnimplemented,
                         absl::StrCat(c.name, " span ", i, ": flags of '", s.flags_op,
                                      "' cannot be recomputed (sie_set_flags_op emulates "
                                      "cmp, sub, add, test and and)"),
                         "re-run sie synth: it emits flags spans of those instructions only");
  if (!FlagsOpWrites(s.flags_op)) return absl::OkStatus();
  const bool saved = s.x_from_probe.empty() && s.save_offset && s.save_reg == s.target_reg;
  if (s.target_reg.empty() || (s.x_from_probe.empty() && !saved))
    return SpanError(c, i,
                     absl::StrCat("a flags span of '", s.flags_op,
                                  "' needs its register (target_reg) and x_from_probe (the "
                                  "register before the instruction, from its value R after it) "
                                  "or save_offset (the register saved as it starts)"),
                     "re-run sie synth");
  if (saved) return absl::OkStatus();
  auto xr = artifact::Formula::Parse(s.x_from_probe, "R");
  if (!xr.ok()) return SpanError(c, i, xr.status().message(), "fix x_from_probe in const.json");
  p->xr = std::move(*xr);
  return absl::OkStatus();
}

absl::StatusOr<SpanFormulas> CheckSpan(const artifact::SynthesizedConst& c, size_t i) {
  const CriticalSpan& s = c.spans[i];
  const bool recompute = s.kind == SpanKind::kRecompute;
  // The span's further inputs are variables of its formula (and only those it declares).
  std::string vars = "VX";
  for (const artifact::SpanInput& in : s.inputs) vars += in.name;
  if (!s.inputs.empty() && s.kind == SpanKind::kFlags)
    return SpanError(c, i, "a flags span reads no further inputs",
                     "fix the span's inputs in const.json");
  auto formula = artifact::Formula::Parse(s.formula, vars);
  if (!formula.ok())
    return SpanError(c, i, formula.status().message(), "fix the span's formula in const.json");
  SpanFormulas p{std::move(*formula), std::nullopt};
  if (recompute && !s.x_from_probe.empty()) {
    auto f2 = artifact::Formula::Parse(s.x_from_probe, "R");
    if (!f2.ok()) return SpanError(c, i, f2.status().message(), "fix x_from_probe in const.json");
    p.xr = std::move(*f2);
  }
  for (const std::string* reg : {&s.target_reg, &s.save_reg})
    if (*reg == "sp" &&
        (reg == &s.save_reg ? recompute : s.kind != SpanKind::kFlags && s.kind != SpanKind::kMem))
      return SpanError(c, i, "the stack pointer cannot be rewritten", "");
  if (recompute && !p.xr && !s.save_offset)
    return SpanError(c, i, "a recompute span without x_from_probe needs save_offset",
                     "re-run sie synth");
  for (const artifact::SpanInput& in : s.inputs)
    if (in.save_offset && (in.reg.empty() || in.reg == "sp"))
      return SpanError(c, i, absl::StrCat("input ", in.name, " is saved from no usable register"),
                       "fix the span's inputs in const.json");
  if (s.kind == SpanKind::kFlags) RETURN_IF_ERROR(CheckFlagsSpan(c, i, &p));
  const bool uses_x = p.formula.Uses('X');
  if (uses_x && s.kind == SpanKind::kReg && s.save_reg.empty())
    return SpanError(c, i,
                     "a reg formula in X needs save_reg (the register holding X at the probe)",
                     "re-run sie synth; a hand-written const.json must name save_reg");
  const artifact::MemOperand* mem = s.target_mem ? &*s.target_mem : nullptr;
  if (uses_x && mem && mem->base == "ip" &&
      (s.kind == SpanKind::kMem || (s.kind == SpanKind::kFlags && s.target_reg.empty())))
    return SpanError(c, i, "X of a RIP-relative operand is not supported",
                     "use a formula in V only");
  return p;
}

// The save slot of each saved value of a span, by formula variable ('X', 'Y', ...).
using SaveSlots = std::map<char, int>;

// Statements taking saved value `var` (one use), or counting the hit as NOSAVE and leaving.
std::string TakeSaved(char var, int slot, size_t i) {
  return absl::StrFormat(
      "\tif (!sie_take_saved(%d, &%c)) {\n\t\tsie_count(%d, SIE_STAT_NOSAVE);\n"
      "\t\treturn 0;\n\t}\n",
      slot, var, i);
}

// Statements setting the span's further inputs (Y, Z, W): read at the probe, or taken from
// the task's save slot.
std::string ReadInputs(const CriticalSpan& s, const SaveSlots& slots, size_t i) {
  std::string out;
  for (const artifact::SpanInput& in : s.inputs) {
    if (in.save_offset)
      absl::StrAppend(&out, TakeSaved(in.name[0], slots.at(in.name[0]), i));
    else if (in.mem)
      absl::StrAppend(&out, "\t", in.name, " = sie_read_mem(", AddrExpr(*in.mem), ", ", in.width,
                      ", &bad);\n");
    else
      absl::StrAppend(&out, "\t", in.name, " = ctx->", in.reg, ";\n");
  }
  return out;
}

// The declarations of the further inputs ("Y = 0, "), empty for a span without any.
std::string DeclareInputs(const CriticalSpan& s) {
  std::string out;
  for (const artifact::SpanInput& in : s.inputs) absl::StrAppend(&out, in.name, " = 0, ");
  return out;
}

// Statements setting X, the instruction's input, per kind (`slot`: the save slot, recompute).
std::string ReadX(const CriticalSpan& s, const SpanFormulas& p, const SaveSlots& slots, size_t i) {
  switch (s.kind) {
    case SpanKind::kReg:
      // X is the instruction's input, still intact at the probe in save_reg (the target
      // register already holds the result, so reading X there would be wrong).
      return p.formula.Uses('X') ? absl::StrCat("\tX = ctx->", s.save_reg, ";\n") : "";
    case SpanKind::kMem:
      return p.formula.Uses('X') ? absl::StrCat("\tX = sie_read_mem(", AddrExpr(*s.target_mem),
                                                ", ", s.width, ", &bad);\n")
                                 : "";
    case SpanKind::kFlags:
      // X is the compared operand (the lhs of `cmp $imm, operand`); after add/sub/and the
      // register holds the result, X is recovered from it.
      if (p.xr) return absl::StrCat("\tR = ctx->", s.target_reg, ";\n\tX = ", p.xr->EmitC(), ";\n");
      if (slots.count('X')) return TakeSaved('X', slots.at('X'), i);  // overwritten: saved
      if (!s.target_reg.empty()) return absl::StrCat("\tX = ctx->", s.target_reg, ";\n");
      return absl::StrCat("\tX = sie_read_mem(", AddrExpr(*s.target_mem), ", ", s.width,
                          ", &bad);\n");
    case SpanKind::kRecompute:
      if (p.xr) return absl::StrCat("\tR = ctx->", s.save_reg, ";\n\tX = ", p.xr->EmitC(), ";\n");
      return TakeSaved('X', slots.at('X'), i);
  }
  return "";
}

// The statement writing the new value nv, per kind.
std::string WriteNew(const CriticalSpan& s) {
  switch (s.kind) {
    case SpanKind::kReg:
    case SpanKind::kRecompute:
      return absl::StrFormat("\tret = sie_set_reg(ctx, %s, nv, %d);\n", SieRegEnum(s.target_reg),
                             s.width);
    case SpanKind::kMem:
      // The cell id is the attachment's cookie: the loader registers the cell (the kernel
      // computes the address from the descriptor) and attaches with that cookie.
      return "\tret = sie_write_cell(ctx, (__u32)bpf_get_attach_cookie(ctx), nv);\n";
    case SpanKind::kFlags:
      if (s.flags_op == "pred") {
        // nv is the consumer's decision: flags under which flags_cc holds, or does not.
        const artifact::PredicateOperands o = *artifact::PredicateFlagsOperands(s.flags_cc);
        return absl::StrFormat(
            "\tret = sie_set_flags_op(ctx, SIE_FLAGS_OP_SUB, nv ? %d : %d, nv ? %d : %d, 1);\n",
            o.lhs_true, o.lhs_false, o.rhs_true, o.rhs_false);
      }
      if (s.flags_op.empty() || s.flags_op == "cmp")
        return absl::StrFormat("\tret = sie_set_flags(ctx, X, nv, %d);\n", s.width);
      if (!FlagsOpWrites(s.flags_op))
        return absl::StrFormat("\tret = sie_set_flags_op(ctx, %s, X, nv, %d);\n",
                               FlagsOpEnum(s.flags_op), s.width);
      // The instruction with the new immediate: its flags, then its result.
      return absl::StrFormat(
          "\tret = sie_set_flags_op(ctx, %s, X, nv, %d);\n"
          "\tif (!ret)\n\t\tret = sie_set_reg(ctx, %s, X %s nv, %d);\n",
          FlagsOpEnum(s.flags_op), s.width, SieRegEnum(s.target_reg),
          s.flags_op == "add"   ? "+"
          : s.flags_op == "sub" ? "-"
                                : "&",
          s.width);
  }
  return "";
}

// A path token span's apply writes only in the frame its mark probe saw (the bypass path,
// which joins at the probe, keeps its own state).
std::string TakeMark(const CriticalSpan& s, size_t i) {
  if (!s.mark_offset) return "";
  return absl::StrFormat(
      "\tif (!sie_take_mark(%d, ctx)) {\n\t\tsie_count(%d, SIE_STAT_BYPASS);\n"
      "\t\treturn 0;\n\t}\n",
      i, i);
}

// The save programs of span i, one per save point (artifact::SavePointsOf): each saves the
// low `width` bytes of its registers in the task's slots.
std::string SavePrograms(const CriticalSpan& s, size_t i, const SaveSlots& slots) {
  std::string body;
  const std::vector<artifact::SavePoint> points = artifact::SavePointsOf(s);
  for (size_t k = 0; k < points.size(); ++k) {
    absl::StrAppendFormat(&body, "SEC(\"kprobe\")\nint SIE_PROG(%s)(struct pt_regs *ctx)\n{\n",
                          artifact::SaveProgramName(static_cast<int>(i), static_cast<int>(k)));
    for (const artifact::SavedValue& v : points[k].values) {
      absl::StrAppendFormat(&body, "\t/* %s+0x%x: %c is %s%s */\n", s.function, points[k].offset,
                            v.var, v.reg,
                            v.width < 8 ? absl::StrCat(" (", v.width, " bytes)") : "");
      std::string val = absl::StrCat("ctx->", v.reg);
      if (v.width < 8) val = absl::StrFormat("(%s & 0x%xULL)", val, (1ULL << (8 * v.width)) - 1);
      absl::StrAppendFormat(&body, "\tsie_save(%d, %d, %s);\n", i, slots.at(v.var), val);
    }
    absl::StrAppend(&body, "\treturn 0;\n}\n\n");
  }
  return body;
}

// The programs of span i: its save programs (recompute without x_from_probe, saved inputs),
// its mark program (path token) and its apply.
std::string SpanPrograms(const CriticalSpan& s, size_t i, const SpanFormulas& p,
                         const SaveSlots& slots, const std::string& decide_fn,
                         const std::string& up) {
  std::string body;
  absl::StrAppendFormat(&body,
                        "/*\n * span %d: %s+0x%x, kind %s, width %d, formula \"%s\"\n"
                        " * CS [0x%x, 0x%x)%s%s\n */\n",
                        i, s.function, s.probe_offset, artifact::SpanKindName(s.kind), s.width,
                        s.formula, s.cs_start, s.cs_end, s.source.empty() ? "" : ", ", s.source);
  absl::StrAppend(&body, SavePrograms(s, i, slots));
  if (s.mark_offset)
    absl::StrAppendFormat(&body,
                          "SEC(\"kprobe\")\nint SIE_PROG(sie_mark_%d)(struct pt_regs *ctx)\n{\n"
                          "\t/* %s+0x%x, the CS's start: this frame takes the CS */\n"
                          "\tsie_mark(%d, ctx);\n\treturn 0;\n}\n\n",
                          i, s.function, *s.mark_offset, i);
  absl::StrAppendFormat(&body,
                        "SEC(\"kprobe\")\nint SIE_PROG(sie_apply_%d)(struct pt_regs *ctx)\n{\n"
                        "\t__u64 V, X = 0, %sR = 0, nv;\n\t__s64 value;\n\tint bad = 0, ret;\n\n"
                        "\tsie_count(%d, SIE_STAT_HITS);\n"
                        "%s"
                        "\tif (!sie_gate(&value)) {\n\t\tsie_count(%d, SIE_STAT_GATED);\n"
                        "\t\treturn 0;\n\t}\n"
                        "\tvalue = %s(ctx, %d, value);\n"
                        "\tif (value < SIE_%s_MIN || value > SIE_%s_MAX ||\n"
                        "\t    (SIE_%s_POW2 && (value & (value - 1)))) {\n"
                        "\t\tsie_count(%d, SIE_STAT_REJECTED);\n\t\treturn 0;\n\t}\n"
                        "\tV = (__u64)value;\n",
                        i, DeclareInputs(s), i, TakeMark(s, i), i, decide_fn, i, up, up, up, i);
  absl::StrAppend(&body, ReadX(s, p, slots, i), ReadInputs(s, slots, i),
                  "\tnv = ", p.formula.EmitC(), ";\n\t(void)R;\n");
  absl::StrAppendFormat(&body,
                        "\tif (bad) {\n\t\tsie_count(%d, SIE_STAT_REJECTED);\n"
                        "\t\treturn 0;\n\t}\n",
                        i);
  absl::StrAppend(&body, WriteNew(s));
  absl::StrAppendFormat(&body,
                        "\tsie_count(%d, ret ? SIE_STAT_FAILED : SIE_STAT_APPLIED);\n"
                        "\treturn 0;\n}\n\n",
                        i);
  return body;
}

std::string StubSource(const artifact::SynthesizedConst& c, const StubFiles& f,
                       const std::string& progs) {
  std::string src;
  absl::StrAppendFormat(&src,
                        "/* SPDX-License-Identifier: GPL-2.0 */\n"
                        "/* %s. Stub of constant %s (id %d), from const.json. */\n"
                        "#define SIE_NSPANS %d\n#define SIE_NSAVES %d\n"
                        "#include \"sie/stub.bpf.h\"\n#include \"%s\"\n\n",
                        kStubBanner, c.name, c.id, c.spans.size(), f.nsaves > 0 ? f.nsaves : 1,
                        f.header_name);
  absl::StrAppendFormat(&src,
                        "/*\n * The default decision: the value set with `sie set` (a fixed-value "
                        "policy).\n * A policy object that defines %s replaces it at link time.\n"
                        " */\n__attribute__((weak)) __noinline __s64 %s(struct pt_regs *ctx, "
                        "__u32 span, __s64 value)\n{\n\treturn value;\n}\n\n",
                        f.decide_fn, f.decide_fn);
  return src + progs;
}

std::string PolicyHeader(const artifact::SynthesizedConst& c, const StubFiles& f,
                         const std::string& up) {
  std::string h;
  absl::StrAppendFormat(
      &h,
      "/* SPDX-License-Identifier: GPL-2.0 */\n/* %s. Constant %s: %s */\n"
      "#ifndef SIE_CONST_%s_H\n#define SIE_CONST_%s_H\n\n"
      "#define SIE_%s_ID %d\n#define SIE_%s_MIN %s\n#define SIE_%s_MAX %s\n"
      "/* 1: only powers of two in [MIN, MAX] are values (const.json pow2_only) */\n"
      "#define SIE_%s_POW2 %d\n#define SIE_%s_NSPANS %d\n\n",
      kStubBanner, c.name, c.description, up, up, up, c.id, up, I64Lit(c.range_min), up,
      I64Lit(c.range_max), up, c.pow2_only ? 1 : 0, up, c.spans.size());
  absl::StrAppendFormat(&h,
                        "/*\n * Decision hook, called at every active hit of span `span` with "
                        "the value set by\n * `sie set` (or the task's value in per-task mode). "
                        "Returns the value to apply;\n * a result outside [MIN, MAX] (or not a "
                        "power of two when POW2) is not\n * applied (counted as rejected). Define "
                        "it\n * (non-weak, __noinline) in a "
                        "policy object to replace the default.\n */\n"
                        "__s64 %s(struct pt_regs *ctx, __u32 span, __s64 value);\n\n#endif\n",
                        f.decide_fn);
  return h;
}

}  // namespace

absl::StatusOr<StubFiles> GenerateStub(const artifact::SynthesizedConst& c) {
  if (c.spans.empty())
    return InvalidWithHint(absl::StrCat(c.name, " has no critical spans"),
                           "synth found no place where the constant enters the kernel's state");
  if (c.spans.size() > 64)
    return InvalidWithHint(absl::StrCat(c.name, " has ", c.spans.size(), " spans (max 64)"),
                           "split the constant's spec");
  StubFiles f;
  const std::string l = LowerIdent(c.name);
  const std::string up = absl::AsciiStrToUpper(l);
  f.decide_fn = "sie_decide_" + l;
  f.header_name = l + ".h";
  std::string progs;
  for (size_t i = 0; i < c.spans.size(); ++i) {
    auto p = CheckSpan(c, i);
    if (!p.ok()) return p.status();
    SaveSlots slots;
    const std::vector<artifact::SavePoint> points = artifact::SavePointsOf(c.spans[i]);
    for (size_t k = 0; k < points.size(); ++k) {
      f.save_programs.emplace_back(static_cast<int>(i), static_cast<int>(k));
      for (const artifact::SavedValue& v : points[k].values) slots[v.var] = f.nsaves++;
    }
    if (f.nsaves > 64)
      return InvalidWithHint(absl::StrCat(c.name, " saves ", f.nsaves, " values (max 64)"),
                             "split the constant's spec");
    progs += SpanPrograms(c.spans[i], i, *p, slots, f.decide_fn, up);
  }
  f.source = StubSource(c, f, progs);
  f.header = PolicyHeader(c, f, up);
  return f;
}

absl::Status WriteStub(const fs::path& const_dir, const artifact::SynthesizedConst& c) {
  auto f = GenerateStub(c);
  if (!f.ok()) return f.status();
  for (const auto& [name, text] :
       {std::pair<std::string, const std::string*>{"stub.bpf.c", &f->source},
        {f->header_name, &f->header}}) {
    auto old = ReadFile(const_dir / name);
    if (old.ok() && *old == *text) continue;
    absl::Status st = WriteFileAtomic(const_dir / name, *text);
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace sie::stubgen
