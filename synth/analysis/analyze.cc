#include "synth/analysis/analyze.h"

#include <elf.h>
#include <z3++.h>

#include <algorithm>
#include <array>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/artifact/formula.h"
#include "common/base/diag.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "common/elf/elf_file.h"
#include "synth/analysis/align.h"
#include "synth/analysis/alternatives.h"
#include "synth/analysis/callers.h"
#include "synth/analysis/dataflow.h"
#include "synth/analysis/disasm.h"
#include "synth/analysis/dwarf_info.h"
#include "synth/analysis/region.h"
#include "synth/analysis/slice.h"
#include "synth/refusal.h"

namespace sie::synth {
namespace {

using namespace analysis;  // NOLINT: this file is the stage orchestrator

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
  std::string hint;  // the first error's
  std::set<Refusal> classes;
  void Add(const absl::Status& s) {
    classes.insert(RefusalOf(s));
    if (msgs.empty()) {
      first = RefusalOf(s);
      hint = Hint(s);
    }
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
  FunctionAnalysis(const HunkContext& cx, std::vector<Hunk> hunks, ObjectErrors* errors)
      : cx_(cx), fb_(*cx.fn[0]), hunks_(std::move(hunks)), original_(hunks_), errors_(errors) {}

  void Run() {
    for (hi_ = 0; hi_ < hunks_.size(); ++hi_) {
      try {
        AnalyzeAt();
      } catch (const z3::exception& e) {
        errors_->Add(absl::InternalError(absl::StrCat(fb_.name, ": z3: ", e.msg())));
      }
    }
    for (const auto& [h, st] : moves_)
      if (!Absorbed(h)) errors_->Add(st);
  }

 private:
  // A hunk of `mov REG, imm` only (a multiplier hoisted before a loop, the same at the fitted
  // values, another at a check value): its refusal waits for the function's spans.
  bool ConstantMoves(const Hunk& h) const {
    if (h.base_begin >= h.base_end) return false;
    for (int i = h.base_begin; i < h.base_end; ++i)
      if (!ConstantMove(fb_.insns[i])) return false;
    return true;
  }

  // Every value the hunk's moves set is read only inside spans whose formulas read it as their
  // own numeral (CriticalSpan::constant_defs): what the constant changes there, they rewrite.
  bool Absorbed(const Hunk& h) const {
    for (int i = h.base_begin; i < h.base_end; ++i) {
      const uint64_t def = fb_.insns[i].offset;
      auto readers = ReadersAfter(fb_, i, RegFamily(fb_.insns[i].ops[0].reg));
      if (!readers || readers->empty()) return false;
      for (int ri : *readers) {
        const uint64_t at = fb_.insns[ri].offset;
        const bool inside =
            std::any_of(cx_.res->spans.begin(), cx_.res->spans.end(), [&](const CriticalSpan& s) {
              return s.function == fb_.name && at >= s.cs_start && at < s.cs_end &&
                     std::find(s.constant_defs.begin(), s.constant_defs.end(), def) !=
                         s.constant_defs.end();
            });
        if (!inside) {
          if (LogEnabled(LogLevel::kTrace))
            Logf(LogLevel::kTrace, "%s+0x%x: the value set there is also read at +0x%x", fb_.name,
                 def, at);
          return false;
        }
      }
    }
    return true;
  }

  void AnalyzeAt() {
    const size_t first = hi_;
    Hunk cur = hunks_[hi_];
    auto spans = AnalyzeHunk(cx_, cur);
    const int prev_end = last_ ? last_->base_end : 0;
    bool took_last = false;
    for (int step = 0; step < 12 && MayGrow(spans); ++step) {
      Hunk g = cur;
      bool merged = MergeNext(cur, &g);
      if (!merged && !Widen(cur, prev_end, &took_last, &g)) break;
      if (LogEnabled(LogLevel::kTrace))
        Logf(LogLevel::kTrace, "%s+0x%x: region refused (%s), grown", fb_.name,
             fb_.insns[cur.base_begin].offset, std::string(spans.status().message()).c_str());
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
    // Several inputs, a loaded one, or one input in no X op h(V) template: the region as
    // grown, now with multi-input spans (fitted as one shape over their inputs).
    if (!spans.ok() && (RefusalOf(spans.status()) == Refusal::kTwoInputs ||
                        RefusalOf(spans.status()) == Refusal::kInputInSpan ||
                        RefusalOf(spans.status()) == Refusal::kFormulaFamily)) {
      HunkContext multi = cx_;
      multi.multi_input = true;
      auto again = AnalyzeHunk(multi, cur);
      if (again.ok() && took_last && cur.base_begin == last_->base_begin) {
        cx_.res->spans.resize(cx_.res->spans.size() - last_spans_);
        last_spans_ = 0;
      }
      spans = std::move(again);
    }
    // The region analyzed last (grown or not) and the spans it produced (0: refused).
    last_ = cur;
    last_spans_ = 0;
    if (!spans.ok() && ConstantMoves(hunks_[first])) {
      // The hunks it was merged with are analysed on their own (their spans may read it).
      for (size_t j = first; j <= hi_; ++j) hunks_[j] = original_[j];
      hi_ = first;
      last_ = hunks_[first];
      moves_.emplace_back(hunks_[first], spans.status());
      return;
    }
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

  const HunkContext& cx_;
  const Function& fb_;
  std::vector<Hunk> hunks_;
  const std::vector<Hunk> original_;  // before merges
  ObjectErrors* errors_;
  size_t hi_ = 0;
  std::optional<Hunk> last_;
  size_t last_spans_ = 0;
  std::vector<std::pair<Hunk, absl::Status>> moves_;  // see ConstantMoves
};

// The three builds, disassembled (only the `functions:` scope when given).
struct Builds {
  std::vector<std::unique_ptr<ElfFile>> elfs;
  std::vector<std::vector<Function>> fns;
};

// The functions analysed: only `only` when given, never those of `skip` (normalized names).
struct Scope {
  std::set<std::string> only, skip;
};

// The functions of `elf` in scope.
absl::StatusOr<std::vector<Function>> ScopedFunctions(const ElfFile& elf, const Scope& scope) {
  auto f = DisassembleFunctions(elf, scope.only);
  if (f.ok())
    std::erase_if(*f, [&](const Function& fn) { return scope.skip.count(fn.norm_name) > 0; });
  return f;
}

// Each function's return size from DWARF (`sizes`: ReturnSizes). Clones (foo.isra.0) may
// return less than their source function: left at 8 bytes.
void SetReturnBytes(const absl::StatusOr<std::map<std::string, int>>& sizes,
                    std::vector<Function>* fns) {
  if (!sizes.ok()) return;
  for (Function& fn : *fns)
    if (auto it = sizes->find(fn.name); it != sizes->end()) fn.return_bytes = it->second;
}

absl::StatusOr<Builds> LoadBuilds(const std::vector<VariantObject>& variants,
                                  const Scope& only_norm) {
  Builds b;
  if (variants.empty()) return absl::InvalidArgumentError("no build to load");
  // Return types do not change with the value: read once, from the first build's DWARF.
  auto sizes = ReturnSizes(variants[0].path);
  for (const auto& v : variants) {
    auto e = ElfFile::Open(v.path);
    if (!e.ok()) return e.status();
    auto f = ScopedFunctions(**e, only_norm);
    if (!f.ok()) return f.status();
    SetReturnBytes(sizes, &*f);
    b.elfs.push_back(std::move(*e));
    b.fns.push_back(std::move(*f));
  }
  for (const auto& want : only_norm.only) {
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
using FunctionSets = std::array<const std::vector<Function>*, 3>;

void AnalyzeFunctions(const FunctionSets& fns, const std::vector<int64_t>& vs, AnalysisResult* res,
                      ObjectErrors* errors) {
  auto index = [](const std::vector<Function>& v) {
    std::map<std::string, std::vector<const Function*>> m;
    for (const Function& f : v) m[f.norm_name].push_back(&f);
    return m;
  };
  auto i1 = index(*fns[1]), i2 = index(*fns[2]);
  std::map<std::string, int> seen;
  for (const Function& fb : *fns[0]) {
    int n = seen[fb.norm_name]++;
    auto x = i1.find(fb.norm_name), y = i2.find(fb.norm_name);
    if (x == i1.end() || y == i2.end() || static_cast<int>(x->second.size()) <= n ||
        static_cast<int>(y->second.size()) <= n) {
      res->warnings.push_back(absl::StrCat("function ", fb.name,
                                           " is missing from some builds (inlining or cloning "
                                           "depends on the constant); not analyzed"));
      continue;
    }
    HunkContext cx{{&fb, x->second[n], y->second[n]}, vs, res};
    // Blocks laid out in another order are not a control-flow change: diff in base order.
    std::optional<Function> relaid[2];
    // So are callee-saved registers given each other's roles.
    std::optional<Function> renamed[2];
    for (int k = 1; k < 3; ++k) {
      relaid[k - 1] = RelayoutLike(fb, *cx.fn[k]);
      if (relaid[k - 1]) cx.fn[k] = &*relaid[k - 1];
      renamed[k - 1] = RenamedLike(fb, *cx.fn[k]);
      if (renamed[k - 1]) cx.fn[k] = &*renamed[k - 1];
    }
    cx.multi_input = false;  // FunctionAnalysis retries a refused region with them
    FunctionAnalysis(cx, DiffFunctions(fb, {cx.fn[1], cx.fn[2]}), errors).Run();
  }
  auto i0 = index(*fns[0]);
  for (int k = 1; k < 3; ++k)
    for (const Function& f : *fns[k])
      if (!i0.count(f.norm_name))
        res->warnings.push_back(absl::StrCat(
            "function ", f.name, " exists only in the build with V=", vs[k], "; not analyzed"));
}

// --- The check at values never fitted (AnalyzeOptions::check) ---

// The further inputs and where the stub reads them ("" for a span without any).
std::string InputsKey(const CriticalSpan& s) {
  std::string k;
  for (const artifact::SpanInput& in : s.inputs) {
    absl::StrAppend(&k, " ", in.name, "=", in.reg);
    if (in.mem)
      absl::StrAppend(&k, "[", in.mem->base, ",", in.mem->index, ",", in.mem->scale, ",",
                      in.mem->disp, "]/", in.width);
  }
  return k;
}

// What a span writes and where: spans of two runs are the same span when these agree.
std::string SpanKey(const CriticalSpan& s) {
  std::string mem;
  if (s.target_mem)
    mem = absl::StrCat(s.target_mem->base, ",", s.target_mem->index, ",", s.target_mem->scale, ",",
                       s.target_mem->disp);
  return absl::StrCat(s.function, "+", s.cs_start, "-", s.cs_end, " ", SpanKindName(s.kind), " ",
                      s.target_reg, " ", mem, " ", s.width, " ", s.flags_op, " X=", s.save_reg,
                      InputsKey(s));
}

std::string SpanWhere(const CriticalSpan& s) {
  return absl::StrFormat("%s+0x%x (%s%s%s)", s.function, s.cs_start, SpanKindName(s.kind),
                         s.target_reg.empty() ? "" : " ", s.target_reg);
}

absl::Status CheckRefusal(const std::string& msg, Refusal cls) {
  const char* why = cls == Refusal::kFormulaFamily
                        ? "three builds fit a formula the compiler's folding does not follow "
                          "over the range"
                        : "the code at a value inside the range is not shaped like the three "
                          "builds'";
  return Classified(
      FailedWithHint(msg, absl::StrCat(why,
                                       ": restrict the range, scope the function out (spec "
                                       "`functions`) or tune the code by hand")),
      cls);
}

// `fitted` (from V1..V3) against `seen` (the same span derived with V1, V2 and the check value
// v, so proved exact for v's code): they must give the same value at v (for formulas in X: at
// every X sampled). Of a fit with alternatives, only the candidates that do are kept.
absl::Status SameAt(CriticalSpan& fitted, const CriticalSpan& seen, int64_t v,
                    const std::vector<int64_t>& vs) {
  const std::string formula = fitted.formula;
  const size_t others = fitted.formula_alternatives.size();
  std::string why;
  if (KeepAgreeing(&fitted, seen, v, &why)) return absl::OkStatus();
  return CheckRefusal(
      absl::StrCat(
          SpanWhere(fitted), ": formula `", formula, "` fitted from V=", absl::StrJoin(vs, ", "),
          " ", why, ": the formula is wrong for part of the range",
          others ? absl::StrCat(" (so are the ", others, " other formulas that fit)") : ""),
      Refusal::kFormulaFamily);
}

// The counterpart in `var` of base instructions [b, e): between the counterparts of the common
// instructions around them; false when those are not common to both.
bool MapRange(const Function& base, const Function& var, int b, int e, int* vb, int* ve) {
  std::vector<int> m = AlignInsns(base.insns, var.insns);
  const int n = static_cast<int>(base.insns.size());
  if ((b > 0 && m[b - 1] < 0) || (e < n && m[e] < 0)) return false;
  *vb = b == 0 ? 0 : m[b - 1] + 1;
  *ve = e == n ? static_cast<int>(var.insns.size()) : m[e];
  return *vb <= *ve;
}

// Span `s` derived again from exactly its region in V1, V2 and the check build: the check run
// may cut its hunks otherwise (V3's `sub ax,-128` for `add eax,64` makes one region of `and;
// add`, which V1, V2 and V4 sharing a shape split into two one-instruction spans).
absl::StatusOr<CriticalSpan> Rederive(const FunctionSets& fns, const CriticalSpan& s,
                                      const std::vector<int64_t>& vs) {
  const Function* f[3] = {nullptr, nullptr, nullptr};
  for (const Function& fn : *fns[0])
    if (fn.name == s.function) f[0] = &fn;
  for (int k = 1; k < 3 && f[0]; ++k)
    for (const Function& fn : *fns[k])
      if (!f[k] && fn.norm_name == f[0]->norm_name) f[k] = &fn;
  if (!f[0] || !f[1] || !f[2]) return absl::NotFoundError("the function is not in every build");
  std::optional<Function> relaid[2], renamed[2];
  for (int k = 1; k < 3; ++k) {
    if ((relaid[k - 1] = RelayoutLike(*f[0], *f[k]))) f[k] = &*relaid[k - 1];
    if ((renamed[k - 1] = RenamedLike(*f[0], *f[k]))) f[k] = &*renamed[k - 1];
  }
  const int n = static_cast<int>(f[0]->insns.size());
  Hunk h;
  h.base_begin = f[0]->IndexAt(s.cs_start);
  h.base_end = s.cs_end >= f[0]->size ? n : f[0]->IndexAt(s.cs_end);
  h.var_begin.resize(2);
  h.var_end.resize(2);
  bool mapped = h.base_begin >= 0 && h.base_end > h.base_begin;
  for (int k = 1; k < 3 && mapped; ++k)
    mapped =
        MapRange(*f[0], *f[k], h.base_begin, h.base_end, &h.var_begin[k - 1], &h.var_end[k - 1]);
  if (!mapped) return absl::NotFoundError("the instructions around the span are not common");
  AnalysisResult scratch;
  HunkContext cx{{f[0], f[1], f[2]}, vs, &scratch};
  try {
    auto spans = AnalyzeWholeRegion(cx, h);
    if (!spans.ok()) return spans.status();
    for (const CriticalSpan& sp : *spans)
      if (SpanKey(sp) == SpanKey(s)) return sp;
  } catch (const z3::exception& e) {
    return absl::InternalError(absl::StrCat("z3: ", e.msg()));
  }
  return absl::NotFoundError("the region yields no such span");
}

// The check run's refusal, with what the fitted formulas of that function predicted.
absl::Status CheckRunFailed(const ObjectErrors& errors, int64_t v, const std::vector<int64_t>& vs,
                            const AnalysisResult& res) {
  std::string predicted;
  for (const CriticalSpan& s : res.spans) {
    if (!absl::StrContains(errors.msgs[0], absl::StrCat(s.function, "+"))) continue;
    auto want = artifact::EvalFormula(s.formula, v, 0, s.width);
    if (want.ok() && !absl::StrContains(s.formula, "X"))
      absl::StrAppend(&predicted, "; ", SpanWhere(s), ": `", s.formula, "` gives ", *want);
  }
  // Not explained at all is not a disagreement (SameAt refuses those): the code at v has
  // another shape (signed x / 3 is `shr rax, 32` where x / 5 is `sar rax, 33`), so the caller
  // may check nearby values or stop the range short of v instead of refusing.
  const Refusal cls =
      errors.first == Refusal::kUnclassified || errors.first == Refusal::kFormulaFamily
          ? Refusal::kShapeChange
          : errors.first;
  return CheckRefusal(
      absl::StrCat("checked at V=", v, " (never fitted): the builds with V=", vs[0], ", ", vs[1],
                   ", ", v, " are not explained alike (", errors.msgs[0], ")",
                   predicted.empty() ? "" : absl::StrCat("; at V=", v, ": ", predicted.substr(2)),
                   "; the formulas fitted from V=", absl::StrJoin(vs, ", "),
                   " cannot be checked there"),
      cls);
}

// Analyses V1, V2 and the check build `c`; every span of `res` must come out cut alike with a
// formula that agrees at c's value, and no other span may appear.
absl::Status CheckAt(const Builds& b, const VariantObject& c, const Scope& only_norm,
                     const std::vector<int64_t>& vs, AnalysisResult* res) {
  auto elf = ElfFile::Open(c.path);
  if (!elf.ok()) return elf.status();
  auto fns = ScopedFunctions(**elf, only_norm);
  if (!fns.ok()) return fns.status();
  AnalysisResult other;
  other.range_min = res->range_min;
  other.range_max = res->range_max;
  ObjectErrors errors;
  AnalyzeFunctions({&b.fns[0], &b.fns[1], &*fns}, {vs[0], vs[1], c.value}, &other, &errors);
  if (!errors.msgs.empty()) return CheckRunFailed(errors, c.value, vs, *res);
  std::map<std::string, const CriticalSpan*> seen;
  for (const CriticalSpan& s : other.spans) seen[SpanKey(s)] = &s;
  const FunctionSets fs = {&b.fns[0], &b.fns[1], &*fns};
  for (CriticalSpan& s : res->spans) {
    auto it = seen.find(SpanKey(s));
    if (it != seen.end()) {
      if (auto st = SameAt(s, *it->second, c.value, vs); !st.ok()) return st;
      seen.erase(it);
      continue;
    }
    auto again = Rederive(fs, s, {vs[0], vs[1], c.value});
    if (!again.ok())
      return CheckRefusal(absl::StrCat(SpanWhere(s), ": with V=", c.value,
                                       " (never fitted) this span cannot be derived again (",
                                       again.status().message(), "): the formula `", s.formula,
                                       "` is unchecked there"),
                          Refusal::kShapeChange);
    if (auto st = SameAt(s, *again, c.value, vs); !st.ok()) return st;
  }
  // What is left was cut differently inside a span checked whole above, or is new code.
  for (const auto& [key, o] : seen) {
    bool inside = std::any_of(res->spans.begin(), res->spans.end(), [&](const CriticalSpan& s) {
      return s.function == o->function && o->cs_start >= s.cs_start && o->cs_end <= s.cs_end;
    });
    if (!inside)
      return CheckRefusal(absl::StrCat(SpanWhere(*o), ": with V=", c.value,
                                       " (never fitted) the code also differs here, where V=",
                                       absl::StrJoin(vs, ", "),
                                       " agree: the value reaches code the three builds did not "
                                       "show"),
                          Refusal::kShapeChange);
  }
  return absl::OkStatus();
}

// Builds of other values, on demand (AnalyzeOptions::build), each value once.
struct ValueBuilds {
  const std::function<absl::StatusOr<std::string>(int64_t)>* build = nullptr;
  std::map<int64_t, absl::StatusOr<std::string>> done;
  absl::StatusOr<std::string> Get(int64_t v) {
    if (!build || !*build) return absl::UnavailableError("no builder");
    auto it = done.find(v);
    if (it == done.end()) it = done.emplace(v, (*build)(v)).first;
    return it->second;
  }
};

bool PowerOfTwo(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

// Values tried or checked are listed once each.
void AddOnce(std::vector<int64_t>* values, int64_t v) {
  if (std::find(values->begin(), values->end(), v) == values->end()) values->push_back(v);
}

bool AllPowersOfTwo(const std::vector<int64_t>& vs) {
  return std::all_of(vs.begin(), vs.end(), PowerOfTwo);
}

// Where the code has another shape at the check value `bad` and around it, on one side of the
// fitted values (a loop unrolled for small counts, another instruction for large ones), the
// range stops where the fitted shape does: bisected with builds between the nearest such value
// and the fitted ones; the first value of the fitted side that checks becomes the range's end.
// A formula that disagrees at a bisection value refuses, as any check does.
absl::Status NarrowToShape(const Builds& b, int64_t bad, const absl::Status& failed,
                           const Scope& only_norm, const std::vector<int64_t>& vs,
                           const std::vector<int64_t>& tried, ValueBuilds* more,
                           AnalysisResult* res) {
  auto [lo_it, hi_it] = std::minmax_element(vs.begin(), vs.end());
  const bool below = bad < *lo_it;
  if (!below && bad <= *hi_it) return failed;       // between fitted values: no range to cut
  int64_t out = bad, in = below ? *lo_it : *hi_it;  // out: another shape; in: the fitted one
  // V restricted to powers of two: bisected over the exponents.
  const bool pow2 = res->pow2_only && PowerOfTwo(bad) && PowerOfTwo(in);
  for (int64_t t : tried)
    if ((below ? t < in && t > out : t > in && t < out) && (!pow2 || PowerOfTwo(t))) out = t;
  auto mid_of = [&]() -> std::optional<int64_t> {
    if (!pow2) return std::abs(in - out) > 1 ? std::optional(out + (in - out) / 2) : std::nullopt;
    const int eo = __builtin_ctzll(out), ei = __builtin_ctzll(in);
    if (std::abs(ei - eo) <= 1) return std::nullopt;
    return int64_t{1} << (eo + (ei - eo) / 2);
  };
  // Enough rounds to pin the boundary down in a gap of 2^kMaxBisect values (one build each).
  constexpr int kMaxBisect = 20;
  std::optional<int64_t> checked, next = mid_of();
  for (int round = 0; round < kMaxBisect && next; ++round, next = mid_of()) {
    const int64_t mid = *next;
    auto path = more->Get(mid);
    if (!path.ok() && (!more->build || !*more->build)) return failed;
    // A value the kernel does not compile with (BUILD_BUG_ON) is outside the range too.
    absl::Status st = path.ok() ? CheckAt(b, {mid, *path}, only_norm, vs, res) : path.status();
    if (RefusalOf(st) == Refusal::kFormulaFamily) return st;
    (st.ok() ? in : out) = mid;
    if (st.ok()) checked = mid;
  }
  if (next) return failed;  // the boundary is not pinned down
  if (checked) AddOnce(&res->checked, *checked);
  (below ? res->range_min : res->range_max) = in;
  res->warnings.push_back(
      absl::StrCat("V is restricted to ", below ? ">= " : "<= ", in,
                   ": the code has another shape or does not compile at V=", out, " and beyond (",
                   failed.message().substr(0, 200), "), where the formula cannot be checked"));
  return absl::OkStatus();
}

// The check at `c` failed with `failed` because the code there has another shape (not because
// a formula disagrees): nearby values are checked instead, the first that agrees replaces c.
absl::Status CheckNearby(const Builds& b, const VariantObject& c, const absl::Status& failed,
                         const Scope& only_norm, const std::vector<int64_t>& vs,
                         std::vector<int64_t>* taken, ValueBuilds* more, AnalysisResult* res) {
  std::vector<int64_t> tried;
  for (int64_t v : ReplacementValues(c.value, res->range_min, res->range_max, *taken, true, 2)) {
    taken->push_back(v);
    auto path = more->Get(v);
    if (!path.ok()) continue;
    tried.push_back(v);
    absl::Status st = CheckAt(b, {v, *path}, only_norm, vs, res);
    if (st.ok()) {
      res->checked.push_back(v);
      res->warnings.push_back(absl::StrCat("the code at the check value V=", c.value,
                                           " has another shape (", failed.message().substr(0, 200),
                                           "); checked at V=", v, " instead"));
      return absl::OkStatus();
    }
    if (RefusalOf(st) == Refusal::kFormulaFamily) return st;  // a formula disagrees there
  }
  if (auto narrowed = NarrowToShape(b, c.value, failed, only_norm, vs, tried, more, res);
      narrowed.ok() || RefusalOf(narrowed) == Refusal::kFormulaFamily)
    return narrowed;
  std::string note = tried.empty() ? ""
                                   : absl::StrCat("; nearby V=", absl::StrJoin(tried, ", "),
                                                  " have another shape too");
  if (AllPowersOfTwo(vs))
    absl::StrAppend(&note, "; V=", absl::StrJoin(vs, ", "),
                    " are all powers of two: the code may hold for powers of two only, which a "
                    "range cannot express");
  return CheckRefusal(absl::StrCat(failed.message(), note), RefusalOf(failed));
}

// Every check build inside the (narrowed) range; the values checked are noted in warnings.
absl::Status CheckAll(const Builds& b, const std::vector<VariantObject>& checks,
                      const Scope& only_norm, const std::vector<int64_t>& vs,
                      const std::vector<int64_t>& avoid, ValueBuilds* more, AnalysisResult* res) {
  std::vector<int64_t> skipped, taken = vs;
  taken.insert(taken.end(), avoid.begin(), avoid.end());
  for (const VariantObject& c : checks) taken.push_back(c.value);
  for (const VariantObject& c : checks) {
    if (c.value < res->range_min || c.value > res->range_max) {
      skipped.push_back(c.value);
      continue;
    }
    // No object: the kernel does not compile with that value (the builder said why).
    absl::Status s =
        c.path.empty() ? CheckRefusal(absl::StrCat("the kernel does not compile with V=", c.value),
                                      Refusal::kBuild)
                       : CheckAt(b, c, only_norm, vs, res);
    if (s.ok()) {
      res->checked.push_back(c.value);
      continue;
    }
    if (RefusalOf(s) == Refusal::kFormulaFamily) return s;
    // Fitted from powers of two only, code of another shape at a value that is none is what
    // such a fit shows first (x / V is `shr` there): the caller refits (FitNonPowerOfTwo).
    if (AllPowersOfTwo(vs) && !PowerOfTwo(c.value) && !res->pow2_only) return s;
    RETURN_IF_ERROR(CheckNearby(b, c, s, only_norm, vs, &taken, more, res));
  }
  if (!res->checked.empty())
    res->warnings.push_back(absl::StrCat("formula checked at V=", absl::StrJoin(res->checked, ", "),
                                         " (builds never used to fit)"));
  if (!skipped.empty())
    res->warnings.push_back(absl::StrCat("formula not checked at V=", absl::StrJoin(skipped, ", "),
                                         ": outside the narrowed range"));
  return absl::OkStatus();
}

// A value replaced for its other shape beyond every value fitted (V3 = 2000 where 1000, 1002,
// 1003 were) is vouched for by no build: a dependence on V the fitted values do not show
// (tcp_lp's `tsecr * (LP_RESOL / TCP_TS_HZ)`, `* 1` from 1000 to 1999, `* 2` at 2000) would
// go unseen. The value next to it, further out, is checked; where that check fails for any
// reason, the range ends at the nearest value fitted or checked before the replaced one.
void CheckBeyond(const Builds& b, const std::vector<int64_t>& avoid, const Scope& only_norm,
                 const std::vector<int64_t>& vs, ValueBuilds* more, AnalysisResult* res) {
  auto [lo, hi] = std::minmax_element(vs.begin(), vs.end());
  for (int64_t a : avoid) {
    if (a > *lo && a < *hi) continue;  // between fitted values
    const bool above = a > *hi;
    const __int128 w = static_cast<__int128>(a) + (above ? 1 : -1);
    if (w < res->range_min || w > res->range_max) continue;
    const auto v = static_cast<int64_t>(w);
    auto path = more->Get(v);
    absl::Status st = path.ok() ? CheckAt(b, {v, *path}, only_norm, vs, res) : path.status();
    if (st.ok()) {
      AddOnce(&res->checked, v);
      continue;
    }
    // Another shape there as well: the range ends where the fitted shape does, between the
    // fitted values and a (bisected as for a check value of another shape).
    if (RefusalOf(st) != Refusal::kFormulaFamily &&
        NarrowToShape(b, a, st, only_norm, vs, {}, more, res).ok())
      continue;
    int64_t end = above ? *hi : *lo;  // the good value nearest to a, on the fitted side
    for (int64_t g : res->checked)
      if (above ? g < a && g > end : g > a && g < end) end = g;
    (above ? res->range_max : res->range_min) = end;
    res->warnings.push_back(
        absl::StrCat("V is restricted to ", above ? "<= " : ">= ", end, ": V=", a,
                     " was replaced for its other shape, and the check beyond it at V=", v,
                     " fails (", st.message().substr(0, 200), ")"));
  }
}

// Rounds of NarrowByBuilds: each halves the candidates at least, so 2^8 of them get settled.
constexpr int kNarrowBuilds = 8;

// Fits three builds could not single out: each round builds the value where the candidates
// left split most evenly, and keeps the ones its code agrees with (CheckAt). A value whose
// code has another shape is skipped; one where no candidate agrees refuses the constant.
absl::Status NarrowByBuilds(const Builds& b, const Scope& only_norm, const std::vector<int64_t>& vs,
                            const std::vector<int64_t>& avoid, ValueBuilds* more,
                            AnalysisResult* res) {
  std::vector<int64_t> taken = vs, used;
  taken.insert(taken.end(), avoid.begin(), avoid.end());
  taken.insert(taken.end(), res->checked.begin(), res->checked.end());
  for (int round = 0; round < kNarrowBuilds; ++round) {
    auto v = SplittingValue(res->spans, res->range_min, res->range_max, taken, res->pow2_only);
    if (!v) break;
    taken.push_back(*v);
    auto path = more->Get(*v);
    if (!path.ok()) break;  // no builder: ResolveAlternatives decides on what there is
    absl::Status st = CheckAt(b, {*v, *path}, only_norm, vs, res);
    if (!st.ok() && RefusalOf(st) == Refusal::kFormulaFamily) return st;
    if (!st.ok()) continue;
    res->checked.push_back(*v);
    used.push_back(*v);
  }
  if (!used.empty())
    res->warnings.push_back(
        absl::StrCat("formulas the builds could not tell apart narrowed by "
                     "builds at V=",
                     absl::StrJoin(used, ", ")));
  return absl::OkStatus();
}

// The fit: three builds, their functions and what the analysis made of them.
struct Fit {
  std::vector<VariantObject> variants;
  std::vector<int64_t> vs;
  Builds builds;
  AnalysisResult res;
  ObjectErrors errors;
};

absl::StatusOr<Fit> FitBuilds(const std::vector<VariantObject>& variants,
                              const AnalyzeOptions& opts, const Scope& only_norm) {
  Fit f;
  f.variants = variants;
  for (const auto& v : variants) f.vs.push_back(v.value);
  auto builds = LoadBuilds(variants, only_norm);
  if (!builds.ok()) return builds.status();
  f.builds = std::move(*builds);
  f.res.range_min = opts.range_min;
  f.res.range_max = opts.range_max;
  AnalyzeFunctions({&f.builds.fns[0], &f.builds.fns[1], &f.builds.fns[2]}, f.vs, &f.res, &f.errors);
  return f;
}

// The first of `cands` (built on demand) at which the three builds agree with it in place of
// first.variants[idx]; it leaves `checks`. NotFound when none does; `tried` lists the values.
absl::StatusOr<Fit> FitInPlace(const Fit& first, int idx, std::vector<VariantObject> cands,
                               const AnalyzeOptions& opts, const Scope& only_norm,
                               std::vector<VariantObject>* checks, ValueBuilds* more,
                               std::vector<int64_t>* tried) {
  for (VariantObject c : cands) {
    if (c.path.empty()) {
      auto path = more->Get(c.value);
      if (!path.ok()) continue;
      c.path = *path;
    }
    std::vector<VariantObject> trial = first.variants;
    trial[idx] = c;
    AddOnce(tried, c.value);
    auto f = FitBuilds(trial, opts, only_norm);
    if (!f.ok() || !f->errors.msgs.empty()) continue;
    std::erase_if(*checks, [&](const VariantObject& o) { return o.value == c.value; });
    return f;
  }
  return absl::NotFoundError("no value fits");
}

// How far the code built at `path` is from V1's: instructions in the hunks of V1's functions
// against it (layout-only differences never count), a whole function where one is missing.
size_t ShapeDistance(const std::vector<Function>& v1, const std::string& path, const Scope& scope) {
  constexpr size_t kFar = std::numeric_limits<size_t>::max();
  auto elf = ElfFile::Open(path);
  if (!elf.ok()) return kFar;
  auto fns = ScopedFunctions(**elf, scope);
  if (!fns.ok()) return kFar;
  std::map<std::string, const Function*> by_name;
  for (const Function& f : *fns) by_name[f.norm_name] = &f;
  size_t d = 0;
  for (const Function& f : v1) {
    auto it = by_name.find(f.norm_name);
    if (it == by_name.end()) {
      d += f.insns.size();
      continue;
    }
    for (const Hunk& h : DiffFunctions(f, {it->second}))
      d += std::max(h.base_end - h.base_begin, h.var_end[0] - h.var_begin[0]);
  }
  return d;
}

// Both V2 and V3 have another shape than the shipped V1 (register allocation that changes
// around one value): replacing one of them cannot help. Values around V1 are built, ranked
// by how close their code is to V1's, and the closest pairs fitted in place of V2 and V3.
// The fit is checked at further values like any other.
absl::StatusOr<Fit> FitPairNearV1(const Fit& first, const AnalyzeOptions& opts,
                                  const Scope& only_norm, std::vector<VariantObject>* checks,
                                  ValueBuilds* more, std::vector<int64_t>* tried) {
  constexpr int kAround = 4;  // V1 - 4 .. V1 + 4
  std::vector<std::pair<size_t, VariantObject>> ranked;
  for (int k = 1; k <= kAround; ++k)
    for (__int128 w :
         {static_cast<__int128>(first.vs[0]) + k, static_cast<__int128>(first.vs[0]) - k}) {
      const auto v = static_cast<int64_t>(w);
      if (w < opts.range_min || w > opts.range_max ||
          std::find(first.vs.begin(), first.vs.end(), v) != first.vs.end())
        continue;
      auto path = more->Get(v);
      if (!path.ok()) continue;
      // Code identical to V1's (msecs_to_jiffies(499) is msecs_to_jiffies(500)) fits nothing.
      const size_t d = ShapeDistance(first.builds.fns[0], *path, only_norm);
      if (d > 0) ranked.push_back({d, {v, *path}});
    }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  const size_t n = std::min<size_t>(ranked.size(), 3);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) {
      std::vector<VariantObject> trial = first.variants;
      trial[1] = ranked[i].second;
      trial[2] = ranked[j].second;
      AddOnce(tried, trial[1].value);
      AddOnce(tried, trial[2].value);
      auto f = FitBuilds(trial, opts, only_norm);
      if (!f.ok() || !f->errors.msgs.empty()) continue;
      std::erase_if(*checks, [&](const VariantObject& o) {
        return o.value == trial[1].value || o.value == trial[2].value;
      });
      f->res.warnings.push_back(absl::StrCat(
          "the code at V=", first.vs[1], " and V=", first.vs[2], " has another shape than at V1 (",
          first.errors.msgs[0].substr(0, 200), "); fitted from V=", absl::StrJoin(f->vs, ", "),
          ", the values near V1 whose code is closest to V1's, instead (both stay in the "
          "range: the formula is the code's at V1 with the new value)"));
      return f;
    }
  return absl::NotFoundError("no pair around V1 fits");
}

// The warning of fit `f`, in which the value at `idx` of `first` was replaced (`how`).
std::string ReplacedWarning(const Fit& first, int idx, const Fit& f, absl::string_view how) {
  return absl::StrCat("the code at V=", first.vs[idx], " has another shape (",
                      first.errors.msgs[0].substr(0, 200),
                      "); fitted from V=", absl::StrJoin(f.vs, ", "), how);
}

// The code has another shape at V2 or V3 (`first`: why): that value is replaced by one at which
// the three builds agree, first a check build (already built; then removed from `checks`), else
// a nearby value built on demand. NotFound when none agrees.
absl::StatusOr<Fit> FitAnotherValue(const Fit& first, const AnalyzeOptions& opts,
                                    const Scope& only_norm, std::vector<VariantObject>* checks,
                                    ValueBuilds* more) {
  std::vector<int64_t> taken = first.vs, tried;
  for (const VariantObject& c : *checks) taken.push_back(c.value);
  for (int idx : {2, 1}) {
    std::vector<VariantObject> cands = *checks;
    for (int64_t v :
         ReplacementValues(first.vs[idx], opts.range_min, opts.range_max, taken, false, 2))
      cands.push_back({v, ""});
    // Its mirror across V1: a loop unrolled for small counts has V1's shape above V1.
    const __int128 mirror = 2 * static_cast<__int128>(first.vs[0]) - first.vs[idx];
    if (mirror >= opts.range_min && mirror <= opts.range_max &&
        std::find(taken.begin(), taken.end(), static_cast<int64_t>(mirror)) == taken.end())
      cands.push_back({static_cast<int64_t>(mirror), ""});
    auto f = FitInPlace(first, idx, cands, opts, only_norm, checks, more, &tried);
    if (!f.ok()) continue;
    f->res.warnings.push_back(ReplacedWarning(
        first, idx, *f,
        absl::StrCat(" instead (V=", first.vs[idx],
                     " stays in the range: the formula is the code's at V1 with the new value)")));
    return f;
  }
  if (auto f = FitPairNearV1(first, opts, only_norm, checks, more, &tried); f.ok()) return f;
  // Values that are all powers of two (the code shifts by log2(V)): the values tried so far are
  // none, so at them it divides by magic numbers. The next powers of two, last, so no fit found
  // above changes (BLK_MQ_DISPATCH_BUSY_EWMA_WEIGHT: ewma in another register at V=4 only;
  // V=32 has the shape of 8 and 16).
  std::vector<VariantObject> pow2;
  if (AllPowersOfTwo(first.vs))
    for (int64_t v : PowerOfTwoChecks(first.vs, opts.range_min, opts.range_max, {}))
      pow2.push_back({v, ""});
  for (int idx : {2, 1}) {  // none when the values are not all powers of two
    auto f = FitInPlace(first, idx, pow2, opts, only_norm, checks, more, &tried);
    if (!f.ok()) continue;
    f->res.warnings.push_back(
        ReplacedWarning(first, idx, *f, ", powers of two like the planned values, instead"));
    return f;
  }
  return absl::NotFoundError(
      tried.empty() ? "no other value to try"
                    : absl::StrCat("V=", absl::StrJoin(tried, ", "),
                                   " tried in place of V2 or V3 (or of both): the builds are not "
                                   "explained alike there either"));
}

// The values fitted are all powers of two and a check failed: code that multiplies or divides
// by V shifts at those (x << log2(V)), and what fits them fails at every other value. Fitted
// again with V3 replaced by a value that is none (a check build first); V3 becomes a check.
absl::StatusOr<Fit> FitNonPowerOfTwo(const Fit& first, const absl::Status& failed,
                                     const AnalyzeOptions& opts, const Scope& only_norm,
                                     std::vector<VariantObject>* checks, ValueBuilds* more) {
  std::vector<VariantObject> cands;
  std::vector<int64_t> taken = first.vs, tried;
  for (const VariantObject& c : *checks) {
    taken.push_back(c.value);
    if (!PowerOfTwo(c.value)) cands.push_back(c);
  }
  for (int64_t v : ReplacementValues(first.vs[2], opts.range_min, opts.range_max, taken, true, 2))
    cands.push_back({v, ""});
  auto f = FitInPlace(first, 2, cands, opts, only_norm, checks, more, &tried);
  if (!f.ok()) return absl::NotFoundError("no value that is not a power of two fits");
  checks->insert(checks->begin(), first.variants[2]);
  f->res.warnings.push_back(absl::StrCat("V=", absl::StrJoin(first.vs, ", "),
                                         " are all powers of two and what they fit fails a "
                                         "check (",
                                         failed.message().substr(0, 200),
                                         "); fitted from V=", absl::StrJoin(f->vs, ", "),
                                         " instead, V=", first.vs[2], " checked"));
  return f;
}

// Fitted from powers of two only, the formulas failed a check at a value that is none
// (`failed`), and no such value fits either: the code holds for powers of two only (x / V is
// `shr` there, a magic-number multiply elsewhere, with other registers). The formulas are
// checked at two further powers of two instead; if they hold, V is restricted to them.
absl::Status PowersOfTwoOnly(const Builds& b, const absl::Status& failed, const Scope& only_norm,
                             const std::vector<int64_t>& vs, const std::vector<int64_t>& avoid,
                             ValueBuilds* more, AnalysisResult* res) {
  std::vector<int64_t> taken = vs;
  taken.insert(taken.end(), avoid.begin(), avoid.end());
  std::vector<VariantObject> checks;
  for (int64_t v :
       PowerOfTwoChecks(vs, std::max<int64_t>(res->range_min, 1), res->range_max, taken))
    if (auto path = more->Get(v); path.ok()) checks.push_back({v, *path});
  if (checks.empty()) return failed;
  res->checked.clear();
  res->pow2_only = true;  // the checks below (and a range cut among them) are at powers of two
  if (absl::Status s = CheckAll(b, checks, only_norm, vs, avoid, more, res); !s.ok()) {
    res->pow2_only = false;
    return failed;
  }
  res->range_min = std::max<int64_t>(res->range_min, 1);
  res->warnings.push_back(absl::StrCat(
      "V is restricted to powers of two: the code has another shape or another formula at "
      "values that are none (",
      failed.message().substr(0, 200), ")"));
  return absl::OkStatus();
}

// The refusals another value may avoid: the code has another shape at V2 or V3 (control flow,
// a comparison, register allocation, a special case such as `test` for V = 1) and the fit of
// the three builds failed on it. The replacement is fitted and checked like the first three.
bool ShapeMayDiffer(const ObjectErrors& e) {
  for (Refusal r : {Refusal::kControlFlow, Refusal::kShapeChange, Refusal::kTwoInputs,
                    Refusal::kFormulaFamily, Refusal::kInputInSpan})
    if (e.classes.count(r)) return true;
  return false;
}

// Check builds to replace those FitAnotherValue used, so two values are still checked.
void RefillChecks(const Fit& fit, const Fit& first, const AnalyzeOptions& opts, ValueBuilds* more,
                  std::vector<VariantObject>* checks) {
  std::vector<int64_t> taken = fit.vs;
  for (int64_t v : first.vs) taken.push_back(v);
  for (const VariantObject& c : *checks) taken.push_back(c.value);
  for (int64_t v : CheckValues(taken, opts.range_min, opts.range_max)) {
    if (checks->size() >= opts.check.size()) break;
    if (auto path = more->Get(v); path.ok()) checks->push_back({v, *path});
  }
}

// The slice of rax in each caller of `fn` from the call's return (the value `fn` returns), or
// why they cannot be listed or bounded (they pass it on in turn: one level is followed).
absl::Status CallerSlices(const ElfFile& elf, const std::vector<Function>& all, const Function& fn,
                          std::vector<SafeSpan>* out) {
  ASSIGN_OR_RETURN(sites, DirectCallSites(elf, all, fn));
  for (const CallSite& c : sites) {
    const Insn& call = c.caller->insns[c.index];
    if (c.index + 1 >= static_cast<int>(c.caller->insns.size())) continue;  // noreturn
    CriticalSpan ret;
    ret.kind = SpanKind::kReg;
    ret.target_reg = "ax";
    ret.cs_start = call.offset;
    ret.cs_end = ret.probe_offset = call.offset + call.size;
    Escape again;
    SafeSpan s = SliceSafeSpan(*c.caller, ret, &again);
    if (again.kind != Escape::kNone)
      return absl::FailedPreconditionError(
          absl::StrCat("its caller ", c.caller->name, " passes it on: ", again.why));
    s.how = SafeSpanHow::kCaller;
    out->push_back(s);
  }
  return absl::OkStatus();
}

// Safe spans from the data-dependency slice of each CS. A returned value is followed into the
// callers; one that outlives the spans otherwise (or callers sie cannot list) is reported.
void SafeSpansOfSlices(const Builds& b, const std::string& base, const std::set<std::string>& only,
                       AnalysisResult* res) {
  std::map<std::string, const Function*> by_name;
  for (const Function& f : b.fns[0]) by_name[f.name] = &f;
  std::optional<std::vector<Function>> all;  // every function, when `only` scoped b.fns
  for (const CriticalSpan& sp : res->spans) {
    Escape escape;
    const Function& fn = *by_name[sp.function];
    res->safe_spans.push_back(SliceSafeSpan(fn, sp, &escape));
    if (escape.kind == Escape::kNone || !res->safe_spans_unbounded.empty()) continue;
    if (escape.kind == Escape::kOther) {
      res->safe_spans_unbounded = escape.why;
      continue;
    }
    if (!only.empty() && !all) {
      auto f = DisassembleFunctions(*b.elfs[0]);
      all = f.ok() ? std::move(*f) : std::vector<Function>{};
      SetReturnBytes(ReturnSizes(base), &*all);
    }
    if (absl::Status s = CallerSlices(*b.elfs[0], all ? *all : b.fns[0], fn, &res->safe_spans);
        !s.ok())
      res->safe_spans_unbounded = absl::StrCat(escape.why, ", and ", s.message());
  }
  res->safe_spans = MergeSafeSpans(res->safe_spans);
}

// After the spans: the range check, safe spans from each span's slice, source lines.
absl::Status Conclude(const Builds& b, const std::vector<VariantObject>& variants,
                      const std::set<std::string>& only, const AnalyzeOptions& opts,
                      const std::vector<int64_t>& vs, AnalysisResult* res) {
  if (res->spans.empty())
    return Classified(
        ErrorWithHint(
            absl::StatusCode::kNotFound,
            absl::StrCat("no instruction differs between the builds (V=", absl::StrJoin(vs, ", "),
                         ") in ", only.empty() ? "any function" : absl::StrJoin(only, ", "),
                         res->data_initializers.empty() ? "" : " (only data initializers differ)"),
            "check that the constant is used in this object and that the variants "
            "were really rebuilt with different values"),
        Refusal::kNoSpan);
  if (res->range_min > opts.range_min || res->range_max < opts.range_max)
    res->warnings.push_back(absl::StrCat("value range narrowed to [", res->range_min, ", ",
                                         res->range_max,
                                         "] (shift counts must stay below the "
                                         "operand width, divisors non-zero, a*V+b of a "
                                         "rational formula below 2^31, candidates agree)"));
  if (res->range_min > res->range_max)
    return Classified(
        absl::FailedPreconditionError("no value of the requested range is valid for every span"),
        Refusal::kRange);
  SafeSpansOfSlices(b, variants[0].path, only, res);
  // Source lines and variables (best effort: warn when DWARF is missing).
  if (auto s = AnnotateFromDwarf(variants[0].path, &res->spans); !s.ok())
    res->warnings.push_back(absl::StrCat("DWARF: ", s.message()));
  return absl::OkStatus();
}

}  // namespace

namespace {

bool IsPrime(int64_t n) {
  if (n < 0) n = n == INT64_MIN ? 0 : -n;
  if (n < 2 || n > (int64_t{1} << 40)) return false;  // trial division stays under 2^20 steps
  for (int64_t d = 2; d <= n / d; ++d)
    if (n % d == 0) return false;
  return true;
}

// A value strictly inside (lo, hi), not in `taken`, never a power of two: the prime nearest
// the middle (searched outward, above first), else the nearest non-power of two.
std::optional<int64_t> PickBetween(int64_t lo, int64_t hi, const std::vector<int64_t>& taken) {
  __int128 width = static_cast<__int128>(hi) - lo;  // ranges may span all of int64
  if (width < 2) return std::nullopt;
  int64_t mid = static_cast<int64_t>(lo + width / 2);
  auto usable = [&](int64_t v) {
    return v > lo && v < hi && !PowerOfTwo(v) &&
           std::find(taken.begin(), taken.end(), v) == taken.end();
  };
  std::optional<int64_t> fallback;
  for (int64_t d = 0; d <= width / 2 + 1 && d < 4096; ++d)
    for (__int128 w : {static_cast<__int128>(mid) + d, static_cast<__int128>(mid) - d}) {
      if (w <= lo || w >= hi) continue;
      auto v = static_cast<int64_t>(w);
      if (!usable(v)) continue;
      if (IsPrime(v)) return v;
      if (!fallback) fallback = v;
    }
  return fallback;
}

}  // namespace

std::vector<int64_t> ReplacementValues(int64_t v, int64_t range_min, int64_t range_max,
                                       const std::vector<int64_t>& taken, bool no_pow2, size_t n) {
  std::vector<int64_t> out;
  for (__int128 d = 1; d <= 64 && out.size() < n; ++d)
    for (__int128 w : {static_cast<__int128>(v) + d, static_cast<__int128>(v) - d}) {
      if (w < range_min || w > range_max || out.size() >= n) continue;
      auto x = static_cast<int64_t>(w);
      if ((no_pow2 && PowerOfTwo(x)) || std::find(taken.begin(), taken.end(), x) != taken.end())
        continue;
      out.push_back(x);
    }
  return out;
}

std::vector<int64_t> PowerOfTwoChecks(const std::vector<int64_t>& values, int64_t range_min,
                                      int64_t range_max, const std::vector<int64_t>& taken) {
  std::vector<int64_t> out;
  if (values.empty()) return out;
  auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  auto usable = [&](int64_t v) {
    return v >= range_min && v <= range_max &&
           std::find(taken.begin(), taken.end(), v) == taken.end() &&
           std::find(out.begin(), out.end(), v) == out.end();
  };
  std::vector<int64_t> order;
  for (int k = 0; k < 62; ++k)
    if ((int64_t{1} << k) > *hi) order.push_back(int64_t{1} << k);
  for (int k = 61; k >= 0; --k)
    if ((int64_t{1} << k) < *lo) {
      order.insert(order.begin() + std::min<size_t>(1, order.size()), int64_t{1} << k);
      break;
    }
  for (int64_t v : order)
    if (out.size() < 2 && usable(v)) out.push_back(v);
  return out;
}

std::vector<int64_t> CheckValues(const std::vector<int64_t>& values, int64_t range_min,
                                 int64_t range_max) {
  std::vector<int64_t> s = values;
  std::sort(s.begin(), s.end());
  if (s.empty()) return {};
  // The gaps in order of preference: the wider inner gap, below the values, above, the other.
  std::vector<std::pair<int64_t, int64_t>> inner;
  for (size_t i = 0; i + 1 < s.size(); ++i) inner.push_back({s[i], s[i + 1]});
  std::stable_sort(inner.begin(), inner.end(), [](const auto& a, const auto& b) {
    return a.second - a.first > b.second - b.first;
  });
  std::vector<std::pair<int64_t, int64_t>> gaps;
  if (!inner.empty()) gaps.push_back(inner[0]);
  // The range's ends themselves are never picked (0, 1: degenerate for many folds), nor values
  // further from the spec's than they span (a huge range would give absurd ones).
  __int128 span = static_cast<__int128>(s.back()) - s.front() + 1;
  gaps.push_back(
      {static_cast<int64_t>(std::max<__int128>(range_min, s.front() - span)), s.front()});
  gaps.push_back({s.back(), static_cast<int64_t>(std::min<__int128>(range_max, s.back() + span))});
  for (size_t i = 1; i < inner.size(); ++i) gaps.push_back(inner[i]);
  std::vector<int64_t> out, taken = values;
  for (const auto& [lo, hi] : gaps) {
    if (out.size() == 2) break;
    auto v = PickBetween(std::max(lo, range_min), std::min(hi, range_max), taken);
    if (!v) continue;
    out.push_back(*v);
    taken.push_back(*v);
  }
  return out;
}

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
  Scope only_norm;
  for (const auto& f : only) only_norm.only.insert(NormalizeSymbolName(f));
  for (const auto& f : opts.skip) only_norm.skip.insert(NormalizeSymbolName(f));
  ValueBuilds more{&opts.build, {}};
  std::vector<VariantObject> checks = opts.check;
  auto fit = FitBuilds(variants, opts, only_norm);
  if (!fit.ok()) return fit.status();
  // Values whose code has another shape: never used again, to fit or to check.
  std::vector<int64_t> avoid;
  if (ShapeMayDiffer(fit->errors)) {
    auto other = FitAnotherValue(*fit, opts, only_norm, &checks, &more);
    if (!other.ok()) fit->errors.msgs.back() += absl::StrCat(" (", other.status().message(), ")");
    if (other.ok()) {
      for (int64_t v : fit->vs)
        if (std::find(other->vs.begin(), other->vs.end(), v) == other->vs.end()) avoid.push_back(v);
      RefillChecks(*other, *fit, opts, &more, &checks);
      fit = std::move(other);
    }
  }
  if (!fit->errors.msgs.empty() && AllPowersOfTwo(fit->vs)) {
    absl::Status failed = absl::FailedPreconditionError(fit->errors.msgs[0]);
    if (auto other = FitNonPowerOfTwo(*fit, failed, opts, only_norm, &checks, &more); other.ok())
      fit = std::move(other);
  }
  const ObjectErrors& errors = fit->errors;
  if (!errors.msgs.empty())
    return WithHint(
        Classified(absl::FailedPreconditionError(absl::StrJoin(errors.msgs, "\n")), errors.first),
        errors.hint);
  AnalysisResult res = std::move(fit->res);
  vs = fit->vs;
  res.fitted = vs;
  if (auto s = CheckAll(fit->builds, checks, only_norm, vs, avoid, &more, &res); !s.ok()) {
    if (!AllPowersOfTwo(vs)) return s;
    // Refitted from a value that is none; when that fit fails a check in turn (at the power
    // of two it replaced: DIRTY_POLL_THRESH_KB's `(125 * V) >> 1` at powers of two is rounded
    // otherwise elsewhere), the code holds for powers of two only.
    auto other = FitNonPowerOfTwo(*fit, s, opts, only_norm, &checks, &more);
    std::optional<AnalysisResult> refit;
    if (other.ok()) {
      refit = std::move(other->res);
      refit->fitted = other->vs;
      if (!CheckAll(other->builds, checks, only_norm, other->vs, avoid, &more, &*refit).ok())
        refit.reset();
    }
    if (!refit) {
      RETURN_IF_ERROR(PowersOfTwoOnly(fit->builds, s, only_norm, vs, avoid, &more, &res));
    } else {
      fit = std::move(other);
      res = std::move(*refit);
      vs = fit->vs;
    }
  }
  const Builds& b = fit->builds;
  CheckBeyond(b, avoid, only_norm, vs, &more, &res);
  RETURN_IF_ERROR(NarrowByBuilds(b, only_norm, vs, avoid, &more, &res));
  // Fits the builds could not single out: narrowed to where the candidates left agree.
  std::vector<int64_t> built = vs;
  built.insert(built.end(), res.checked.begin(), res.checked.end());
  RETURN_IF_ERROR(ResolveAlternatives(built, &res.spans, &res.range_min, &res.range_max,
                                      &res.warnings, res.pow2_only));
  DataInitializers(b.elfs, vs, &res);
  if (auto s = Conclude(b, fit->variants, only, opts, vs, &res); !s.ok()) return s;
  return res;
}

}  // namespace sie::synth
