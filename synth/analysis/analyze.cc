#include "synth/analysis/analyze.h"

#include <elf.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "synth/analysis/align.h"
#include "synth/analysis/dataflow.h"
#include "synth/analysis/derive.h"
#include "synth/analysis/disasm.h"
#include "synth/analysis/dwarf_info.h"
#include "synth/analysis/elf_file.h"
#include "synth/analysis/semantics.h"
#include "synth/analysis/slice.h"
#include "synth/refusal.h"

namespace sie::synth {
namespace {

using namespace analysis;  // NOLINT: this file is the stage orchestrator

std::string Where(const Function& fn, uint64_t off) {
  return absl::StrFormat("%s+0x%x", fn.name, off);
}

// A final refusal of the span at fn+off, of class `cls` (see synth/refusal.h).
absl::Status Refuse(const Function& fn, uint64_t off, absl::string_view why, Refusal cls) {
  return Classified(absl::FailedPreconditionError(absl::StrCat(
                        Where(fn, off), ": ", why,
                        "\nhint: scope the constant out of this function (spec `functions`) or "
                        "restrict its value range")),
                    cls);
}

// A refusal that a larger region may resolve (an input copied just before the hunk, a result
// finished just after it): the driver grows the region over common neighbours and retries.
absl::Status Growable(const absl::Status& st) {
  return KeepClass(absl::StatusCode::kInvalidArgument, st.message(), st);
}

MemOperand ToMem(const Operand& o) {
  MemOperand m;
  m.base = RegFamily(o.base);
  if (o.base == "rip") m.base = "ip";
  m.index = RegFamily(o.index);
  m.scale = o.scale;
  m.disp = o.disp;
  return m;
}

bool IsAllocCall(const std::string& sym) {
  static const std::regex re(
      "(^|_)(k[mvz]?alloc|kcalloc|kvmalloc|vmalloc|vzalloc|alloc_pages|"
      "kmem_cache_alloc|krealloc|kmalloc_array)");
  return std::regex_search(sym, re);
}

struct Ctx {
  const Function* fn[3];
  std::vector<int64_t> vs;
  AnalysisResult* res;
};

struct Range {
  int b[3], e[3];  // per build [begin, end) instruction indices
};

// The uninterpreted constants (inputs) of the expressions.
z3::expr_vector Inputs(z3::context& c, const std::vector<z3::expr>& a) {
  z3::expr_vector out(c);
  std::set<unsigned> seen;
  std::function<void(const z3::expr&)> walk = [&](const z3::expr& x) {
    if (!x.is_app() || !seen.insert(x.id()).second) return;
    if (x.num_args() == 0 && x.decl().decl_kind() == Z3_OP_UNINTERPRETED) {
      out.push_back(x);
      return;
    }
    for (unsigned i = 0; i < x.num_args(); ++i) walk(x.arg(i));
  };
  for (const z3::expr& e : a) walk(e);
  return out;
}

// Proves a[0] == a[1] == a[2] for every input.
bool AllEqual(z3::context& c, const std::vector<z3::expr>& a) {
  // Outputs that differ almost always differ on a few concrete inputs: evaluating them takes
  // microseconds where the solver needs seconds to find a witness over a multiplier.
  z3::expr_vector in = Inputs(c, a);
  for (uint64_t sample : {uint64_t{0x12345678}, uint64_t{0xfedcba9876543210}, uint64_t{1000}}) {
    z3::expr_vector to(c);
    for (unsigned i = 0; i < in.size(); ++i)
      to.push_back(c.bv_val(sample * (i + 1), in[i].get_sort().bv_size()));
    z3::expr v0 = z3::expr(a[0]).substitute(in, to).simplify();
    for (size_t k = 1; k < a.size(); ++k) {
      z3::expr vk = z3::expr(a[k]).substitute(in, to).simplify();
      if (v0.is_numeral() && vk.is_numeral() && !z3::eq(v0, vk)) return false;
    }
  }
  z3::solver s(c);
  s.add(a[0] != a[1] || a[0] != a[2]);
  return s.check() == z3::unsat;
}

// One region (the same instructions' counterparts in the three builds) executed symbolically;
// each output that differs between the builds becomes a span with a proved formula.
struct RegionAnalysis {
  const Ctx& cx;
  const Range& r;
  const Function& fb;
  z3::context ctx;
  std::set<std::string> zext;
  std::vector<std::unique_ptr<SymState>> st;
  uint64_t cs_start = 0, cs_end = 0;
  int end_idx = 0;
  std::vector<CriticalSpan> out;

