#include "synth/analysis/align.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <string>

namespace sie::synth::analysis {

std::vector<int> AlignLcs(size_t n, size_t m, absl::FunctionRef<bool(size_t, size_t)> same) {
  std::vector<int> match(n, -1);
  // Common prefix and suffix first: the differing middle is usually tiny.
  size_t pre = 0;
  while (pre < n && pre < m && same(pre, pre)) match[pre] = pre, ++pre;
  size_t suf = 0;
  while (suf + pre < n && suf + pre < m && same(n - 1 - suf, m - 1 - suf)) {
    match[n - 1 - suf] = m - 1 - suf;
    ++suf;
  }
  const size_t N = n - pre - suf, M = m - pre - suf;
  if (N == 0 || M == 0) return match;
  // Classic LCS table over the middle.
  std::vector<std::vector<uint32_t>> L(N + 1, std::vector<uint32_t>(M + 1, 0));
  for (size_t i = N; i-- > 0;)
    for (size_t j = M; j-- > 0;)
      L[i][j] = same(pre + i, pre + j) ? L[i + 1][j + 1] + 1 : std::max(L[i + 1][j], L[i][j + 1]);
  size_t i = 0, j = 0;
  while (i < N && j < M) {
    if (same(pre + i, pre + j)) {
      match[pre + i] = pre + j;
      ++i, ++j;
    } else if (L[i + 1][j] >= L[i][j + 1]) {
      ++i;
    } else {
      ++j;
    }
  }
  return match;
}

std::vector<int> AlignInsns(const std::vector<Insn>& a, const std::vector<Insn>& b) {
  return AlignLcs(a.size(), b.size(), [&](size_t i, size_t j) { return a[i].sig == b[j].sig; });
}

namespace {

// Basic blocks as [begin, end) instruction ranges; block_of[i] = block index of instruction i.
struct Blocks {
  std::vector<std::pair<int, int>> ranges;
  std::vector<int> block_of;
};

bool EndsBlock(const Insn& in) { return in.is_jump || in.is_ret; }

Blocks SplitBlocks(const Function& fn) {
  int n = fn.insns.size();
  std::vector<bool> leader(n + 1, false);
  leader[0] = true;
  for (int i = 0; i < n; ++i) {
    const Insn& in = fn.insns[i];
    if (EndsBlock(in)) leader[i + 1] = true;
    if (in.target && !in.is_call) {
      int t = fn.IndexAt(*in.target);
      if (t >= 0) leader[t] = true;
    }
  }
  Blocks b;
  b.block_of.assign(n, -1);
  for (int i = 0; i < n;) {
    int j = i + 1;
    while (j < n && !leader[j]) ++j;
    for (int k = i; k < j; ++k) b.block_of[k] = b.ranges.size();
    b.ranges.push_back({i, j});
    i = j;
  }
  return b;
}

// Successors of block `bi` in layout-independent order: taken target first, then fallthrough.
// -1 marks "leaves the function" (ret, tail call, a target outside).
std::vector<int> Successors(const Function& fn, const Blocks& b, int bi) {
  const Insn& last = fn.insns[b.ranges[bi].second - 1];
  std::vector<int> s;
  if (last.is_jump) {
    int t = last.target && !last.is_call ? fn.IndexAt(*last.target) : -1;
    s.push_back(t >= 0 ? b.block_of[t] : -1);
  }
  bool falls = !last.is_ret && !(last.is_jump && !last.is_cond);
  if (falls) s.push_back(bi + 1 < static_cast<int>(b.ranges.size()) ? bi + 1 : -1);
  return s;
}

// What a terminator does, layout aside: "jne", "jmp", "ret", or "" (falls through).
std::string Terminator(const Function& fn, const Blocks& b, int bi) {
  const Insn& last = fn.insns[b.ranges[bi].second - 1];
  return EndsBlock(last) ? last.mnemonic : "";
}

std::optional<Function> BlockRelayout(const Function& base, const Function& var) {
  if (base.insns.empty() || var.insns.empty()) return std::nullopt;
  Blocks bb = SplitBlocks(base), vb = SplitBlocks(var);
  if (bb.ranges.size() != vb.ranges.size()) return std::nullopt;
  int nb = bb.ranges.size();
  std::vector<int> to_var(nb, -1), to_base(nb, -1);
  std::deque<std::pair<int, int>> work = {{0, 0}};
  while (!work.empty()) {
    auto [x, y] = work.front();
    work.pop_front();
    if (x < 0 || y < 0) {
      if (x != y) return std::nullopt;  // one build leaves the function where the other stays
      continue;
    }
    if (to_var[x] == y && to_base[y] == x) continue;
    if (to_var[x] >= 0 || to_base[y] >= 0) return std::nullopt;  // not a bijection
    if (Terminator(base, bb, x) != Terminator(var, vb, y)) return std::nullopt;
    to_var[x] = y;
    to_base[y] = x;
    std::vector<int> sx = Successors(base, bb, x), sy = Successors(var, vb, y);
    if (sx.size() != sy.size()) return std::nullopt;
    for (size_t i = 0; i < sx.size(); ++i) work.push_back({sx[i], sy[i]});
  }
  // Blocks not reached by direct edges (reached through tables or never): pair in layout order.
  std::vector<int> rest_b, rest_v;
  for (int i = 0; i < nb; ++i) {
    if (to_var[i] < 0) rest_b.push_back(i);
    if (to_base[i] < 0) rest_v.push_back(i);
  }
  if (rest_b.size() != rest_v.size()) return std::nullopt;
  for (size_t i = 0; i < rest_b.size(); ++i) to_var[rest_b[i]] = rest_v[i];
  bool identity = true;
  for (int i = 0; i < nb; ++i) identity &= to_var[i] == i;
  if (identity) return std::nullopt;
  Function out = var;
  out.insns.clear();
  for (int i = 0; i < nb; ++i) {
    auto [b, e] = vb.ranges[to_var[i]];
    out.insns.insert(out.insns.end(), var.insns.begin() + b, var.insns.begin() + e);
  }
  return out;
}

// --- Builds that duplicate or merge blocks: both control-flow graphs walked in step ---

// The condition jumping exactly when `cc` does not ("je" -> "jne"), or "".
std::string InverseCc(const std::string& cc) {
  static const std::map<std::string, std::string> inv = [] {
    std::map<std::string, std::string> m;
    for (auto [a, b] : {std::pair{"je", "jne"},
                        {"jl", "jge"},
                        {"jle", "jg"},
                        {"jb", "jae"},
                        {"jbe", "ja"},
                        {"js", "jns"},
                        {"jo", "jno"},
                        {"jp", "jnp"}})
      m[a] = b, m[b] = a;
    return m;
  }();
  auto it = inv.find(cc);
  return it == inv.end() ? "" : it->second;
}

constexpr int kOut = -1;  // the walk left the function (or fell off its end)

// Index of the direct in-function target of jump `in`, or kOut.
int TargetIndex(const Function& fn, const Insn& in) {
  return in.target && !in.is_call ? fn.IndexAt(*in.target) : kOut;
}

// Where control goes from `i` once unconditional direct jumps in the function are followed
// (each marked in `followed`); kOut past the end. A jump-only cycle ends the chain at itself.
int Land(const Function& fn, int i, std::vector<bool>& followed) {
  for (size_t steps = 0; i >= 0 && i < static_cast<int>(fn.insns.size()); ++steps) {
    const Insn& in = fn.insns[i];
    const int t = TargetIndex(fn, in);
    if (!in.is_jump || in.is_cond || t == kOut || steps > fn.insns.size()) return i;
    followed[i] = true;
    i = t;
  }
  return kOut;
}

// The successor pairs of the paired instructions a (base) and b (var) at i and j.
std::vector<std::pair<int, int>> NextPairs(const Function& base, int i, const Function& var,
                                           int j) {
  const Insn &a = base.insns[i], &b = var.insns[j];
  const int fa = i + 1, fb = j + 1;  // Land turns the end into kOut
  if (a.is_ret || a.mnemonic == "ud2" || a.mnemonic == "int3") return {};
  if (!a.is_jump) return {{fa, fb}};
  if (!a.is_cond) return {};  // a tail call or an indirect jump: leaves, as compared
  const int ta = TargetIndex(base, a), tb = TargetIndex(var, b);
  if (a.mnemonic == b.mnemonic) return {{ta, tb}, {fa, fb}};
  return {{ta, fb}, {fa, tb}};  // inverted condition, blocks swapped
}

// The relayout by a walk of both graphs in step from the entry: instructions paired when
// their shapes agree (immediates and displacements may differ: those are the hunks), direct
// `jmp`s followed through, a `jcc` paired with the same or the inverse condition. Covers what
// BlockRelayout cannot: a block duplicated in one build (gcc copies an epilogue into a
// predecessor at one value only) or merged in the other, so the block counts differ. Every
// instruction of both builds but the followed jumps must be paired, so nothing of `var` is
// dropped; `var` in `base`'s layout then holds base's jumps (the same control flow: proven by
// the walk), var's other instructions.
std::optional<Function> WalkRelayout(const Function& base, const Function& var) {
  const int n = base.insns.size(), m = var.insns.size();
  std::vector<int> to_var(n, kOut);
  std::vector<bool> base_jmp(n, false), var_jmp(m, false), var_paired(m, false);
  std::set<std::pair<int, int>> done;
  std::deque<std::pair<int, int>> work = {{0, 0}};
  while (!work.empty()) {
    if (done.size() > 16 * static_cast<size_t>(n + m)) return std::nullopt;
    const int i = Land(base, work.front().first, base_jmp);
    const int j = Land(var, work.front().second, var_jmp);
    work.pop_front();
    if (i == kOut || j == kOut) {
      if (i != j) return std::nullopt;  // one build leaves the function where the other stays
      continue;
    }
    if (!done.insert({i, j}).second) continue;
    const Insn &a = base.insns[i], &b = var.insns[j];
    if (a.shape != b.shape && !(a.is_cond && b.is_cond && InverseCc(a.mnemonic) == b.mnemonic))
      return std::nullopt;
    // Paired twice (a block duplicated in `var`): the copies must be the same code.
    if (to_var[i] != kOut && var.insns[to_var[i]].sig != b.sig) return std::nullopt;
    if (to_var[i] == kOut) to_var[i] = j;
    var_paired[j] = true;
    for (auto next : NextPairs(base, i, var, j)) work.push_back(next);
  }
  for (int i = 0; i < n; ++i)
    if (to_var[i] == kOut && !base_jmp[i]) return std::nullopt;  // unreached (a jump table)
  for (int j = 0; j < m; ++j)
    if (!var_paired[j] && !var_jmp[j]) return std::nullopt;
  Function out = var;
  out.insns.clear();
  bool identity = n == m;
  for (int i = 0; i < n; ++i) {
    const bool own = to_var[i] != kOut && !base.insns[i].is_jump;
    out.insns.push_back(own ? var.insns[to_var[i]] : base.insns[i]);
    identity &= to_var[i] == i || (base_jmp[i] && var_jmp[i]);
  }
  if (identity) return std::nullopt;
  return out;
}

}  // namespace

std::optional<Function> RelayoutLike(const Function& base, const Function& var) {
  if (auto r = BlockRelayout(base, var)) return r;
  return WalkRelayout(base, var);
}

std::vector<Hunk> DiffFunctions(const Function& base, const std::vector<const Function*>& vars) {
  std::vector<std::vector<int>> matches;
  for (const Function* v : vars) matches.push_back(AlignInsns(base.insns, v->insns));
  std::vector<Hunk> hunks;
  int n = base.insns.size();
  int prev = -1;
  std::vector<int> prev_v(vars.size(), -1);
  for (int i = 0; i <= n; ++i) {
    bool stable = true;
    std::vector<int> cur(vars.size());
    for (size_t k = 0; k < vars.size(); ++k) {
      cur[k] = i == n ? static_cast<int>(vars[k]->insns.size()) : matches[k][i];
      if (cur[k] < 0) stable = false;
    }
    if (!stable) continue;
    bool gap = i - prev > 1;
    for (size_t k = 0; k < vars.size(); ++k) gap |= cur[k] - prev_v[k] > 1;
    if (gap) {
      Hunk h;
      h.base_begin = prev + 1;
      h.base_end = i;
      for (size_t k = 0; k < vars.size(); ++k) {
        h.var_begin.push_back(prev_v[k] + 1);
        h.var_end.push_back(cur[k]);
      }
      hunks.push_back(h);
    }
    prev = i;
    prev_v = cur;
  }
  return hunks;
}

namespace {

// --- Builds that allocate the callee-saved registers in another permutation ---

// The capstone name of family `fam` at the width of name `like` ("r13", "ebx" -> "r13d").
std::string NameLike(const std::string& fam, const std::string& like) {
  static const std::map<std::string, std::vector<std::string>> kNames = {
      {"bx", {"bl", "bx", "ebx", "rbx"}},       {"bp", {"bpl", "bp", "ebp", "rbp"}},
      {"r12", {"r12b", "r12w", "r12d", "r12"}}, {"r13", {"r13b", "r13w", "r13d", "r13"}},
      {"r14", {"r14b", "r14w", "r14d", "r14"}}, {"r15", {"r15b", "r15w", "r15d", "r15"}}};
  const int w = RegWidth(like);
  const int i = w == 1 ? 0 : w == 2 ? 1 : w == 4 ? 2 : 3;
  return kNames.at(fam)[i];
}

// Register names in `text` replaced by `f` (tokens, not substrings: r12 is not part of r12d).
std::string RenameTokens(const std::string& text,
                         const std::function<std::string(const std::string&)>& f) {
  static const std::regex kToken("[a-z0-9]+");
  std::string out;
  auto last = text.cbegin();
  for (std::sregex_iterator it(text.begin(), text.end(), kToken), end; it != end; ++it) {
    out.append(last, text.cbegin() + it->position());
    out += f(it->str());
    last = text.cbegin() + it->position() + it->length();
  }
  out.append(last, text.cend());
  return out;
}

// A prologue save or an epilogue restore: kept as written by every renaming (see RenamedLike).
bool SaveOrRestore(const Insn& in) {
  return in.entry_save ||
         (in.mnemonic == "pop" && in.ops.size() == 1 && in.ops[0].type == OpType::kReg &&
          CalleeSavedRegs().count(RegFamily(in.ops[0].reg)));
}

// The registers `in` names, in operand order, as families.
std::vector<std::string> NamedFamilies(const Insn& in) {
  std::vector<std::string> out;
  for (const Operand& o : in.ops)
    for (const std::string* r : {&o.reg, &o.base, &o.index})
      if (!r->empty()) out.push_back(RegFamily(*r));
  return out;
}

// The permutation of callee-saved registers that makes `var` name registers as `base` does
// wherever their instructions correspond (aligned up to register names); empty when there is
// none, or it is the identity.
std::map<std::string, std::string> CalleeSavedPermutation(const Function& base,
                                                          const Function& var) {
  auto regless = [](const Insn& in) {
    return RenameTokens(in.sig,
                        [](const std::string& t) { return RegFamily(t).empty() ? t : "R"; });
  };
  std::vector<std::string> a, b;
  for (const Insn& in : base.insns) a.push_back(regless(in));
  for (const Insn& in : var.insns) b.push_back(regless(in));
  std::vector<int> m =
      AlignLcs(a.size(), b.size(), [&](size_t i, size_t j) { return a[i] == b[j]; });
  std::map<std::string, std::string> to, from;
  bool renamed = false;
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] < 0 || SaveOrRestore(base.insns[i])) continue;
    std::vector<std::string> x = NamedFamilies(var.insns[m[i]]), y = NamedFamilies(base.insns[i]);
    if (x.size() != y.size()) return {};
    for (size_t k = 0; k < x.size(); ++k) {
      if (x[k] != y[k] && (!CalleeSavedRegs().count(x[k]) || !CalleeSavedRegs().count(y[k])))
        return {};
      auto [t, fresh] = to.emplace(x[k], y[k]);
      auto [f, fresh2] = from.emplace(y[k], x[k]);
      if (t->second != y[k] || f->second != x[k]) return {};  // not one consistent permutation
      renamed |= x[k] != y[k];
    }
  }
  if (!renamed) return {};
  // bh has no counterpart in r12-r15 (nor bpl's family a high byte): no renaming then.
  for (const Insn& in : var.insns)
    if (to.count("bx") && to.at("bx") != "bx" && in.op_str.find("bh") != std::string::npos)
      return {};
  return to;
}

}  // namespace

