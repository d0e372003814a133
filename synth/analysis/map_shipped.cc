// Stage 8: carrying spans from the baseline object onto the shipped binary. The function is
// found by name (preferring equal size), its instructions are aligned with the object's by LCS
// with relocation fields masked and static-key jmp/nop pairs treated as equal, and every CS
// instruction and probe must have an exact counterpart. No silent fallback.
#include <elf.h>

#include <algorithm>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/diag.h"
#include "common/elf/elf_file.h"
#include "synth/analysis/align.h"
#include "synth/analysis/analyze.h"
#include "synth/analysis/disasm.h"
#include "synth/analysis/path_token.h"
#include "synth/refusal.h"

namespace sie::synth {
namespace {

using analysis::DisassembleBytes;
using analysis::ElfFile;
using analysis::ElfSymbol;
using analysis::Function;
using analysis::Insn;

bool IsNop(const Insn& i) { return i.mnemonic == "nop"; }

// Equal up to relocation fields (masked on either side) and jump-label jmp/nop patching.
bool SameInsn(const Insn& a, const Insn& b) {
  if (a.size != b.size) return false;
  if ((IsNop(a) && (b.mnemonic == "jmp" || b.is_call)) ||
      (IsNop(b) && (a.mnemonic == "jmp" || a.is_call)))
    return true;  // static key / patched __fentry__ call site
  std::string ma = a.bytes, mb = b.bytes;
  for (const Insn* x : {&a, &b})
    for (const auto& r : x->relocs)
      for (int k = r.at; k < r.at + r.width && k < a.size; ++k) ma[k] = mb[k] = 0;
  return ma == mb;
}

// The probe instruction's bytes as the runtime checks them. A relocatable binary (a module)
// leaves relocation fields unresolved on disk ('??': the loader fills them in, so the live
// bytes differ); vmlinux's are final.
std::string ExpectBytes(const Insn& in, bool relocatable) {
  std::string hex = absl::BytesToHexString(in.bytes);
  if (!relocatable) return hex;
  for (const auto& r : in.relocs)
    for (int k = r.at; k < r.at + r.width && k < in.size; ++k) hex.replace(2 * k, 2, "??");
  return hex;
}

std::vector<int> Align(const Function& a, const Function& b) {
  return analysis::AlignLcs(a.insns.size(), b.insns.size(),
                            [&](size_t i, size_t j) { return SameInsn(a.insns[i], b.insns[j]); });
}

struct Mapping {
  Function obj, shipped;
  std::vector<int> match;
  bool relocatable = false;  // the shipped binary is a module (.ko): relocations unresolved
  absl::StatusOr<uint64_t> Map(uint64_t off, const std::string& what) const {
    if (off == obj.size) return shipped.size;
    int i = obj.IndexAt(off);
    if (i < 0 || match[i] < 0)
      return Classified(
          absl::FailedPreconditionError(absl::StrFormat(
              "%s+0x%x (%s): no matching instruction in the shipped binary (`%s`)", obj.name, off,
              what, i < 0 ? "not an instruction boundary" : obj.insns[i].Text())),
          Refusal::kShippedMismatch);
    return shipped.insns[match[i]].offset;
  }
};

absl::StatusOr<Mapping> MapFunction(const ElfFile& obj, const ElfFile& ship,
                                    const std::string& name) {
  Mapping mp;
  bool found = false;
  for (const ElfSymbol& s : obj.symbols()) {
    if (s.type != STT_FUNC || s.name != name || s.size == 0) continue;
    auto bytes = obj.SymbolBytes(s);
    if (!bytes.ok()) return bytes.status();
    auto f = DisassembleBytes(name, *bytes, obj.relocs(s.shndx), obj.SectionOffset(s));
    if (!f.ok()) return f.status();
    mp.obj = std::move(*f);
    found = true;
    break;
  }
  if (!found) return absl::NotFoundError(absl::StrCat(name, ": not in ", obj.path()));
  std::vector<const ElfSymbol*> cands;
  for (const ElfSymbol& s : ship.symbols())
    if (s.type == STT_FUNC && s.name == name && s.size > 0) cands.push_back(&s);
  if (cands.empty())
    return Classified(
        ErrorWithHint(absl::StatusCode::kNotFound,
                      absl::StrCat(name, ": no such function in ", ship.path()),
                      "the shipped kernel may inline or rename it; scope the spec to its callers"),
        Refusal::kObjectNotMapped);
  // Equal size first: the rebuilt object should be byte-identical up to relocations.
  std::stable_sort(cands.begin(), cands.end(), [&](const ElfSymbol* a, const ElfSymbol* b) {
    return (a->size == mp.obj.size) > (b->size == mp.obj.size);
  });
  std::string why;
  int good = 0;
  Mapping best;
  for (const ElfSymbol* s : cands) {
    auto bytes = ship.SymbolBytes(*s);
    if (!bytes.ok()) return bytes.status();
    auto f = DisassembleBytes(name, *bytes, ship.relocs(s->shndx), ship.SectionOffset(*s));
    if (!f.ok()) return f.status();
    std::vector<int> match = Align(mp.obj, *f);
    size_t matched = std::count_if(match.begin(), match.end(), [](int x) { return x >= 0; });
    // Accept when almost everything lines up; the per-span checks below are exact.
    if (matched * 10 >= mp.obj.insns.size() * 9) {
      if (++good == 1) {
        best.obj = mp.obj;
        best.shipped = std::move(*f);
        best.match = std::move(match);
        best.relocatable = ship.relocatable();
      }
    } else {
      why = absl::StrFormat("only %d of %d instructions match", matched, mp.obj.insns.size());
    }
  }
  if (good == 0)
    return Classified(
        FailedWithHint(absl::StrCat(name,
                                    ": the shipped function differs from the rebuilt "
                                    "object (",
                                    why, ")"),
                       "the kernel tree, config or compiler do not match the shipped kernel"),
        Refusal::kShippedMismatch);
  if (good > 1)
    return Classified(absl::FailedPreconditionError(absl::StrCat(
                          name, ": several functions of this name match in ", ship.path())),
                      Refusal::kShippedMismatch);
  return best;
}

// `sp` carried from the object onto the shipped function: every CS instruction must be
// there with the shipped value's encoding; expect_bytes are the shipped probe instruction's.
absl::StatusOr<CriticalSpan> MapSpan(const Mapping& mp, const CriticalSpan& sp) {
  for (int i = mp.obj.IndexAt(sp.cs_start);
       i >= 0 && i < static_cast<int>(mp.obj.insns.size()) && mp.obj.insns[i].offset < sp.cs_end;
       ++i) {
    if (mp.match[i] < 0)
      return Classified(
          absl::FailedPreconditionError(absl::StrFormat(
              "%s+0x%x: the CS instruction `%s` is not in the shipped binary (different value "
              "shipped?)",
              sp.function, mp.obj.insns[i].offset, mp.obj.insns[i].Text())),
          Refusal::kShippedMismatch);
  }
  CriticalSpan out = sp;
  auto a = mp.Map(sp.cs_start, "CS start");
  if (!a.ok()) return a.status();
  out.cs_start = *a;
  int last = mp.obj.IndexAt(sp.cs_end) >= 0 ? mp.obj.IndexAt(sp.cs_end) - 1
                                            : static_cast<int>(mp.obj.insns.size()) - 1;
  out.cs_end = mp.shipped.insns[mp.match[last]].offset + mp.shipped.insns[mp.match[last]].size;
  auto p = mp.Map(sp.probe_offset, "probe");
  if (!p.ok()) return p.status();
  out.probe_offset = *p;
  if (sp.save_offset) {
    auto s = mp.Map(*sp.save_offset, "save");
    if (!s.ok()) return s.status();
    out.save_offset = *s;
  }
  if (sp.mark_offset) {
    // The path token's conditions hold on the shipped code too (its jumps decide them).
    out.mark_offset = out.cs_start;
    int b = mp.shipped.IndexAt(out.cs_start), e = mp.shipped.IndexAt(out.probe_offset);
    absl::Status t = b >= 0 && e > b ? CheckPathToken(mp.shipped, b, e)
                                     : absl::FailedPreconditionError("the span is not contiguous");
    if (!t.ok())
      return Classified(absl::FailedPreconditionError(absl::StrFormat(
                            "%s+0x%x: the span ends at a join and, in the shipped binary, %s",
                            sp.function, out.cs_start, t.message())),
                        Refusal::kJoinBypass);
  }
  out.candidates.clear();
  for (uint64_t c : sp.candidates) {
    auto x = mp.Map(c, "candidate");
    if (!x.ok()) break;  // later candidates are optional
    out.candidates.push_back(*x);
  }
  out.expect_bytes =
      ExpectBytes(mp.shipped.insns[mp.shipped.IndexAt(out.probe_offset)], mp.relocatable);
  return out;
}

// A safe span carried over, widened to the nearest matched instructions: it may only grow.
void MapSafeSpan(const Mapping& mp, SafeSpan* ss) {
  if (ss->how == SafeSpanHow::kWholeFunction) {
    ss->start = 0;
    ss->end = mp.shipped.size;
    return;
  }
  int i = mp.obj.IndexAt(ss->start);
  while (i > 0 && mp.match[i] < 0) --i;
  ss->start = i >= 0 && mp.match[i] >= 0 ? mp.shipped.insns[mp.match[i]].offset : 0;
  int j = mp.obj.IndexAt(ss->end);
  if (j < 0) j = mp.obj.insns.size();
  while (j < static_cast<int>(mp.obj.insns.size()) && mp.match[j] < 0) ++j;
  ss->end = j < static_cast<int>(mp.obj.insns.size()) ? mp.shipped.insns[mp.match[j]].offset
                                                      : mp.shipped.size;
}

}  // namespace

absl::Status MapToShipped(const std::string& baseline_obj, const std::string& shipped_elf,
                          std::vector<CriticalSpan>* spans, std::vector<SafeSpan>* safe_spans) {
  auto obj = ElfFile::Open(baseline_obj);
  if (!obj.ok()) return obj.status();
  auto ship = ElfFile::Open(shipped_elf);
  if (!ship.ok()) return ship.status();
  std::map<std::string, Mapping> maps;
  auto get = [&](const std::string& fn) -> absl::StatusOr<const Mapping*> {
    auto it = maps.find(fn);
    if (it != maps.end()) return &it->second;
    auto m = MapFunction(**obj, **ship, fn);
    if (!m.ok()) return m.status();
    return &maps.emplace(fn, std::move(*m)).first->second;
  };
  for (CriticalSpan& sp : *spans) {
    auto m = get(sp.function);
    if (!m.ok()) return m.status();
    auto out = MapSpan(**m, sp);
    if (!out.ok()) return out.status();
    sp = std::move(*out);
  }
  if (!safe_spans) return absl::OkStatus();
  for (SafeSpan& ss : *safe_spans) {
    auto m = get(ss.function);
    if (!m.ok()) return m.status();
    MapSafeSpan(**m, &ss);
  }
  return absl::OkStatus();
}

}  // namespace sie::synth
