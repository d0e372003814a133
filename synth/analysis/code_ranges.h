// The bytes of the shipped binary a constant relies on (CriticalSpan::code, SafeSpan::code):
// which bytes to cover, and how each is compared at runtime (literally, masked because the
// kernel rewrites it, or as a relocated field the runtime computes).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/artifact/model.h"
#include "synth/analysis/disasm.h"

namespace sie::synth {

// Bytes the kernel may rewrite, function-relative: [offset, offset + len); len 0: the whole
// instruction at offset.
struct CodeMask {
  uint64_t offset = 0;
  int len = 0;
};

// One function of the shipped binary, with what the byte check needs about it.
struct ShippedCode {
  const analysis::Function* fn = nullptr;   // its instructions (shipped offsets)
  std::string bytes;                        // its bytes in the file
  std::vector<CodeMask> masks;              // patched sites and unresolvable relocations
  std::vector<artifact::CodeReloc> relocs;  // relocated fields, function-relative
  uint64_t link_address = 0;                // vmlinux: the function's address as linked
};

// Byte intervals [start, end) a span relies on: its CS and each probe place (apply, its
// candidates, save points, mark) as [place, place + 5), the bytes a jump-optimized kprobe
// replaces.
std::vector<std::pair<uint64_t, uint64_t>> SpanCover(const artifact::CriticalSpan& s);
// A probe place alone (a safe span's guard at its start).
std::vector<std::pair<uint64_t, uint64_t>> PlaceCover(uint64_t offset);

// The code ranges of `cover` in `code`: each interval widened to whole instructions (clamped to
// the function), overlapping or touching ones merged, ascending; masked bytes "??", relocated
// fields "??" with their CodeReloc (a field that is also masked keeps only the mask).
std::vector<artifact::CodeRange> BuildCodeRanges(
    const ShippedCode& code, const std::vector<std::pair<uint64_t, uint64_t>>& cover);

}  // namespace sie::synth