  RegionAnalysis(const Ctx& c, const Range& range) : cx(c), r(range), fb(*c.fn[0]) {}

  absl::StatusOr<std::vector<CriticalSpan>> Run() {
    if (auto s = Execute(); !s.ok()) return s;
    if (auto s = Registers(); !s.ok()) return s;
    if (auto s = Stores(); !s.ok()) return s;
    if (auto s = Flags(); !s.ok()) return s;
    return std::move(out);
  }

  absl::Status Execute() {
    cs_start = fb.insns[r.b[0]].offset;
    if (r.b[0] == r.e[0])
      return Growable(Refuse(fb, cs_start,
                             "the shipped build has no instruction for the constant here (e.g. x*1 "
                             "folded away) but other builds do: no span to probe",
                             Refusal::kShapeChange));
    cs_end = fb.insns[r.e[0] - 1].offset + fb.insns[r.e[0] - 1].size;
    end_idx = r.e[0];
    zext = Zext32At(fb, r.b[0]);
    for (int k = 0; k < 3; ++k) {
      st.push_back(std::make_unique<SymState>(ctx, zext));
      for (int i = r.b[k]; i < r.e[k]; ++i) {
        if (!st[k]->Step(cx.fn[k]->insns[i]))
          return Classified(absl::InvalidArgumentError(absl::StrCat(
                                cx.fn[k]->name, " (V=", cx.vs[k], "): cannot model instruction `",
                                st[k]->unsupported(), "` in the span")),
                            Refusal::kUnmodelledInstruction);
      }
    }
    return absl::OkStatus();
  }

  // The one input X the outputs `o` are computed from (nullopt: none), or why there is none.
  absl::StatusOr<std::optional<z3::expr>> InputOf(const std::vector<z3::expr>& o) {
    std::set<std::string> in;
    for (const z3::expr& e : o) {
      auto f = FreeInputs(e);
      in.insert(f.begin(), f.end());
    }
    if (in.empty()) return std::optional<z3::expr>();
    // What the span computes from, named as a user reads the code: registers as at the span's
    // entry, memory as the operand loaded inside the span.
    std::vector<std::string> regs, mems;
    for (const std::string& n : in) {
      if (n.rfind("in:", 0) == 0)
        regs.push_back(n.substr(3));
      else
        mems.push_back(n.substr(0, n.rfind(':')).substr(4));
    }
    std::string code = absl::StrCat("`", fb.insns[r.b[0]].Text(), "`");
    for (int i = r.b[0] + 1; i < r.e[0] && i < r.b[0] + 4; ++i)
      absl::StrAppend(&code, "; `", fb.insns[i].Text(), "`");
    if (r.e[0] - r.b[0] > 4) absl::StrAppend(&code, " ...");
    if (in.size() > 1)
      return Classified(
          absl::InvalidArgumentError(absl::StrCat(
              "is computed by ", code, " from ", in.size(), " live inputs (",
              absl::StrJoin(regs, ", "), regs.empty() || mems.empty() ? "" : ", ",
              mems.empty() ? "" : absl::StrCat("memory ", absl::StrJoin(mems, ", ")),
              ") together with the constant: a formula has one input X, so a recompute of two "
              "inputs cannot be expressed")),
          Refusal::kTwoInputs);
    std::string n = *in.begin();
    if (n.rfind("in:", 0) != 0)
      return Classified(
          absl::InvalidArgumentError(
              absl::StrCat("is computed by ", code, " from a value loaded inside the span (memory ",
                           mems[0], "): X must be a register live at the span's start")),
          Refusal::kInputInSpan);
    std::string fam = n.substr(3);
    return std::optional<z3::expr>(ctx.bv_const(n.c_str(), zext.count(fam) ? 32 : 64));
  }

  // Places the probe after the span (locations `locs` must survive up to it) or refuses.
  absl::StatusOr<CriticalSpan> Finish(CriticalSpan sp, const std::vector<Loc>& locs) {
    sp.function = fb.name;
    sp.cs_start = cs_start;
    sp.cs_end = cs_end;
    if (end_idx >= static_cast<int>(fb.insns.size()))
      return Refuse(fb, cs_start, "the span ends the function: no probe location after it",
                    Refusal::kUnsafe);
    sp.probe_offset = fb.insns[end_idx].offset;
    if (fb.branch_targets.count(sp.probe_offset))
      return Refuse(fb, cs_start,
                    absl::StrFormat("the first instruction after the span (+0x%x) is also reached "
                                    "by a jump that bypasses the span: a probe there would "
                                    "rewrite state on the other path too",
                                    sp.probe_offset),
                    Refusal::kJoinBypass);
    ProbeWindow w = ProbeCandidates(fb, end_idx, locs);
    sp.candidates = w.candidates;
    if (w.first_reader >= 0) {
      const Insn& rd = fb.insns[w.first_reader];
      if (rd.is_call && IsAllocCall(rd.call_target) && !sp.target_reg.empty() &&
          ArgRegs().count(sp.target_reg)) {
        return Refuse(
            fb, cs_start,
            absl::StrCat("the constant is an allocation size (argument of ", rd.call_target,
                         "): changing it at run time would corrupt memory"),
            Refusal::kUnsafe);
      }
      if (sp.kind == SpanKind::kFlags) sp.flags_cc = rd.mnemonic;
    }
    return sp;
  }

