// The code of a kernel module as the guest programs (tests/vm, tests/consistency, benchmarks)
// see it: functions of a .ko disassembled (libelf + Capstone), probe offsets found by
// instruction text, runtime addresses from /proc/kallsyms, probes' lines in kprobes/list.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sie::guest {

struct Insn {
  uint64_t offset;  // function-relative
  uint64_t size;
  std::string text;  // "mnemonic op_str" in Intel syntax, as capstone prints it
  bool leaves;       // ret, or a jmp whose target lies outside the function (tail call)
};

// Disassembles function `func` of a module file. Relocations are not applied; they do not
// change instruction lengths, and the constants of interest are immediates (an unrelocated jmp
// rel32 to __x86_return_thunk or a tail-called function points at or past the function's end,
// which is what `leaves` needs).
absl::StatusOr<std::vector<Insn>> DisassembleFunction(const std::filesystem::path& ko,
                                                      const std::string& func);

// "  +0xOFF  text" lines, for error messages.
std::string Listing(const std::vector<Insn>& insns);

// The offset of the instruction of `func` in `ko` whose text is `text` (`after`: of the one
// following it, where a SIE probe goes once the constant has entered its register or memory).
absl::StatusOr<uint64_t> FindOffset(const std::filesystem::path& ko, const std::string& func,
                                    const std::string& text, bool after);

// The runtime address of a symbol of a loaded module, from /proc/kallsyms (we are root).
absl::StatusOr<uint64_t> KallsymsAddress(const std::string& sym, const std::string& module);

// This probe's line in kprobes/list ("<addr>  k  sym+0xoff  module [OPTIMIZED]"), if listed.
std::optional<std::string> KprobeListLine(const std::string& func, uint64_t off);

// The same, waiting (bounded, ~4 s) until the probe is listed and, with `wait_optimized`,
// until the delayed optimizer marked it [OPTIMIZED] (after the wait the unoptimized line is
// returned). NotFound when it never appears.
absl::StatusOr<std::string> WaitKprobeListLine(const std::string& func, uint64_t off,
                                               bool wait_optimized);

}  // namespace sie::guest
