#include "synth/analysis/span_inputs.h"

#include <functional>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace sie::synth::analysis {
namespace {

std::map<std::string, z3::expr> Consts(const std::vector<z3::expr>& es) {
  std::map<std::string, z3::expr> out;
  std::set<unsigned> seen;
  std::function<void(const z3::expr&)> walk = [&](const z3::expr& e) {
    if (!e.is_app() || !seen.insert(e.id()).second) return;
    if (e.num_args() == 0 && e.decl().decl_kind() == Z3_OP_UNINTERPRETED)
      out.emplace(e.decl().name().str(), e);
    for (unsigned i = 0; i < e.num_args(); ++i) walk(e.arg(i));
  };
  for (const z3::expr& e : es) walk(e);
  return out;
}

// A register holding `value` (zero-extended) after the span, other than `target`.
std::optional<std::string> HeldIn(SymState& st, const z3::expr& value, const std::string& target) {
  z3::expr v = Zext64(value).simplify();
  for (const std::string& r : GeneralRegs())  // never sp or ip
    if (r != target && z3::eq(st.Reg(r).simplify(), v)) return std::string(r);
  return std::nullopt;
}

// The last instruction of [begin, end) that writes register family `f`.
std::string LastWriter(const Function& fn, int begin, int end, const std::string& f) {
  for (int i = end - 1; i >= begin; --i)
    for (const std::string& w : fn.insns[i].writes)
      if (RegFamily(w) == f)
        return absl::StrFormat("`%s` at +0x%x", fn.insns[i].Text(), fn.insns[i].offset);
  return "the span";
}

// True when no store of the span can overlap the `width` bytes loaded at `addr`.
bool NoStoreAliases(z3::context& c, const z3::expr& addr, int width, SymState& st,
                    std::string* why) {
  for (const SymStore& s : st.stores()) {
    if (!s.addr) {
      *why = absl::StrCat("the span stores to ", s.key.substr(4), ", which may alias it");
      return false;
    }
    // Disjoint on the address ring: the store starts at least `width` past the load, and the
    // load at least the store's width past the store.
    z3::solver sv(c);
    BoundSolver(sv, 5000u);
    sv.add(!(z3::uge(*s.addr - addr, c.bv_val(width, 64)) &&
             z3::uge(addr - *s.addr, c.bv_val(s.width, 64))));
    if (sv.check() != z3::unsat) {
      *why = absl::StrCat("the span's store to ", s.key.substr(4), " may alias it");
      return false;
    }
  }
  return true;
}

// Where a value loaded inside the span can be re-read at the probe, or why it cannot.
std::optional<std::string> MemoryUnavailable(const Function& fn, int begin, int end, SymState& st,
                                             const std::string& sym, const z3::expr& value,
                                             const std::vector<z3::expr>& live_uses) {
  auto ld = st.loads().find(sym);
  if (ld == st.loads().end()) return "it is not loaded in the shipped build";
  std::string by =
      absl::StrFormat("loaded by `%s` at +0x%x", ld->second.insn->Text(), ld->second.insn->offset);
  if (!ld->second.addr)
    return absl::StrCat(by, " from a global (RIP-relative): the stub has no address for it");
  for (const std::string& a : FreeInputs(*ld->second.addr)) {
    if (a.rfind("in:", 0) != 0) return absl::StrCat(by, ": its address is loaded in the span");
    std::string r = a.substr(3);
    if (st.written().count(r))
      return absl::StrCat(by, ": address register ", r, " is overwritten by ",
                          LastWriter(fn, begin, end, r));
  }
  std::string why;
  if (!NoStoreAliases(value.ctx(), *ld->second.addr, ld->second.op.size, st, &why))
    return absl::StrCat(by, ": ", why);
  for (const z3::expr& u : live_uses)
    if (FreeInputs(u).count(sym))
      return absl::StrCat(by,
                          ": it also feeds another result live after the span, which a "
                          "re-read at the probe could contradict under a concurrent write");
  return std::nullopt;
}

// A value loaded in [begin, end) by a plain load into a register (`mov`, `movzx`, `movsx`,
// `movsxd`): saved from that register at the next instruction, before the probe; nullopt when
// the load is of another kind (`sub esi, [mem]`) or ends the span.
std::optional<ProbeInput> SavedAfterLoad(const Function& fn, int end, const SymLoad& ld) {
  static const std::set<std::string> kLoads = {"mov", "movzx", "movsx", "movsxd"};
  const Insn& in = *ld.insn;
  if (!kLoads.count(in.mnemonic) || in.ops.size() != 2 || in.ops[0].type != OpType::kReg ||
      in.ops[1].type != OpType::kMem)
    return std::nullopt;
  const int idx = static_cast<int>(&in - fn.insns.data());
  if (idx < 0 || idx + 1 >= end) return std::nullopt;
  std::string r = RegFamily(in.ops[0].reg);
  if (r.empty() || r == "sp") return std::nullopt;
  ProbeInput p;
  p.reg = r;
  p.width = ld.op.size;
  p.saved = true;
  p.save_index = idx + 1;
  return p;
}

}  // namespace

absl::StatusOr<std::vector<ProbeInput>> LocateInputs(const Function& fn, int begin, int end,
                                                     SymState& st,
                                                     const std::vector<z3::expr>& outs,
                                                     const std::string& target,
                                                     const std::vector<z3::expr>& live_uses) {
  std::vector<ProbeInput> out;
  for (const auto& [sym, e] : Consts(outs)) {
    ProbeInput in;
    in.sym = sym;
    if (auto r = HeldIn(st, e, target)) {
      in.reg = *r;
      out.push_back(in);
      continue;
    }
    if (sym.rfind("in:", 0) == 0) {
      // Overwritten in the span: saved at its start.
      in.reg = sym.substr(3);
      in.saved = true;
      in.save_index = begin;
      in.width = e.get_sort().bv_size() / 8;
      out.push_back(in);
      continue;
    }
    auto why = MemoryUnavailable(fn, begin, end, st, sym, e, live_uses);
    std::string name = absl::StrCat("memory ", sym.substr(4, sym.rfind(':') - 4));
    if (why) {
      std::optional<ProbeInput> sv;
      if (auto ld = st.loads().find(sym); ld != st.loads().end())
        sv = SavedAfterLoad(fn, end, ld->second);
      if (!sv)
        return absl::InvalidArgumentError(absl::StrCat(
            "input ", name, " is not available at the probe: ", *why,
            ", and it is not loaded into a register inside the span to be saved from"));
      sv->sym = sym;
      out.push_back(*sv);
      continue;
    }
    const SymLoad& ld = st.loads().at(sym);
    in.mem = ld.op;
    in.width = ld.op.size;
    out.push_back(in);
  }
  return out;
}

}  // namespace sie::synth::analysis