  absl::Status Registers() {
    // Registers written in the shipped build and used after the span.
    for (const std::string& f : st[0]->written()) {
      if (!LiveAt(fb, end_idx, Loc{f})) continue;
      std::vector<z3::expr> o;
      for (int k = 0; k < 3; ++k) o.push_back(st[k]->Reg(f));
      if (AllEqual(ctx, o)) continue;
      auto x = InputOf(o);
      if (!x.ok())
        return Growable(Refuse(fb, cs_start,
                               absl::StrCat("register ", f, " ", x.status().message()),
                               RefusalOf(x.status())));
      int width = st[0]->LastWriteWidth(f);
      // Only the bits the code reads afterwards must agree ("cmp ax,dx" after "add eax,64" in
      // one build and "sub ax,-128" in another): fit on those, write the span's full width.
      int fit_width = width;
      if (int used = ReadWidthAt(fb, end_idx, f); used > 0 && used < width) {
        fit_width = used;
        for (z3::expr& e : o) e = z3::zext(e.extract(used * 8 - 1, 0), 64 - used * 8);
        if (AllEqual(ctx, o)) continue;
      }
      auto fit = FitOutput(ctx, o, *x, cx.vs, fit_width * 8,
                           x->has_value() && zext.count(x->value().decl().name().str().substr(3)));
      if (!fit.ok())
        return Classified(absl::InvalidArgumentError(absl::StrCat(
                              Where(fb, cs_start), ": register ", f, " after `",
                              fb.insns[r.b[0]].Text(), "`", r.e[0] - r.b[0] > 1 ? " ..." : "",
                              ": transformation outside the family: ", fit.status().message())),
                          Refusal::kFormulaFamily);
      CriticalSpan sp;
      sp.kind = SpanKind::kReg;
      sp.target_reg = f;
      sp.width = width;
      sp.formula = fit->formula;
      std::vector<Loc> locs = {Loc{f}};
      if (fit->uses_x) {
        std::string xf = x->value().decl().name().str().substr(3);
        sp.save_reg = xf;
        if (xf == f || st[0]->written().count(xf)) {
          sp.kind = SpanKind::kRecompute;
          sp.save_offset = cs_start;
          if (fit->invertible && xf == f) sp.x_from_probe = fit->x_from_output;
        } else {
          locs.push_back(Loc{xf});  // X is read at the probe: it must still be intact
        }
      }
      cx.res->range_min = std::max(cx.res->range_min, fit->vmin);
      cx.res->range_max = std::min(cx.res->range_max, fit->vmax);
      auto done = Finish(sp, locs);
      if (!done.ok()) return done.status();
      out.push_back(*done);
    }
    return absl::OkStatus();
  }

  absl::Status Stores() {
    // Stores.
    std::map<std::string, size_t> last_store;
    for (size_t i = 0; i < st[0]->stores().size(); ++i) last_store[st[0]->stores()[i].key] = i;
    for (auto& [key, i] : last_store) {
      const SymStore& s0 = st[0]->stores()[i];
      std::vector<z3::expr> o = {s0.value};
      for (int k = 1; k < 3; ++k) {
        const SymStore* found = nullptr;
        for (const SymStore& s : st[k]->stores())
          if (s.key == key) found = &s;
        if (!found)
          return Refuse(fb, cs_start,
                        absl::StrCat("the build with V=", cx.vs[k], " does not store to ", key,
                                     ": memory layout depends on the constant"),
                        Refusal::kLayout);
        o.push_back(found->value);
      }
      if (AllEqual(ctx, o)) continue;
      auto x = InputOf(o);
      if (!x.ok())
        return Growable(Refuse(fb, cs_start, absl::StrCat("stored value ", x.status().message()),
                               RefusalOf(x.status())));
      auto fit = FitOutput(ctx, o, *x, cx.vs, s0.width * 8, false);
      if (!fit.ok())
        return Classified(absl::InvalidArgumentError(absl::StrCat(
                              Where(fb, cs_start), ": store `", fb.insns[r.b[0]].Text(),
                              "`: transformation outside the family: ", fit.status().message())),
                          Refusal::kFormulaFamily);
      CriticalSpan sp;
      sp.kind = SpanKind::kMem;
      sp.target_mem = ToMem(s0.op);
      sp.width = s0.width;
      sp.formula = fit->formula;
      if (fit->uses_x) sp.save_reg = x->value().decl().name().str().substr(3);
      auto done = Finish(sp, {Loc{"", s0.op}});
      if (!done.ok()) return done.status();
      out.push_back(*done);
    }
    return absl::OkStatus();
  }

