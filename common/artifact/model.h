// The data model of a synthesized constant: what synth produces and the runtime consumes
// (serialized as DIR/<id>/const.json by common/artifact/const_json.h). Offsets are
// function-relative, taken from the baseline (shipped-value) build and mapped onto the shipped
// binary.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace sie::artifact {

// How the runtime makes the new value take effect at one Critical Span.
enum class SpanKind {
  kReg,        // one probe after the CS overwrites a register
  kMem,        // rewrite the memory cell the CS stored (exact width)
  kFlags,      // a compare against an immediate: recompute the comparison's flags
  kRecompute,  // irreversible: save the input before the CS, recompute after
};
// The kind's name in const.json ("reg", "mem", "flags", "recompute"): part of the format.
constexpr const char* SpanKindName(SpanKind k) {
  switch (k) {
    case SpanKind::kReg:
      return "reg";
    case SpanKind::kMem:
      return "mem";
    case SpanKind::kFlags:
      return "flags";
    case SpanKind::kRecompute:
      return "recompute";
  }
  return "?";
}

// A memory operand base + index*scale + disp (x86 registers named as in pt_regs: "ax", "r12").
struct MemOperand {
  std::string base;   // empty: absolute
  std::string index;  // empty: none
  int scale = 1;
  int64_t disp = 0;
  bool operator==(const MemOperand&) const = default;
};

// Where a variable's value is at the probe (DWARF, resolved exactly by synth). const.json
// spells it "reg:bx" (in the register), "breg:sp+28" (in memory at register + offset: a stack
// slot, DW_OP_fbreg resolved through the CFA), "val:bx+1344" (the value is register + offset)
// or "entry:di" (in the register at function entry). Anything else read from a file is kept as
// kOther with its text, so it can be reported but never used.
struct Location {
  enum class Kind { kNone, kReg, kMem, kValue, kEntry, kOther };
  Kind kind = Kind::kNone;
  std::string reg;     // pt_regs name ("bx", "r12")
  int64_t offset = 0;  // kMem, kValue
  std::string text;    // kOther: as read

  static Location Reg(std::string r) { return {Kind::kReg, std::move(r), 0, ""}; }
  static Location Mem(std::string r, int64_t k) { return {Kind::kMem, std::move(r), k, ""}; }
  static Location Value(std::string r, int64_t k) { return {Kind::kValue, std::move(r), k, ""}; }
  static Location Entry(std::string r) { return {Kind::kEntry, std::move(r), 0, ""}; }
  // Never fails: text that is not one of the four forms gives kOther (kNone for "").
  static Location Parse(absl::string_view text);
  std::string ToString() const;  // the const.json spelling; Parse(ToString()) == *this
  bool empty() const { return kind == Kind::kNone; }
  bool operator==(const Location&) const = default;
};

// A variable visible at the probe.
struct VarLocation {
  std::string name;
  std::string type;  // C type name as in BTF/DWARF ("struct sock *", "u32")
  Location location;
};

// A formula input besides X ("Y", "Z", "W"; common/artifact/formula.h), read by the stub at the
// probe: in a register synth checked is intact there, or in memory at an address computed from
// such registers that no store of the span can alias (zero-extended from `width` bytes). Or
// saved before the probe (`save_offset`): register `reg` as the instruction at save_offset
// starts, taken per task by a save probe there (an input the span overwrites, saved at its
// start, or a value the span loads, saved from the register it was loaded into right after
// the load: the exact value the code used, which no re-read could promise).
struct SpanInput {
  std::string name;
  std::string reg;                // in this register (pt_regs name) at the probe, or
  std::optional<MemOperand> mem;  // loaded from this operand at the probe (never RIP-relative)
  int width = 8;                  // bytes (the low `width` bytes, zero-extended)
  std::optional<uint64_t> save_offset;  // reg is saved there (function-relative, in the CS)
  bool operator==(const SpanInput&) const = default;
};

// A relocated field inside a code range (its bytes are "??" in CodeRange::bytes): the value the
// live kernel must hold there, computed by the runtime.
struct CodeReloc {
  uint64_t offset = 0;  // function-relative, the field's first byte
  int width = 4;        // bytes: 1, 2, 4 or 8
  // "pc": S + A - P and "abs": S + A (module code; S is `symbol`'s live address, P the
  // field's); "kaslr": `value` moved by the kernel's KASLR slide (vmlinux: an absolute address
  // the boot code relocates); "kaslr_pc": `value` minus the slide (vmlinux: a PC-relative
  // reference to a per-CPU symbol, which KASLR leaves in place).
  std::string kind;
  std::string symbol;  // pc/abs: the target
  // `symbol` is a section of the module (/sys/module/<m>/sections/<symbol>): a target in the
  // module itself, `addend` counted from the section's start; else a symbol of vmlinux or of
  // another module (/proc/kallsyms).
  bool section = false;
  int64_t addend = 0;
  uint64_t value = 0;  // kaslr kinds: the field as linked
  bool operator==(const CodeReloc&) const = default;
};
constexpr const char* kCodeRelocKinds[] = {"pc", "abs", "kaslr", "kaslr_pc"};

