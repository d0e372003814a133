#include "synth/analysis/semantics.h"

#include <atomic>
#include <functional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sie::synth::analysis {
namespace {

bool IsHighByte(const std::string& r) { return r == "ah" || r == "bh" || r == "ch" || r == "dh"; }

z3::expr Fit(const z3::expr& e, unsigned bits) {
  unsigned w = e.get_sort().bv_size();
  if (w == bits) return e;
  if (w > bits) return e.extract(bits - 1, 0);
  return z3::zext(e, bits - w);
}

}  // namespace

SymState::SymState(z3::context& ctx, std::set<std::string> zext32)
    : ctx_(ctx), zext32_(std::move(zext32)) {}

z3::expr SymState::Reg(const std::string& f) {
  auto it = regs_.find(f);
  if (it != regs_.end()) return it->second;
  z3::expr v = zext32_.count(f) ? z3::zext(ctx_.bv_const(InputName(f).c_str(), 32), 32)
                                : ctx_.bv_const(InputName(f).c_str(), 64);
  regs_.emplace(f, v);
  return v;
}

int SymState::LastWriteWidth(const std::string& f) const {
  auto it = last_width_.find(f);
  return it == last_width_.end() ? 8 : it->second;
}

z3::expr SymState::Address(const Operand& op) {
  auto sym = imm_.find(&op);
  z3::expr a = sym != imm_.end() ? sym->second : ctx_.bv_val(static_cast<uint64_t>(op.disp), 64);
  if (!op.base.empty() && op.base != "rip") a = a + Reg(RegFamily(op.base));
  if (!op.index.empty()) a = a + Reg(RegFamily(op.index)) * ctx_.bv_val(op.scale, 64);
  return a.simplify();
}

std::optional<z3::expr> SymState::OptAddress(const Operand& op) {
  if (op.base == "rip") return std::nullopt;
  return Address(op);
}

std::string SymState::MemKey(const Operand& op) {
  if (op.base == "rip") {
    std::string k = "rip";
    if (cur_)
      for (const auto& r : cur_->relocs) k = absl::StrCat("sym:", r.target, "+", r.addend);
    return absl::StrCat("mem:", k, ":", op.size);
  }
  return absl::StrCat("mem:", Address(op).to_string(), ":", op.size);
}

z3::expr SymState::Read(const Operand& op) {
  unsigned bits = op.size * 8;
  switch (op.type) {
    case OpType::kImm:
      if (auto it = imm_.find(&op); it != imm_.end()) return it->second;
      return ctx_.bv_val(static_cast<uint64_t>(op.imm), 64).extract(bits - 1, 0);
    case OpType::kReg: {
      z3::expr full = Reg(RegFamily(op.reg));
      if (IsHighByte(op.reg)) return full.extract(15, 8);
      return full.extract(bits - 1, 0);
    }
    case OpType::kMem: {
      std::string k = MemKey(op);
      auto it = mem_.find(k);
      if (it != mem_.end()) return it->second;
      z3::expr v = ctx_.bv_const(k.c_str(), bits);
      mem_.emplace(k, v);
      loads_.emplace(k, SymLoad{op, OptAddress(op), cur_});
      return v;
    }
  }
  return ctx_.bv_val(0, bits);
}

void SymState::Write(const Operand& op, const z3::expr& v0) {
  z3::expr v = Fit(v0, op.size * 8);
  if (op.type == OpType::kReg) {
    std::string f = RegFamily(op.reg);
    z3::expr old = Reg(f);
    z3::expr nv = old;
    if (IsHighByte(op.reg)) {
      nv = z3::concat(old.extract(63, 16), z3::concat(v, old.extract(7, 0)));
    } else if (op.size == 4) {
      nv = z3::zext(v, 32);  // 32-bit writes clear the upper half
    } else if (op.size == 8) {
      nv = v;
    } else {
      nv = z3::concat(old.extract(63, op.size * 8), v);
    }
    regs_.insert_or_assign(f, nv.simplify());
    written_.insert(f);
    last_width_[f] = op.size;
  } else if (op.type == OpType::kMem) {
    std::string k = MemKey(op);
    mem_.insert_or_assign(k, v);
    stores_.push_back(SymStore{k, op, op.size, v, true, OptAddress(op), cur_});
  }
}