  absl::Status Flags() {
    // Flags consumed after the span.
    if (st[0]->flags() && LiveAt(fb, end_idx, Loc{"flags"})) {
      bool all = st[1]->flags() && st[2]->flags();
      if (!all)
        return Refuse(fb, cs_start, "flags are set in one build only", Refusal::kShapeChange);
      std::vector<z3::expr> a, b;
      for (int k = 0; k < 3; ++k) {
        a.push_back(st[k]->flags()->a);
        b.push_back(st[k]->flags()->b);
      }
      bool same_a = AllEqual(ctx, a), same_b = AllEqual(ctx, b);
      bool same_kind = st[0]->flags()->kind == st[1]->flags()->kind &&
                       st[0]->flags()->kind == st[2]->flags()->kind;
      if (!(same_a && same_b && same_kind)) {
        const Insn& fi = *st[0]->flags()->insn;
        if (!same_kind || !same_a || !(fi.mnemonic == "cmp" || fi.mnemonic == "test"))
          return Refuse(fb, fi.offset,
                        absl::StrCat("the comparison `", fi.Text(),
                                     "` changes shape with the constant (not a compare of an "
                                     "unchanged operand against an immediate)"),
                        Refusal::kShapeChange);
        std::vector<uint64_t> cs;
        for (const z3::expr& e : b) {
          uint64_t v = 0;
          if (!e.simplify().is_numeral_u64(v))
            return Refuse(fb, fi.offset,
                          absl::StrCat("`", fi.Text(), "` compares against a computed value"),
                          Refusal::kShapeChange);
          cs.push_back(v);
        }
        int width = st[0]->flags()->width;
        auto fam = FitFamily(cx.vs, cs, width * 8);
        if (!fam.ok())
          return Classified(absl::InvalidArgumentError(absl::StrCat(
                                Where(fb, fi.offset), ": compare `", fi.Text(),
                                "`: transformation outside the family: ", fam.status().message())),
                            Refusal::kFormulaFamily);
        CriticalSpan sp;
        sp.kind = SpanKind::kFlags;
        sp.width = width;
        sp.formula = fam->formula;
        sp.flags_op = fi.mnemonic;
        const Operand& lhs = fi.ops[0];
        if (lhs.type == OpType::kReg)
          sp.target_reg = RegFamily(lhs.reg);
        else
          sp.target_mem = ToMem(lhs);
        std::vector<Loc> locs = {Loc{"flags"}};
        if (lhs.type == OpType::kReg) locs.push_back(Loc{sp.target_reg});
        cx.res->range_min = std::max(cx.res->range_min, fam->vmin);
        cx.res->range_max = std::min(cx.res->range_max, fam->vmax);
        auto done = Finish(sp, locs);
        if (!done.ok()) return done.status();
        out.push_back(*done);
      }
    }
    return absl::OkStatus();
  }
};

absl::StatusOr<std::vector<CriticalSpan>> AnalyzeRegion(const Ctx& cx, const Range& r) {
  return RegionAnalysis(cx, r).Run();
}

absl::StatusOr<std::vector<CriticalSpan>> AnalyzeHunk(const Ctx& cx, const Hunk& h) {
  const Function& fb = *cx.fn[0];
  Range whole;
  whole.b[0] = h.base_begin;
  whole.e[0] = h.base_end;
  for (int k = 1; k < 3; ++k) {
    whole.b[k] = h.var_begin[k - 1];
    whole.e[k] = h.var_end[k - 1];
  }
  uint64_t at =
      h.base_begin < static_cast<int>(fb.insns.size()) ? fb.insns[h.base_begin].offset : fb.size;
  // Value contracts: control flow and the stack frame must not depend on the constant.
  for (int k = 0; k < 3; ++k) {
    for (int i = whole.b[k]; i < whole.e[k]; ++i) {
      const Insn& in = cx.fn[k]->insns[i];
      if (in.is_branch)
        return Refuse(
            fb, at,
            absl::StrCat("control flow depends on the constant (V=", cx.vs[k], " has `", in.Text(),
                         "` at +0x", absl::Hex(in.offset), " where other builds differ)"),
            Refusal::kControlFlow);
      if (in.writes.count("sp") && in.mnemonic != "push" && in.mnemonic != "pop")
        return Refuse(fb, at,
                      absl::StrCat("stack frame size depends on the constant (`", in.Text(), "`)"),
                      Refusal::kControlFlow);
    }
  }
  int len = whole.e[0] - whole.b[0];
  bool same_shape = len > 0 && whole.e[1] - whole.b[1] == len && whole.e[2] - whole.b[2] == len;
  for (int i = 0; same_shape && i < len; ++i)
    for (int k = 1; k < 3; ++k)
      same_shape &= cx.fn[k]->insns[whole.b[k] + i].shape == fb.insns[whole.b[0] + i].shape;
  if (same_shape) {
    // Same instructions, different operands: each differing instruction is its own span.
    std::vector<CriticalSpan> spans;
    bool ok = true;
    for (int i = 0; i < len && ok; ++i) {
      const Insn& b0 = fb.insns[whole.b[0] + i];
      const Insn& b1 = cx.fn[1]->insns[whole.b[1] + i];
      const Insn& b2 = cx.fn[2]->insns[whole.b[2] + i];
      if (b0.sig == b1.sig && b0.sig == b2.sig) continue;
      for (size_t j = 0; j < b0.ops.size(); ++j) {
        if (b0.ops[j].type != OpType::kMem || b0.mnemonic == "lea") continue;
        if (b0.ops[j].disp != b1.ops[j].disp || b0.ops[j].disp != b2.ops[j].disp ||
            b0.ops[j].scale != b1.ops[j].scale || b0.ops[j].scale != b2.ops[j].scale) {
          bool stack = b0.ops[j].base == "rsp" || b0.ops[j].base == "rbp";
          return Refuse(fb, b0.offset,
                        absl::StrCat("`", b0.Text(), "`: ",
                                     stack ? "stack layout"
                                           : "a memory offset (struct field or "
                                             "array index)",
                                     " depends on the constant"),
                        Refusal::kLayout);
        }
      }
      Range one;
      for (int k = 0; k < 3; ++k) one.b[k] = whole.b[k] + i, one.e[k] = whole.b[k] + i + 1;
      auto r = AnalyzeRegion(cx, one);
      if (!r.ok()) {
        if (r.status().code() == absl::StatusCode::kFailedPrecondition) return r.status();
        ok = false;  // e.g. a magic-number constant: retry the hunk as one region
        break;
      }
      spans.insert(spans.end(), r->begin(), r->end());
    }
    if (ok) return spans;
  }
  return AnalyzeRegion(cx, whole);
}

void DataInitializers(const std::vector<std::unique_ptr<ElfFile>>& elfs,
                      const std::vector<int64_t>& vs, AnalysisResult* res) {
  const ElfFile& b = *elfs[0];
  for (const ElfSection& s : b.sections()) {
    if (!(s.flags & SHF_ALLOC) || (s.flags & SHF_EXECINSTR) || s.type != SHT_PROGBITS) continue;
    if (s.name.rfind("__", 0) == 0 || s.name == ".altinstr_replacement") continue;
    const ElfSection* other[2] = {nullptr, nullptr};
    for (int k = 1; k < 3; ++k)
      for (const ElfSection& t : elfs[k]->sections())
        if (t.name == s.name) other[k - 1] = &t;
    if (!other[0] || !other[1]) continue;
    if (other[0]->data.size() != s.data.size() || other[1]->data.size() != s.data.size()) {
      res->warnings.push_back(absl::StrCat("section ", s.name,
                                           " changes size with the constant (data layout "
                                           "depends on it); not tuned"));
      continue;
    }
    size_t i = 0;
    while (i < s.data.size()) {
      if (s.data[i] == other[0]->data[i] && s.data[i] == other[1]->data[i]) {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < s.data.size() &&
             (s.data[j] != other[0]->data[j] || s.data[j] != other[1]->data[j]))
        ++j;
      // The cell: the object's element size guess (4 for int arrays, 8 for a single long),
      // widened until it covers the first differing bytes.
      const ElfSymbol* cover = nullptr;
      for (const ElfSymbol& sym : b.symbols())
        if (sym.shndx == s.index && sym.type == STT_OBJECT && i >= sym.value &&
            i < sym.value + sym.size)
          cover = &sym;
      int w = 1;
      if (cover) w = cover->size == 8 ? 8 : cover->size % 4 == 0 ? 4 : cover->size % 2 == 0 ? 2 : 1;
      uint64_t base_off = cover ? cover->value : 0;
      uint64_t start = base_off + (i - base_off) / w * w;
      while (w < 8 && start + w < j) w *= 2, start = base_off + (i - base_off) / w * w;
      DataInitializer di;
      di.symbol = s.name;
      di.offset = start;
      for (const ElfSymbol& sym : b.symbols())
        if (sym.shndx == s.index && sym.type == STT_OBJECT && start >= sym.value &&
            start < sym.value + sym.size) {
          di.symbol = sym.name;
          di.offset = start - sym.value;
        }
      di.width = w;
      for (int k = 0; k < 3; ++k) {
        const std::string& d = k == 0 ? s.data : other[k - 1]->data;
        uint64_t v = 0;
        for (int q = 0; q < w && start + q < d.size(); ++q)
          v |= static_cast<uint64_t>(static_cast<uint8_t>(d[start + q])) << (8 * q);
        di.values.push_back(static_cast<int64_t>(v));
      }
      res->data_initializers.push_back(di);
      i = start + w;
    }
  }
}

// The refusals of one object's functions; the first one's class is the object's.
struct ObjectErrors {
  std::vector<std::string> msgs;
  Refusal first = Refusal::kUnclassified;
  void Add(const absl::Status& s) {
    if (msgs.empty()) first = RefusalOf(s);
    msgs.push_back(std::string(s.message()));
  }
};

// A refusal that growing the region may resolve (see Growable).
bool MayGrow(const absl::StatusOr<std::vector<CriticalSpan>>& spans) {
  return !spans.ok() && spans.status().code() != absl::StatusCode::kFailedPrecondition;
}

// The hunks of one function, each analysed and, when the analysis cannot explain it, grown
// over the instructions common to all builds around it and retried: the next hunk a few
// instructions on (a magic divisor loaded by "movabs", the common "mul", then a build-specific
// shift), one instruction after it (the result finished by a common "sub rax,rdx") or one
// before it (the input copied by a common "mov eax,edi"), and last the previous region if that
// was explained on its own (a quotient in one hunk, its product with V/7 in the next: only
// together are they a remainder). Never over a branch, call, return or an instruction a jump
// reaches.
class FunctionAnalysis {
 public:
  FunctionAnalysis(const Ctx& cx, std::vector<Hunk> hunks, ObjectErrors* errors)
      : cx_(cx), fb_(*cx.fn[0]), hunks_(std::move(hunks)), errors_(errors) {}

