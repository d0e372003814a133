#include "synth/analysis/optprobe.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace sie::synth::analysis {
namespace {

constexpr int kJmp32 = 5;      // JMP32_INSN_SIZE
constexpr int kMaxLimit = 32;  // more than any window: five bytes of instructions of <= 15

bool IndirectJump(const Insn& in) {
  return in.is_jump && !in.is_cond && !in.target && in.call_target.empty() && !in.ops.empty() &&
         in.ops[0].type != OpType::kImm;
}

}  // namespace

absl::StatusOr<int> JumpLimit(const OptimizeContext& c, uint64_t offset) {
  const Function& fn = *c.fn;
  auto no = [&](const std::string& why) {
    return absl::FailedPreconditionError(
        absl::StrCat(fn.name, "+0x", absl::Hex(offset), ": ", why));
  };
  if (c.entry_text) return no("entry code is never optimized");
  if (c.has_extable) return no("the function has exception-table entries");
  if (fn.IndexAt(offset) < 0) return no("not an instruction boundary");
  if (fn.size < offset + kJmp32) return no("fewer than 5 bytes before the function's end");
  for (const Insn& in : fn.insns) {
    if (in.mnemonic == "(bad)") return no("the function does not decode");
    // A jump to the 4 bytes after the first, or to the byte after them (opt.c's
    // insn_jump_into_range is inclusive), would land inside the jump.
    if (in.target && !in.is_call && *in.target > offset && *in.target <= offset + kJmp32)
      return no(absl::StrCat("`", in.Text(), "` at +0x", absl::Hex(in.offset),
                             " jumps into the 5 bytes"));
    // Checked only by kernels without retpolines and IBT; an indirect jump there would be a
    // thunk call anyway, so this costs nothing on the guest's kernel.
    if (IndirectJump(in)) return no(absl::StrCat("indirect jump at +0x", absl::Hex(in.offset)));
  }
  uint64_t limit = std::min<uint64_t>(fn.size, offset + kMaxLimit);
  for (const auto& [at, n] : c.reserved) {
    const uint64_t end = at + std::max(n, 1);
    if (end > offset && at < limit) limit = std::max<uint64_t>(at, offset);
  }
  if (limit < offset + kJmp32)
    return no(
        "the kernel patches a byte within the 5 (ftrace, alternative, jump label or static "
        "call)");
  return static_cast<int>(limit - offset);
}

}  // namespace sie::synth::analysis
