#include "synth/analysis/path_token.h"

#include "absl/strings/str_format.h"

namespace sie::synth::analysis {
namespace {

// Instructions that move the stack pointer (the apply compares it with the mark's).
bool MovesSp(const Insn& in) {
  return in.writes.count("sp") || in.mnemonic == "push" || in.mnemonic == "pop" ||
         in.mnemonic == "leave" || in.mnemonic == "enter" || in.mnemonic.rfind("push", 0) == 0 ||
         in.mnemonic.rfind("pop", 0) == 0;
}

}  // namespace

absl::Status CheckPathToken(const Function& fn, int begin, int end) {
  if (begin >= end || end > static_cast<int>(fn.insns.size()))
    return absl::FailedPreconditionError("the span is empty: nothing to mark");
  for (int i = begin; i < end; ++i) {
    const Insn& in = fn.insns[i];
    // A jump into the middle of the span runs part of it unmarked; a jump to the span's start
    // is harmless (that path runs the whole span, marked).
    if (i > begin && fn.branch_targets.count(in.offset))
      return absl::FailedPreconditionError(absl::StrFormat(
          "+0x%x inside the span is a jump target: a path entering there would reach the probe "
          "unmarked after running part of the span",
          in.offset));
    // A branch, call or return inside the span could leave it marked without reaching the
    // probe (the stale mark would then match a later bypass of the same frame) or run other
    // code between the mark and the probe.
    if (in.is_branch || in.is_call || in.is_ret || in.is_jump)
      return absl::FailedPreconditionError(
          absl::StrFormat("`%s` at +0x%x inside the span transfers control: the mark at the "
                          "span's start must be consumed at its end on every path",
                          in.Text(), in.offset));
    if (MovesSp(in))
      return absl::FailedPreconditionError(
          absl::StrFormat("`%s` at +0x%x moves the stack pointer: the apply probe identifies "
                          "the marked frame by an unchanged stack pointer",
                          in.Text(), in.offset));
  }
  return absl::OkStatus();
}

}  // namespace sie::synth::analysis
