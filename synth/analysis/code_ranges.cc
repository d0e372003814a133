#include "synth/analysis/code_ranges.h"

#include <algorithm>

#include "absl/strings/escaping.h"

namespace sie::synth {
namespace {

// The extent of the instruction covering byte `off`, or [off, off + 1) outside any.
std::pair<uint64_t, uint64_t> InsnAround(const analysis::Function& fn, uint64_t off) {
  auto it = std::upper_bound(fn.insns.begin(), fn.insns.end(), off,
                             [](uint64_t o, const analysis::Insn& i) { return o < i.offset; });
  if (it != fn.insns.begin()) {
    --it;
    if (off < it->offset + it->size) return {it->offset, it->offset + it->size};
  }
  return {off, off + 1};
}

}  // namespace

std::vector<std::pair<uint64_t, uint64_t>> PlaceCover(uint64_t offset) {
  return {{offset, offset + 5}};
}

std::vector<std::pair<uint64_t, uint64_t>> SpanCover(const artifact::CriticalSpan& s) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  if (s.cs_end > s.cs_start) out.push_back({s.cs_start, s.cs_end});
  std::vector<uint64_t> places = {s.probe_offset};
  places.insert(places.end(), s.candidates.begin(), s.candidates.end());
  for (const artifact::SavePoint& p : artifact::SavePointsOf(s)) places.push_back(p.offset);
  if (s.mark_offset) places.push_back(*s.mark_offset);
  for (uint64_t p : places) out.push_back({p, p + 5});
  return out;
}

std::vector<artifact::CodeRange> BuildCodeRanges(
    const ShippedCode& code, const std::vector<std::pair<uint64_t, uint64_t>>& cover) {
  const uint64_t size = code.bytes.size();
  std::vector<std::pair<uint64_t, uint64_t>> iv;
  for (auto [a, b] : cover) {
    if (a >= size || b <= a) continue;
    b = std::min(b, size);
    uint64_t s = InsnAround(*code.fn, a).first, e = InsnAround(*code.fn, b - 1).second;
    iv.push_back({s, std::min(e, size)});
  }
  std::sort(iv.begin(), iv.end());
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  for (const auto& x : iv) {
    if (!merged.empty() && x.first <= merged.back().second)
      merged.back().second = std::max(merged.back().second, x.second);
    else
      merged.push_back(x);
  }
  // Which bytes of the function are masked.
  std::vector<bool> masked(size, false);
  for (const CodeMask& m : code.masks) {
    uint64_t e = m.len > 0 ? m.offset + m.len : InsnAround(*code.fn, m.offset).second;
    for (uint64_t k = m.offset; k < e && k < size; ++k) masked[k] = true;
  }
  std::vector<artifact::CodeRange> out;
  for (auto [a, b] : merged) {
    artifact::CodeRange r;
    r.offset = a;
    std::vector<bool> hide(masked.begin() + a, masked.begin() + b);
    for (const artifact::CodeReloc& rel : code.relocs) {
      if (rel.offset < a || rel.offset + rel.width > b) continue;
      bool under_mask = false;
      for (int k = 0; k < rel.width; ++k) under_mask |= masked[rel.offset + k];
      for (int k = 0; k < rel.width; ++k) hide[rel.offset - a + k] = true;
      if (under_mask) continue;
      r.relocs.push_back(rel);
      if (rel.kind == "kaslr" || rel.kind == "kaslr_pc") r.link_address = code.link_address + a;
    }
    std::string hex = absl::BytesToHexString(absl::string_view(code.bytes).substr(a, b - a));
    for (size_t k = 0; k < hide.size(); ++k)
      if (hide[k]) hex.replace(2 * k, 2, "??");
    r.bytes = std::move(hex);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace sie::synth
