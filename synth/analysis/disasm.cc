#include "synth/analysis/disasm.h"

#include <capstone/capstone.h>
#include <elf.h>

#include <algorithm>
#include <map>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sie::synth::analysis {
namespace {

// RAII capstone handle with detail on.
class Capstone {
 public:
  Capstone() {
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &h_) != CS_ERR_OK) h_ = 0;
    if (h_) cs_option(h_, CS_OPT_DETAIL, CS_OPT_ON);
  }
  ~Capstone() {
    if (h_) cs_close(&h_);
  }
  Capstone(const Capstone&) = delete;
  Capstone& operator=(const Capstone&) = delete;
  csh get() const { return h_; }

 private:
  csh h_ = 0;
};

struct InsnDeleter {
  size_t n;
  void operator()(cs_insn* p) const { cs_free(p, n); }
};

std::string Hex(int64_t v) {
  return v < 0 ? absl::StrFormat("-0x%x", -static_cast<uint64_t>(v)) : absl::StrFormat("0x%x", v);
}

}  // namespace

std::string RegFamily(const std::string& r) {
  static const std::map<std::string, std::string> kMap = [] {
    std::map<std::string, std::string> m;
    const char* legacy[][5] = {
        {"ax", "rax", "eax", "ax", "al"},  {"bx", "rbx", "ebx", "bx", "bl"},
        {"cx", "rcx", "ecx", "cx", "cl"},  {"dx", "rdx", "edx", "dx", "dl"},
        {"si", "rsi", "esi", "si", "sil"}, {"di", "rdi", "edi", "di", "dil"},
        {"bp", "rbp", "ebp", "bp", "bpl"}, {"sp", "rsp", "esp", "sp", "spl"}};
    for (auto& row : legacy)
      for (int i = 1; i < 5; ++i) m[row[i]] = row[0];
    m["ah"] = "ax";
    m["bh"] = "bx";
    m["ch"] = "cx";
    m["dh"] = "dx";
    for (int i = 8; i < 16; ++i) {
      std::string b = absl::StrCat("r", i);
      for (const char* s : {"", "d", "w", "b"}) m[b + s] = b;
    }
    m["rflags"] = m["eflags"] = m["flags"] = "flags";
    return m;
  }();
  auto it = kMap.find(r);
  return it == kMap.end() ? "" : it->second;
}

const std::vector<std::string>& GeneralRegs() {
  static const std::vector<std::string> k = {"ax", "bx",  "cx",  "dx",  "si",  "di",  "bp", "r8",
                                             "r9", "r10", "r11", "r12", "r13", "r14", "r15"};
  return k;
}

const std::set<std::string>& CalleeSavedRegs() {
  static const std::set<std::string> k = {"bx", "bp", "r12", "r13", "r14", "r15"};
  return k;
}

int RegWidth(const std::string& r) {
  if (r.empty()) return 0;
  if (r[0] == 'r' && r.size() >= 2 && isdigit(r[1])) {
    char last = r.back();
    return last == 'd' ? 4 : last == 'w' ? 2 : last == 'b' ? 1 : 8;
  }
  if (r.size() == 3 && r[0] == 'r') return 8;
  if (r.size() == 3 && r[0] == 'e') return 4;
  if (r == "sil" || r == "dil" || r == "bpl" || r == "spl") return 1;
  if (r.size() == 2 && (r[1] == 'l' || r[1] == 'h')) return 1;
  return 2;
}

int Function::IndexAt(uint64_t offset) const {
  auto it = std::lower_bound(insns.begin(), insns.end(), offset,
                             [](const Insn& i, uint64_t o) { return i.offset < o; });
  if (it == insns.end() || it->offset != offset) return -1;
  return static_cast<int>(it - insns.begin());
}

