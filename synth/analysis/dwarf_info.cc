#include "synth/analysis/dwarf_info.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/elf/dwarf_offline.h"

namespace sie::synth::analysis {
namespace {

const char* kDwarfRegs[] = {"ax", "dx", "cx",  "bx",  "si",  "di",  "bp",  "sp",
                            "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"};

std::string TypeName(Dwarf_Die* die, int depth = 0) {
  Dwarf_Attribute at;
  Dwarf_Die t;
  if (depth > 8) return "?";
  if (!dwarf_attr_integrate(die, DW_AT_type, &at) || !dwarf_formref_die(&at, &t)) return "void";
  const char* n = dwarf_diename(&t);
  switch (dwarf_tag(&t)) {
    case DW_TAG_pointer_type:
      return TypeName(&t, depth + 1) + " *";
    case DW_TAG_const_type:
      return "const " + TypeName(&t, depth + 1);
    case DW_TAG_volatile_type:
      return "volatile " + TypeName(&t, depth + 1);
    case DW_TAG_structure_type:
      return absl::StrCat("struct ", n ? n : "?");
    case DW_TAG_union_type:
      return absl::StrCat("union ", n ? n : "?");
    case DW_TAG_enumeration_type:
      return absl::StrCat("enum ", n ? n : "?");
    default:
      return n ? n : "?";
  }
}

// The frame base of the function at pc as (register, offset): DW_AT_frame_base is
// DW_OP_call_frame_cfa (gcc: the CFA from the CFI at pc), DW_OP_regN (clang: the register's
// value) or DW_OP_bregN k. nullopt when it cannot be computed exactly.
// Call frame information with its bias (CFI addresses = module addresses - bias).
using Cfis = std::vector<std::pair<Dwarf_CFI*, Dwarf_Addr>>;

// pc: DWARF address (bias removed); addr: module address.
std::optional<std::pair<const char*, int64_t>> FrameBase(Dwarf_Die* fn, Dwarf_Addr pc,
                                                         Dwarf_Addr addr, const Cfis& cfis,
                                                         std::string* why) {
  Dwarf_Attribute at;
  Dwarf_Op* ops = nullptr;
  size_t n = 0;
  if (!dwarf_attr_integrate(fn, DW_AT_frame_base, &at) ||
      dwarf_getlocation_addr(&at, pc, &ops, &n, 1) < 1 || n != 1) {
    *why = "no single-operation DW_AT_frame_base";
    return std::nullopt;
  }
  if (ops[0].atom >= DW_OP_reg0 && ops[0].atom <= DW_OP_reg15)
    return std::make_pair(kDwarfRegs[ops[0].atom - DW_OP_reg0], int64_t{0});
  if (ops[0].atom >= DW_OP_breg0 && ops[0].atom <= DW_OP_breg15)
    return std::make_pair(kDwarfRegs[ops[0].atom - DW_OP_breg0],
                          static_cast<int64_t>(ops[0].number));
  if (ops[0].atom != DW_OP_call_frame_cfa) {
    *why = "frame base is not a register or the CFA";
    return std::nullopt;
  }
  for (const auto& [cfi, bias] : cfis) {
    Dwarf_Frame* frame = nullptr;
    if (dwarf_cfi_addrframe(cfi, addr - bias, &frame) != 0 || !frame) continue;
    Dwarf_Op* cfa = nullptr;
    size_t nc = 0;
    std::optional<std::pair<const char*, int64_t>> r;
    // The rule "CFA = register + offset" (DW_CFA_def_cfa: libdw gives it as DW_OP_bregx reg,
    // offset); an expression CFA (DW_CFA_def_cfa_expression) is refused.
    if (dwarf_frame_cfa(frame, &cfa, &nc) == 0 && nc == 1) {
      if (cfa[0].atom == DW_OP_bregx && cfa[0].number < 16)
        r = std::make_pair(kDwarfRegs[cfa[0].number], static_cast<int64_t>(cfa[0].number2));
      else if (cfa[0].atom >= DW_OP_breg0 && cfa[0].atom <= DW_OP_breg15)
        r = std::make_pair(kDwarfRegs[cfa[0].atom - DW_OP_breg0],
                           static_cast<int64_t>(cfa[0].number));
    }
    free(frame);
    if (r) return r;
    *why = "the CFA at the probe is not register + offset";
    return std::nullopt;
  }
  *why = "no call frame information (.debug_frame/.eh_frame) covers the probe";
  return std::nullopt;
}

// The variable's location at pc, exactly: in a register, in memory at register + offset
// (DW_OP_fbreg resolved through the frame base), the value register + offset, or none (with
// *why) when it is none of these at pc: not live, composite (DW_OP_piece), otherwise computed,
// a global (DW_OP_addr), ...
Location VarLocationAt(Dwarf_Die* die, Dwarf_Die* fn, Dwarf_Addr pc, Dwarf_Addr addr,
                       const Cfis& cfis, std::string* why) {
  Dwarf_Attribute at;
  if (!dwarf_attr_integrate(die, DW_AT_location, &at)) {
    *why = "no DW_AT_location";
    return {};
  }
  Dwarf_Op* ops = nullptr;
  size_t n = 0;
  if (dwarf_getlocation_addr(&at, pc, &ops, &n, 1) < 1 || n < 1) {
    *why = "not live at the probe";
    return {};
  }
  const Dwarf_Op& op = ops[0];
  // DW_OP_bregN k; DW_OP_stack_value: the value itself is register + k (a pointer into a
  // struct, e.g. inet_csk_ca(sk)), nothing to read from memory.
  if (n == 2 && op.atom >= DW_OP_breg0 && op.atom <= DW_OP_breg15 &&
      ops[1].atom == DW_OP_stack_value) {
    return Location::Value(kDwarfRegs[op.atom - DW_OP_breg0], static_cast<int64_t>(op.number));
  }
  if (n != 1) {
    *why = "location is a composite or computed expression";
    return {};
  }
  if (op.atom >= DW_OP_reg0 && op.atom <= DW_OP_reg15)
    return Location::Reg(kDwarfRegs[op.atom - DW_OP_reg0]);
  if (op.atom >= DW_OP_breg0 && op.atom <= DW_OP_breg15)
    return Location::Mem(kDwarfRegs[op.atom - DW_OP_breg0], static_cast<int64_t>(op.number));
  if (op.atom == DW_OP_fbreg) {
    if (!fn) {
      *why = "DW_OP_fbreg outside a function";
      return {};
    }
    auto fb = FrameBase(fn, pc, addr, cfis, why);
    if (!fb) return {};
    return Location::Mem(fb->first, fb->second + static_cast<int64_t>(op.number));
  }
  *why = "location is not a register or a stack slot";
  return {};
}

// Bytes of rax the return type occupies: 0 for void, -1 when unknown (or wider than rax).
int ReturnSizeOf(Dwarf_Die* fn) {
  Dwarf_Attribute at;
  Dwarf_Die t;
  Dwarf_Word size = 0;
  if (!dwarf_hasattr_integrate(fn, DW_AT_type)) return 0;
  if (!dwarf_attr_integrate(fn, DW_AT_type, &at) || !dwarf_formref_die(&at, &t)) return -1;
  if (dwarf_peel_type(&t, &t) != 0 || dwarf_aggregate_size(&t, &size) != 0) return -1;
  return size <= 8 ? static_cast<int>(size) : -1;
}

}  // namespace

absl::StatusOr<std::map<std::string, int>> ReturnSizes(const std::string& obj) {
  ASSIGN_OR_RETURN(o, OfflineDwarf::Open(obj));
  std::map<std::string, int> out;
  Dwarf_Die* cu = nullptr;
  Dwarf_Addr bias = 0;
  while ((cu = dwfl_module_nextcu(o.module(), cu, &bias)) != nullptr) {
    auto each = [](Dwarf_Die* fn, void* arg) {
      const char* name = dwarf_diename(fn);
      // Definitions only (an inline-only abstract instance has no code of its own).
      bool defined = dwarf_hasattr(fn, DW_AT_low_pc) || dwarf_hasattr(fn, DW_AT_ranges);
      if (name && defined)
        if (int n = ReturnSizeOf(fn); n >= 0)
          static_cast<std::map<std::string, int>*>(arg)->emplace(name, n);
      return static_cast<int>(DWARF_CB_OK);
    };
    dwarf_getfuncs(cu, each, &out, 0);
  }
  return out;
}

absl::Status AnnotateFromDwarf(const std::string& obj, std::vector<CriticalSpan>* spans) {
  ASSIGN_OR_RETURN(o, OfflineDwarf::Open(obj));
  Dwfl_Module* m = o.module();
  std::map<std::string, GElf_Addr> func_addr;
  int nsym = dwfl_module_getsymtab(m);
  for (int i = 0; i < nsym; ++i) {
    GElf_Sym sym;
    GElf_Addr addr;
    const char* n = dwfl_module_getsym_info(m, i, &sym, &addr, nullptr, nullptr, nullptr);
    if (n && GELF_ST_TYPE(sym.st_info) == STT_FUNC) func_addr.emplace(n, addr);
  }
  // Call frame information for DW_OP_call_frame_cfa frame bases: .debug_frame (the kernel,
  // built without unwind tables) and .eh_frame (user-space style objects).
  Cfis cfis;
  Dwarf_Addr cfi_bias = 0;
  if (Dwarf_CFI* c = dwfl_module_dwarf_cfi(m, &cfi_bias)) cfis.emplace_back(c, cfi_bias);
  // .eh_frame of a relocatable object is not relocated by libdwfl (an allocated section): its
  // FDEs would cover wrong addresses, so it is only used for linked binaries.
  GElf_Addr elf_bias = 0;
  Elf* elf = dwfl_module_getelf(m, &elf_bias);
  GElf_Ehdr eh;
  if (elf && gelf_getehdr(elf, &eh) && eh.e_type != ET_REL) {
    Dwarf_Addr eh_bias = 0;
    if (Dwarf_CFI* c = dwfl_module_eh_cfi(m, &eh_bias)) cfis.emplace_back(c, eh_bias);
  }
  bool any_line = false;
  for (CriticalSpan& sp : *spans) {
    auto it = func_addr.find(sp.function);
    if (it == func_addr.end()) continue;
    GElf_Addr cs = it->second + sp.cs_start, probe = it->second + sp.probe_offset;
    if (Dwfl_Line* l = dwfl_module_getsrc(m, cs)) {
      int line = 0;
      const char* file = dwfl_lineinfo(l, nullptr, &line, nullptr, nullptr, nullptr);
      if (file) {
        sp.source = absl::StrCat(file, ":", line);
        any_line = true;
      }
    }
    Dwarf_Addr bias = 0;
    Dwarf_Die* cu = dwfl_module_addrdie(m, probe, &bias);
    if (!cu) continue;
    Dwarf_Die* scopes = nullptr;
    int ns = dwarf_getscopes(cu, probe - bias, &scopes);
    // The function whose frame DW_OP_fbreg refers to: the innermost DW_TAG_subprogram (inlined
    // subroutines have no frame of their own).
    Dwarf_Die* fn_die = nullptr;
    for (int s = 0; s < ns && !fn_die; ++s)
      if (dwarf_tag(&scopes[s]) == DW_TAG_subprogram) fn_die = &scopes[s];
    std::set<std::string> seen;
    for (int s = 0; s < ns; ++s) {
      int tag = dwarf_tag(&scopes[s]);
      // Globals (file-scope variables, register globals such as current_stack_pointer) are
      // not the function's variables.
      if (tag == DW_TAG_compile_unit || tag == DW_TAG_partial_unit) continue;
      Dwarf_Die child;
      if (dwarf_child(&scopes[s], &child) != 0) continue;
      // The entry location of the function's own parameters, for "entry:" fallbacks.
      Dwarf_Addr entry = 0;
      bool is_fn = tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine;
      if (is_fn) dwarf_lowpc(&scopes[s], &entry);
      do {
        int ct = dwarf_tag(&child);
        if (ct != DW_TAG_formal_parameter && ct != DW_TAG_variable) continue;
        Dwarf_Attribute na;
        const char* name = dwarf_formstring(dwarf_attr_integrate(&child, DW_AT_name, &na));
        if (!name || !seen.insert(name).second) continue;
        VarLocation v;
        v.name = name;
        v.type = TypeName(&child);
        std::string why;
        v.location = VarLocationAt(&child, fn_die, probe - bias, probe, cfis, &why);
        if (v.location.empty() && ct == DW_TAG_formal_parameter && is_fn &&
            tag == DW_TAG_subprogram) {
          std::string ewhy;
          Location e = VarLocationAt(&child, fn_die, entry, entry + bias, cfis, &ewhy);
          if (e.kind == Location::Kind::kReg) v.location = Location::Entry(e.reg);
        }
        if (!v.location.empty()) sp.vars.push_back(v);
      } while (dwarf_siblingof(&child, &child) == 0);
    }
    free(scopes);
  }
  if (!spans->empty() && !any_line)
    return absl::NotFoundError(absl::StrCat(obj, ": no line information (built without -g?)"));
  return absl::OkStatus();
}

}  // namespace sie::synth::analysis