  void Run() {
    for (hi_ = 0; hi_ < hunks_.size(); ++hi_) {
      try {
        AnalyzeAt();
      } catch (const z3::exception& e) {
        errors_->Add(absl::InternalError(absl::StrCat(fb_.name, ": z3: ", e.msg())));
      }
    }
  }

 private:
  void AnalyzeAt() {
    Hunk cur = hunks_[hi_];
    auto spans = AnalyzeHunk(cx_, cur);
    const int prev_end = last_ ? last_->base_end : 0;
    bool took_last = false;
    for (int step = 0; step < 12 && MayGrow(spans); ++step) {
      Hunk g = cur;
      bool merged = MergeNext(cur, &g);
      if (!merged && !Widen(cur, prev_end, &took_last, &g)) break;
      auto again = AnalyzeHunk(cx_, g);
      if (!again.ok() && again.status().code() == absl::StatusCode::kFailedPrecondition) break;
      if (took_last && g.base_begin == last_->base_begin && again.ok()) {
        cx_.res->spans.resize(cx_.res->spans.size() - last_spans_);  // replaced by the merge
        last_spans_ = 0;
      }
      cur = g;
      if (merged) hunks_[++hi_] = g;
      spans = std::move(again);
    }
    // The region analyzed last (grown or not) and the spans it produced (0: refused).
    last_ = cur;
    last_spans_ = 0;
    if (!spans.ok()) {
      errors_->Add(spans.status());
      return;
    }
    last_spans_ = spans->size();
    cx_.res->spans.insert(cx_.res->spans.end(), spans->begin(), spans->end());
  }

