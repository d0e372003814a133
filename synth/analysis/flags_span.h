// Flags spans of arithmetic instructions: the constant is the immediate of `cmp`, `test`, `add`,
// `sub` (time_after(jiffies, t + V) compiles to `add rax, V; sub ...; js`, `x > V` may be
// `sub edi, V; jg`) whose flags a following jcc/setcc/cmovcc consumes. The stub recomputes that
// exact instruction with the new immediate (sie_set_flags_op: kmod/include/sie/kfuncs_logic.h)
// and, for add/sub, its register result. This file proves, with Z3, that this emulation is what
// each build computes, and how the stub recovers the instruction's input X at the probe.
#pragma once
#include <z3++.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "synth/analysis/semantics.h"

namespace sie::synth::analysis {

// The instructions a flags span may recompute.
// The condition code a consumer reads: "ja" -> "a", "cmovge" -> "ge", "setne" -> "ne"; the
// sbb/adc idioms read CF; any other mnemonic comes back unchanged.
std::string ConsumerCc(const std::string& m);

bool FlagsSpanOp(const std::string& mnemonic);

// Proves, for every input, that the condition `cc` ("ja", "cmovg", "sete", ...: the consumer)
// of each build's flags equals the condition of the stub's emulation (sie_op_flags's ZF, SF, CF,
// OF model) of the flags instruction on (X, imm[k]). The refusal names the build that differs.
// `xs`, when given, are the operands the stub reads (NormalizeTests), in place of each
// build's own.
absl::Status ProveFlagsEmulation(z3::context& ctx, const std::vector<SymState*>& builds,
                                 const std::vector<uint64_t>& imms, const std::string& cc,
                                 const std::vector<z3::expr>* xs = nullptr);

// `test` of one value with a mask, however each build encodes it: `test bl, bl` is
// `test bl, 0xff`, and a test of a narrow register is one of its 32-bit (or wider) register
// with the same mask (x % 256 == 0 is `test bl, bl`, x % 512 == 0 `test ebx, 0x1ff`). Rewrites
// a and b (operand, mask) of the three builds to one width when every build is such a test;
// false, unchanged, otherwise. ZF, PF, CF and OF are the same at either width; a consumer of
// SF is left to ProveFlagsEmulation, which refuses it where the widths disagree.
bool NormalizeTests(z3::context& ctx, const std::vector<const SymFlags*>& fs,
                    std::vector<z3::expr>* a, std::vector<z3::expr>* b);

// add/sub writing register `reg`: X from the register's value R at the probe of the baseline
// build (st: after the span, imm: its immediate), e.g. "R - 750", proved for every X; and that
// the register at the probe is the instruction's result. Refused for `and` (X is lost).
absl::StatusOr<std::string> XFromProbe(z3::context& ctx, SymState& st, const std::string& reg,
                                       uint64_t imm);

// The stub's model of the flags (ZF, SF, CF, OF) of `op` on a, b at their width, and the
// condition `cc` over them; exposed for tests.
std::optional<z3::expr> EmulatedCond(z3::context& ctx, const std::string& op, const z3::expr& a,
                                     const z3::expr& b, const std::string& cc);

}  // namespace sie::synth::analysis
