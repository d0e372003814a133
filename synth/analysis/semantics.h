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

#include "absl/status/status.h"
#include "synth/analysis/disasm.h"

namespace sie::synth::analysis {

// The value of condition code `cc` (e, ne, b, ..., with synonyms like z, nc, nge) over the
// flags; nullopt for an unknown code, or for p/np when `pf` is null.
std::optional<z3::expr> ConditionOf(const std::string& cc, const z3::expr& cf, const z3::expr& zf,
                                    const z3::expr& sf, const z3::expr& of, const z3::expr* pf);

struct SymStore {
  std::string key;  // textual address (stable across builds for the same operand)
  Operand op;       // the destination operand (for base/index/disp)
  int width = 0;    // bytes
  z3::expr value;
  // False when the address is not `op` (a bit-string store "bts [rax], rdx" at a computed
  // offset from it): the store is only usable when it agrees across builds.
  bool exact_op = true;
  std::optional<z3::expr> addr;  // the effective address (none for RIP-relative operands)
  const Insn* insn = nullptr;    // the storing instruction
};

// A value loaded inside the run (the input "mem:...", first read of that operand).
struct SymLoad {
  Operand op;
  std::optional<z3::expr> addr;  // the effective address (none for RIP-relative operands)
  const Insn* insn = nullptr;
};

// The flags after the last flag-setting operation. cf/zf/sf/of/pf are exact Boolean values; a
// flag the architecture leaves undefined is an "undef|" constant (see CheckModelled), a flag
// set before the span an "entry|" constant. For kind "sub" (cmp/sub/neg), "add" and "logic"
// (test/and/or/xor) a, b are the operands; for kind "bits" (every other setter) a is the five
// flags packed (cf zf sf of pf) and b is 0, so equal (kind, a, b) always means equal flags.
struct SymFlags {
  std::string kind;
  z3::expr a, b, result;
  int width = 0;
  const Insn* insn = nullptr;
  z3::expr cf, zf, sf, of, pf;
};

class SymState {
 public:
  // zext32: register families known to hold a zero-extended 32-bit value at entry.
  SymState(z3::context& ctx, std::set<std::string> zext32 = {});

  // Executes one instruction. An instruction the executor cannot model exactly leaves its
  // results unknown (an uninterpreted function of everything it reads, see CheckModelled)
  // unless it may touch state outside its operands (branches, stack, rep): then false, with
  // unsupported() set.
  bool Step(const Insn& in);

  z3::context& ctx() { return ctx_; }
  z3::expr Reg(const std::string& family);  // current 64-bit value
  const std::set<std::string>& written() const { return written_; }
  int LastWriteWidth(const std::string& family) const;
  const std::vector<SymStore>& stores() const { return stores_; }
  const std::map<std::string, SymLoad>& loads() const { return loads_; }  // by input name
  const std::optional<SymFlags>& flags() const { return flags_; }
  // The operand that addresses store `s`'s cell with the registers as they are now (after the
  // span): its own operand when its registers still hold what they held at the store, a slot
  // above the stack pointer for a push; nullopt when the address is lost (a register overwritten).
  std::optional<Operand> OperandNow(const SymStore& s);
  const std::string& unsupported() const { return unsupported_; }
  // Condition `cc` ("e", "be", "g", ...) over the current flags; nullopt for an unknown cc.
  std::optional<z3::expr> Cond(const std::string& cc);
  // What the unknown value `name` ("unk|..", "undef|..", "entry|..") stands for, for messages.
  std::string Describe(const std::string& name) const;
  // The input variable for a register family ("in:ax") or memory key ("mem:...").
  static std::string InputName(const std::string& family) { return "in:" + family; }
  // Reads of the immediate operand `op` (an operand of an instruction stepped later, by
  // address) give `value` (op.size*8 bits) instead of its numeral, and the address of a
  // memory operand has the displacement `value` (64 bits): the numerals that differ between
  // builds as symbols (region.cc). A semantics that reads op.imm directly keeps the numeral,
  // which the proofs against each build then refuse.
  void OverrideNumeral(const Operand* op, const z3::expr& value) {
    imm_.insert_or_assign(op, value);
  }

 private:
  z3::expr Read(const Operand& op);
  void Write(const Operand& op, const z3::expr& v);  // v has op.size*8 bits
  z3::expr Address(const Operand& op);
  std::optional<z3::expr> OptAddress(const Operand& op);
  std::string MemKey(const Operand& op);
  void SetFlags(const std::string& kind, const z3::expr& a, const z3::expr& b, const z3::expr& r,
                int width, const Insn& in);
  // Sets every flag explicitly (kind "bits").
  void SetFlagBits(const z3::expr& cf, const z3::expr& zf, const z3::expr& sf, const z3::expr& of,
                   const z3::expr& pf, int width, const Insn& in);
  SymFlags CurrentFlags();  // the flags now (entry flags when none was set in the span)
  z3::expr PackedFlags();   // cf zf sf of pf as 5 bits
  // A fresh value the architecture leaves undefined (`bits` wide, 0: Boolean).
  z3::expr Undef(const Insn& in, unsigned bits, const std::string& what);
  z3::expr ReadAt(const z3::expr& addr, int size);
  void WriteAt(const z3::expr& addr, const Operand& op, const z3::expr& v, bool exact_op);