// Bytes of the shipped binary the runtime compares with the live kernel before it attaches
// anything: whole instructions of one function. Bytes the kernel legitimately rewrites (at
// boot or module load: alternatives, static calls, jump labels, retpolines, return thunks,
// ftrace's entry call, lock prefixes, sealed endbr, runtime constants) are "??"; relocated
// fields are "??" too, with a CodeReloc saying what they must hold.
struct CodeRange {
  uint64_t offset = 0;        // function-relative
  std::string bytes;          // hex, two characters a byte, "??" for a byte not compared literally
  uint64_t link_address = 0;  // vmlinux with kaslr relocs: the range's address as linked
  std::vector<CodeReloc> relocs;
  uint64_t end() const { return offset + bytes.size() / 2; }
  bool operator==(const CodeRange&) const = default;
};

struct CriticalSpan {
  std::string function;              // symbol name in the shipped binary (may be .isra/.constprop)
  uint64_t cs_start = 0;             // function-relative, first instruction of the CS
  uint64_t cs_end = 0;               // one past the last instruction of the CS
  uint64_t probe_offset = 0;         // where the update runs (after the CS)
  std::vector<uint64_t> candidates;  // equivalent probe offsets up to the first reader
  // The probe places (probe_offset, candidates) the kernel may jump-optimize as far as the
  // shipped binary decides, each with how many bytes from it the jump may replace: {offset,
  // limit} (synth/analysis/optprobe.h; the loader checks the live instructions within limit).
  // nullopt: not predicted (an older const.json); the loader then attaches and waits to see.
  struct JumpWindow {
    uint64_t offset = 0;
    int limit = 0;
    bool operator==(const JumpWindow&) const = default;
  };
  std::optional<std::vector<JumpWindow>> jump_windows;
  SpanKind kind = SpanKind::kReg;
  std::string target_reg;                // kReg/kRecompute/kFlags: register (pt_regs name)
  std::optional<MemOperand> target_mem;  // kMem, or a kFlags compare with a memory operand
  int width = 8;                         // bytes written/compared: 1, 2, 4 or 8
  // C expression in V (the policy's value) and, where the result depends on the instruction's
  // input, X (that input: read at the probe, or saved at save_offset for kRecompute).
  std::string formula;
  // synth only, never written to const.json: other formulas that fit the builds as well
  // (derive.h), ruled out by the check builds or refused; empty once the span is final.
  std::vector<std::string> formula_alternatives;
  // synth only, never written to const.json: offsets of the `mov REG, imm` instructions before
  // the CS whose numerals the formula reads as its own (a hoisted magic multiplier): their
  // value may differ with V as long as every reader of it is inside such a span.
  std::vector<uint64_t> constant_defs;
  std::optional<uint64_t> save_offset;  // kRecompute: where X is saved (before the CS)
  // The register holding X: kRecompute: at save_offset; kReg: at the probe (still intact there).
  std::string save_reg;
  std::string flags_cc;           // kFlags: the condition the compare feeds ("jbe", "cmovg" ...)
  std::string source;             // file:line from DWARF
  std::string expect_bytes;       // hex of the instruction bytes at probe_offset (shipped binary)
  std::vector<VarLocation> vars;  // parameters and in-scope variables at the probe
  // kFlags: the instruction whose flags are recomputed with the new immediate value ("cmp":
  // operand - value; "test": operand & value; "add"/"sub": also writes target_reg), or "pred":
  // the formula is the consumer's decision itself (1: flags_cc holds), set through
  // PredicateFlagsOperands, where the builds compare in other ways (`test al, 0xf0; je` at one
  // value, `cmp al, 0x23; jbe` at another).
  std::string flags_op;
  // kRecompute, optional: X recovered from save_reg's value R at the probe when the CS is
  // invertible ("R - 3" for add $3), letting the runtime skip the save probe. kFlags of
  // add/sub (flags_op): X from target_reg's value R at the probe, which holds the result.
  std::string x_from_probe;
  // Further inputs of the formula (kReg, kRecompute, kMem), read at the probe; empty in const.json
  // files that predate them.
  std::vector<SpanInput> inputs;
  // Path token (const.json "path_token": true, "mark_offset"): probe_offset is also reached by
  // a jump that bypasses the CS. A mark probe at mark_offset (the CS's first instruction)
  // records the frame (stack pointer) passing through the CS; the apply probe writes only for
  // that frame and clears the mark, so the bypass path keeps its own state. Absent in older
  // files and for spans whose probe is reached only through the CS.
  std::optional<uint64_t> mark_offset;
  // const.json "code": every byte of [cs_start, cs_end) and of each probe place (the apply
  // probe and its candidates, save points, the mark), each place widened to the whole
  // instructions covering [place, place + 5) (what a jump-optimized kprobe replaces); merged,
  // ascending. Absent in older files (the runtime then checks expect_bytes alone).
  std::vector<CodeRange> code;
};