  // `cur` up to the end of the next hunk when only a few branch-free instructions separate them.
  bool MergeNext(const Hunk& cur, Hunk* g) const {
    if (hi_ + 1 >= hunks_.size() || hunks_[hi_ + 1].base_begin - cur.base_end > 3) return false;
    const Hunk& next = hunks_[hi_ + 1];
    for (int i = cur.base_end; i < next.base_begin; ++i)
      if (fb_.insns[i].is_branch) return false;
    g->base_end = next.base_end;
    g->var_end = next.var_end;
    return true;
  }

  // `cur` one common instruction longer at its end or its start, or merged with the previous
  // region; false when none applies.
  bool Widen(const Hunk& cur, int prev_end, bool* took_last, Hunk* g) const {
    int nb = hi_ + 1 < hunks_.size() ? hunks_[hi_ + 1].base_begin : INT32_MAX;
    if (cur.base_end < nb && Common(cur.base_end, cur.var_end[0], cur.var_end[1]) &&
        !fb_.branch_targets.count(fb_.insns[cur.base_end].offset)) {
      ++g->base_end, ++g->var_end[0], ++g->var_end[1];
    } else if (cur.base_begin - 1 >= prev_end &&
               Common(cur.base_begin - 1, cur.var_begin[0] - 1, cur.var_begin[1] - 1) &&
               cur.base_begin < static_cast<int>(fb_.insns.size()) &&
               !fb_.branch_targets.count(fb_.insns[cur.base_begin].offset)) {
      --g->base_begin, --g->var_begin[0], --g->var_begin[1];
    } else if (!*took_last && last_ && last_spans_ > 0 && cur.base_begin - last_->base_end <= 3 &&
               std::none_of(fb_.insns.begin() + last_->base_end, fb_.insns.begin() + cur.base_begin,
                            [](const Insn& in) { return in.is_branch; })) {
      g->base_begin = last_->base_begin;
      g->var_begin = last_->var_begin;
      *took_last = true;
    } else {
      return false;
    }
    return true;
  }

