// Stage 1b: Capstone disassembly of one function into instructions carrying what later stages
// need: operands, registers read/written (explicit and implicit), relocations inside the
// instruction, branch targets, and a normalized signature for cross-build alignment.
#pragma once
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/elf/elf_file.h"

namespace sie::synth::analysis {

// The ELF reader (common/elf) under the names the analysis stages use.
using elf::ElfFile;
using elf::ElfReloc;
using elf::ElfSection;
using elf::ElfSymbol;
using elf::NormalizeSymbolName;

enum class OpType { kReg, kImm, kMem };

struct Operand {
  OpType type = OpType::kReg;
  int size = 0;             // bytes
  std::string reg;          // kReg: capstone name ("eax", "r12d")
  int64_t imm = 0;          // kImm
  std::string base, index;  // kMem: capstone names, empty when absent ("rip" possible)
  int scale = 1;
  int64_t disp = 0;
  bool read = false, write = false;
};

struct Insn {
  uint64_t offset = 0;  // function-relative
  int size = 0;
  std::string bytes;                    // raw encoding
  unsigned id = 0;                      // capstone instruction id
  std::string mnemonic;                 // "shr", "mov", "cmovg"
  std::string op_str;                   // capstone Intel syntax operands
  std::vector<Operand> ops;             // Intel order: destination first
  std::set<std::string> reads, writes;  // pt_regs names ("ax", "r12"), "flags" for EFLAGS
  bool reads_flags = false, writes_flags = false;
  bool is_branch = false;  // jmp/jcc/ret/call...
  bool is_call = false, is_ret = false, is_cond = false, is_jump = false;
  std::optional<uint64_t> target;  // function-relative direct branch target (when inside)
  std::string call_target;         // symbol called (from relocation), if known
  bool implicit_imm = false;       // an immediate operand not in the encoding (shr eax, 1 as D1)
  struct Reloc {
    int at;
    int width;
    std::string target;
    int64_t addend;
    uint32_t type = 0;           // R_X86_64_*
    std::string target_section;  // the target symbol's section ("" undefined here)
  };
  std::vector<Reloc> relocs;  // relocations within the instruction bytes
  std::string sig;            // normalized signature: equal across builds iff same code
  std::string shape;          // signature with immediates/displacements dropped
  // A push of a callee-saved register in the entry block before anything writes it: it saves
  // the caller's value (modelled as "callee:FAMILY", whatever registers a build renamed).
  bool entry_save = false;
  // Not to be executed symbolically (a restore kept as written in a renamed build).
  bool opaque = false;
  std::string Text() const { return mnemonic + (op_str.empty() ? "" : " " + op_str); }
};

struct Function {
  std::string name;       // as in the symbol table
  std::string norm_name;  // NormalizeSymbolName(name)
  std::string section;
  uint64_t sec_offset = 0;  // symbol's offset in its section
  uint64_t size = 0;
  std::vector<Insn> insns;
  std::set<uint64_t> branch_targets;  // offsets reached by jumps inside the function
  // Bytes of rax a caller reads after a return: the return type's size (DWARF; 0: void), else 8.
  int return_bytes = 8;
  // Index of the instruction starting at `offset`, or -1.
  int IndexAt(uint64_t offset) const;
};

// Maps a capstone register name to its pt_regs family ("eax"/"al"/"rax" -> "ax",
// "r12d" -> "r12"); empty for rip/segment/vector registers.
std::string RegFamily(const std::string& capstone_name);
// Width of a capstone general register name in bytes (al=1, ax=2, eax=4, rax=8).
int RegWidth(const std::string& capstone_name);
// The general-purpose register families but sp (pt_regs names, "ax" .. "r15").
const std::vector<std::string>& GeneralRegs();
// The callee-saved families of the SysV ABI: rbx, rbp, r12-r15.
const std::set<std::string>& CalleeSavedRegs();

// Disassembles every sized STT_FUNC symbol in executable sections (or only those whose
// normalized name is in `only`, when non-empty).
absl::StatusOr<std::vector<Function>> DisassembleFunctions(const ElfFile& elf,
                                                           const std::set<std::string>& only = {});
// Disassembles raw bytes (tests, MapToShipped).
absl::StatusOr<Function> DisassembleBytes(const std::string& name, const std::string& bytes,
                                          const std::vector<ElfReloc>& relocs = {},
                                          uint64_t reloc_base = 0);

}  // namespace sie::synth::analysis
