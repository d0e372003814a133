// Stages 3-5 on one region of one function: symbolic execution of the three builds' versions
// (semantics), the formula of every output that differs (derive), the probe placed after the
// span (dataflow). Refusals are classified (synth/refusal.h).
#include "synth/analysis/region.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/artifact/formula.h"
#include "common/base/diag.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "synth/analysis/dataflow.h"
#include "synth/analysis/derive.h"
#include "synth/analysis/flags_span.h"
#include "synth/analysis/input_rewrite.h"
#include "synth/analysis/magic_division.h"
#include "synth/analysis/multi_input.h"
#include "synth/analysis/path_token.h"
#include "synth/analysis/predicate_span.h"
#include "synth/analysis/semantics.h"
#include "synth/analysis/span_inputs.h"
#include "synth/refusal.h"

namespace sie::synth::analysis {
namespace {

std::string Where(const Function& fn, uint64_t off) {
  return absl::StrFormat("%s+0x%x", fn.name, off);
}

// A final refusal of the span at fn+off, of class `cls` (see synth/refusal.h).
absl::Status Refuse(const Function& fn, uint64_t off, absl::string_view why, Refusal cls) {
  return Classified(FailedWithHint(absl::StrCat(Where(fn, off), ": ", why),
                                   "scope the constant out of this function (spec `functions`) "
                                   "or restrict its value range"),
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
    // Inputs are bit-vectors but for a flag read as a Boolean (`setcc`/`cmovcc` on flags
    // from before the region).
    for (unsigned i = 0; i < in.size(); ++i)
      to.push_back(in[i].is_bool() ? c.bool_val(((sample >> i) & 1) != 0)
                                   : c.bv_val(sample * (i + 1), in[i].get_sort().bv_size()));
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

// Why an `and`/`test` mask V - 1 fitted from powers of two is no flags span for other values.
std::string MaskNote(const Insn& fi, const FamilyFit& fam) {
  if ((fi.mnemonic == "and" || fi.mnemonic == "test") && fam.formula == "V - 1")
    return "; the mask V - 1 stands for `% V` only when V is a power of two";
  return "";
}

// One region (the same instructions' counterparts in the three builds) executed symbolically;
// each output that differs between the builds becomes a span with a proved formula.
struct RegionAnalysis {
  const HunkContext& cx;
  const Range& r;
  const Function& fb;
  z3::context ctx;
  std::set<std::string> zext;
  std::vector<std::unique_ptr<SymState>> st;
  uint64_t cs_start = 0, cs_end = 0;
  int end_idx = 0;
  std::vector<CriticalSpan> out;

  // multi: outputs of several inputs may become spans (MultiInputSpan). Not when a hunk is
  // split per instruction: a multi-input span there could read, as an input, a result that
  // the previous instruction's span rewrites at the same offset (its probe and this save
  // would race), where the whole hunk is one span (x % V as one span, not x / V then x - q*V).
  bool multi = true;
  // The constant definitions the last successful SymbolicFit read (CriticalSpan::constant_defs).
  std::vector<uint64_t> sym_defs;

  RegionAnalysis(const HunkContext& c, const Range& range, bool allow_multi)
      : cx(c), r(range), fb(*c.fn[0]), multi(allow_multi) {}

  absl::StatusOr<std::vector<CriticalSpan>> Run() {
    if (auto s = Execute(); !s.ok()) return s;
    absl::Status s = Registers();
    if (s.ok()) s = Stores();
    if (s.ok()) s = Flags();
    if (s.ok()) return std::move(out);
    static const std::set<Refusal> kRewritable = {Refusal::kTwoInputs, Refusal::kFormulaFamily,
                                                  Refusal::kShapeChange, Refusal::kInputInSpan};
    if (!multi || !kRewritable.count(RefusalOf(s))) return s;
    auto rw = RewriteAtStart();
    if (!rw.ok()) {
      if (LogEnabled(LogLevel::kTrace))
        Logf(LogLevel::kTrace, "%s: no input rewrite at the start: %s", Where(fb, cs_start),
             rw.status().message());
      return s;
    }
    return rw;
  }

  // The region's live results in each build (registers live after it, read or not, then
  // stores), the same list in every build; nullopt when the builds store to different cells or
  // the flags live on. live_regs: each live register's index in the list.
  std::optional<std::vector<std::vector<z3::expr>>> LiveResults(
      std::map<std::string, size_t>* live_regs) {
    std::optional<std::string> cc;  // the condition the flags' consumer reads
    if (LiveAt(fb, end_idx, Loc{"flags"})) {
      cc = FlagsConsumerCondition();
      if (!cc) return std::nullopt;
    }
    std::map<std::string, size_t> keys[3];
    for (int k = 0; k < 3; ++k)
      for (size_t i = 0; i < st[k]->stores().size(); ++i) keys[k][st[k]->stores()[i].key] = i;
    std::vector<std::vector<z3::expr>> res(3);
    for (int k = 0; k < 3; ++k) {
      if (keys[k].size() != keys[0].size()) return std::nullopt;
      for (const std::string& g : GeneralRegs())
        if (LiveAt(fb, end_idx, Loc{g})) {
          if (k == 0) (*live_regs)[g] = res[k].size();
          res[k].push_back(st[k]->Reg(g));
        }
      for (const auto& [key, i] : keys[0]) {
        auto it = keys[k].find(key);
        if (it == keys[k].end()) return std::nullopt;
        res[k].push_back(st[k]->stores()[it->second].value);
      }
      if (cc) {
        auto c = st[k]->Cond(*cc);
        if (!c) return std::nullopt;
        res[k].push_back(z3::ite(*c, ctx.bv_val(1, 1), ctx.bv_val(0, 1)));
      }
    }
    return res;
  }

  // The condition code of the first reader of the flags after the region (`jle`: "le"), when
  // it is a jcc, setcc or cmovcc reading nothing else of them.
  std::optional<std::string> FlagsConsumerCondition() const {
    for (size_t i = end_idx; i < fb.insns.size(); ++i) {
      const Insn& in = fb.insns[i];
      if (Reads(in, Loc{"flags"})) {
        const std::string cc = ConsumerCc(in.mnemonic);
        if (cc == in.mnemonic || in.mnemonic == "sbb" || in.mnemonic == "adc") return std::nullopt;
        return cc;
      }
      if (Kills(in, Loc{"flags"}) || in.is_branch) return std::nullopt;
    }
    return std::nullopt;
  }

  // The shipped build has no instruction to probe for the constant (`x / 1`), the others
  // compute f(X, V) from an input X first: a probe at the region's start rewrites X (an empty
  // span). Every path into the region must pass the probe, and X's rewritten value must be
  // what the shipped code computes every build's results from (FitInputRewrite). An X still
  // live after the region, which leaves it unchanged, is put back at the region's end by a
  // second span (kRecompute of X saved at the start), listed first: the probes at one
  // address run in span order, so the save reads X before the rewrite. The rewrite then stays
  // at the start (no other candidate): a move back there would register it after the save.
  absl::StatusOr<std::vector<CriticalSpan>> RewriteAtStart() {
    for (int i = r.b[0] + 1; i < r.e[0]; ++i)
      if (fb.branch_targets.count(fb.insns[i].offset))
        return absl::InvalidArgumentError("a jump enters the region past its start");
    std::map<std::string, size_t> live_regs;
    auto results = LiveResults(&live_regs);
    if (!results) return absl::InvalidArgumentError("the results differ in kind");
    auto fit = FitInputRewrite(ctx, *results, live_regs, cx.vs, zext);
    if (!fit.ok()) return fit.status();
    std::vector<CriticalSpan> out;
    if (fit->restore) {
      CriticalSpan back;
      back.kind = SpanKind::kRecompute;
      back.target_reg = back.save_reg = fit->family;
      back.save_offset = cs_start;
      back.width = fit->width;
      back.formula = "X";
      auto put_back = Finish(back, {Loc{fit->family}});
      if (!put_back.ok()) return put_back.status();
      out.push_back(std::move(*put_back));
    }
    CriticalSpan sp;
    sp.kind = SpanKind::kReg;
    sp.target_reg = fit->family;
    sp.save_reg = fit->family;
    sp.width = fit->width;
    sp.formula = fit->formula;
    sp.formula_alternatives = fit->alternatives;
    EndAt empty(this, r.b[0]);  // ends where it starts: cs_end == cs_start
    cx.res->range_min = std::max(cx.res->range_min, fit->vmin);
    cx.res->range_max = std::min(cx.res->range_max, fit->vmax);
    auto rewrite = Finish(sp, {Loc{fit->family}});
    if (!rewrite.ok()) return rewrite.status();
    if (fit->restore) rewrite->candidates = {rewrite->probe_offset};
    out.push_back(std::move(*rewrite));
    return out;
  }

  std::vector<const SymState*> States() const { return {st[0].get(), st[1].get(), st[2].get()}; }

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

  // The one input X, live at the span's start, the outputs `o` are computed from (nullopt:
  // none), or what they are computed from instead (MultiInputSpan's case).
  absl::StatusOr<std::optional<z3::expr>> InputOf(const std::vector<z3::expr>& o) {
    const std::set<std::string> in = FreeInputs(o);
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
      return Classified(absl::InvalidArgumentError(absl::StrCat(
                            "is computed by ", code, " from ", in.size(), " live inputs (",
                            absl::StrJoin(regs, ", "), regs.empty() || mems.empty() ? "" : ", ",
                            mems.empty() ? "" : absl::StrCat("memory ", absl::StrJoin(mems, ", ")),
                            ") together with the constant")),
                        Refusal::kTwoInputs);
    std::string n = *in.begin();
    if (n.rfind("in:", 0) != 0)
      return Classified(absl::InvalidArgumentError(absl::StrCat(
                            "is computed by ", code,
                            " from a value loaded inside the span (memory ", mems[0], ")")),
                        Refusal::kInputInSpan);
    std::string fam = n.substr(3);
    // Its product with a multiplier set before a loop is a division by V: the region grows
    // over the multiply and fits it with that multiplier as a numeral (SymbolicFit).
    if (HoistedMagicProduct(fam))
      return Classified(absl::InvalidArgumentError(
                            absl::StrCat("is computed by ", code, " from ", fam,
                                         ", a product by a multiplier set before the region")),
                        Refusal::kTwoInputs);
    return std::optional<z3::expr>(ctx.bv_const(n.c_str(), zext.count(fam) ? 32 : 64));
  }

  // Register `fam` at the region's start was last written, in the same straight-line block,
  // by a multiply that reads a register a `mov REG, imm` of a magic number sets on every path.
  bool HoistedMagicProduct(const std::string& fam) const {
    for (int i = r.b[0] - 1; i >= 0; --i) {
      const Insn& in = fb.insns[i];
      if (in.is_branch || fb.branch_targets.count(fb.insns[i + 1].offset)) return false;
      if (!in.writes.count(fam)) continue;
      if (in.mnemonic != "imul" && in.mnemonic != "mul") return false;
      for (const std::string& g : in.reads) {
        const int d = g == "flags" ? -1 : ConstantDefAt(fb, i, g);
        if (d >= 0 && MagicNumeral(fb.insns[d])) return true;
      }
      return false;
    }
    return false;
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
    // An empty span (RewriteAtStart) is bypassed by no path: a jump to it runs the probe too.
    if (cs_end > cs_start && fb.branch_targets.count(sp.probe_offset)) {
      // A jump bypassing the span joins at the probe: a path token separates the paths.
      if (absl::Status t = CheckPathToken(fb, r.b[0], end_idx); !t.ok())
        return Refuse(fb, cs_start,
                      absl::StrFormat("the first instruction after the span (+0x%x) is also "
                                      "reached by a jump that bypasses the span, and no path "
                                      "token can tell the paths apart: %s",
                                      sp.probe_offset, t.message()),
                      Refusal::kJoinBypass);
      sp.mark_offset = cs_start;
    }
    ProbeWindow w = ProbeCandidates(fb, end_idx, locs);
    sp.candidates = w.candidates;
    // The apply must stay where the mark's paths join (moving it while the mark is attached
    // would leave marks unconsumed).
    if (sp.mark_offset && sp.candidates.size() > 1) sp.candidates.resize(1);
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
    }
    // The condition is the first instruction reading the flags, not the first reader of any
    // location: a `cmp REG, IMM` span also tracks REG, which a `mov` may read before `seta`.
    if (sp.kind == SpanKind::kFlags) {
      const Loc flags{"flags"};
      for (size_t i = end_idx; i < fb.insns.size(); ++i) {
        const Insn& in = fb.insns[i];
        if (Reads(in, flags)) {
          sp.flags_cc = in.mnemonic;
          break;
        }
        if (Kills(in, flags) || in.is_branch) break;
      }
    }
    return sp;
  }

  // The other results live after the span (a memory input re-read at the probe must feed
  // none of them): registers other than `target`, stores other than `store`.
  std::vector<z3::expr> LiveUses(const std::string& target, const std::string& store_key) {
    std::vector<z3::expr> uses;
    for (const std::string& g : st[0]->written())
      if (g != target && LiveAt(fb, end_idx, Loc{g})) uses.push_back(st[0]->Reg(g));
    for (const SymStore& s : st[0]->stores())
      if (s.key != store_key) uses.push_back(s.value);
    return uses;
  }

  // The same instruction in two builds up to its numerals (immediates, and a lea's
  // displacement: an address computed, not accessed; other displacements are another layout)
  // and its registers (the builds allocate temporaries differently). Only the shipped build is
  // executed with symbols: the formula is then proved against every build's own output, which
  // refuses a renaming that changes what is computed from which input.
  static bool SameButNumerals(const Insn& a, const Insn& b) {
    if (a.mnemonic != b.mnemonic || a.ops.size() != b.ops.size() ||
        a.relocs.size() != b.relocs.size())
      return false;
    for (size_t j = 0; j < a.ops.size(); ++j) {
      const Operand &x = a.ops[j], &y = b.ops[j];
      if (x.type != y.type || x.size != y.size || x.scale != y.scale ||
          (x.base == "rip") != (y.base == "rip") ||
          (x.disp != y.disp && (a.mnemonic != "lea" || x.base == "rip")))
        return false;
    }
    for (size_t j = 0; j < a.relocs.size(); ++j)
      if (a.relocs[j].target != b.relocs[j].target || a.relocs[j].addend != b.relocs[j].addend)
        return false;
    return true;
  }

  // The region executed once more with the numerals that differ between the builds as
  // symbols, when its instructions differ in nothing else: FitBySymbolicImmediates (a shift
  // or a divisor by the constant next to several inputs, whose simplified outputs differ in
  // shape from one count to the next).
  absl::StatusOr<MultiFit> SymbolicFit(const std::vector<z3::expr>& o, const std::string& target,
                                       int width, int fit_width, const SymStore* store,
                                       const std::map<std::string, char>& names) {
    const int n = r.e[0] - r.b[0];
    for (int k = 1; k < 3; ++k)
      if (r.e[k] - r.b[k] != n)
        return absl::InvalidArgumentError("the builds' spans differ in length");
    // The region's instructions, after the constant definitions of its register inputs.
    std::vector<std::array<const Insn*, 3>> seq = ConstantInputDefs(o);
    std::vector<uint64_t> defs;
    for (const auto& d : seq) defs.push_back(d[0]->offset);
    for (int i = 0; i < n; ++i)
      seq.push_back(
          {&fb.insns[r.b[0] + i], &cx.fn[1]->insns[r.b[1] + i], &cx.fn[2]->insns[r.b[2] + i]});
    SymState sym(ctx, zext);
    std::map<std::string, std::vector<z3::expr>> imms;
    for (const auto& in : seq) {
      const Insn& a = *in[0];
      for (int k = 1; k < 3; ++k)
        if (!SameButNumerals(a, *in[k]))
          return absl::InvalidArgumentError(absl::StrCat("`", a.Text(), "` and `", in[k]->Text(),
                                                         "` differ in more than numerals"));
      for (size_t j = 0; j < a.ops.size(); ++j) {
        if (a.ops[j].type == OpType::kReg) continue;
        const bool imm = a.ops[j].type == OpType::kImm;
        const unsigned bits = imm ? a.ops[j].size * 8 : 64;
        std::vector<z3::expr> nums;
        for (int k = 0; k < 3; ++k) {
          const Operand& op = in[k]->ops[j];
          nums.push_back(ctx.bv_val(static_cast<uint64_t>(imm ? op.imm : op.disp), 64)
                             .extract(bits - 1, 0)
                             .simplify());
        }
        if (z3::eq(nums[0], nums[1]) && z3::eq(nums[0], nums[2])) continue;
        const std::string name = absl::StrCat("imm:", imms.size());
        sym.OverrideNumeral(&a.ops[j], ctx.bv_const(name.c_str(), bits));
        imms.emplace(name, nums);
      }
    }
    if (imms.empty()) return absl::InvalidArgumentError("no numeral differs");
    for (const auto& in : seq)
      if (!sym.Step(*in[0])) return absl::InvalidArgumentError("an unmodelled instruction");
    std::optional<z3::expr> out;
    if (store) {
      for (const SymStore& s : sym.stores())
        if (s.key == store->key) out = s.value;
    } else {
      out = sym.Reg(target);
      if (fit_width < width) out = z3::zext(out->extract(fit_width * 8 - 1, 0), 64 - fit_width * 8);
    }
    if (!out) return absl::InvalidArgumentError("the store is not where it was");
    auto fit = FitBySymbolicImmediates(ctx, *out, imms, WithConstants(o, seq, defs.size()), names,
                                       cx.vs, fit_width * 8);
    if (fit.ok()) sym_defs = std::move(defs);
    return fit;
  }

  // Each build's outputs with the register inputs that the first `n` instructions of `seq`
  // set (ConstantInputDefs) replaced by that build's numeral.
  std::vector<z3::expr> WithConstants(std::vector<z3::expr> o,
                                      const std::vector<std::array<const Insn*, 3>>& seq,
                                      size_t n) {
    for (size_t i = 0; i < n; ++i)
      for (int k = 0; k < 3; ++k) {
        const std::string fam = RegFamily(seq[i][k]->ops[0].reg);
        SymState def(ctx);
        def.Step(*seq[i][k]);
        const z3::expr v = def.Reg(fam);
        z3::expr_vector from(ctx), to(ctx);
        for (unsigned w : {32u, 64u}) {
          from.push_back(ctx.bv_const(SymState::InputName(fam).c_str(), w));
          to.push_back(v.extract(w - 1, 0));
        }
        o[k] = o[k].substitute(from, to);
      }
    return o;
  }

  // A register input set before the region to a number no small factor is (> 0xffff): a
  // hoisted magic multiplier.
  bool MagicConstantInput(const std::vector<z3::expr>& o) const {
    for (const auto& d : ConstantInputDefs(o))
      for (const Insn* in : d)
        if (MagicNumeral(*in)) return true;
    return false;
  }

  // `mov REG, imm` of a number no small factor is (magnitude > 0xffff).
  static bool MagicNumeral(const Insn& in) {
    const uint64_t mask = in.ops[0].size >= 8 ? ~uint64_t{0} : 0xffffffffu;
    const uint64_t v = static_cast<uint64_t>(in.ops[1].imm) & mask;
    return std::min(v, (~v + 1) & mask) > 0xffff;
  }

  // The definitions `mov REG, imm` of the outputs' register inputs that hold in every build
  // (dataflow.h ConstantDefAt), each as its three builds' instructions: a multiplier the
  // compiler hoisted before a loop is a numeral of the region, as if it were inside.
  std::vector<std::array<const Insn*, 3>> ConstantInputDefs(const std::vector<z3::expr>& o) const {
    std::vector<std::array<const Insn*, 3>> defs;
    for (const std::string& n : FreeInputs(o)) {
      if (n.rfind("in:", 0) != 0) continue;
      std::array<const Insn*, 3> d{};
      for (int k = 0; k < 3; ++k) {
        const int i = ConstantDefAt(*cx.fn[k], r.b[k], n.substr(3));
        if (i < 0) break;
        d[k] = &cx.fn[k]->insns[i];
      }
      if (d[2]) defs.push_back(d);
    }
    return defs;
  }

  // An output of several inputs, or of a value loaded in the span (`why`: InputOf's refusal):
  // every input is located at the probe (span_inputs.h), the formula fitted and proved over
  // all of them (multi_input.h). Target: register `target`, or the store to `store`.
  absl::StatusOr<CriticalSpan> MultiInputSpan(const absl::Status& why,
                                              const std::vector<z3::expr>& o,
                                              const std::string& target, int width, int fit_width,
                                              const SymStore* store) {
    if (!multi) return why;
    auto fail = [&](const absl::Status& st, Refusal cls) {
      return Classified(absl::InvalidArgumentError(absl::StrCat(why.message(), "; ", st.message())),
                        cls);
    };
    auto ins = LocateInputs(fb, r.b[0], end_idx, *st[0], o, target,
                            LiveUses(target, store ? store->key : ""));
    if (!ins.ok()) return fail(ins.status(), RefusalOf(why));
    // X: a register saved at the span's start (a recompute), else a register read at the
    // probe (reg spans only: a mem span's X is the stored cell); the others Y, Z, W (read at
    // the probe or saved in the span).
    std::map<std::string, char> names;
    const ProbeInput* xin = nullptr;
    for (const ProbeInput& in : *ins)
      if (!store && in.saved && in.save_index == r.b[0] && !xin) xin = &in;
    for (const ProbeInput& in : *ins)
      if (!xin && !store && !in.saved && in.mem == std::nullopt) xin = &in;
    if (xin) names[xin->sym] = 'X';
    size_t next = 0;
    for (const ProbeInput& in : *ins) {
      if (&in == xin) continue;
      if (next == artifact::kExtraInputs.size())
        return fail(
            absl::InvalidArgumentError(absl::StrCat(ins->size(), " inputs: a formula has at most ",
                                                    artifact::kExtraInputs.size() + 1)),
            RefusalOf(why));
      names[in.sym] = artifact::kExtraInputs[next++];
    }
    // A multiply by a magic number is a division by the constant: fitted as that division
    // first (a shape fit reads its shift count alone as a formula of V, right at three builds).
    absl::StatusOr<MultiFit> fit = absl::NotFoundError("no magic multiply");
    sym_defs.clear();
    if (HasMagicMultiply(o) || MagicConstantInput(o))
      fit = SymbolicFit(o, target, width, fit_width, store, names);
    if (!fit.ok()) {
      sym_defs.clear();
      fit = FitMultiInput(ctx, o, names, cx.vs, fit_width * 8);
    } else if (!fit->magic_division) {
      // A multiplier every build shares divides by a fixed number: the symbols read each
      // differing immediate alone (the 8 of `lea; shl 8` for V * 128 as its own formula of V),
      // so the outputs' own reading is a candidate too, for the checks to choose.
      if (auto other = FitMultiInput(ctx, o, names, cx.vs, fit_width * 8); other.ok())
        AddAlternatives(&*fit, *other);
    }
    if (!fit.ok()) {
      auto sym = SymbolicFit(o, target, width, fit_width, store, names);
      fit = sym.ok() ? sym
                     : absl::InvalidArgumentError(absl::StrCat(fit.status().message(),
                                                               "; with the differing immediates as "
                                                               "symbols: ",
                                                               sym.status().message()));
    }
    if (!fit.ok()) {
      auto every =
          FitEveryValue(ctx, o, names, cx.vs, fit_width * 8, cx.res->range_min, cx.res->range_max);
      if (every.ok()) fit = every;
    }
    // Keeps the class that brought the region here: in a check build (analyze.cc CheckAll) a
    // formula-family refusal means a fitted formula disagrees, while an unexplained region of
    // several inputs may just be another shape of the code at that value.
    if (!fit.ok()) return fail(fit.status(), RefusalOf(why));
    CriticalSpan sp;
    sp.kind = store ? SpanKind::kMem : SpanKind::kReg;
    sp.width = width;
    sp.formula = fit->formula;
    sp.formula_alternatives = fit->alternatives;
    sp.constant_defs = sym_defs;
    std::vector<Loc> locs;
    if (store) {
      sp.target_mem = ToMem(store->op);
      locs.push_back(Loc{"", store->op});
    } else {
      sp.target_reg = target;
      locs.push_back(Loc{target});
    }
    for (const ProbeInput& in : *ins) {
      char name = names.at(in.sym);
      auto uses = [&](const std::string& f) { return f.find(name) != std::string::npos; };
      if (!uses(sp.formula) &&
          std::none_of(sp.formula_alternatives.begin(), sp.formula_alternatives.end(), uses))
        continue;
      if (name == 'X') {
        sp.save_reg = in.reg;
        if (in.saved) {
          sp.kind = SpanKind::kRecompute;
          sp.save_offset = cs_start;
          continue;
        }
      }
      if (in.saved) {
        // Taken by a save probe: nothing to keep intact up to the probe.
      } else if (in.mem) {
        for (const std::string& a : {in.mem->base, in.mem->index})
          if (!a.empty()) locs.push_back(Loc{RegFamily(a)});
        locs.push_back(Loc{"", *in.mem});
      } else {
        locs.push_back(Loc{in.reg});
      }
      if (name == 'X') continue;
      artifact::SpanInput si;
      si.name = std::string(1, name);
      si.reg = in.reg;
      if (in.mem && !in.saved) si.mem = ToMem(*in.mem);
      si.width = in.mem || in.saved ? in.width : 8;
      if (in.saved) si.save_offset = fb.insns[in.save_index].offset;
      sp.inputs.push_back(si);
    }
    cx.res->range_min = std::max(cx.res->range_min, fit->vmin);
    cx.res->range_max = std::min(cx.res->range_max, fit->vmax);
    auto done = Finish(sp, locs);
    // A later candidate could follow a store that aliases a memory input: the probe stays
    // where the aliasing was checked.
    bool mem_input = false;
    for (const artifact::SpanInput& in : sp.inputs) mem_input |= in.mem.has_value();
    if (done.ok() && mem_input) done->candidates.resize(1);
    return done;
  }

  absl::Status Registers() {
    // Registers written in the shipped build and used after the span.
    for (const std::string& f : st[0]->written()) {
      if (!LiveAt(fb, end_idx, Loc{f})) continue;
      std::vector<z3::expr> o;
      for (int k = 0; k < 3; ++k) o.push_back(st[k]->Reg(f));
      if (auto m = CheckModelled(ctx, &o, States(), absl::StrCat("register ", f)); !m.ok())
        return Growable(Refuse(fb, cs_start, m.message(), Refusal::kUnmodelledInstruction));
      if (AllEqual(ctx, o)) continue;
      int width = st[0]->LastWriteWidth(f);
      // Only the bits the code reads afterwards must agree ("cmp ax,dx" after "add eax,64" in
      // one build and "sub ax,-128" in another): fit on those, write the span's full width.
      int fit_width = width;
      if (int used = ReadWidthAt(fb, end_idx, f); used > 0 && used < width) {
        fit_width = used;
        for (z3::expr& e : o) e = z3::zext(e.extract(used * 8 - 1, 0), 64 - used * 8);
        if (AllEqual(ctx, o)) continue;
      }
      auto x = InputOf(o);
      if (!x.ok()) {
        auto multi = MultiInputSpan(x.status(), o, f, width, fit_width, nullptr);
        if (multi.status().code() == absl::StatusCode::kFailedPrecondition) return multi.status();
        if (!multi.ok())
          return Growable(Refuse(fb, cs_start,
                                 absl::StrCat("register ", f, " ", multi.status().message()),
                                 RefusalOf(multi.status())));
        out.push_back(*multi);
        continue;
      }
      auto fit = FitOutput(ctx, o, *x, cx.vs, fit_width * 8,
                           x->has_value() && zext.count(x->value().decl().name().str().substr(3)));
      if (!fit.ok()) {
        absl::Status why =
            Classified(absl::InvalidArgumentError(absl::StrCat(
                           Where(fb, cs_start), ": register ", f, " after `",
                           fb.insns[r.b[0]].Text(), "`", r.e[0] - r.b[0] > 1 ? " ..." : "",
                           ": transformation outside the family: ", fit.status().message())),
                       Refusal::kFormulaFamily);
        // Not X op h(V): the whole output as one shape over its input (a clamp, a compare).
        if (!x->has_value()) return why;
        auto shaped = MultiInputSpan(why, o, f, width, fit_width, nullptr);
        if (!shaped.ok()) return shaped.status();
        out.push_back(*shaped);
        continue;
      }
      CriticalSpan sp;
      sp.kind = SpanKind::kReg;
      sp.target_reg = f;
      sp.width = width;
      sp.formula = fit->formula;
      sp.formula_alternatives = fit->alternatives;
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

  // A store of the cell's own old value changed by the constant (`add qword ptr [rbp-0x180],
  // 0x20`, SWAP_CLUSTER_MAX): the old value is gone at the probe, but the operation is
  // invertible, so the stub recovers it from the cell's new value (old = cell - 32) and writes
  // its formula again: kind mem, X the cell at the probe. nullopt when the store is not one.
  std::optional<absl::StatusOr<CriticalSpan>> ReadModifyWrite(const std::vector<z3::expr>& o,
                                                              const SymStore& s0) {
    const std::set<std::string> in = FreeInputs(o);
    if (in.size() != 1 || !s0.addr) return std::nullopt;
    auto ld = st[0]->loads().find(*in.begin());
    if (ld == st[0]->loads().end() || !ld->second.addr || ld->second.op.size != s0.width ||
        !z3::eq(ld->second.addr->simplify(), s0.addr->simplify()))
      return std::nullopt;
    z3::expr x = ctx.bv_const(in.begin()->c_str(), s0.width * 8);
    auto fit = FitOutput(ctx, o, x, cx.vs, s0.width * 8, false);
    if (!fit.ok() || !fit->uses_x || !fit->invertible) return std::nullopt;
    // X of the formula is the old value: written as the cell's value at the probe.
    auto at_probe = [&](const std::string& f) {
      std::string old = absl::StrReplaceAll(fit->x_from_output, {{"R", "X"}}), r;
      for (char ch : f) r += ch == 'X' ? absl::StrCat("(", old, ")") : std::string(1, ch);
      return r;
    };
    CriticalSpan sp;
    sp.kind = SpanKind::kMem;
    sp.target_mem = ToMem(s0.op);
    sp.width = s0.width;
    sp.formula = at_probe(fit->formula);
    for (const std::string& alt : fit->alternatives)
      sp.formula_alternatives.push_back(at_probe(alt));
    cx.res->range_min = std::max(cx.res->range_min, fit->vmin);
    cx.res->range_max = std::min(cx.res->range_max, fit->vmax);
    // Nothing may touch the cell between the store and the probe: the first candidate only.
    auto done = Finish(sp, {Loc{"", s0.op}});
    if (done.ok()) done->candidates.resize(1);
    return done;
  }

  absl::Status Stores() {
    // Stores.
    std::map<std::string, size_t> last_store;
    for (size_t i = 0; i < st[0]->stores().size(); ++i) last_store[st[0]->stores()[i].key] = i;
    for (auto& [key, i] : last_store) {
      SymStore s0 = st[0]->stores()[i];
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
      if (auto m = CheckModelled(ctx, &o, States(), absl::StrCat("the store to ", key)); !m.ok())
        return Growable(Refuse(fb, cs_start, m.message(), Refusal::kUnmodelledInstruction));
      if (AllEqual(ctx, o)) continue;
      // The probe after the span addresses the cell with the registers it sees there; when
      // the region overwrites them after the store, the span ends at the store.
      int store_end = end_idx;
      if (std::optional<Operand> now = st[0]->OperandNow(s0)) {
        s0.op = *now;
      } else if (s0.exact_op && s0.insn) {
        store_end = static_cast<int>(s0.insn - fb.insns.data()) + 1;
      } else {
        return Refuse(fb, cs_start,
                      absl::StrCat("the store to ", key, " (`", fb.insns[r.b[0]].Text(),
                                   "` ...) depends on the constant and no register addresses its "
                                   "cell after it"),
                      Refusal::kUnmodelledInstruction);
      }
      EndAt end(this, store_end);
      if (auto rmw = ReadModifyWrite(o, s0)) {
        if (!rmw->ok()) return rmw->status();
        out.push_back(**rmw);
        continue;
      }
      auto x = InputOf(o);
      if (!x.ok()) {
        auto multi = MultiInputSpan(x.status(), o, "", s0.width, s0.width, &s0);
        if (multi.status().code() == absl::StatusCode::kFailedPrecondition) return multi.status();
        if (!multi.ok())
          return Growable(Refuse(fb, cs_start,
                                 absl::StrCat("stored value ", multi.status().message()),
                                 RefusalOf(multi.status())));
        out.push_back(*multi);
        continue;
      }
      auto fit = FitOutput(ctx, o, *x, cx.vs, s0.width * 8, false);
      if (!fit.ok()) {
        absl::Status why =
            Classified(absl::InvalidArgumentError(absl::StrCat(
                           Where(fb, cs_start), ": store `", fb.insns[r.b[0]].Text(),
                           "`: transformation outside the family: ", fit.status().message())),
                       Refusal::kFormulaFamily);
        if (!x->has_value()) return why;
        auto shaped = MultiInputSpan(why, o, "", s0.width, s0.width, &s0);
        if (!shaped.ok()) return shaped.status();
        out.push_back(*shaped);
        continue;
      }
      CriticalSpan sp;
      sp.kind = SpanKind::kMem;
      sp.target_mem = ToMem(s0.op);
      sp.width = s0.width;
      sp.formula = fit->formula;
      sp.formula_alternatives = fit->alternatives;
      if (fit->uses_x) sp.save_reg = x->value().decl().name().str().substr(3);
      auto done = Finish(sp, {Loc{"", s0.op}});
      if (!done.ok()) return done.status();
      out.push_back(*done);
    }
    return absl::OkStatus();
  }

  // The span's end moved to instruction `i` (a store whose address the rest of the region
  // overwrites; the region's start for an empty span) while it is in scope.
  struct EndAt {
    RegionAnalysis* ra;
    int idx;
    uint64_t cs_end;
    EndAt(RegionAnalysis* a, int i) : ra(a), idx(a->end_idx), cs_end(a->cs_end) {
      const std::vector<Insn>& in = ra->fb.insns;
      ra->end_idx = i;
      ra->cs_end = i < static_cast<int>(in.size()) ? in[i].offset : ra->fb.size;
    }
    ~EndAt() { ra->end_idx = idx, ra->cs_end = cs_end; }
  };

  // Every build's region is followed by a conditional jump (in the hunk or common to all).
  bool JumpsAfter() const {
    for (int k = 0; k < 3; ++k)
      if (r.e[k] >= static_cast<int>(cx.fn[k]->insns.size()) || !cx.fn[k]->insns[r.e[k]].is_cond)
        return false;
    return true;
  }

  // The jumps' mnemonics differ: the builds decide with other conditions.
  bool ConsumersDiffer() const {
    const std::string& j0 = fb.insns[r.e[0]].mnemonic;
    return cx.fn[1]->insns[r.e[1]].mnemonic != j0 || cx.fn[2]->insns[r.e[2]].mnemonic != j0;
  }

  absl::Status Flags() {
    const bool jumps = st[0]->flags() && JumpsAfter();
    if (jumps && ConsumersDiffer()) return PredicateFlags();
    absl::Status plain = PlainFlags();
    if (!plain.ok() && jumps) {
      absl::Status pred = PredicateFlags();
      if (pred.ok()) return pred;
      return KeepClass(plain.code(),
                       absl::StrCat(plain.message(), "; as a predicate: ", pred.message()), plain);
    }
    return plain;
  }

  // A refusal of a predicate span at the compare (control flow: the jump's condition).
  absl::Status NoPredicate(const Insn& fi, absl::string_view why) {
    return Refuse(
        fb, fi.offset,
        absl::StrCat("control flow depends on the constant (`", fi.Text(), "; ",
                     fb.insns[r.e[0]].Text(), "` at V=", cx.vs[0],
                     " has other compares in other builds) and is no predicate span: ", why),
        Refusal::kControlFlow);
  }

  // The span of register `reg` ending at the probe that a predicate's operand is computed by:
  // its formula in V and X, read at the probe or saved where that span saves it.
  const CriticalSpan* OperandSpan(const std::string& reg) const {
    for (const CriticalSpan& o : out)
      if ((o.kind == SpanKind::kReg || o.kind == SpanKind::kRecompute) && o.target_reg == reg &&
          o.probe_offset == fb.insns[end_idx].offset && o.inputs.empty() &&
          o.x_from_probe.empty() && o.formula_alternatives.empty())
        return &o;
    return nullptr;
  }

  // Each build's jump taken exactly when `operand op K` (predicate_span.h): the stub decides
  // it from the operand and K(V).
  absl::Status PredicateFlags() {
    const Insn& fi = *st[0]->flags()->insn;
    const Loc flags{"flags"};
    const Insn& j0 = fb.insns[r.e[0]];
    const int target = j0.target ? fb.IndexAt(*j0.target) : -1;
    if (target < 0 || LiveAt(fb, r.e[0] + 1, flags) || LiveAt(fb, target, flags))
      return NoPredicate(fi, "the flags are read again after the jump");
    std::string reg;
    unsigned w = 0;
    std::vector<z3::expr> operands, wants, conds;
    std::optional<z3::expr> a;
    for (int k = 0; k < 3; ++k) {
      if (!st[k]->flags()) return NoPredicate(fi, "a build sets no flags before its jump");
      const SymFlags* f = &*st[k]->flags();
      const Insn& in = *f->insn;
      if ((in.mnemonic != "cmp" && in.mnemonic != "test") || in.ops.empty() ||
          in.ops[0].type != OpType::kReg)
        return NoPredicate(fi, absl::StrCat("`", in.Text(), "` is no cmp or test of a register"));
      if (k == 0) {
        reg = RegFamily(in.ops[0].reg);
        w = f->a.get_sort().bv_size();
        a = ctx.bv_const("pred:a", w);
      }
      if (RegFamily(in.ops[0].reg) != reg || f->a.get_sort().bv_size() != w)
        return NoPredicate(fi, "the builds compare other registers or widths");
      z3::expr b = f->b;
      uint64_t imm = 0;
      if (z3::eq(f->a, f->b))
        b = *a;  // test r, r
      else if (b.simplify().is_numeral_u64(imm))
        b = ctx.bv_val(imm, w);
      else
        return NoPredicate(fi, absl::StrCat("`", in.Text(), "` compares two computed values"));
      const std::string cc = cx.fn[k]->insns[r.e[k]].mnemonic.substr(1);
      auto cond = EmulatedCond(ctx, in.mnemonic, *a, b, cc);
      auto want = st[k]->Cond(cc);
      if (!cond || !want)
        return NoPredicate(fi, absl::StrCat("the condition `", cc, "` is not modelled"));
      conds.push_back(*cond);
      wants.push_back(*want);
      operands.push_back(f->a);
    }
    auto fit = FitPredicate(ctx, conds, *a);
    if (!fit)
      return NoPredicate(fi,
                         "no one of x < K, x > K (unsigned or signed), x == K, x != K explains "
                         "every build's jump");
    auto fam = FitFamily(cx.vs, fit->ks, static_cast<int>(w));
    if (!fam.ok()) {
      auto rem = FitRemainderFamily(cx.vs, fit->ks, static_cast<int>(w));
      if (!rem.ok())
        return NoPredicate(
            fi, absl::StrCat("K: ", fam.status().message(), "; ", rem.status().message()));
      fam = std::move(rem);
    }
    CriticalSpan sp;
    sp.kind = SpanKind::kFlags;
    sp.flags_op = "pred";
    sp.width = static_cast<int>(w / 8);
    sp.target_reg = reg;
    std::string operand = "X";
    // The operand at the probe is the register's value there, in every build.
    std::vector<z3::expr> at_end;
    for (int k = 0; k < 3; ++k) at_end.push_back(st[k]->Reg(reg).extract(w - 1, 0));
    for (int k = 0; k < 3; ++k)
      if (!Valid(ctx, operands[k] == at_end[k], 5000))
        return NoPredicate(fi, "the compared register changes between the compare and the jump");
    if (!AllEqual(ctx, operands)) {
      const CriticalSpan* o = OperandSpan(reg);
      if (!o)
        return NoPredicate(
            fi, absl::StrCat("its operand ", reg, " is computed in the span by no one-input span"));
      operand = absl::StrCat("(", o->formula, ")");
      sp.save_offset = o->save_offset;
      sp.save_reg = o->save_reg;
      if (o->kind == SpanKind::kReg) sp.target_reg = o->save_reg;  // X read at the probe there
    }
    sp.formula = PredicateText(fit->op, operand, fam->formula, static_cast<int>(w));
    for (const std::string& alt : fam->alternatives)
      sp.formula_alternatives.push_back(PredicateText(fit->op, operand, alt, static_cast<int>(w)));
    auto done = Finish(sp, {flags, Loc{reg}});
    if (!done.ok()) return done.status();
    std::vector<z3::expr> preds;
    for (int k = 0; k < 3; ++k) preds.push_back(PredicateExpr(fit->op, operands[k], fit->ks[k]));
    if (auto pr = ProvePredicateEmulation(ctx, wants, preds, done->flags_cc); !pr.ok())
      return NoPredicate(fi, pr.message());
    cx.res->range_min = std::max(cx.res->range_min, fam->vmin);
    cx.res->range_max = std::min(cx.res->range_max, fam->vmax);
    out.push_back(*done);
    return absl::OkStatus();
  }

  absl::Status PlainFlags() {
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
      for (auto* v : {&a, &b})
        if (auto m = CheckModelled(ctx, v, States(), "the flags"); !m.ok())
          return Growable(Refuse(fb, cs_start, m.message(), Refusal::kUnmodelledInstruction));
      bool same_a = AllEqual(ctx, a), same_b = AllEqual(ctx, b);
      bool same_kind = st[0]->flags()->kind == st[1]->flags()->kind &&
                       st[0]->flags()->kind == st[2]->flags()->kind;
      int width = st[0]->flags()->width;
      // One test of one operand with a mask, encoded per build at another width.
      bool normalized = false;
      if (same_kind && !(same_a && same_b) &&
          NormalizeTests(ctx, {&*st[0]->flags(), &*st[1]->flags(), &*st[2]->flags()}, &a, &b)) {
        normalized = true;
        same_a = AllEqual(ctx, a);
        width = static_cast<int>(a[0].get_sort().bv_size() / 8);
      }
      if (!(same_a && same_b && same_kind)) {
        const Insn& fi = *st[0]->flags()->insn;
        if (!same_kind || !same_a || !FlagsSpanOp(fi.mnemonic))
          return Refuse(fb, fi.offset,
                        absl::StrCat("the comparison `", fi.Text(),
                                     "` changes shape with the "
                                     "constant (",
                                     !same_kind ? "the builds set the flags with other operations"
                                     : !same_a  ? "its operand is computed from the constant, "
                                                  "not compared with an immediate"
                                                : "only cmp, test, add, sub and and of an "
                                                  "immediate are recomputed",
                                     ")"),
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
        sp.formula_alternatives = fam->alternatives;
        sp.flags_op = fi.mnemonic;
        const Operand& lhs = fi.ops[0];
        if (lhs.type == OpType::kReg)
          sp.target_reg = RegFamily(lhs.reg);
        else
          sp.target_mem = ToMem(lhs);
        if (fi.mnemonic != "cmp" && fi.mnemonic != "test") {
          // add/sub/and: the stub recomputes the instruction (flags and result) from X.
          auto xr = lhs.type == OpType::kReg
                        ? XFromProbe(ctx, *st[0], sp.target_reg, cs[0])
                        : absl::StatusOr<std::string>(
                              absl::InvalidArgumentError("its destination is memory"));
          if (xr.ok()) {
            sp.x_from_probe = *xr;
          } else if (lhs.type == OpType::kReg && sp.target_reg != "sp") {
            // `and edx, 0xf` overwrites its input: X is saved as the instruction starts.
            sp.save_offset = fi.offset;
            sp.save_reg = sp.target_reg;
          } else {
            return Refuse(
                fb, fi.offset,
                absl::StrCat("the flags of `", fi.Text(), "` cannot be recomputed at the probe: ",
                             xr.status().message(), MaskNote(fi, *fam)),
                Refusal::kShapeChange);
          }
        }
        std::vector<Loc> locs = {Loc{"flags"}};
        if (lhs.type == OpType::kReg) locs.push_back(Loc{sp.target_reg});
        cx.res->range_min = std::max(cx.res->range_min, fam->vmin);
        cx.res->range_max = std::min(cx.res->range_max, fam->vmax);
        auto done = Finish(sp, locs);
        if (!done.ok()) return done.status();
        std::vector<SymState*> builds = {st[0].get(), st[1].get(), st[2].get()};
        if (auto pr =
                ProveFlagsEmulation(ctx, builds, cs, done->flags_cc, normalized ? &a : nullptr);
            !pr.ok())
          return Refuse(fb, fi.offset, absl::StrCat("flags span: ", pr.message()),
                        Refusal::kShapeChange);
        // The stub writes the result of add/sub itself: a span of the same register at the
        // same probe (Registers) would rewrite it a second time from the rewritten value.
        if (!sp.x_from_probe.empty())
          std::erase_if(out, [&](const CriticalSpan& o) {
            return o.kind != SpanKind::kFlags && o.kind != SpanKind::kMem &&
                   o.target_reg == sp.target_reg && o.probe_offset == done->probe_offset;
          });
        out.push_back(*done);
      }
    }
    return absl::OkStatus();
  }
};

absl::StatusOr<std::vector<CriticalSpan>> AnalyzeRegion(const HunkContext& cx, const Range& r,
                                                        bool multi = true) {
  return RegionAnalysis(cx, r, multi && cx.multi_input).Run();
}

// The hunk's instructions in each of the three builds.
Range WholeRange(const Hunk& h) {
  Range whole;
  whole.b[0] = h.base_begin;
  whole.e[0] = h.base_end;
  for (int k = 1; k < 3; ++k) {
    whole.b[k] = h.var_begin[k - 1];
    whole.e[k] = h.var_end[k - 1];
  }
  return whole;
}

// A hunk whose only branch, in every build, is one conditional jump to the same place (before
// the hunk, or as far past its end): the compare feeding it may change shape with the
// constant (a predicate span, predicate_span.h). The part before the jump and the part after
// it, which is a hunk of its own.
struct JumpSplit {
  Range before, after;
};
std::optional<JumpSplit> SplitAtJump(const HunkContext& cx, const Range& whole) {
  std::optional<std::pair<bool, uint64_t>> where;  // past the end?, offset from start or end
  JumpSplit s{whole, whole};
  for (int k = 0; k < 3; ++k) {
    const Function& f = *cx.fn[k];
    int jump = -1;
    for (int i = whole.b[k]; i < whole.e[k]; ++i)
      if (f.insns[i].is_branch) {
        if (jump >= 0) return std::nullopt;
        jump = i;
      }
    if (jump <= whole.b[k]) return std::nullopt;  // none, or no compare before it
    const Insn& j = f.insns[jump];
    if (!j.is_cond || !j.target) return std::nullopt;
    const Insn& last = f.insns[whole.e[k] - 1];
    const uint64_t start = f.insns[whole.b[k]].offset, end = last.offset + last.size;
    if (*j.target >= start && *j.target < end) return std::nullopt;  // into the hunk
    std::pair<bool, uint64_t> t = *j.target < start ? std::make_pair(false, *j.target)
                                                    : std::make_pair(true, *j.target - end);
    if (where && *where != t) return std::nullopt;
    where = t;
    s.before.e[k] = jump;
    s.after.b[k] = jump + 1;
  }
  return s;
}

// The value contract on control flow: no branch inside the hunk but the jump it is split at.
absl::Status NoBranches(const HunkContext& cx, const Range& whole,
                        const std::optional<JumpSplit>& split, uint64_t at) {
  for (int k = 0; k < 3; ++k)
    for (int i = whole.b[k]; i < whole.e[k]; ++i) {
      const Insn& in = cx.fn[k]->insns[i];
      if (in.is_branch && !(split && i == split->before.e[k]))
        return Refuse(
            *cx.fn[0], at,
            absl::StrCat("control flow depends on the constant (V=", cx.vs[k], " has `", in.Text(),
                         "` at +0x", absl::Hex(in.offset), " where other builds differ)"),
            Refusal::kControlFlow);
    }
  return absl::OkStatus();
}

Hunk HunkOf(const Range& r) {
  Hunk h;
  h.base_begin = r.b[0];
  h.base_end = r.e[0];
  h.var_begin = {r.b[1], r.b[2]};
  h.var_end = {r.e[1], r.e[2]};
  return h;
}

// The spans before the jump (a predicate span among them) and those of the part after it,
// analysed as a hunk of its own (`whole`: as one region, as AnalyzeWholeRegion).
absl::StatusOr<std::vector<CriticalSpan>> AnalyzeSplit(const HunkContext& cx, const JumpSplit& s,
                                                       bool whole) {
  auto spans = AnalyzeRegion(cx, s.before);
  if (!spans.ok()) return spans.status();
  if (s.after.b[0] == s.after.e[0] && s.after.b[1] == s.after.e[1] && s.after.b[2] == s.after.e[2])
    return spans;
  auto after = whole ? AnalyzeWholeRegion(cx, HunkOf(s.after)) : AnalyzeHunk(cx, HunkOf(s.after));
  if (!after.ok()) return after.status();
  spans->insert(spans->end(), after->begin(), after->end());
  return spans;
}

}  // namespace

absl::StatusOr<std::vector<CriticalSpan>> AnalyzeWholeRegion(const HunkContext& cx, const Hunk& h) {
  const Range whole = WholeRange(h);
  const std::optional<JumpSplit> split = SplitAtJump(cx, whole);
  RETURN_IF_ERROR(NoBranches(cx, whole, split, cx.fn[0]->insns[whole.b[0]].offset));
  if (split) return AnalyzeSplit(cx, *split, true);
  return AnalyzeRegion(cx, whole);
}

absl::StatusOr<std::vector<CriticalSpan>> AnalyzeHunk(const HunkContext& cx, const Hunk& h) {
  const Function& fb = *cx.fn[0];
  const Range whole = WholeRange(h);
  uint64_t at =
      h.base_begin < static_cast<int>(fb.insns.size()) ? fb.insns[h.base_begin].offset : fb.size;
  // Value contracts: control flow and the stack frame must not depend on the constant.
  const std::optional<JumpSplit> split = SplitAtJump(cx, whole);
  RETURN_IF_ERROR(NoBranches(cx, whole, split, at));
  for (int k = 0; k < 3; ++k) {
    for (int i = whole.b[k]; i < whole.e[k]; ++i) {
      const Insn& in = cx.fn[k]->insns[i];
      if (in.writes.count("sp") && in.mnemonic != "push" && in.mnemonic != "pop")
        return Refuse(fb, at,
                      absl::StrCat("stack frame size depends on the constant (`", in.Text(), "`)"),
                      Refusal::kControlFlow);
    }
  }
  if (split) return AnalyzeSplit(cx, *split, false);
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
      auto r = AnalyzeRegion(cx, one, false);
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

}  // namespace sie::synth::analysis
