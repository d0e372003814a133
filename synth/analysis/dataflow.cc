#include "synth/analysis/dataflow.h"

#include <algorithm>
#include <deque>

namespace sie::synth::analysis {

const std::set<std::string>& ArgRegs() {
  static const std::set<std::string> k = {"di", "si", "dx", "cx", "r8", "r9"};
  return k;
}
const std::set<std::string>& CallerSaved() {
  static const std::set<std::string> k = {"ax", "cx", "dx", "si", "di", "r8", "r9", "r10", "r11"};
  return k;
}

namespace {
bool ZeroIdiom(const Insn& in) {
  return (in.mnemonic == "xor" || in.mnemonic == "sub") && in.ops.size() == 2 &&
         in.ops[0].type == OpType::kReg && in.ops[1].type == OpType::kReg &&
         in.ops[0].reg == in.ops[1].reg;
}
bool TailJump(const Insn& in) { return in.is_jump && !in.is_cond && !in.call_target.empty(); }
bool SameMem(const Operand& a, const Operand& b) {
  return a.base == b.base && a.index == b.index && a.scale == b.scale && a.disp == b.disp;
}
}  // namespace

// "jmp __x86_return_thunk" is how a retpoline/rethunk kernel returns: it reads the return value.
bool ReturnThunk(const Insn& in) {
  return (in.is_jump || in.is_call) && in.call_target.rfind("__x86_return_thunk", 0) == 0;
}

std::set<std::string> EffectiveReads(const Insn& in) {
  if (ZeroIdiom(in)) return {};
  std::set<std::string> r = in.reads;
  if ((in.is_call || TailJump(in)) && !ReturnThunk(in))
    r.insert(ArgRegs().begin(), ArgRegs().end());
  if (in.is_ret || ReturnThunk(in)) r.insert("ax");
  r.erase("sp");
  r.erase("ip");
  return r;
}

std::set<std::string> FullWrites(const Insn& in) {
  std::set<std::string> w;
  if (in.is_call) return CallerSaved();
  for (const Operand& o : in.ops)
    if (o.type == OpType::kReg && o.write && RegWidth(o.reg) >= 4) w.insert(RegFamily(o.reg));
  // Implicit full writes (mul/div/cdq) are rare in spans; partial writes never kill.
  return w;
}

bool Reads(const Insn& in, const Loc& l) {
  if (l.mem) {
    if (in.is_call || TailJump(in)) return true;  // the callee may read the cell
    for (const Operand& o : in.ops)
      if (o.type == OpType::kMem && o.read && SameMem(o, *l.mem)) return true;
    // A write to the base register makes the cell untrackable: treat as a use.
    return (!l.mem->base.empty() && in.writes.count(RegFamily(l.mem->base))) ||
           (!l.mem->index.empty() && in.writes.count(RegFamily(l.mem->index)));
  }
  if (l.reg == "flags") return in.reads_flags;
  return EffectiveReads(in).count(l.reg) > 0;
}

bool Kills(const Insn& in, const Loc& l) {
  if (l.mem) {
    for (const Operand& o : in.ops)
      if (o.type == OpType::kMem && o.write && !o.read && SameMem(o, *l.mem)) return true;
    return false;
  }
  if (l.reg == "flags") return in.writes_flags && !in.reads_flags;
  return FullWrites(in).count(l.reg) > 0;
}

bool LiveAt(const Function& fn, int start, const Loc& l) {
  std::vector<bool> seen(fn.insns.size(), false);
  std::deque<int> work = {start};
  while (!work.empty()) {
    int i = work.front();
    work.pop_front();
    if (i < 0 || i >= static_cast<int>(fn.insns.size()) || seen[i]) continue;
    seen[i] = true;
    const Insn& in = fn.insns[i];
    if (Reads(in, l)) return true;
    if (Kills(in, l)) continue;
    if (in.is_ret || TailJump(in)) continue;
    if (in.target && !in.is_call) work.push_back(fn.IndexAt(*in.target));
    if (!(in.is_jump && !in.is_cond)) work.push_back(i + 1);
  }
  return false;
}

int ReadWidthAt(const Function& fn, int start, const std::string& family) {
  Loc l{family};
  int width = 0;
  std::vector<bool> seen(fn.insns.size(), false);
  std::deque<int> work = {start};
  while (!work.empty() && width < 8) {
    int i = work.front();
    work.pop_front();
    if (i < 0 || i >= static_cast<int>(fn.insns.size()) || seen[i]) continue;
    seen[i] = true;
    const Insn& in = fn.insns[i];
    if (Reads(in, l)) {
      int w = 0;
      bool explicit_only = !in.is_call && !TailJump(in) && !in.is_ret && !ReturnThunk(in);
      for (const Operand& o : in.ops) {
        if (o.type == OpType::kMem && (RegFamily(o.base) == family || RegFamily(o.index) == family))
          explicit_only = false;  // an address: every bit matters
        if (o.type == OpType::kReg && o.read && RegFamily(o.reg) == family)
          w = std::max(w, o.reg == "ah" || o.reg == "bh" || o.reg == "ch" || o.reg == "dh"
                              ? 2
                              : RegWidth(o.reg));
      }
      // A return hands rax to the caller, which reads the return type's bytes only.
      if ((in.is_ret || ReturnThunk(in)) && family == "ax")
        w = fn.return_bytes, explicit_only = true;
      width = std::max(width, explicit_only && w > 0 ? w : 8);
    }
    if (Kills(in, l)) continue;
    if (in.is_ret || TailJump(in)) continue;
    if (in.target && !in.is_call) work.push_back(fn.IndexAt(*in.target));
    if (!(in.is_jump && !in.is_cond)) work.push_back(i + 1);
  }
  return width;
}

ProbeWindow ProbeCandidates(const Function& fn, int idx, const std::vector<Loc>& locs) {
  ProbeWindow w;
  for (int i = idx; i < static_cast<int>(fn.insns.size()); ++i) {
    const Insn& in = fn.insns[i];
    if (i != idx && fn.branch_targets.count(in.offset)) break;  // other paths join here
    w.candidates.push_back(in.offset);
    bool stop = in.is_branch || in.mnemonic == "(bad)";
    for (const Loc& l : locs) {
      if (Reads(in, l)) {
        if (w.first_reader < 0) w.first_reader = i;
        stop = true;
      }
      if (Kills(in, l)) stop = true;
    }
    if (stop) break;
  }
  return w;
}

namespace {
// Successors of instruction i inside the function (none past a return or tail jump).
std::vector<int> Successors(const Function& fn, int i) {
  const Insn& in = fn.insns[i];
  std::vector<int> out;
  if (in.is_ret || TailJump(in) || ReturnThunk(in)) return out;
  if (in.target && !in.is_call) out.push_back(fn.IndexAt(*in.target));
  if (!(in.is_jump && !in.is_cond) && i + 1 < static_cast<int>(fn.insns.size()))
    out.push_back(i + 1);
  return out;
}

}  // namespace

bool ConstantMove(const Insn& in) {
  return in.mnemonic == "mov" && in.ops.size() == 2 && in.ops[0].type == OpType::kReg &&
         RegWidth(in.ops[0].reg) >= 4 && in.ops[1].type == OpType::kImm;
}

int ConstantDefAt(const Function& fn, int idx, const std::string& family) {
  const int n = static_cast<int>(fn.insns.size());
  // A jump through a register (a jump table) enters paths from places not known here.
  for (const Insn& in : fn.insns)
    if (in.is_jump && !in.target && !ReturnThunk(in) &&
        (!TailJump(in) || in.call_target.rfind("__x86_indirect_thunk", 0) == 0))
      return -1;
  std::vector<std::vector<int>> preds(n);
  for (int i = 0; i < n; ++i)
    for (int s : Successors(fn, i))
      if (s >= 0) preds[s].push_back(i);
  if (idx == 0 || preds[idx].empty()) return -1;  // the function's entry reaches idx
  int def = -1;
  std::vector<bool> seen(n, false);
  std::deque<int> work(preds[idx].begin(), preds[idx].end());
  while (!work.empty()) {
    const int i = work.front();
    work.pop_front();
    if (seen[i]) continue;
    seen[i] = true;
    const Insn& in = fn.insns[i];
    if (in.writes.count(family) || FullWrites(in).count(family)) {
      if (!ConstantMove(in) || RegFamily(in.ops[0].reg) != family || (def >= 0 && def != i))
        return -1;
      def = i;
      continue;
    }
    if (i == 0 || preds[i].empty()) return -1;
    work.insert(work.end(), preds[i].begin(), preds[i].end());
  }
  return def;
}

std::optional<std::vector<int>> ReadersAfter(const Function& fn, int def,
                                             const std::string& family) {
  const Loc l{family};
  std::vector<int> readers;
  std::vector<bool> seen(fn.insns.size(), false);
  const std::vector<int> next = Successors(fn, def);
  std::deque<int> work(next.begin(), next.end());
  while (!work.empty()) {
    const int i = work.front();
    work.pop_front();
    if (i < 0 || seen[i]) continue;
    seen[i] = true;
    const Insn& in = fn.insns[i];
    const bool exit = in.is_ret || TailJump(in) || ReturnThunk(in);
    if (exit && family == "ax" && fn.return_bytes == 0) continue;  // a void function's return
    if (Reads(in, l) && in.mnemonic != "nop") {  // `nop word ptr [rax + rax]` reads nothing
      if (exit) return std::nullopt;
      readers.push_back(i);
    }
    if (Kills(in, l)) continue;
    if (in.is_jump && !in.is_cond && !in.target && !ReturnThunk(in)) return std::nullopt;
    for (int s : Successors(fn, i)) work.push_back(s);
  }
  return readers;
}

std::set<std::string> Zext32At(const Function& fn, int idx) {
  std::set<std::string> known, decided;
  for (int i = idx - 1; i >= 0; --i) {
    const Insn& in = fn.insns[i];
    if (in.is_branch) break;
    for (const Operand& o : in.ops) {
      if (o.type != OpType::kReg || !o.write) continue;
      std::string f = RegFamily(o.reg);
      if (f.empty() || decided.count(f)) continue;
      decided.insert(f);
      if (RegWidth(o.reg) == 4) known.insert(f);
    }
    if (fn.branch_targets.count(in.offset)) break;
  }
  return known;
}

}  // namespace sie::synth::analysis
