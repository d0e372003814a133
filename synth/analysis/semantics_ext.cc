// Stage 3a, continued: the instruction families beyond moves and plain arithmetic (stack,
// bit scans and bit tests, carries, rotates, sign extensions, exchanges), the unknown result of
// an instruction the executor does not model, and the check that no output of a span depends
// on such an unknown value (CheckModelled). Semantics follow the Intel SDM; where it leaves a
// result undefined the value is an "undef|" constant, never a guess.
#include <atomic>
#include <functional>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/base/hash.h"
#include "synth/analysis/semantics.h"
#include "synth/refusal.h"

namespace sie::synth::analysis {
namespace {

unsigned Bits(const Insn& in, int i) { return static_cast<unsigned>(in.ops[i].size * 8); }
z3::expr Bit(const z3::expr& v, unsigned i) { return v.extract(i, i) == v.ctx().bv_val(1, 1); }
z3::expr Fit(const z3::expr& e, unsigned bits) {
  unsigned w = e.get_sort().bv_size();
  if (w == bits) return e;
  if (w > bits) return e.extract(bits - 1, 0);
  return z3::zext(e, bits - w);
}
z3::expr Parity(const z3::expr& r) {
  z3::expr x = r.extract(0, 0);
  for (unsigned i = 1; i < 8 && i < r.get_sort().bv_size(); ++i) x = x ^ r.extract(i, i);
  return x == r.ctx().bv_val(0, 1);
}
z3::expr Zero(const z3::expr& v) { return v == v.ctx().bv_val(0, v.get_sort().bv_size()); }
Operand RegOp(const std::string& name, int size) {
  Operand o;
  o.size = size;
  o.reg = name;
  return o;
}
// The 64-bit name of a register family ("ax" -> "rax", "r12" -> "r12").
std::string Reg64(const std::string& family) {
  return family.size() >= 2 && isdigit(family[1]) ? family : "r" + family;
}
// The mnemonic without a lock prefix (atomicity does not change a sequential result).
std::string Mnemonic(const Insn& in) {
  return absl::StartsWith(in.mnemonic, "lock ") ? in.mnemonic.substr(5) : in.mnemonic;
}
std::atomic<int> undef_ids{0};  // undefined values are distinct across states

}  // namespace

z3::expr SymState::PackedFlags() {
  SymFlags f = CurrentFlags();
  auto bit = [&](const z3::expr& b) { return z3::ite(b, ctx_.bv_val(1, 1), ctx_.bv_val(0, 1)); };
  return z3::concat(bit(f.cf),
                    z3::concat(bit(f.zf), z3::concat(bit(f.sf), z3::concat(bit(f.of), bit(f.pf)))))
      .simplify();
}

z3::expr SymState::ReadAt(const z3::expr& addr, int size) {
  std::string k = absl::StrCat("mem:", addr.simplify().to_string(), ":", size);
  auto it = mem_.find(k);
  if (it != mem_.end()) return it->second;
  z3::expr v = ctx_.bv_const(k.c_str(), size * 8);
  mem_.emplace(k, v);
  return v;
}

void SymState::WriteAt(const z3::expr& addr, const Operand& op, const z3::expr& v, bool exact_op) {
  std::string k = absl::StrCat("mem:", addr.simplify().to_string(), ":", op.size);
  mem_.insert_or_assign(k, v);
  stores_.push_back(SymStore{k, op, op.size, v, exact_op, addr.simplify(), cur_});
}

std::optional<Operand> SymState::OperandNow(const SymStore& s) {
  if (!s.addr) return s.op;  // RIP-relative: the same cell wherever the probe is
  auto same = [&](const z3::expr& a) {
    z3::solver sv(ctx_);
    sv.add(a != *s.addr);
    return sv.check() == z3::unsat;
  };
  if (s.exact_op && same(Address(s.op))) return s.op;
  // A stack slot (`push`): addressed from the stack pointer as it is now.
  z3::expr d = (*s.addr - Reg("sp")).simplify();
  if (!d.is_numeral()) return std::nullopt;
  Operand op = s.op;
  op.base = "rsp";
  op.index.clear();
  op.scale = 1;
  op.disp = static_cast<int64_t>(d.get_numeral_uint64());
  if (!same(Address(op))) return std::nullopt;
  return op;
}

// push/pop/leave: 64-bit stack slots addressed by rsp.
std::optional<bool> SymState::StepStack(const Insn& in) {
  const std::string& m = in.mnemonic;
  const auto& ops = in.ops;
  Operand top;
  top.type = OpType::kMem;
  top.size = 8;
  top.base = "rsp";
  if (m == "push" && ops.size() == 1) {
    if (ops[0].type != OpType::kImm && ops[0].size != 8) return Fail(in, "16-bit push");
    // The caller's value of a callee-saved register, named alike in every build.
    z3::expr v = in.entry_save ? ctx_.bv_const(("callee:" + RegFamily(ops[0].reg)).c_str(), 64)
                 : ops[0].type == OpType::kImm ? ctx_.bv_val(static_cast<uint64_t>(ops[0].imm), 64)
                                               : Read(ops[0]);  // before rsp moves ("push rsp")
    z3::expr sp = (Reg("sp") - ctx_.bv_val(8, 64)).simplify();
    Write(RegOp("rsp", 8), sp);
    WriteAt(sp, top, v, false);  // [rsp] moves with later pushes: see OperandNow
    return true;
  }
  if ((m == "pop" && ops.size() == 1) || (m == "leave" && ops.empty())) {
    if (!ops.empty() && ops[0].size != 8) return Fail(in, "16-bit pop");
    z3::expr sp = m == "leave" ? Reg("bp") : Reg("sp");
    z3::expr v = ReadAt(sp, 8);
    Write(RegOp("rsp", 8), (sp + ctx_.bv_val(8, 64)).simplify());
    Write(m == "leave" ? RegOp("rbp", 8) : ops[0], v);  // a memory destination uses the new rsp
    return true;
  }
  return std::nullopt;
}

// bsf/bsr/tzcnt/popcnt. A zero source leaves bsf/bsr's destination undefined (Intel) and
// tzcnt's result CPU-dependent (it runs as bsf without BMI1); lzcnt runs as bsr there.
std::optional<bool> SymState::StepBitScan(const Insn& in) {
  const std::string& m = in.mnemonic;
  if (!(m == "bsf" || m == "bsr" || m == "tzcnt" || m == "popcnt" || m == "lzcnt") ||
      in.ops.size() != 2)
    return std::nullopt;
  if (m == "lzcnt") return Fail(in, "lzcnt executes as bsr on CPUs without LZCNT");
  unsigned w = Bits(in, 0);
  z3::expr src = Fit(Read(in.ops[1]), w);
  z3::expr r = ctx_.bv_val(0, w);
  if (m == "popcnt") {
    for (unsigned i = 0; i < w; ++i) r = r + z3::zext(src.extract(i, i), w - 1);
    Write(in.ops[0], r.simplify());
    z3::expr f = ctx_.bool_val(false);
    SetFlagBits(f, Zero(src), f, f, f, in.ops[0].size, in);
    return true;
  }
  for (unsigned k = 0; k < w; ++k) {  // the last matching bit wins
    unsigned i = m == "bsr" ? k : w - 1 - k;
    r = z3::ite(Bit(src, i), ctx_.bv_val(i, w), r);
  }
  // On a zero source the whole register is undefined (even the upper half of a 32-bit one),
  // except that a 64-bit bsf/bsr leaves it unchanged: AMD documents it, Intel's CPUs do it, and
  // the kernel relies on it (fls64/__ffs64 preload the destination, asm/bitops.h).
  std::string fam = RegFamily(in.ops[0].reg);
  z3::expr kept = w == 64 && m != "tzcnt" ? Read(in.ops[0]) : Undef(in, 64, "the destination");
  z3::expr full = z3::ite(Zero(src), kept, z3::zext(r, 64 - w));
  if (w == 16)
    Write(in.ops[0], z3::ite(Zero(src), Undef(in, 16, "the destination"), r));
  else
    Write(RegOp(Reg64(fam), 8), full);
  bool scan = m != "tzcnt";
  SetFlagBits(Undef(in, 0, "CF"), scan ? Zero(src) : Undef(in, 0, "ZF"), Undef(in, 0, "SF"),
              Undef(in, 0, "OF"), Undef(in, 0, "PF"), in.ops[0].size, in);
  return true;
}

// bt/bts/btr/btc. CF = the bit, ZF kept, OF/SF/PF undefined. A memory operand with a
// register bit offset addresses the bit string from the operand on: offset SAR log2(width)
// operands further (possibly outside the operand, possibly negative).
std::optional<bool> SymState::StepBitTest(const Insn& in) {
  const std::string m = Mnemonic(in);
  if (!(m == "bt" || m == "bts" || m == "btr" || m == "btc") || in.ops.size() != 2)
    return std::nullopt;
  const Operand &dst = in.ops[0], &src = in.ops[1];
  unsigned w = Bits(in, 0), lg = w == 16 ? 4 : w == 32 ? 5 : 6;
  z3::expr off = src.type == OpType::kImm ? ctx_.bv_val(static_cast<uint64_t>(src.imm), 64)
                                          : z3::sext(Fit(Read(src), w), 64 - w);
  bool string = dst.type == OpType::kMem && src.type == OpType::kReg;
  z3::expr addr = ctx_.bv_val(0, 64);
  if (string) addr = Address(dst) + z3::ashr(off, ctx_.bv_val(lg, 64)) * ctx_.bv_val(w / 8, 64);
  z3::expr val = string ? ReadAt(addr, dst.size) : Read(dst);
  z3::expr mask = z3::shl(ctx_.bv_val(1, w), Fit(off, w) & ctx_.bv_val(w - 1, w));
  z3::expr bit = (val & mask) != ctx_.bv_val(0, w);
  z3::expr nv = m == "bts" ? (val | mask) : m == "btr" ? (val & ~mask) : (val ^ mask);
  z3::expr zf = CurrentFlags().zf;
  if (m != "bt") {
    if (string) {
      z3::expr moved = z3::ashr(off, ctx_.bv_val(lg, 64)).simplify();
      WriteAt(addr, dst, nv.simplify(), moved.is_numeral() && Zero(moved).simplify().is_true());
    } else {
      Write(dst, nv.simplify());
    }
  }
  SetFlagBits(bit, zf, Undef(in, 0, "SF"), Undef(in, 0, "OF"), Undef(in, 0, "PF"), dst.size, in);
  return true;
}

// adc/sbb (the carry in is the current CF) and stc/clc/cmc.
std::optional<bool> SymState::StepCarry(const Insn& in) {
  const std::string m = Mnemonic(in);
  if (m == "stc" || m == "clc" || m == "cmc") {  // CF only
    SymFlags f = CurrentFlags();
    z3::expr cf = m == "cmc" ? !f.cf : ctx_.bool_val(m == "stc");
    SetFlagBits(cf, f.zf, f.sf, f.of, f.pf, f.width, in);
    return true;
  }
  if (!(m == "adc" || m == "sbb") || in.ops.size() != 2) return std::nullopt;
  unsigned w = Bits(in, 0);
  z3::expr a = Read(in.ops[0]), b = Fit(Read(in.ops[1]), w);
  z3::expr cf = CurrentFlags().cf;
  z3::expr c = z3::ite(cf, ctx_.bv_val(1, w + 1), ctx_.bv_val(0, w + 1));
  bool self = in.ops[0].type == OpType::kReg && in.ops[1].type == OpType::kReg &&
              in.ops[0].reg == in.ops[1].reg;
  z3::expr r = ctx_.bv_val(0, w), cout = cf, of = cf;
  if (m == "adc") {
    z3::expr wide = z3::zext(a, 1) + z3::zext(b, 1) + c;
    r = wide.extract(w - 1, 0);
    cout = Bit(wide, w);
    of = z3::sext(a, 1) + z3::sext(b, 1) + c != z3::sext(r, 1);
  } else if (self) {  // sbb r,r: -CF, whatever r held
    r = (ctx_.bv_val(0, w + 1) - c).extract(w - 1, 0);
    of = ctx_.bool_val(false);
  } else {
    r = a - b - c.extract(w - 1, 0);
    cout = z3::ult(z3::zext(a, 1), z3::zext(b, 1) + c);
    of = z3::sext(a, 1) - z3::sext(b, 1) - c != z3::sext(r, 1);
  }
  r = r.simplify();
  Write(in.ops[0], r);
  SetFlagBits(cout, Zero(r), Bit(r, w - 1), of, Parity(r), in.ops[0].size, in);
  return true;
}

// rol/ror: the count is masked, then taken modulo the width; only CF and OF change (OF for a
// masked count of 1 only), and nothing changes for a masked count of 0.
std::optional<bool> SymState::StepRotate(const Insn& in) {
  const std::string& m = in.mnemonic;
  if (!(m == "rol" || m == "ror") || in.ops.empty()) return std::nullopt;
  unsigned w = Bits(in, 0);
  z3::expr a = Read(in.ops[0]);
  z3::expr cnt = in.ops.size() == 2 ? Fit(Read(in.ops[1]), w) : ctx_.bv_val(1, w);
  cnt = (cnt & ctx_.bv_val(w == 64 ? 63 : 31, w)).simplify();
  z3::expr n = z3::urem(cnt, ctx_.bv_val(w, w));
  z3::expr left = m == "rol" ? n : (ctx_.bv_val(w, w) - n);
  z3::expr r = (z3::shl(a, left) | z3::lshr(a, ctx_.bv_val(w, w) - left)).simplify();
  SymFlags old = CurrentFlags();
  z3::expr cf = m == "rol" ? Bit(r, 0) : Bit(r, w - 1);
  z3::expr of1 = m == "rol" ? Bit(r, w - 1) != cf : Bit(r, w - 1) != Bit(r, w - 2);
  z3::expr zero = Zero(cnt);
  z3::expr of = z3::ite(zero, old.of, z3::ite(cnt == ctx_.bv_val(1, w), of1, Undef(in, 0, "OF")));
  SetFlagBits(z3::ite(zero, old.cf, cf), old.zf, old.sf, of, old.pf, in.ops[0].size, in);
  Write(in.ops[0], r);
  return true;
}

// Sign extensions of the accumulator: cbw/cwde (in place), cwd/cdq/cqo (into dx).
std::optional<bool> SymState::StepConvert(const Insn& in) {
  const std::string& m = in.mnemonic;
  z3::expr ax = Reg("ax");
  if (m == "cbw")
    Write(RegOp("ax", 2), z3::sext(ax.extract(7, 0), 8));
  else if (m == "cwde")
    Write(RegOp("eax", 4), z3::sext(ax.extract(15, 0), 16));
  else if (m == "cwd")
    Write(RegOp("dx", 2), z3::sext(ax.extract(15, 0), 16).extract(31, 16));
  else if (m == "cdq")
    Write(RegOp("edx", 4), z3::sext(ax.extract(31, 0), 32).extract(63, 32));
  else if (m == "cqo")
    Write(RegOp("rdx", 8), z3::sext(ax, 64).extract(127, 64));
  else
    return std::nullopt;
  return true;
}

// div/idiv: the dividend is rdx:rax (ax for a byte divisor), quotient to rax, remainder to
// rdx (al, ah); all flags undefined. A zero divisor or a quotient that does not fit raises #DE:
// the span never completes, so no output is observed and the values there are don't-cares.
std::optional<bool> SymState::StepDivide(const Insn& in) {
  const std::string& m = in.mnemonic;
  if (!(m == "div" || m == "idiv") || in.ops.size() != 1) return std::nullopt;
  unsigned w = Bits(in, 0);
  z3::expr ax = Reg("ax"), dx = Reg("dx");
  z3::expr dividend =
      w == 8 ? ax.extract(15, 0) : z3::concat(dx.extract(w - 1, 0), ax.extract(w - 1, 0));
  z3::expr d = m == "div" ? z3::zext(Read(in.ops[0]), w) : z3::sext(Read(in.ops[0]), w);
  z3::expr q = (m == "div" ? z3::udiv(dividend, d) : dividend / d).extract(w - 1, 0);
  z3::expr r = (m == "div" ? z3::urem(dividend, d) : z3::srem(dividend, d)).extract(w - 1, 0);
  if (w == 8) {
    Write(RegOp("ax", 2), z3::concat(r, q).simplify());
  } else {
    static const char* kLo[] = {"", "", "ax", "", "eax", "", "", "", "rax"};
    static const char* kHi[] = {"", "", "dx", "", "edx", "", "", "", "rdx"};
    Write(RegOp(kLo[w / 8], static_cast<int>(w / 8)), q.simplify());
    Write(RegOp(kHi[w / 8], static_cast<int>(w / 8)), r.simplify());
  }
  SetFlagBits(Undef(in, 0, "CF"), Undef(in, 0, "ZF"), Undef(in, 0, "SF"), Undef(in, 0, "OF"),
              Undef(in, 0, "PF"), in.ops[0].size, in);
  return true;
}

// xchg and xadd (flags of the addition).
std::optional<bool> SymState::StepExchange(const Insn& in) {
  const std::string m = Mnemonic(in);
  if (!(m == "xchg" || m == "xadd") || in.ops.size() != 2) return std::nullopt;
  z3::expr d = Read(in.ops[0]), s = Read(in.ops[1]);
  if (m == "xadd") SetFlags("add", d, s, d + s, in.ops[0].size, in);
  Write(in.ops[1], d);
  Write(in.ops[0], m == "xadd" ? d + s : s);
  return true;
}

// An instruction no handler models: each result becomes an uninterpreted function, named by
// the instruction's signature, of everything the instruction reads (and the old values of the
// registers it writes), so equal code on equal inputs gives provably equal results in every
// build and an output that depends on it is refused by CheckModelled. Instructions whose
// effects are not all in their operands and register lists cannot be handled this way.
bool SymState::Havoc(const Insn& in) {
  bool explicit_sp = false, odd = false;
  for (const Operand& o : in.ops) {
    explicit_sp |= o.type == OpType::kMem && (o.base == "rsp" || o.index == "rsp");
    odd |= o.type == OpType::kReg && RegFamily(o.reg).empty();  // vector/segment registers
    odd |= o.type == OpType::kMem && (o.size <= 0 || o.size > 32);
  }
  std::string m = Mnemonic(in);
  bool hidden = in.is_branch || absl::StrContains(m, "rep") || in.writes.count("sp") ||
                (in.reads.count("sp") && !explicit_sp) || absl::StartsWith(m, "bt") || odd;
  if (hidden) {
    if (unsupported_.empty())
      unsupported_ = absl::StrCat(in.Text(), " at +0x", absl::Hex(in.offset),
                                  why_.empty() ? "" : absl::StrCat(" (", why_, ")"));
    return false;
  }
  std::vector<z3::expr> args = {ctx_.bv_val(0, 1)};
  for (const Operand& o : in.ops)
    if (o.read || o.type == OpType::kImm) args.push_back(Read(o));
  std::set<std::string> regs = in.reads;
  regs.insert(in.writes.begin(), in.writes.end());
  for (const std::string& f : regs)
    if (f != "sp" && f != "ip" && !RegFamily(Reg64(f)).empty()) args.push_back(Reg(f));
  if (in.reads_flags) args.push_back(PackedFlags());
  z3::sort_vector sorts(ctx_);
  z3::expr_vector av(ctx_);
  for (const z3::expr& a : args) sorts.push_back(a.get_sort()), av.push_back(a);
  std::string what = absl::StrCat("instruction `", in.Text(), "` at +0x", absl::Hex(in.offset),
                                  why_.empty() ? "" : absl::StrCat(" (", why_, ")"));
  int n = 0;
  auto result = [&](const z3::sort& s) {
    std::string name = absl::StrCat("unk|", in.sig, "|", n++);
    unknowns_[name] = what;
    return ctx_.function(name.c_str(), sorts, s)(av);
  };
  std::set<std::string> done;
  for (const Operand& o : in.ops) {
    if (!o.write) continue;
    Write(o, result(ctx_.bv_sort(o.size * 8)));
    if (o.type == OpType::kReg) done.insert(RegFamily(o.reg));
  }
  for (const std::string& f : in.writes)
    if (!done.count(f) && f != "ip" && !RegFamily(Reg64(f)).empty())
      Write(RegOp(Reg64(f), 8), result(ctx_.bv_sort(64)));
  if (in.writes_flags) {
    z3::sort b = ctx_.bool_sort();
    SetFlagBits(result(b), result(b), result(b), result(b), result(b), 8, in);
  }
  return true;
}

namespace {

// Unknown values in `e`: "unk|" applications and "undef|"/"entry|" constants.
void Unknowns(const z3::expr& e, std::map<std::string, z3::expr>* out) {
  std::set<unsigned> seen;
  std::function<void(const z3::expr&)> walk = [&](const z3::expr& x) {
    if (!x.is_app() || !seen.insert(x.id()).second) return;
    if (x.decl().decl_kind() == Z3_OP_UNINTERPRETED) {
      std::string n = x.decl().name().str();
      if (absl::StartsWith(n, "unk|") || absl::StartsWith(n, "undef|") ||
          absl::StartsWith(n, "entry|"))
        out->emplace(n, x);
    }
    for (unsigned i = 0; i < x.num_args(); ++i) walk(x.arg(i));
  };
  walk(e);
}

}  // namespace

void BoundSolver(z3::solver& s, unsigned budget_ms) {
  z3::params p(s.ctx());
  // rlimit is relative to the context's count when the check starts (Z3 4.8: scoped).
  p.set("rlimit", budget_ms * kZ3UnitsPerMs);
  p.set("timeout", 4 * budget_ms);
  s.set(p);
}

bool Valid(z3::context& c, const z3::expr& claim, unsigned budget_ms) {
  if (budget_ms) return UnsatWithin(c, !claim, budget_ms);
  z3::solver s(c);
  s.add(!claim);
  return s.check() == z3::unsat;
}

namespace {
// UnsatWithin's outcomes for the process: key "budget:XXH3-128 of the SMT-LIB text".
absl::Mutex unsat_mu;
absl::flat_hash_map<std::string, bool>* const unsat_known =
    new absl::flat_hash_map<std::string, bool>();
std::atomic<int64_t> unsat_reused{0};
}  // namespace

int64_t UnsatWithinReused() { return unsat_reused.load(); }

bool UnsatWithin(z3::context& c, const z3::expr& e, unsigned budget_ms) {
  z3::solver s(c);
  s.add(e);
  const std::string key = absl::StrCat(budget_ms, ":", ContentHash(s.to_smt2()));
  {
    absl::MutexLock lock(&unsat_mu);
    if (auto it = unsat_known->find(key); it != unsat_known->end()) {
      ++unsat_reused;
      return it->second;
    }
  }
  BoundSolver(s, budget_ms);
  const bool unsat = s.check() == z3::unsat;
  absl::MutexLock lock(&unsat_mu);
  unsat_known->emplace(key, unsat);
  return unsat;
}

z3::expr DivisionsAbstracted(const z3::expr& e, bool* found, bool products) {
  std::map<unsigned, z3::expr> memo;
  std::function<z3::expr(const z3::expr&)> go = [&](const z3::expr& x) -> z3::expr {
    if (!x.is_app() || x.num_args() == 0) return x;
    if (auto it = memo.find(x.id()); it != memo.end()) return it->second;
    z3::expr_vector args(x.ctx());
    for (unsigned i = 0; i < x.num_args(); ++i) args.push_back(go(x.arg(i)));
    const char* op = nullptr;
    switch (x.decl().decl_kind()) {
      case Z3_OP_BUDIV:
      case Z3_OP_BUDIV_I:
        op = "udiv";
        break;
      case Z3_OP_BUREM:
      case Z3_OP_BUREM_I:
        op = "urem";
        break;
      case Z3_OP_BSDIV:
      case Z3_OP_BSDIV_I:
        op = "sdiv";
        break;
      case Z3_OP_BSREM:
      case Z3_OP_BSREM_I:
        op = "srem";
        break;
      case Z3_OP_BSMOD:
      case Z3_OP_BSMOD_I:
        op = "smod";
        break;
      case Z3_OP_BMUL:
        // A product of two variable factors (a multiplier per side); by a numeral it stays.
        if (products && args.size() == 2 && !args[0].is_numeral() && !args[1].is_numeral())
          op = "mul";
        break;
      default:
        break;
    }
    z3::expr r = x.decl()(args);
    if (op) {
      const z3::sort s = x.get_sort();
      const std::string name = absl::StrCat("abs|", op, s.bv_size());
      // Products commute: one order of the factors, so a*b and b*a are one application.
      const bool swap = op == std::string_view("mul") && args[1].id() < args[0].id();
      r = z3::function(name.c_str(), s, s, s)(args[swap ? 1 : 0], args[swap ? 0 : 1]);
      if (found) *found = true;
    }
    memo.emplace(x.id(), r);
    return r;
  };
  return go(e);
}

absl::Status CheckModelled(z3::context& c, std::vector<z3::expr>* o,
                           const std::vector<const SymState*>& st, const std::string& what) {
  std::map<std::string, z3::expr> left;
  for (z3::expr& e : *o) {
    std::map<std::string, z3::expr> u;
    Unknowns(e, &u);
    for (const auto& [name, x] : u) {
      if (!absl::StartsWith(name, "undef|")) {
        left.emplace(name, x);
        continue;
      }
      // An undefined value the output does not depend on is harmless.
      z3::expr_vector from(c), to(c), zero(c);
      from.push_back(x);
      std::string other = absl::StrCat(name, "'", undef_ids++);
      to.push_back(x.is_bool() ? c.bool_const(other.c_str())
                               : c.bv_const(other.c_str(), x.get_sort().bv_size()));
      zero.push_back(x.is_bool() ? c.bool_val(false) : c.bv_val(0, x.get_sort().bv_size()));
      if (Valid(c, e == z3::expr(e).substitute(from, to)))
        e = z3::expr(e).substitute(from, zero).simplify();
      else
        left.emplace(name, x);
    }
  }
  if (left.empty()) return absl::OkStatus();
  // Unknown but equal in every build: the constant does not reach this output.
  if (o->size() == 3 && Valid(c, (*o)[0] == (*o)[1] && (*o)[0] == (*o)[2])) return absl::OkStatus();
  std::string name = left.begin()->first;  // an unmodelled instruction first: the likely cause
  for (const auto& [n, x] : left)
    if (absl::StartsWith(n, "unk|")) name = n;
  std::string desc = name;
  for (const SymState* s : st)
    if (s->Describe(name) != name) desc = s->Describe(name);
  std::string msg =
      absl::StartsWith(name, "unk|")
          ? absl::StrCat("cannot model ", desc, " in the span: its result reaches ", what)
          : absl::StrCat(what, " depends on ", desc, ": the span's result is not determined");
  return Classified(absl::InvalidArgumentError(msg), Refusal::kUnmodelledInstruction);
}

}  // namespace sie::synth::analysis
