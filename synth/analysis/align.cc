#include "synth/analysis/align.h"

#include <algorithm>

namespace sie::synth::analysis {

std::vector<int> AlignInsns(const std::vector<Insn>& a, const std::vector<Insn>& b) {
  std::vector<int> match(a.size(), -1);
  // Common prefix and suffix first: the differing middle is usually tiny.
  size_t pre = 0;
  while (pre < a.size() && pre < b.size() && a[pre].sig == b[pre].sig) match[pre] = pre, ++pre;
  size_t suf = 0;
  while (suf + pre < a.size() && suf + pre < b.size() &&
         a[a.size() - 1 - suf].sig == b[b.size() - 1 - suf].sig) {
    match[a.size() - 1 - suf] = b.size() - 1 - suf;
    ++suf;
  }
  size_t n = a.size() - pre - suf, m = b.size() - pre - suf;
  if (n == 0 || m == 0) return match;
  // Classic LCS table over the middle.
  std::vector<std::vector<uint32_t>> L(n + 1, std::vector<uint32_t>(m + 1, 0));
  for (size_t i = n; i-- > 0;)
    for (size_t j = m; j-- > 0;)
      L[i][j] = a[pre + i].sig == b[pre + j].sig ? L[i + 1][j + 1] + 1
                                                 : std::max(L[i + 1][j], L[i][j + 1]);
  size_t i = 0, j = 0;
  while (i < n && j < m) {
    if (a[pre + i].sig == b[pre + j].sig) {
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

}  // namespace sie::synth::analysis
