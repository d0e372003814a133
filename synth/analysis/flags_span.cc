#include "synth/analysis/flags_span.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/diag.h"

namespace sie::synth::analysis {

std::string ConsumerCc(const std::string& m) {
  if (m == "sbb" || m == "adc") return "b";
  for (const char* p : {"cmov", "set", "j"})
    if (absl::StartsWith(m, p)) return m.substr(std::string(p).size());
  return m;
}

bool FlagsSpanOp(const std::string& m) {
  return m == "cmp" || m == "test" || m == "add" || m == "sub" || m == "and";
}

std::optional<z3::expr> EmulatedCond(z3::context& ctx, const std::string& op, const z3::expr& a,
                                     const z3::expr& b, const std::string& cc0) {
  // As sie_op_flags (kmod/include/sie/kfuncs_logic.h), written from the architecture manual.
  const unsigned w = a.get_sort().bv_size();
  z3::expr r = op == "add" ? a + b : (op == "and" || op == "test") ? (a & b) : a - b;
  auto sign = [&](const z3::expr& e) { return e.extract(w - 1, w - 1) == ctx.bv_val(1, 1); };
  z3::expr zf = r == ctx.bv_val(0, w), sf = sign(r);
  z3::expr cf = ctx.bool_val(false), of = ctx.bool_val(false);
  if (op == "add") {
    cf = z3::ult(r, a);
    of = sign(~(a ^ b) & (a ^ r));
  } else if (op == "sub" || op == "cmp") {
    cf = z3::ult(a, b);
    of = sign((a ^ b) & (a ^ r));
  }
  return ConditionOf(cc0, cf, zf, sf, of, nullptr);  // the stub's PF is not used by a span
}

absl::Status ProveFlagsEmulation(z3::context& ctx, const std::vector<SymState*>& builds,
                                 const std::vector<uint64_t>& imms, const std::string& consumer,
                                 const std::vector<z3::expr>* xs) {
  const std::string cc = ConsumerCc(consumer);
  for (size_t k = 0; k < builds.size(); ++k) {
    const SymFlags& f = *builds[k]->flags();
    const z3::expr& x = xs ? (*xs)[k] : f.a;
    const unsigned w = x.get_sort().bv_size();
    auto want = builds[k]->Cond(cc);
    auto got = EmulatedCond(ctx, f.insn->mnemonic, x, ctx.bv_val(imms[k], w), cc);
    if (!want || !got)
      return absl::InvalidArgumentError(
          absl::StrCat("the condition `", consumer, "` (", cc, ") is not modelled"));
    z3::solver s(ctx);
    s.add(*want != *got);
    if (s.check() != z3::unsat)
      return absl::InvalidArgumentError(
          absl::StrCat("build ", k + 1, ": `", f.insn->Text(), "` then `", consumer,
                       "` is not what the recomputed flags give for immediate ", imms[k]));
  }
  return absl::OkStatus();
}

bool NormalizeTests(z3::context& ctx, const std::vector<const SymFlags*>& fs,
                    std::vector<z3::expr>* a, std::vector<z3::expr>* b) {
  std::vector<z3::expr> na, nb;
  unsigned wide = 0;
  for (size_t k = 0; k < fs.size(); ++k) {
    if (fs[k]->insn->mnemonic != "test") return false;
    const unsigned w = (*a)[k].get_sort().bv_size();
    wide = std::max(wide, w);
    na.push_back((*a)[k]);
    // test r, r: the mask is every bit of the width.
    nb.push_back(z3::eq((*a)[k], (*b)[k])
                     ? ctx.bv_val(w >= 64 ? ~uint64_t{0} : (uint64_t{1} << w) - 1, w)
                     : (*b)[k]);
    if (!nb.back().simplify().is_numeral()) return false;
  }
  for (size_t k = 0; k < fs.size(); ++k) {
    const unsigned w = na[k].get_sort().bv_size();
    if (w == wide) continue;
    // The narrow operand must be the low bits of a register (extract w-1..0 of a wider value).
    const z3::expr& e = na[k];
    if (!e.is_app() || e.decl().decl_kind() != Z3_OP_EXTRACT || e.lo() != 0 ||
        e.arg(0).get_sort().bv_size() < wide)
      return false;
    na[k] = e.arg(0).extract(wide - 1, 0);
    nb[k] = z3::zext(nb[k], wide - w);
  }
  *a = std::move(na);
  *b = std::move(nb);
  return true;
}

absl::StatusOr<std::string> XFromProbe(z3::context& ctx, SymState& st, const std::string& reg,
                                       uint64_t imm) {
  const SymFlags& f = *st.flags();
  const std::string& op = f.insn->mnemonic;
  if (op != "add" && op != "sub")
    return absl::InvalidArgumentError(absl::StrCat(
        "`", f.insn->Text(), "` overwrites its input, which the stub needs to recompute it"));
  const unsigned w = f.a.get_sort().bv_size();
  z3::expr r = st.Reg(reg).extract(w - 1, 0), c = ctx.bv_val(imm, w);
  z3::expr x = op == "add" ? r - c : r + c;
  z3::solver s(ctx);
  s.add(r != f.result || x != f.a);
  if (s.check() != z3::unsat)
    return absl::InvalidArgumentError(
        absl::StrCat("register ", reg, " at the probe is not `", f.insn->Text(), "`'s result"));
  // The immediate as the signed value the instruction encodes.
  int64_t sv =
      w == 64 ? static_cast<int64_t>(imm) : static_cast<int64_t>(imm << (64 - w)) >> (64 - w);
  if (sv == INT64_MIN) return absl::InvalidArgumentError("immediate INT64_MIN");
  bool minus = (op == "add") == (sv >= 0);
  return absl::StrCat("R ", minus ? "- " : "+ ", sv < 0 ? -sv : sv);
}

}  // namespace sie::synth::analysis
