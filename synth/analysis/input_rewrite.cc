#include "synth/analysis/input_rewrite.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "synth/analysis/derive.h"
#include "synth/analysis/multi_input.h"
#include "synth/analysis/semantics.h"

namespace sie::synth::analysis {
namespace {

// Candidates per build for the rewritten input's value: more are never seen in one region.
constexpr size_t kMaxTerms = 8;

// Every input constant and every bit-vector subterm of `es`, by id.
void Walk(const std::vector<z3::expr>& es, std::map<std::string, z3::expr>* inputs,
          std::map<unsigned, z3::expr>* terms) {
  std::function<void(const z3::expr&)> go = [&](const z3::expr& e) {
    if (!e.is_app() || terms->count(e.id())) return;
    if (e.is_bv()) terms->emplace(e.id(), e);
    if (e.num_args() == 0 && e.decl().decl_kind() == Z3_OP_UNINTERPRETED)
      inputs->emplace(e.decl().name().str(), e);
    for (unsigned i = 0; i < e.num_args(); ++i) go(e.arg(i));
  };
  for (const z3::expr& e : es) go(e);
}

// Terms of build k computed from `x` alone that the shipped build does not compute: what the
// constant made of x there.
std::vector<z3::expr> NewTermsOf(const std::vector<z3::expr>& outs, const std::string& x,
                                 const std::map<unsigned, z3::expr>& shipped) {
  std::map<std::string, z3::expr> inputs;
  std::map<unsigned, z3::expr> terms;
  Walk(outs, &inputs, &terms);
  std::vector<z3::expr> out;
  for (const auto& [id, t] : terms) {
    if (shipped.count(id) || t.is_numeral() || Width(t) > 64) continue;
    if (FreeInputs(t) != std::set<std::string>{x}) continue;
    if (t.num_args() == 0) continue;  // x itself
    out.push_back(t);
  }
  // The largest first: the whole of what the constant made of x, not a part of it (the
  // product inside a multiply-high division).
  auto size = [](const z3::expr& e) { return e.to_string().size(); };
  std::stable_sort(out.begin(), out.end(),
                   [&](const z3::expr& a, const z3::expr& b) { return size(a) > size(b); });
  if (out.size() > kMaxTerms) out.erase(out.begin() + kMaxTerms, out.end());
  return out;
}

// Whether the shipped outputs, with x rewritten by `formula` as the probe writes it (`width`
// bytes), equal build k's for every input; the result at index `restored` (x's own register,
// put back after the region) is compared as the shipped region leaves it.
bool Explains(z3::context& ctx, const std::vector<std::vector<z3::expr>>& outs, const z3::expr& x,
              const std::string& formula, int width, const std::vector<int64_t>& vs,
              std::optional<size_t> restored) {
  for (size_t k = 1; k < outs.size(); ++k) {
    auto f = FormulaAt(ctx, formula, vs[k], {{'X', x}});
    if (!f) return false;
    z3::expr nv = width == 4 ? z3::zext(f->value.extract(31, 0), 32) : f->value;
    z3::expr_vector from(ctx), to(ctx);
    from.push_back(x);
    to.push_back(Width(x) < 64 ? nv.extract(Width(x) - 1, 0) : nv);
    z3::expr differ = ctx.bool_val(false);
    for (size_t j = 0; j < outs[0].size(); ++j) {
      z3::expr a = j == restored ? outs[0][j] : z3::expr(outs[0][j]).substitute(from, to);
      differ = differ || Zext64(a) != Zext64(outs[k][j]);
    }
    // A 32-bit input's register holds it zero-extended: so must the rewritten value.
    if (Width(x) < 64) differ = differ || nv.extract(63, Width(x)) != 0;
    if (!Valid(ctx, !(f->defined && differ), 2000)) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<InputRewrite> FitInputRewrite(z3::context& ctx,
                                             const std::vector<std::vector<z3::expr>>& outs,
                                             const std::map<std::string, size_t>& live_regs,
                                             const std::vector<int64_t>& vs,
                                             const std::set<std::string>& zext32) {
  std::map<std::string, z3::expr> inputs;
  std::map<unsigned, z3::expr> shipped;
  Walk(outs[0], &inputs, &shipped);
  for (const auto& [name, x] : inputs) {
    if (name.rfind("in:", 0) != 0 || name == "in:sp") continue;
    const std::string fam = name.substr(3);
    // X live after a region that leaves it as it was is put back at the region's end (one
    // the region writes is a result computed from the rewritten X, like any other).
    std::optional<size_t> restored;
    if (auto it = live_regs.find(fam);
        it != live_regs.end() && Valid(ctx, Zext64(outs[0][it->second]) == Zext64(x), 2000))
      restored = it->second;
    std::vector<z3::expr> t1 = NewTermsOf(outs[1], name, shipped);
    std::vector<z3::expr> t2 = NewTermsOf(outs[2], name, shipped);
    for (const z3::expr& a : t1)
      for (const z3::expr& b : t2) {
        const int width = zext32.count(fam) || (Width(a) <= 32 && Width(b) <= 32) ? 4 : 8;
        z3::expr x0 = width == 4 ? Zext64(x.extract(31, 0)) : Zext64(x);
        auto fit = FitOutput(ctx, {x0, Zext64(a), Zext64(b)}, x, vs, width * 8, zext32.count(fam));
        if (!fit.ok() || !fit->uses_x) continue;
        std::vector<std::string> proved;
        for (const std::string& f : fit->alternatives)
          if (Explains(ctx, outs, x, f, width, vs, restored)) proved.push_back(f);
        if (!Explains(ctx, outs, x, fit->formula, width, vs, restored)) {
          if (proved.empty()) continue;
          fit->formula = proved.front();
          proved.erase(proved.begin());
        }
        return InputRewrite{fam,       width,     fit->formula,        proved,
                            fit->vmin, fit->vmax, restored.has_value()};
      }
  }
  return absl::InvalidArgumentError(
      "no input is rewritten by a formula of V that makes the shipped code compute every "
      "build's results");
}

}  // namespace sie::synth::analysis