namespace {

// The relocations whose patched field lies inside `in`.
void AttachRelocs(const std::vector<ElfReloc>& relocs, uint64_t reloc_base, Insn* in) {
  auto rit = std::lower_bound(relocs.begin(), relocs.end(), reloc_base + in->offset,
                              [](const ElfReloc& r, uint64_t o) { return r.offset < o; });
  for (; rit != relocs.end() && rit->offset < reloc_base + in->offset + in->size; ++rit)
    in->relocs.push_back({static_cast<int>(rit->offset - reloc_base - in->offset), rit->width,
                          rit->target, rit->addend, rit->type, rit->target_section});
}

const Insn::Reloc* RelocAt(const Insn& in, int at) {
  for (const auto& r : in.relocs)
    if (r.at == at) return &r;
  return nullptr;
}

// An immediate operand; its signature ignores layout: branch displacements compare by
// symbol or as "L" (inside the function) / "X" (outside), relocated fields by symbol+addend.
void ImmOperand(const cs_x86& x, const cs_x86_op& o, size_t fn_size, Insn* in, Operand* op,
                std::string* sig, std::string* shape) {
  op->type = OpType::kImm;
  op->imm = o.imm;
  const Insn::Reloc* r = x.encoding.imm_offset ? RelocAt(*in, x.encoding.imm_offset) : nullptr;
  if (in->is_branch && (in->is_call || in->is_jump)) {
    if (!in->relocs.empty()) {
      in->call_target = in->relocs.back().target;
      *sig += in->call_target;
      *shape += in->call_target;
    } else if (o.imm >= 0 && static_cast<uint64_t>(o.imm) < fn_size) {
      in->target = o.imm;
      *sig += "L";
      *shape += "L";
    } else {
      in->call_target = absl::StrCat("@", Hex(o.imm));
      *sig += "X";
      *shape += "X";
    }
  } else if (r) {
    *sig += absl::StrCat(r->target, "+", r->addend);
    *shape += r->target;
  } else {
    in->implicit_imm = x.encoding.imm_offset == 0;
    *sig += Hex(o.imm);
    *shape += "I";
  }
}

void MemoryOperand(csh cs, const cs_x86& x, const cs_x86_op& o, const Insn& in, Operand* op,
                   std::string* sig, std::string* shape) {
  op->type = OpType::kMem;
  if (o.mem.base != X86_REG_INVALID) op->base = cs_reg_name(cs, o.mem.base);
  if (o.mem.index != X86_REG_INVALID) op->index = cs_reg_name(cs, o.mem.index);
  op->scale = o.mem.scale;
  op->disp = o.mem.disp;
  const Insn::Reloc* r = x.encoding.disp_offset ? RelocAt(in, x.encoding.disp_offset) : nullptr;
  std::string d = r ? absl::StrCat(r->target, "+", r->addend)
                    : (op->base == "rip" ? std::string("rip?") : Hex(op->disp));
  *sig += absl::StrCat("[", op->base, "+", op->index, "*", op->scale, "+", d, "]s", op->size);
  *shape += absl::StrCat("[", op->base, "+", op->index, "]s", op->size);
  // A rip-relative operand without relocation (linked binary) is position-dependent.
  if (!r && op->base == "rip") op->disp = 0;
}

// The operands of `ci` and the instruction's signature (exact, layout-independent) and
// shape (operand kinds only).
void AddOperands(csh cs, const cs_insn& ci, size_t fn_size, Insn* in) {
  const cs_x86& x = ci.detail->x86;
  std::string sig = in->mnemonic, shape = in->mnemonic;
  for (int i = 0; i < x.op_count; ++i) {
    const cs_x86_op& o = x.operands[i];
    Operand op;
    op.size = o.size;
    op.read = o.access & CS_AC_READ;
    op.write = o.access & CS_AC_WRITE;
    sig += i ? "," : " ";
    shape += i ? "," : " ";
    if (o.type == X86_OP_REG) {
      op.type = OpType::kReg;
      op.reg = cs_reg_name(cs, o.reg);
      sig += op.reg;
      shape += op.reg;
    } else if (o.type == X86_OP_IMM) {
      ImmOperand(x, o, fn_size, in, &op, &sig, &shape);
    } else if (o.type == X86_OP_MEM) {
      MemoryOperand(cs, x, o, *in, &op, &sig, &shape);
    }
    in->ops.push_back(op);
  }
  in->sig = sig;
  in->shape = shape;
}

// The register families `ci` reads and writes, and whether it reads or writes the flags.
void AddRegisterAccess(csh cs, const cs_insn& ci, Insn* in) {
  cs_regs rr, ww;
  uint8_t nr = 0, nw = 0;
  if (cs_regs_access(cs, &ci, rr, &nr, ww, &nw) == CS_ERR_OK) {
    for (int i = 0; i < nr; ++i) {
      std::string f = RegFamily(cs_reg_name(cs, rr[i]));
      if (f == "flags")
        in->reads_flags = true;
      else if (!f.empty())
        in->reads.insert(f);
    }
    for (int i = 0; i < nw; ++i) {
      std::string f = RegFamily(cs_reg_name(cs, ww[i]));
      if (f == "flags")
        in->writes_flags = true;
      else if (!f.empty())
        in->writes.insert(f);
    }
  }
  if (ci.detail->x86.eflags & (X86_EFLAGS_TEST_OF | X86_EFLAGS_TEST_SF | X86_EFLAGS_TEST_ZF |
                               X86_EFLAGS_TEST_PF | X86_EFLAGS_TEST_CF | X86_EFLAGS_TEST_AF))
    in->reads_flags = true;
}

Insn Decode(csh cs, const cs_insn& ci, const std::vector<ElfReloc>& relocs, uint64_t reloc_base,
            size_t fn_size) {
  Insn in;
  in.offset = ci.address;
  in.size = ci.size;
  in.bytes.assign(reinterpret_cast<const char*>(ci.bytes), ci.size);
  in.id = ci.id;
  in.mnemonic = ci.mnemonic;
  in.op_str = ci.op_str;
  AttachRelocs(relocs, reloc_base, &in);
  in.is_call = cs_insn_group(cs, &ci, CS_GRP_CALL);
  in.is_ret = cs_insn_group(cs, &ci, CS_GRP_RET) || in.mnemonic == "ud2";
  in.is_jump = cs_insn_group(cs, &ci, CS_GRP_JUMP);
  in.is_cond = in.is_jump && in.mnemonic != "jmp";
  in.is_branch = in.is_call || in.is_ret || in.is_jump;
  AddOperands(cs, ci, fn_size, &in);
  AddRegisterAccess(cs, ci, &in);
  return in;
}

// The entry block's pushes of callee-saved registers that nothing wrote before (calls keep
// those registers, so `call __fentry__` does not end the block; a jump or a jump target does).
void MarkEntrySaves(Function* fn) {
  std::set<std::string> written;
  for (Insn& in : fn->insns) {
    if ((in.is_branch && !in.is_call) || (in.offset && fn->branch_targets.count(in.offset))) break;
    if (in.mnemonic == "push" && in.ops.size() == 1 && in.ops[0].type == OpType::kReg) {
      const std::string f = RegFamily(in.ops[0].reg);
      in.entry_save = CalleeSavedRegs().count(f) && !written.count(f) && in.ops[0].size == 8;
    }
    written.insert(in.writes.begin(), in.writes.end());
  }
}

}  // namespace