namespace {
z3::expr Bit(const z3::expr& v, unsigned i) { return v.extract(i, i) == v.ctx().bv_val(1, 1); }
// PF: the low byte of the result has an even number of set bits.
z3::expr Parity(const z3::expr& r) {
  z3::expr x = r.extract(0, 0);
  for (unsigned i = 1; i < 8 && i < r.get_sort().bv_size(); ++i) x = x ^ r.extract(i, i);
  return x == r.ctx().bv_val(0, 1);
}
z3::expr Pack(const z3::expr& b) { return z3::ite(b, b.ctx().bv_val(1, 1), b.ctx().bv_val(0, 1)); }
}  // namespace

void SymState::SetFlags(const std::string& kind, const z3::expr& a, const z3::expr& b,
                        const z3::expr& r, int width, const Insn& in) {
  unsigned w = width * 8;
  z3::expr cf = ctx_.bool_val(false), of = ctx_.bool_val(false);
  if (kind == "sub") {
    cf = z3::ult(a, b);
    of = (Bit(a, w - 1) != Bit(b, w - 1)) && (Bit(r, w - 1) != Bit(a, w - 1));
  } else if (kind == "add") {
    cf = z3::ult(r, a);
    of = (Bit(a, w - 1) == Bit(b, w - 1)) && (Bit(r, w - 1) != Bit(a, w - 1));
  }
  flags_.emplace(SymFlags{kind, a, b, r, width, &in, cf, r == ctx_.bv_val(0, w), Bit(r, w - 1), of,
                          Parity(r)});
}

void SymState::SetFlagBits(const z3::expr& cf, const z3::expr& zf, const z3::expr& sf,
                           const z3::expr& of, const z3::expr& pf, int width, const Insn& in) {
  z3::expr packed =
      z3::concat(Pack(cf),
                 z3::concat(Pack(zf), z3::concat(Pack(sf), z3::concat(Pack(of), Pack(pf)))))
          .simplify();
  flags_.emplace(SymFlags{"bits", packed, ctx_.bv_val(0, 1), packed, width, &in, cf.simplify(),
                          zf.simplify(), sf.simplify(), of.simplify(), pf.simplify()});
}

SymFlags SymState::CurrentFlags() {
  if (flags_) return *flags_;
  auto entry = [&](const char* f) {
    std::string n = absl::StrCat("entry|", f);
    unknowns_[n] = absl::StrCat("the flag ", f, " as set before the span");
    return ctx_.bool_const(n.c_str());
  };
  SetFlagBits(entry("CF"), entry("ZF"), entry("SF"), entry("OF"), entry("PF"), 8, *cur_);
  SymFlags f = *flags_;
  flags_.reset();
  return f;
}

z3::expr SymState::Undef(const Insn& in, unsigned bits, const std::string& what) {
  static std::atomic<int> ids{0};  // distinct in every state: builds may differ here
  std::string n = absl::StrCat("undef|", ids++);
  unknowns_[n] = absl::StrCat(what, " of `", in.Text(), "` at +0x", absl::Hex(in.offset),
                              ", architecturally undefined");
  return bits ? ctx_.bv_const(n.c_str(), bits) : ctx_.bool_const(n.c_str());
}

std::string SymState::Describe(const std::string& name) const {
  auto it = unknowns_.find(name);
  return it == unknowns_.end() ? name : it->second;
}

