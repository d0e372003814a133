// The x86 kprobe rules of the guest's kernel that depend on one instruction's encoding:
// which instructions an optimized kprobe may run out of line (arch/x86/kernel/kprobes/core.c
// can_boost). Shared by synth (shipped code) and the loader (live code).
#pragma once
#include "absl/strings/string_view.h"

namespace sie::elf {

// can_boost for the instruction encoded by `insn` (its bytes, prefixes included); the
// exception-table part of the kernel's check is the caller's.
bool KprobeCanBoost(absl::string_view insn);

}  // namespace sie::elf
