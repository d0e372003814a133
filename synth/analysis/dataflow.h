// Stage 4 helpers: control-flow facts over one disassembled function. Which instruction reads
// or kills a location, whether a location is live after an instruction, the straight-line
// window of equivalent probe offsets, and zero-extension facts for span inputs.
#pragma once
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "synth/analysis/disasm.h"

namespace sie::synth::analysis {

// A tracked location: a register family ("ax"), "flags", or a memory operand.
struct Loc {
  std::string reg;             // family or "flags"
  std::optional<Operand> mem;  // when set, a memory cell
};

// Registers a call reads as arguments / clobbers (SysV / kernel ABI).
const std::set<std::string>& ArgRegs();
const std::set<std::string>& CallerSaved();

// Effective register reads of `in` (zeroing idioms such as "xor eax,eax" read nothing; calls
// read the argument registers; ret reads ax).
std::set<std::string> EffectiveReads(const Insn& in);
// `jmp __x86_return_thunk`: a return in a rethunk kernel.
bool ReturnThunk(const Insn& in);
// Registers fully overwritten (32/64-bit writes; calls clobber caller-saved registers).
std::set<std::string> FullWrites(const Insn& in);

bool Reads(const Insn& in, const Loc& l);
bool Kills(const Insn& in, const Loc& l);

// True when some path from instruction `idx` reads `l` before killing it.
bool LiveAt(const Function& fn, int idx, const Loc& l);

// Widest read (bytes) of register family `family` on any path from instruction `start` before
// it is killed: 8 when it is read implicitly (calls, ret, addresses) or as a whole, 0 when dead.
// A span whose result is only read as "ax" needs to be right on the low 16 bits only.
int ReadWidthAt(const Function& fn, int start, const std::string& family);

struct ProbeWindow {
  std::vector<uint64_t> candidates;  // first = probe offset
  int first_reader = -1;             // index of the first reader (or -1)
};
// Equivalent probe offsets from instruction `idx` onward: straight-line, not past a branch,
// not into an offset other jumps reach (except `idx` itself, which the caller checks), and
// not past the first reader or killer of any of `locs`.
ProbeWindow ProbeCandidates(const Function& fn, int idx, const std::vector<Loc>& locs);

// `mov REG, imm` of a 32- or 64-bit register: the register holds that number afterwards.
bool ConstantMove(const Insn& in);

// The `mov REG, imm` that sets register family `family` on every path reaching instruction
// `idx`, with no other write of it between (a magic multiplier hoisted before a loop): its
// index, or -1 (a path from the function's entry or through another write).
int ConstantDefAt(const Function& fn, int idx, const std::string& family);

// The instructions that read the value `family` holds after instruction `def`, on every path up
// to its next full write; nullopt when that value may leave the function (a return or tail
// jump that reads it, a jump out of the function).
std::optional<std::vector<int>> ReadersAfter(const Function& fn, int def,
                                             const std::string& family);

// Register families whose value at instruction `idx` is known to be a zero-extended 32-bit
// value (last write in the same straight-line block was a 32-bit write).
std::set<std::string> Zext32At(const Function& fn, int idx);

}  // namespace sie::synth::analysis
