#include "synth/analysis/dwarf_info.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>

#include <map>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"

namespace sie::synth::analysis {
namespace {

struct DwflCloser {
  void operator()(Dwfl* d) const { dwfl_end(d); }
};

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

// "reg:di", "fbreg:-24", "breg:bx+8", or "" when not describable at pc.
std::string Location(Dwarf_Die* die, Dwarf_Addr pc) {
  Dwarf_Attribute at;
  if (!dwarf_attr_integrate(die, DW_AT_location, &at)) return "";
  Dwarf_Op* ops = nullptr;
  size_t n = 0;
  if (dwarf_getlocation_addr(&at, pc, &ops, &n, 1) < 1 || n < 1) return "";
  const Dwarf_Op& op = ops[0];
  if (op.atom >= DW_OP_reg0 && op.atom <= DW_OP_reg15)
    return absl::StrCat("reg:", kDwarfRegs[op.atom - DW_OP_reg0]);
  if (op.atom >= DW_OP_breg0 && op.atom <= DW_OP_breg15)
    return absl::StrCat("breg:", kDwarfRegs[op.atom - DW_OP_breg0], "+",
                        static_cast<int64_t>(op.number));
  if (op.atom == DW_OP_fbreg) return absl::StrCat("fbreg:", static_cast<int64_t>(op.number));
  return "";
}

}  // namespace

absl::Status AnnotateFromDwarf(const std::string& obj, std::vector<CriticalSpan>* spans) {
  static const Dwfl_Callbacks cb = {
      .find_elf = dwfl_build_id_find_elf,
      .find_debuginfo = dwfl_standard_find_debuginfo,
      .section_address = dwfl_offline_section_address,
      .debuginfo_path = nullptr,
  };
  std::unique_ptr<Dwfl, DwflCloser> d(dwfl_begin(&cb));
  if (!d) return absl::InternalError("dwfl_begin failed");
  dwfl_report_begin(d.get());
  Dwfl_Module* m = dwfl_report_offline(d.get(), "obj", obj.c_str(), -1);
  dwfl_report_end(d.get(), nullptr, nullptr);
  if (!m) return absl::InternalError(absl::StrCat(obj, ": ", dwfl_errmsg(-1)));
  std::map<std::string, GElf_Addr> func_addr;
  int nsym = dwfl_module_getsymtab(m);
  for (int i = 0; i < nsym; ++i) {
    GElf_Sym sym;
    GElf_Addr addr;
    const char* n = dwfl_module_getsym_info(m, i, &sym, &addr, nullptr, nullptr, nullptr);
    if (n && GELF_ST_TYPE(sym.st_info) == STT_FUNC) func_addr.emplace(n, addr);
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
    std::set<std::string> seen;
    for (int s = 0; s < ns; ++s) {
      int tag = dwarf_tag(&scopes[s]);
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
        v.location = Location(&child, probe - bias);
        if (v.location.empty() && ct == DW_TAG_formal_parameter && is_fn &&
            tag == DW_TAG_subprogram) {
          std::string e = Location(&child, entry);
          if (e.rfind("reg:", 0) == 0) v.location = "entry:" + e.substr(4);
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
