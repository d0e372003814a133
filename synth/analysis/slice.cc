#include "synth/analysis/slice.h"

#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "synth/analysis/dataflow.h"

namespace sie::synth::analysis {
namespace {

std::string StackKey(const Operand& o) {
  if (o.type != OpType::kMem || !o.index.empty()) return "";
  if (o.base != "rsp" && o.base != "rbp") return "";
  return absl::StrCat(o.base, o.disp);
}

// A cell outside the frame (a heap object's field, through a pointer register): "m:bx+16",
// named by its base register's family; "" for stack slots, indexed, rip-relative and absolute
// operands. The name holds while the base register is unchanged.
std::string CellKey(const std::string& base_family, int64_t disp) {
  return absl::StrCat("m:", base_family, "+", disp);
}
std::string CellKey(const Operand& o) {
  if (o.type != OpType::kMem || !o.index.empty() || !StackKey(o).empty()) return "";
  const std::string fam = RegFamily(o.base);
  return fam.empty() ? "" : CellKey(fam, o.disp);
}
bool IsCell(const std::string& key) { return key.rfind("m:", 0) == 0; }
std::string CellBase(const std::string& key) { return key.substr(2, key.find('+') - 2); }

// The key a memory operand of the slice is tracked by: a stack slot or a cell.
std::string MemKey(const Operand& o) {
  std::string k = StackKey(o);
  return k.empty() ? CellKey(o) : k;
}

}  // namespace

SafeSpan SliceSafeSpan(const Function& fn, const CriticalSpan& cs, Escape* escape) {
  SafeSpan whole{fn.name, 0, fn.size, SafeSpanHow::kWholeFunction};
  Escape ignored;
  if (!escape) escape = &ignored;
  *escape = Escape{};
  // The whole function, for a value that may be read after it returns (`why` at `ins`).
  auto escaped = [&](const Insn& ins, Escape::Kind kind, const char* why) {
    *escape = {kind, absl::StrCat(why, " at ", fn.name, "+0x", absl::Hex(ins.offset), " (`",
                                  ins.Text(), "`)")};
    return whole;
  };
  int start = fn.IndexAt(cs.probe_offset);
  if (start < 0) return whole;
  std::set<std::string> init;
  if (cs.kind == SpanKind::kFlags)
    init.insert("flags");
  else if (cs.kind == SpanKind::kMem) {
    // A value stored outside the frame lives on after the store: its cell is followed while it
    // can be named; one that cannot (indexed, rip-relative, absolute) makes the whole function
    // the span.
    const MemOperand& m = *cs.target_mem;
    if (!m.index.empty() || m.base.empty()) {
      *escape = {Escape::kOther, absl::StrCat("stored where sie cannot name it at ", fn.name, "+0x",
                                              absl::Hex(cs.cs_start))};
      return whole;
    }
    if (m.base == "sp" || m.base == "bp")
      init.insert(absl::StrCat(m.base == "sp" ? "rsp" : "rbp", m.disp));
    else
      init.insert(CellKey(m.base, m.disp));
  } else {
    init.insert(cs.target_reg);
  }
  std::vector<std::set<std::string>> in(fn.insns.size());
  std::vector<bool> in_slice(fn.insns.size(), false), visited(fn.insns.size(), false);
  std::deque<int> work = {start};
  in[start] = init;
  uint64_t lo = cs.cs_start, hi = cs.cs_end;
  while (!work.empty()) {
    int i = work.front();
    work.pop_front();
    const Insn& ins = fn.insns[i];
    std::set<std::string> t = in[i];
    bool uses = false;
    for (const std::string& r : EffectiveReads(ins))
      // A void function's return leaves rax unread.
      uses |= t.count(r) > 0 &&
              !(r == "ax" && fn.return_bytes == 0 && (ins.is_ret || ReturnThunk(ins)));
    if (ins.reads_flags && t.count("flags")) uses = true;
    for (const Operand& o : ins.ops)
      if (o.read && !MemKey(o).empty() && t.count(MemKey(o))) uses = true;
    bool tail = ins.is_jump && !ins.is_cond && !ins.call_target.empty();
    if (uses && ins.is_call) return escaped(ins, Escape::kOther, "passed to a call");
    if (uses && (ins.is_ret || ReturnThunk(ins)))
      return escaped(ins, Escape::kReturned, "returned");
    if (uses && tail) return escaped(ins, Escape::kOther, "passed to a tail call");
    // push/pop/leave move the value through stack slots no operand names: not followed.
    if (uses && ins.writes.count("sp")) return whole;
    // A cell outside the frame still holding the value: a callee may read it, it outlives a
    // return, and once its base register changes it can no longer be named: the whole function
    // is the span, and the value outlives it.
    for (const std::string& k : t)
      if (IsCell(k) && (ins.is_call || ins.is_ret || tail || ins.writes.count(CellBase(k))))
        return escaped(ins, Escape::kOther, "left in a cell outside the frame");
    // Kill what is overwritten, then taint what a tainted instruction writes.
    for (const std::string& w : FullWrites(ins)) t.erase(w);
    if (ins.writes_flags) t.erase("flags");
    for (const Operand& o : ins.ops)
      if (o.write && !MemKey(o).empty()) t.erase(MemKey(o));
    if (uses) {
      in_slice[i] = true;
      hi = std::max(hi, ins.offset + ins.size);
      lo = std::min(lo, ins.offset);
      for (const std::string& w : ins.writes) t.insert(w);
      if (ins.writes_flags) t.insert("flags");
      for (const Operand& o : ins.ops)
        if (o.write && !MemKey(o).empty()) t.insert(MemKey(o));
      // A loop whose exit depends on the value: the whole loop is in the span.
      if (ins.target && *ins.target < ins.offset) lo = std::min(lo, *ins.target);
    }
    if (t.empty() || ins.is_ret || tail) continue;
    std::vector<int> succ;
    if (ins.target && !ins.is_call) succ.push_back(fn.IndexAt(*ins.target));
    if (!(ins.is_jump && !ins.is_cond) && i + 1 < static_cast<int>(fn.insns.size()))
      succ.push_back(i + 1);
    for (int s : succ) {
      if (s < 0) continue;
      size_t before = in[s].size();
      in[s].insert(t.begin(), t.end());
      if (!visited[s] || in[s].size() != before) {
        visited[s] = true;
        work.push_back(s);
      }
    }
  }
  return SafeSpan{fn.name, lo, hi, SafeSpanHow::kSlice};
}

std::vector<SafeSpan> MergeSafeSpans(std::vector<SafeSpan> spans) {
  std::sort(spans.begin(), spans.end(), [](const SafeSpan& a, const SafeSpan& b) {
    return std::tie(a.function, a.start) < std::tie(b.function, b.start);
  });
  std::vector<SafeSpan> out;
  for (const SafeSpan& s : spans) {
    if (!out.empty() && out.back().function == s.function && s.start <= out.back().end) {
      out.back().end = std::max(out.back().end, s.end);
      if (s.how == SafeSpanHow::kWholeFunction) out.back().how = s.how;
      continue;
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace sie::synth::analysis