std::optional<z3::expr> ConditionOf(const std::string& cc0, const z3::expr& cf, const z3::expr& zf,
                                    const z3::expr& sf, const z3::expr& of, const z3::expr* pf) {
  static const std::pair<const char*, const char*> kSynonyms[] = {
      {"z", "e"},   {"nz", "ne"}, {"nb", "ae"}, {"nc", "ae"}, {"c", "b"},
      {"nae", "b"}, {"na", "be"}, {"nbe", "a"}, {"nl", "ge"}, {"nge", "l"},
      {"ng", "le"}, {"nle", "g"}, {"pe", "p"},  {"po", "np"}};
  std::string cc = cc0;
  for (const auto& [from, to] : kSynonyms)
    if (cc == from) cc = to;
  if (cc == "e") return zf;
  if (cc == "ne") return !zf;
  if (cc == "b") return cf;
  if (cc == "ae") return !cf;
  if (cc == "be") return cf || zf;
  if (cc == "a") return !cf && !zf;
  if (cc == "l") return sf != of;
  if (cc == "ge") return sf == of;
  if (cc == "le") return zf || (sf != of);
  if (cc == "g") return !zf && (sf == of);
  if (cc == "s") return sf;
  if (cc == "ns") return !sf;
  if (cc == "o") return of;
  if (cc == "no") return !of;
  if (pf && cc == "p") return *pf;
  if (pf && cc == "np") return !*pf;
  return std::nullopt;
}

std::optional<z3::expr> SymState::Cond(const std::string& cc) {
  const SymFlags f = CurrentFlags();
  return ConditionOf(cc, f.cf, f.zf, f.sf, f.of, &f.pf);
}

bool SymState::Fail(const Insn& in, const std::string& why) {
  (void)in;
  why_ = why;
  return false;
}

namespace {
unsigned Bits(const Insn& in, int i) { return static_cast<unsigned>(in.ops[i].size * 8); }
}  // namespace

// Moves, extensions, address computation and no-ops.
std::optional<bool> SymState::StepMove(const Insn& in) {
  const std::string& m = in.mnemonic;
  const auto& ops = in.ops;
  if (m == "nop" || m == "endbr64" || absl::StartsWith(m, "prefetch")) return true;
  if ((m == "mov" || m == "movabs") && ops.size() == 2) {
    Write(ops[0], Fit(Read(ops[1]), Bits(in, 0)));
    return true;
  }
  if ((m == "movzx" || m == "movsx" || m == "movsxd") && ops.size() == 2) {
    z3::expr v = Read(ops[1]);
    unsigned extra = Bits(in, 0) - Bits(in, 1);
    Write(ops[0], m == "movzx" ? z3::zext(v, extra) : z3::sext(v, extra));
    return true;
  }
  if (m == "lea" && ops.size() == 2) {
    Write(ops[0], Address(ops[1]).extract(Bits(in, 0) - 1, 0));
    return true;
  }
  if (m == "cdqe") {
    Write(Operand{OpType::kReg, 8, "rax"}, z3::sext(Reg("ax").extract(31, 0), 32));
    return true;
  }
  return std::nullopt;
}

// Two-operand arithmetic and logic, compares and tests.
std::optional<bool> SymState::StepAlu(const Insn& in) {
  const auto& ops = in.ops;
  static const std::map<std::string, int> kBin = {{"add", 0}, {"sub", 1}, {"and", 2}, {"or", 3},
                                                  {"xor", 4}, {"cmp", 5}, {"test", 6}};
  auto bin = kBin.find(in.mnemonic);
  if (bin == kBin.end() || ops.size() != 2) return std::nullopt;
  z3::expr a = Read(ops[0]);
  z3::expr b = Fit(Read(ops[1]), Bits(in, 0));
  // xor/sub of a register with itself is a zeroing idiom, not a use of the old value.
  bool self =
      ops[0].type == OpType::kReg && ops[1].type == OpType::kReg && ops[0].reg == ops[1].reg;
  z3::expr r = a;
  switch (bin->second) {
    case 0:
      r = a + b;
      break;
    case 1:
    case 5:
      r = self ? a.ctx().bv_val(0, Bits(in, 0)) : a - b;
      break;
    case 2:
    case 6:
      r = a & b;
      break;
    case 3:
      r = a | b;
      break;
    case 4:
      r = self ? a.ctx().bv_val(0, Bits(in, 0)) : a ^ b;
      break;
  }
  const char* kind = bin->second == 0                         ? "add"
                     : (bin->second == 1 || bin->second == 5) ? "sub"
                                                              : "logic";
  SetFlags(kind, a, b, r, ops[0].size, in);
  if (bin->second < 5) Write(ops[0], r);
  return true;
}