  // Step's instruction families: each executes `in` and returns true, returns false when it
  // recognizes `in` but cannot model it (Fail), or nullopt when `in` is not of its family.
  std::optional<bool> StepMove(const Insn& in);
  std::optional<bool> StepAlu(const Insn& in);
  std::optional<bool> StepUnary(const Insn& in);
  std::optional<bool> StepShift(const Insn& in);
  std::optional<bool> StepMul(const Insn& in);
  std::optional<bool> StepConditional(const Insn& in);
  // semantics_ext.cc
  std::optional<bool> StepStack(const Insn& in);
  std::optional<bool> StepBitScan(const Insn& in);
  std::optional<bool> StepBitTest(const Insn& in);
  std::optional<bool> StepCarry(const Insn& in);
  std::optional<bool> StepRotate(const Insn& in);
  std::optional<bool> StepConvert(const Insn& in);
  std::optional<bool> StepExchange(const Insn& in);
  std::optional<bool> StepDivide(const Insn& in);
  bool Havoc(const Insn& in);  // results of `in` become unknown; false when it cannot be
  bool Fail(const Insn& in, const std::string& why = "");  // records why `in` is not modelled

  z3::context& ctx_;
  std::set<std::string> zext32_;
  std::map<std::string, z3::expr> regs_;
  std::map<std::string, int> last_width_;
  std::map<std::string, z3::expr> mem_;
  std::set<std::string> written_;
  std::vector<SymStore> stores_;
  std::map<std::string, SymLoad> loads_;
  std::optional<SymFlags> flags_;
  std::string unsupported_, why_;
  std::map<std::string, std::string> unknowns_;  // unknown value name -> description
  const Insn* cur_ = nullptr;
  std::map<const Operand*, z3::expr> imm_;
};

// Uninterpreted constants ("in:ax", "mem:...") an expression depends on.
std::set<std::string> FreeInputs(const z3::expr& e);

// Bounds a Z3 check by `budget_ms` of a quiet host's work, counted in Z3's resource units
// (rlimit), not wall time: a proof's outcome must not depend on how loaded the machine is
// (with a wall-clock timeout, a busy host turned proofs into refusals). A wall-clock backstop
// of 4x the budget only guards against a pathological host.
void BoundSolver(z3::solver& s, unsigned budget_ms);
// Z3 resource units per millisecond of budget: 4,500-6,200 measured per ms on this project's
// 2-core Xeon host (64-bit multiply problems), so a budget is about the old wall-clock limit
// of a quiet host. Twice that made the constants whose fits try many hopeless queries
// (BICTCP_B, MAX_PLUG_BIO, MEMCG_CHARGE_BATCH) exceed the sweep's 900 s per constant.
inline constexpr unsigned kZ3UnitsPerMs = 6000;

// Whether Z3 proves `claim` for every value of its variables (`budget_ms` 0: no limit; running
// out of budget is no proof).
bool Valid(z3::context& c, const z3::expr& claim, unsigned budget_ms = 0);

// Whether Z3 finds `e` unsatisfiable within `budget_ms` (BoundSolver). Outcomes are remembered
// for the process by the query's SMT-LIB text (XXH3-128) and budget: the analysis asks the same
// proof again (each round of further values reanalyses every region; a formula is tried masked
// and unmasked), and a proof that ran out of budget would run out again.
bool UnsatWithin(z3::context& c, const z3::expr& e, unsigned budget_ms);
// How many UnsatWithin answers were remembered ones (trace, tests).
int64_t UnsatWithinReused();

// `e` with every division and remainder, signed or unsigned (total or Z3's internal form, which
// agree), and with `products` every product of two variable factors, replaced by an uninterpreted
// function of the same arguments, one per operation and width (a product's factors in one
// order).
// Valid after that implies valid before (division is one interpretation of the function), and
// two terms that divide equal linear expressions are proved equal by congruence, without
// bit-blasting a divider or multiplier per side. Sets *found when there was something to
// replace.
z3::expr DivisionsAbstracted(const z3::expr& e, bool* found = nullptr, bool products = false);

// The low `bits` bits set (all 64 for 64 or more).
inline uint64_t Mask(unsigned bits) {
  return bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
}
// A bit-vector term's width, and an indexed operator's i-th parameter (extract: 0 high, 1 low).
inline unsigned Width(const z3::expr& e) { return e.get_sort().bv_size(); }
// A bit-vector term of at most 64 bits zero-extended to 64.
inline z3::expr Zext64(const z3::expr& e) { return Width(e) < 64 ? z3::zext(e, 64 - Width(e)) : e; }
inline int Param(const z3::expr& e, unsigned i) {
  return Z3_get_decl_int_parameter(e.ctx(), e.decl(), i);
}
// Those of several expressions (one output in each build).
std::set<std::string> FreeInputs(const std::vector<z3::expr>& es);

// The outputs `o` of the three builds (`st`) checked for unknown values. An architecturally
// undefined value an output provably does not depend on is replaced by 0. Any other unknown
// value (an unmodelled instruction's result, an undefined value that matters, a flag set
// before the span) is only acceptable when the outputs provably agree (then the constant does
// not reach them); otherwise an InvalidArgument status of class kUnmodelledInstruction naming
// the instruction. `what` names the output ("register ax").
absl::Status CheckModelled(z3::context& c, std::vector<z3::expr>* o,
                           const std::vector<const SymState*>& st, const std::string& what);

}  // namespace sie::synth::analysis
