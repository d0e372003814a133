// Safe spans for the global consistency model (mode 2, kmod/sie_consistency): where a span is
// entered and every place control leaves it, found by disassembling the LIVE code (what the
// kernel runs, read from /proc/kcore). The counting kprobes of sie_consistency sit there, so an
// exit that is missed lets a task leave uncounted (the transition never converges), and an exit
// that other code reaches too lets a task outside decrement the count (the value could switch
// while a task is still inside). Anything this cannot prove is refused, with mode 1 as the hint.
#pragma once
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::loader {

// One span in sie_consistency's terms (kmod/include/sie/consistency.h): [start, end), a single
// entry, and the exits: a ret or jmp inside the span (the unguard runs before it), or the first
// address outside the span that a fall-through or a conditional jump out reaches.
struct GlobalSpan {
  uint64_t start = 0, end = 0, entry = 0;
  std::vector<uint64_t> exits;
};

// `code` holds the bytes of the function [code_addr, code_addr + code.size()) that contains the
// span [start, end), entered at `start`. Walks the instructions reachable from `start` inside the
// span (padding after the last ret is never reached), then walks the whole function from
// code_addr to check that nothing outside the span jumps into it past its entry or reaches one of
// its outside exits. Errors: undecodable bytes, an indirect jump, a jump back to the entry, more
// than `max_exits` exits, or code outside the span that reaches its inside or its exits.
absl::StatusOr<GlobalSpan> AnalyzeGlobalSpan(absl::string_view code, uint64_t code_addr,
                                             uint64_t start, uint64_t end, size_t max_exits);

}  // namespace sie::loader