std::optional<bool> SymState::StepUnary(const Insn& in) {
  const std::string& m = in.mnemonic;
  const auto& ops = in.ops;
  if (!(m == "inc" || m == "dec" || m == "neg" || m == "not") || ops.size() != 1)
    return std::nullopt;
  z3::expr a = Read(ops[0]);
  z3::expr one = ctx_.bv_val(1, Bits(in, 0));
  z3::expr r = m == "inc" ? a + one : m == "dec" ? a - one : m == "neg" ? -a : ~a;
  if (m == "inc" || m == "dec") {  // like add/sub 1, but CF is left as it was
    z3::expr cf = CurrentFlags().cf;
    SetFlags(m == "inc" ? "add" : "sub", a, one, r, ops[0].size, in);
    SetFlagBits(cf, flags_->zf, flags_->sf, flags_->of, flags_->pf, ops[0].size, in);
  }
  if (m == "neg") SetFlags("sub", ctx_.bv_val(0, Bits(in, 0)), a, r, ops[0].size, in);
  Write(ops[0], r);
  return true;
}

std::optional<bool> SymState::StepShift(const Insn& in) {
  const std::string& m = in.mnemonic;
  const auto& ops = in.ops;
  if (!(m == "shl" || m == "sal" || m == "shr" || m == "sar") || ops.empty()) return std::nullopt;
  z3::expr a = Read(ops[0]);
  unsigned w = Bits(in, 0);
  z3::expr cnt = ops.size() == 2 ? Fit(Read(ops[1]), w) : ctx_.bv_val(1, w);
  cnt = (cnt & ctx_.bv_val(w == 64 ? 63 : 31, w)).simplify();  // hardware masks the count
  bool left = m == "shl" || m == "sal";
  z3::expr r = (m == "shr") ? z3::lshr(a, cnt) : (m == "sar") ? z3::ashr(a, cnt) : z3::shl(a, cnt);
  // CF: the last bit shifted out, undefined for shl/shr by the operand width or more (only
  // reachable for byte/word operands); OF: for a count of 1 only; a zero count keeps the flags.
  z3::expr wv = ctx_.bv_val(w, w), one = ctx_.bv_val(1, w);
  z3::expr cf = left ? Bit(z3::lshr(a, wv - cnt), 0)
                     : Bit(m == "sar" ? z3::ashr(a, cnt - one) : z3::lshr(a, cnt - one), 0);
  if (m != "sar" && w < 32) cf = z3::ite(z3::uge(cnt, wv), Undef(in, 0, "CF"), cf);
  z3::expr of1 = left ? Bit(r, w - 1) != cf : m == "shr" ? Bit(a, w - 1) : ctx_.bool_val(false);
  z3::expr of = z3::ite(cnt == one, of1, Undef(in, 0, "OF"));
  SymFlags old = CurrentFlags();
  z3::expr zero = cnt == ctx_.bv_val(0, w);
  SetFlagBits(z3::ite(zero, old.cf, cf), z3::ite(zero, old.zf, r == ctx_.bv_val(0, w)),
              z3::ite(zero, old.sf, Bit(r, w - 1)), z3::ite(zero, old.of, of),
              z3::ite(zero, old.pf, Parity(r)), ops[0].size, in);
  Write(ops[0], r);
  return true;
}