  // Instruction b0 of the base and its counterparts v0, v1 exist and are the same, no branch.
  bool Common(int b0, int v0, int v1) const {
    if (b0 < 0 || v0 < 0 || v1 < 0 || b0 >= static_cast<int>(fb_.insns.size()) ||
        v0 >= static_cast<int>(cx_.fn[1]->insns.size()) ||
        v1 >= static_cast<int>(cx_.fn[2]->insns.size()))
      return false;
    const Insn& in = fb_.insns[b0];
    return !in.is_branch && in.sig == cx_.fn[1]->insns[v0].sig &&
           in.sig == cx_.fn[2]->insns[v1].sig;
  }

  const Ctx& cx_;
  const Function& fb_;
  std::vector<Hunk> hunks_;
  ObjectErrors* errors_;
  size_t hi_ = 0;
  std::optional<Hunk> last_;
  size_t last_spans_ = 0;
};

// The three builds, disassembled (only the `functions:` scope when given).
struct Builds {
  std::vector<std::unique_ptr<ElfFile>> elfs;
  std::vector<std::vector<Function>> fns;
};

absl::StatusOr<Builds> LoadBuilds(const std::vector<VariantObject>& variants,
                                  const std::set<std::string>& only_norm) {
  Builds b;
  for (const auto& v : variants) {
    auto e = ElfFile::Open(v.path);
    if (!e.ok()) return e.status();
    auto f = DisassembleFunctions(**e, only_norm);
    if (!f.ok()) return f.status();
    b.elfs.push_back(std::move(*e));
    b.fns.push_back(std::move(*f));
  }
  for (const auto& want : only_norm) {
    bool found = std::any_of(b.fns[0].begin(), b.fns[0].end(),
                             [&](const Function& f) { return f.norm_name == want; });
    if (!found)
      return Classified(
          absl::NotFoundError(absl::StrCat("function ", want, " not found in ", variants[0].path)),
          Refusal::kSpec);
  }
  return b;
}

// Pairs the base build's functions with the others' by normalized name (n-th occurrence with
// n-th occurrence) and analyses each pair.
void AnalyzeFunctions(const Builds& b, const std::vector<int64_t>& vs, AnalysisResult* res,
                      ObjectErrors* errors) {
  auto index = [](const std::vector<Function>& v) {
    std::map<std::string, std::vector<const Function*>> m;
    for (const Function& f : v) m[f.norm_name].push_back(&f);
    return m;
  };
  auto i1 = index(b.fns[1]), i2 = index(b.fns[2]);
  std::map<std::string, int> seen;
  for (const Function& fb : b.fns[0]) {
    int n = seen[fb.norm_name]++;
    auto x = i1.find(fb.norm_name), y = i2.find(fb.norm_name);
    if (x == i1.end() || y == i2.end() || static_cast<int>(x->second.size()) <= n ||
        static_cast<int>(y->second.size()) <= n) {
      res->warnings.push_back(absl::StrCat("function ", fb.name,
                                           " is missing from some builds (inlining or cloning "
                                           "depends on the constant); not analyzed"));
      continue;
    }
    Ctx cx{{&fb, x->second[n], y->second[n]}, vs, res};
    // Blocks laid out in another order are not a control-flow change: diff in base order.
    std::optional<Function> relaid[2];
    for (int k = 1; k < 3; ++k) {
      relaid[k - 1] = RelayoutLike(fb, *cx.fn[k]);
      if (relaid[k - 1]) cx.fn[k] = &*relaid[k - 1];
    }
    FunctionAnalysis(cx, DiffFunctions(fb, {cx.fn[1], cx.fn[2]}), errors).Run();
  }
  auto i0 = index(b.fns[0]);
  for (int k = 1; k < 3; ++k)
    for (const Function& f : b.fns[k])
      if (!i0.count(f.norm_name))
        res->warnings.push_back(absl::StrCat(
            "function ", f.name, " exists only in the build with V=", vs[k], "; not analyzed"));
}

// After the spans: the range check, safe spans from each span's slice, source lines.
absl::Status Conclude(const Builds& b, const std::vector<VariantObject>& variants,
                      const std::set<std::string>& only, const AnalyzeOptions& opts,
                      const std::vector<int64_t>& vs, AnalysisResult* res) {
  if (res->spans.empty())
    return Classified(absl::NotFoundError(absl::StrCat(
                          "no instruction differs between the builds (V=", absl::StrJoin(vs, ", "),
                          ") in ", only.empty() ? "any function" : absl::StrJoin(only, ", "),
                          res->data_initializers.empty() ? "" : " (only data initializers differ)",
                          "\nhint: check that the constant is used in this object and that the "
                          "variants were really rebuilt with different values")),
                      Refusal::kNoSpan);
  if (res->range_min > opts.range_min || res->range_max < opts.range_max)
    res->warnings.push_back(absl::StrCat("value range narrowed to [", res->range_min, ", ",
                                         res->range_max,
                                         "] (shift counts must stay below the "
                                         "operand width, divisors non-zero)"));
  if (res->range_min > res->range_max)
    return Classified(
        absl::FailedPreconditionError("no value of the requested range is valid for every span"),
        Refusal::kRange);
  // Safe spans from the data-dependency slice of each CS.
  std::map<std::string, const Function*> by_name;
  for (const Function& f : b.fns[0]) by_name[f.name] = &f;
  for (const CriticalSpan& sp : res->spans)
    res->safe_spans.push_back(SliceSafeSpan(*by_name[sp.function], sp));
  res->safe_spans = MergeSafeSpans(res->safe_spans);
  // Source lines and variables (best effort: warn when DWARF is missing).
  if (auto s = AnnotateFromDwarf(variants[0].path, &res->spans); !s.ok())
    res->warnings.push_back(absl::StrCat("DWARF: ", s.message()));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AnalysisResult> AnalyzeVariants(const std::vector<VariantObject>& variants,
                                               const AnalyzeOptions& opts) {
  if (variants.size() != 3)
    return Classified(absl::InvalidArgumentError(absl::StrCat(
                          "need exactly three builds (V1 shipped, V2, V3), got ", variants.size())),
                      Refusal::kSpec);
  std::vector<int64_t> vs;
  for (const auto& v : variants) vs.push_back(v.value);
  if (vs[0] == vs[1] || vs[0] == vs[2] || vs[1] == vs[2])
    return Classified(absl::InvalidArgumentError("the three builds must use distinct values"),
                      Refusal::kSpec);
  std::set<std::string> only(opts.functions.begin(), opts.functions.end());
  std::set<std::string> only_norm;
  for (const auto& f : only) only_norm.insert(NormalizeSymbolName(f));
  auto builds = LoadBuilds(variants, only_norm);
  if (!builds.ok()) return builds.status();
  AnalysisResult res;
  res.range_min = opts.range_min;
  res.range_max = opts.range_max;
  ObjectErrors errors;
  AnalyzeFunctions(*builds, vs, &res, &errors);
  if (!errors.msgs.empty())
    return Classified(absl::FailedPreconditionError(absl::StrJoin(errors.msgs, "\n")),
                      errors.first);
  DataInitializers(builds->elfs, vs, &res);
  if (auto s = Conclude(*builds, variants, only, opts, vs, &res); !s.ok()) return s;
  return res;
}

}  // namespace sie::synth