// A flags span the native engine (sie_native) recomputes on its own: the flags of
// `cmp REG, IMM` or `test REG, IMM` for the new immediate (no result to write back).
inline bool NativeFlagsSpan(const CriticalSpan& s) {
  return s.kind == SpanKind::kFlags &&
         (s.flags_op.empty() || s.flags_op == "cmp" || s.flags_op == "test") &&
         !s.target_reg.empty() && s.target_reg != "sp" && s.x_from_probe.empty();
}

// A "pred" flags span's stub sets the flags of `cmp lhs, rhs` on one byte: operands under
// which the consumer ("je", "jbe", "setg"...) holds, and operands under which it does not
// (cmp 0,0: ZF; cmp 1,0: none; cmp 0,1: CF and SF). nullopt for a consumer of OF alone or PF.
struct PredicateOperands {
  uint8_t lhs_true, rhs_true, lhs_false, rhs_false;
};
inline std::optional<PredicateOperands> PredicateFlagsOperands(absl::string_view consumer) {
  for (absl::string_view p : {"cmov", "set", "j"})
    if (consumer.substr(0, p.size()) == p) {
      consumer.remove_prefix(p.size());
      break;
    }
  constexpr PredicateOperands kZf{0, 0, 1, 0}, kNotZf{1, 0, 0, 0}, kCf{0, 1, 0, 0},
      kNotCf{0, 0, 0, 1};
  for (absl::string_view cc : {"e", "z", "be", "na", "le", "ng"})
    if (consumer == cc) return kZf;
  for (absl::string_view cc : {"ne", "nz", "a", "nbe", "g", "nle"})
    if (consumer == cc) return kNotZf;
  for (absl::string_view cc : {"b", "c", "nae", "s", "l", "nge"})
    if (consumer == cc) return kCf;
  for (absl::string_view cc : {"ae", "nb", "nc", "ns", "ge", "nl"})
    if (consumer == cc) return kNotCf;
  return std::nullopt;
}

// The places a span's saved values are taken, in the order the loader and the stub name their
// probes (point 0: sie_save_<span>, point k: sie_save_<span>_<k>): a recompute's X at
// save_offset and the inputs with a save_offset, one point per distinct offset (ascending).
struct SavedValue {
  char var = 'X';  // the formula variable
  std::string reg;
  int width = 8;  // bytes kept (zero-extended)
};
struct SavePoint {
  uint64_t offset = 0;
  std::vector<SavedValue> values;
};
std::vector<SavePoint> SavePointsOf(const CriticalSpan& s);
std::string SaveProgramName(int span, int point);

// kCaller: the part of a caller that uses the value the CS's function returns (the slice of
// rax from the call's return), synth/analysis/callers.h.
enum class SafeSpanHow { kSlice, kManual, kWholeFunction, kCaller };
const char* SafeSpanHowName(SafeSpanHow h);

struct SafeSpan {
  std::string function;
  uint64_t start = 0;
  uint64_t end = 0;
  SafeSpanHow how = SafeSpanHow::kSlice;
  // const.json "code": the guard probe place at `start` (modes 1 and 2), as CriticalSpan::code.
  std::vector<CodeRange> code;
};

// A data initializer computed from the constant (reported, never silently ignored).
struct DataInitializer {
  std::string symbol;
  uint64_t offset = 0;
  int width = 0;
  std::vector<int64_t> values;  // per compiled variant
};

struct TargetBinary {
  std::string binary;          // "vmlinux" or a module name
  std::string kernel_release;  // e.g. 6.12.117+deb12-amd64
  std::string build_id;        // hex, when known
};

struct SynthesizedConst {
  int id = 0;  // stable ConstID
  std::string name;
  std::string description;
  std::vector<int64_t> values;  // V1 (shipped), V2, V3
  int64_t range_min = 0, range_max = 0;
  // Only powers of two in the range are valid values: the code has another shape elsewhere
  // (x / V compiles to a shift). const.json "pow2_only" (absent: false).
  bool pow2_only = false;
  TargetBinary target;
  // In const.json order: by function, then start, the longer of two spans with one start
  // first. At one address the runtime runs a span's save at its start before the apply of an
  // empty span there (an input rewrite; runtime/loader/attach.h RunRank), whatever their
  // order; such a rewrite has no other candidate place, so no move re-registers it later.
  std::vector<CriticalSpan> spans;
  std::vector<SafeSpan> safe_spans;
  // How the value outlives the safe spans when it does (left in memory outside the frame,
  // passed to a call, returned to callers sie cannot list), "" when it does not: modes 1 and 2
  // keep each run of the spans on one value and warn that later readers are not covered.
  // const.json "safe_spans_unbounded" (absent: "").
  std::string safe_spans_unbounded;
  std::vector<DataInitializer> data_initializers;
  std::vector<std::string> warnings;
};

}  // namespace sie::artifact
