#include "synth/analysis/analyze.h"

#include <elf.h>
#include <z3++.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/base/diag.h"
#include "common/elf/elf_file.h"
#include "synth/analysis/align.h"
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
  void Add(const absl::Status& s) {
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

  const HunkContext& cx_;
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
    HunkContext cx{{&fb, x->second[n], y->second[n]}, vs, res};
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
    return WithHint(
        Classified(absl::FailedPreconditionError(absl::StrJoin(errors.msgs, "\n")), errors.first),
        errors.hint);
  DataInitializers(builds->elfs, vs, &res);
  if (auto s = Conclude(*builds, variants, only, opts, vs, &res); !s.ok()) return s;
  return res;
}

}  // namespace sie::synth