// mul/imul: CF = OF = the full product does not fit the destination; SF/ZF/PF undefined.
std::optional<bool> SymState::StepMul(const Insn& in) {
  const std::string& m = in.mnemonic;
  const auto& ops = in.ops;
  if (m != "imul" && m != "mul") return std::nullopt;
  unsigned w = Bits(in, 0);
  z3::expr a = ops.size() == 1   ? Reg("ax").extract(w - 1, 0)
               : ops.size() == 3 ? Read(ops[1])
                                 : Read(ops[0]);
  z3::expr b = Fit(ops.size() == 1   ? Read(ops[0])
                   : ops.size() == 3 ? Read(ops[2])
                                     : Read(ops[1]),
                   w);
  z3::expr wide = m == "mul" ? z3::zext(a, w) * z3::zext(b, w) : z3::sext(a, w) * z3::sext(b, w);
  z3::expr lo = wide.extract(w - 1, 0), hi = wide.extract(2 * w - 1, w);
  z3::expr overflow = m == "mul" ? hi != ctx_.bv_val(0, w) : z3::sext(lo, w) != wide;
  if (ops.size() == 1 && w == 8) {
    Write(Operand{OpType::kReg, 2, "ax"}, wide);  // ax = al * src
  } else if (ops.size() == 1) {                   // rdx:rax = rax * src
    static const char* kLo[] = {"", "", "ax", "", "eax", "", "", "", "rax"};
    static const char* kHi[] = {"", "", "dx", "", "edx", "", "", "", "rdx"};
    Write(Operand{OpType::kReg, static_cast<int>(w / 8), kLo[w / 8]}, lo);
    Write(Operand{OpType::kReg, static_cast<int>(w / 8), kHi[w / 8]}, hi);
  } else {
    Write(ops[0], lo);
  }
  SetFlagBits(overflow, Undef(in, 0, "ZF"), Undef(in, 0, "SF"), overflow, Undef(in, 0, "PF"),
              ops[0].size, in);
  return true;
}

// Instructions that consume the flags: cmovcc and setcc (adc/sbb: StepCarry).
std::optional<bool> SymState::StepConditional(const Insn& in) {
  const std::string& m = in.mnemonic;
  const auto& ops = in.ops;
  if (absl::StartsWith(m, "cmov") && ops.size() == 2) {
    auto c = Cond(m.substr(4));
    if (!c) return Fail(in);
    Write(ops[0], z3::ite(*c, Read(ops[1]), Read(ops[0])));
    return true;
  }
  if (absl::StartsWith(m, "set") && ops.size() == 1) {
    auto c = Cond(m.substr(3));
    if (!c) return Fail(in);
    Write(ops[0], z3::ite(*c, ctx_.bv_val(1, 8), ctx_.bv_val(0, 8)));
    return true;
  }
  return std::nullopt;
}

bool SymState::Step(const Insn& in) {
  cur_ = &in;
  // One handler per instruction family, tried in turn; new instructions go in one of them.
  using Handler = std::optional<bool> (SymState::*)(const Insn&);
  static constexpr Handler kHandlers[] = {
      &SymState::StepMove,     &SymState::StepAlu,     &SymState::StepUnary,
      &SymState::StepShift,    &SymState::StepMul,     &SymState::StepConditional,
      &SymState::StepStack,    &SymState::StepBitScan, &SymState::StepBitTest,
      &SymState::StepCarry,    &SymState::StepRotate,  &SymState::StepConvert,
      &SymState::StepExchange, &SymState::StepDivide};
  why_.clear();
  if (in.opaque)
    return Fail(in, "a callee-saved register restored in a build renamed to another's");
  for (Handler h : kHandlers) {
    std::optional<bool> done = (this->*h)(in);
    if (done && *done) return true;
    if (done) break;
  }
  return Havoc(in);
}

std::set<std::string> FreeInputs(const z3::expr& e) {
  std::set<std::string> out;
  std::set<unsigned> seen;
  std::function<void(const z3::expr&)> walk = [&](const z3::expr& x) {
    if (!seen.insert(x.id()).second) return;
    if (x.is_app()) {
      if (x.num_args() == 0 && x.decl().decl_kind() == Z3_OP_UNINTERPRETED) {
        out.insert(x.decl().name().str());
        return;
      }
      for (unsigned i = 0; i < x.num_args(); ++i) walk(x.arg(i));
    }
  };
  walk(e);
  return out;
}

std::set<std::string> FreeInputs(const std::vector<z3::expr>& es) {
  std::set<std::string> out;
  for (const z3::expr& e : es) {
    auto f = FreeInputs(e);
    out.insert(f.begin(), f.end());
  }
  return out;
}

}  // namespace sie::synth::analysis