absl::StatusOr<Function> DisassembleBytes(const std::string& name, const std::string& bytes,
                                          const std::vector<ElfReloc>& relocs,
                                          uint64_t reloc_base) {
  Capstone cs;
  if (!cs.get()) return absl::InternalError("capstone: cs_open failed");
  Function fn;
  fn.name = name;
  fn.norm_name = NormalizeSymbolName(name);
  fn.size = bytes.size();
  cs_insn* raw = nullptr;
  size_t n =
      cs_disasm(cs.get(), reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), 0, 0, &raw);
  std::unique_ptr<cs_insn, InsnDeleter> owner(raw, InsnDeleter{n});
  uint64_t covered = 0;
  for (size_t k = 0; k < n; ++k) {
    fn.insns.push_back(Decode(cs.get(), raw[k], relocs, reloc_base, bytes.size()));
    covered = raw[k].address + raw[k].size;
  }
  if (covered < bytes.size()) {
    // Trailing bytes capstone cannot decode (padding or data): keep as opaque.
    Insn in;
    in.offset = covered;
    in.size = bytes.size() - covered;
    in.bytes = bytes.substr(covered);
    in.mnemonic = "(bad)";
    in.sig = in.shape = "(bad)";
    fn.insns.push_back(in);
  }
  for (const Insn& in : fn.insns)
    if (in.target && !in.is_call) fn.branch_targets.insert(*in.target);
  MarkEntrySaves(&fn);
  return fn;
}

absl::StatusOr<std::vector<Function>> DisassembleFunctions(const ElfFile& elf,
                                                           const std::set<std::string>& only) {
  std::vector<Function> out;
  for (const ElfSymbol& s : elf.symbols()) {
    if (s.type != STT_FUNC || s.size == 0 || s.shndx <= 0) continue;
    if (s.shndx >= static_cast<int>(elf.sections().size())) continue;
    const ElfSection& sec = elf.sections()[s.shndx];
    if (!(sec.flags & SHF_EXECINSTR)) continue;
    if (!only.empty() && !only.count(NormalizeSymbolName(s.name)) && !only.count(s.name)) continue;
    auto bytes = elf.SymbolBytes(s);
    if (!bytes.ok()) return bytes.status();
    uint64_t off = elf.SectionOffset(s);
    auto fn = DisassembleBytes(s.name, *bytes, elf.relocs(s.shndx), off);
    if (!fn.ok()) return fn.status();
    fn->section = sec.name;
    fn->sec_offset = off;
    out.push_back(std::move(*fn));
  }
  return out;
}

}  // namespace sie::synth::analysis
