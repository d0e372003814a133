// Stage 3a: symbolic execution of a straight-line instruction run over Z3 bit-vectors, so a
// span is understood by what it computes (outputs as functions of its inputs), not by the
// shape of its instructions: "add eax,eax", "shl eax,2" and "lea eax,[rax*4]" are all X*c.
// z3::exception never leaves this module's callers: they wrap calls in try/catch.
#pragma once
#include <z3++.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "synth/analysis/disasm.h"

namespace sie::synth::analysis {

struct SymStore {
  std::string key;  // textual address (stable across builds for the same operand)
  Operand op;       // the destination operand (for base/index/disp)
  int width = 0;    // bytes
  z3::expr value;
  std::optional<z3::expr> addr;  // the effective address (none for RIP-relative operands)
};

// A value loaded inside the run (the input "mem:...", first read of that operand).
struct SymLoad {
  Operand op;
  std::optional<z3::expr> addr;  // the effective address (none for RIP-relative operands)
  const Insn* insn = nullptr;
};

// The last flag-setting operation: flags are kept as the operation and its operands and
// evaluated lazily per condition code.
struct SymFlags {
  std::string kind;  // "sub" (cmp/sub/dec/...), "logic" (test/and/or/xor), "add"
  z3::expr a, b, result;
  int width = 0;
  const Insn* insn = nullptr;
};

class SymState {
 public:
  // zext32: register families known to hold a zero-extended 32-bit value at entry.
  SymState(z3::context& ctx, std::set<std::string> zext32 = {});

  // Executes one instruction; false (with unsupported() set) for an unmodelled instruction.
  bool Step(const Insn& in);

  z3::context& ctx() { return ctx_; }
  z3::expr Reg(const std::string& family);  // current 64-bit value
  const std::set<std::string>& written() const { return written_; }
  int LastWriteWidth(const std::string& family) const;
  const std::vector<SymStore>& stores() const { return stores_; }
  const std::map<std::string, SymLoad>& loads() const { return loads_; }  // by input name
  const std::optional<SymFlags>& flags() const { return flags_; }
  const std::string& unsupported() const { return unsupported_; }
  // Condition `cc` ("e", "be", "g", ...) over the current flags.
  std::optional<z3::expr> Cond(const std::string& cc);
  // The input variable for a register family ("in:ax") or memory key ("mem:...").
  static std::string InputName(const std::string& family) { return "in:" + family; }

 private:
  z3::expr Read(const Operand& op);
  void Write(const Operand& op, const z3::expr& v);  // v has op.size*8 bits
  z3::expr Address(const Operand& op);
  std::optional<z3::expr> OptAddress(const Operand& op);
  std::string MemKey(const Operand& op);
  void SetFlags(const std::string& kind, const z3::expr& a, const z3::expr& b, const z3::expr& r,
                int width, const Insn& in);

  // Step's instruction families: each executes `in` and returns true, returns false when it
  // recognizes `in` but cannot model it (Fail), or nullopt when `in` is not of its family.
  std::optional<bool> StepMove(const Insn& in);
  std::optional<bool> StepAlu(const Insn& in);
  std::optional<bool> StepUnary(const Insn& in);
  std::optional<bool> StepShift(const Insn& in);
  std::optional<bool> StepMul(const Insn& in);
  std::optional<bool> StepConditional(const Insn& in);
  bool Fail(const Insn& in);  // records `in` as unsupported; false

  z3::context& ctx_;
  std::set<std::string> zext32_;
  std::map<std::string, z3::expr> regs_;
  std::map<std::string, int> last_width_;
  std::map<std::string, z3::expr> mem_;
  std::set<std::string> written_;
  std::vector<SymStore> stores_;
  std::map<std::string, SymLoad> loads_;
  std::optional<SymFlags> flags_;
  std::string unsupported_;
  const Insn* cur_ = nullptr;
};

// Uninterpreted constants ("in:ax", "mem:...") an expression depends on.
std::set<std::string> FreeInputs(const z3::expr& e);

}  // namespace sie::synth::analysis
