#include "synth/analysis/predicate_span.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/artifact/model.h"
#include "synth/analysis/flags_span.h"
#include "synth/analysis/semantics.h"

namespace sie::synth::analysis {
namespace {

// cond at a concrete a: true, false, or nullopt when it does not simplify to one.
std::optional<bool> At(const z3::expr& cond, const z3::expr& a, uint64_t v) {
  z3::expr_vector from(cond.ctx()), to(cond.ctx());
  from.push_back(a);
  to.push_back(cond.ctx().bv_val(v, a.get_sort().bv_size()));
  z3::expr r = z3::expr(cond).substitute(from, to).simplify();
  if (r.is_true()) return true;
  if (r.is_false()) return false;
  return std::nullopt;
}

// The first point (in unsigned order of i ^ bias) where cond becomes `value`, assuming it is
// monotone there; 2^w (as nullopt) when it never does.
std::optional<uint64_t> FirstWhere(const z3::expr& cond, const z3::expr& a, bool value,
                                   uint64_t bias) {
  const unsigned w = a.get_sort().bv_size();
  const uint64_t M = Mask(w);
  auto is = [&](uint64_t i) { return At(cond, a, (i ^ bias) & M) == value; };
  if (!is(M)) return std::nullopt;
  uint64_t lo = 0, hi = M;  // is(hi)
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (is(mid))
      hi = mid;
    else
      lo = mid + 1;
  }
  return (lo ^ bias) & M;
}

// K of template `op` for one build, unproved.
std::optional<uint64_t> KOf(PredicateFit::Op op, const z3::expr& cond, const z3::expr& a) {
  const unsigned w = a.get_sort().bv_size();
  const uint64_t M = Mask(w), sign = uint64_t{1} << (w - 1);
  switch (op) {
    case PredicateFit::kUlt:
    case PredicateFit::kSlt: {
      // a < K: false from K on; never false is K = 2^w, which no w-bit K says.
      return FirstWhere(cond, a, false, op == PredicateFit::kSlt ? sign : 0);
    }
    case PredicateFit::kUgt:
    case PredicateFit::kSgt: {
      const uint64_t bias = op == PredicateFit::kSgt ? sign : 0;
      auto first = FirstWhere(cond, a, true, bias);
      if (!first || *first == bias) return std::nullopt;  // always true: K would be below 0
      return (((*first ^ bias) - 1) ^ bias) & M;
    }
    case PredicateFit::kEq:
    case PredicateFit::kNe: {
      z3::solver s(cond.ctx());
      s.add(op == PredicateFit::kEq ? cond : !cond);
      if (s.check() != z3::sat) return std::nullopt;
      uint64_t k = 0;
      if (!s.get_model().eval(a, true).is_numeral_u64(k)) return std::nullopt;
      return k;
    }
  }
  return std::nullopt;
}

}  // namespace

z3::expr PredicateExpr(PredicateFit::Op op, const z3::expr& operand, uint64_t k) {
  z3::expr K = operand.ctx().bv_val(k, operand.get_sort().bv_size());
  switch (op) {
    case PredicateFit::kUlt:
      return z3::ult(operand, K);
    case PredicateFit::kUgt:
      return z3::ugt(operand, K);
    case PredicateFit::kSlt:
      return operand < K;
    case PredicateFit::kSgt:
      return operand > K;
    case PredicateFit::kEq:
      return operand == K;
    case PredicateFit::kNe:
      return operand != K;
  }
  return operand == K;
}

std::optional<PredicateFit> FitPredicate(z3::context& ctx, const std::vector<z3::expr>& conds,
                                         const z3::expr& a) {
  for (PredicateFit::Op op : {PredicateFit::kUlt, PredicateFit::kUgt, PredicateFit::kSlt,
                              PredicateFit::kSgt, PredicateFit::kEq, PredicateFit::kNe}) {
    PredicateFit fit{op, {}};
    for (const z3::expr& cond : conds) {
      auto k = KOf(op, cond, a);
      if (!k) break;
      z3::solver s(ctx);
      BoundSolver(s, 5000u);
      s.add(cond != PredicateExpr(op, a, *k));
      if (s.check() != z3::unsat) break;
      fit.ks.push_back(*k);
    }
    if (fit.ks.size() == conds.size()) return fit;
  }
  return std::nullopt;
}

std::string PredicateText(PredicateFit::Op op, const std::string& operand, const std::string& k,
                          int bits) {
  const bool full = bits >= 64;
  const uint64_t M = Mask(bits);
  std::string x = full ? operand : absl::StrFormat("(%s & 0x%x)", operand, M);
  std::string c = full ? absl::StrCat("(", k, ")") : absl::StrFormat("((%s) & 0x%x)", k, M);
  if (op == PredicateFit::kSlt || op == PredicateFit::kSgt) {
    // Signed order is the unsigned order with the sign bit flipped.
    const uint64_t sign = uint64_t{1} << (bits - 1);
    x = absl::StrFormat("(%s ^ 0x%x)", x, sign);
    c = absl::StrFormat("(%s ^ 0x%x)", c, sign);
  }
  const char* sym = op == PredicateFit::kUlt || op == PredicateFit::kSlt   ? " < "
                    : op == PredicateFit::kUgt || op == PredicateFit::kSgt ? " > "
                    : op == PredicateFit::kEq                              ? " == "
                                                                           : " != ";
  return absl::StrCat(x, sym, c);
}

absl::Status ProvePredicateEmulation(z3::context& ctx, const std::vector<z3::expr>& wants,
                                     const std::vector<z3::expr>& preds,
                                     const std::string& consumer) {
  auto ops = artifact::PredicateFlagsOperands(consumer);
  if (!ops)
    return absl::InvalidArgumentError(
        absl::StrCat("the stub cannot set flags for `", consumer, "` alone"));
  auto byte = [&](uint8_t v) { return ctx.bv_val(v, 8); };
  for (size_t k = 0; k < wants.size(); ++k) {
    z3::expr lhs = z3::ite(preds[k], byte(ops->lhs_true), byte(ops->lhs_false));
    z3::expr rhs = z3::ite(preds[k], byte(ops->rhs_true), byte(ops->rhs_false));
    auto got = EmulatedCond(ctx, "cmp", lhs, rhs, consumer.substr(consumer[0] == 'j' ? 1 : 0));
    if (!got) return absl::InvalidArgumentError(absl::StrCat("`", consumer, "` is not modelled"));
    // The emulated consumer decides as the build's own jump, for every input.
    z3::solver s(ctx);
    BoundSolver(s, 5000u);
    s.add(*got != wants[k]);
    if (s.check() != z3::unsat)
      return absl::InvalidArgumentError(
          absl::StrCat("build ", k + 1, ": the flags set for the predicate do not decide `",
                       consumer, "` as the build's own compare does"));
  }
  return absl::OkStatus();
}

}  // namespace sie::synth::analysis