std::optional<Function> RenamedLike(const Function& base, const Function& var) {
  const std::map<std::string, std::string> to = CalleeSavedPermutation(base, var);
  if (to.empty()) return std::nullopt;
  auto name = [&](const std::string& t) {
    auto it = to.find(RegFamily(t));
    return it == to.end() || !CalleeSavedRegs().count(it->first) ? t : NameLike(it->second, t);
  };
  auto family = [&](const std::string& f) {
    auto it = to.find(f);
    return it == to.end() ? f : it->second;
  };
  Function out = var;
  for (Insn& in : out.insns) {
    if (SaveOrRestore(in)) {
      // A save stores the caller's value, the same in every build; a restore is kept as
      // written (no difference from `base` there) and never executed: it writes another
      // register than its text says in the renamed code.
      in.opaque = !in.entry_save;
      continue;
    }
    for (Operand& o : in.ops)
      for (std::string* r : {&o.reg, &o.base, &o.index})
        if (!r->empty()) *r = name(*r);
    in.op_str = RenameTokens(in.op_str, name);
    in.sig = RenameTokens(in.sig, name);
    in.shape = RenameTokens(in.shape, name);
    std::set<std::string> reads, writes;
    for (const std::string& f : in.reads) reads.insert(family(f));
    for (const std::string& f : in.writes) writes.insert(family(f));
    in.reads = std::move(reads);
    in.writes = std::move(writes);
  }
  return out;
}

}  // namespace sie::synth::analysis
