// Stage 8: carrying spans from the baseline object onto the shipped binary. The function is
// found by name (preferring equal size), its instructions are aligned with the object's by LCS
// with relocation fields masked and static-key jmp/nop pairs treated as equal, and every CS
// instruction and probe must have an exact counterpart. No silent fallback.
#include <elf.h>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/diag.h"
#include "common/elf/elf_file.h"
#include "common/elf/patch_sites.h"
#include "synth/analysis/align.h"
#include "synth/analysis/analyze.h"
#include "synth/analysis/code_ranges.h"
#include "synth/analysis/disasm.h"
#include "synth/analysis/optprobe.h"
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
  ElfSymbol sym;             // the shipped function's symbol
  std::string bytes;         // its bytes
  ShippedCode code;          // for the byte check (MakeShippedCode)
  // Function-relative static call and jump label sites: the kernel refuses a kprobe there
  // (kernel/kprobes.c check_kprobe_address_safe: static_call_text_reserved,
  // jump_label_text_reserved).
  std::set<uint64_t> kprobe_reserved;
  // What decides whether the kernel jump-optimizes a probe in this function.
  analysis::OptimizeContext opt;
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
        best.sym = *s;
        best.bytes = std::move(*bytes);
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

// The apply probe of `out` sits on a static call site or jump label, where the kernel refuses
// kprobes. A reg span whose registers (target, X, inputs read at the probe) are all callee-saved
// keeps its values across a static call, which returns to the next instruction: the probe moves
// there when no other path joins it. Anything else is refused here rather than by the kernel.
absl::Status MoveOffReservedSite(const Mapping& mp, CriticalSpan* out) {
  const uint64_t p = out->probe_offset;
  const std::string where = absl::StrFormat("%s+0x%x", out->function, p);
  auto refuse = [&](const std::string& why) {
    return Classified(
        FailedWithHint(absl::StrCat(where,
                                    ": the probe place is a static call or jump label "
                                    "site, where the kernel refuses kprobes, and ",
                                    why),
                       "the constant cannot be probed there; look for another use of it"),
        Refusal::kUnsafe);
  };
  const int i = mp.shipped.IndexAt(p);
  if (i < 0 || i + 1 >= static_cast<int>(mp.shipped.insns.size()) || !mp.shipped.insns[i].is_call)
    return refuse("it is no call the probe could follow");
  bool regs_ok = out->kind == artifact::SpanKind::kReg && !out->mark_offset &&
                 analysis::CalleeSavedRegs().count(out->target_reg) &&
                 (out->save_reg.empty() || analysis::CalleeSavedRegs().count(out->save_reg));
  for (const auto& in : out->inputs)
    regs_ok &= !in.mem && (in.save_offset || analysis::CalleeSavedRegs().count(in.reg));
  if (!regs_ok) return refuse("the span's registers do not all survive the call");
  const uint64_t next = mp.shipped.insns[i + 1].offset;
  if (mp.shipped.branch_targets.count(next) || mp.kprobe_reserved.count(next))
    return refuse("the instruction after the call is joined by another path or reserved too");
  out->probe_offset = next;
  out->candidates = {next};
  return absl::OkStatus();
}

// Where the apply probe may go: its place, and for a reg span without a path token the
// equivalent places after it (the loader moves it only among these).
std::vector<uint64_t> ProbePlaces(const CriticalSpan& s) {
  std::vector<uint64_t> at = {s.probe_offset};
  if (s.kind == artifact::SpanKind::kReg && !s.mark_offset)
    for (uint64_t c : s.candidates)
      if (c != s.probe_offset) at.push_back(c);
  return at;
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
  if (mp.kprobe_reserved.count(out.probe_offset))
    if (auto st = MoveOffReservedSite(mp, &out); !st.ok()) return st;
  for (auto& in : out.inputs) {
    if (!in.save_offset) continue;
    auto x = mp.Map(*in.save_offset, "input save");
    if (!x.ok()) return x.status();
    in.save_offset = *x;
  }
  out.jump_windows.emplace();
  for (uint64_t at : ProbePlaces(out))
    if (auto limit = analysis::JumpLimit(mp.opt, at); limit.ok())
      out.jump_windows->push_back({at, *limit});
  out.expect_bytes =
      ExpectBytes(mp.shipped.insns[mp.shipped.IndexAt(out.probe_offset)], mp.relocatable);
  out.code = BuildCodeRanges(mp.code, SpanCover(out));
  return out;
}

bool AbsoluteReloc(uint32_t type) {
  return type == R_X86_64_32 || type == R_X86_64_32S || type == R_X86_64_64;
}
bool PcReloc(uint32_t type) { return type == R_X86_64_PC32 || type == R_X86_64_PLT32; }

uint64_t FieldValue(absl::string_view bytes, uint64_t at, int width) {
  uint64_t v = 0;
  for (int k = width - 1; k >= 0; --k)
    v = (v << 8) | static_cast<unsigned char>(at + k < bytes.size() ? bytes[at + k] : 0);
  return v;
}

// What the byte check needs of one shipped function: the sites the kernel rewrites (from the
// binary's own tables, `sites`) and the relocated fields. A module's relocations are the .ko's
// own (resolved at runtime: a module-local target through its section, another one by name).
// vmlinux's are final but for KASLR's: an absolute address (R_X86_64_32/32S/64) moves with
// the kernel, a PC-relative reference to a per-CPU symbol moves the other way; the fields are
// the V1 object's relocations carried over by the instruction alignment (the -dbg vmlinux
// keeps none), per-CPU targets known from their section (`percpu`: vmlinux's per-CPU names).
void MakeShippedCode(const ElfFile& ship, const std::vector<elf::PatchSite>& sites,
                     const std::vector<elf::PatchSite>& extable,
                     const std::set<std::string>& percpu, Mapping* mp) {
  ShippedCode& c = mp->code;
  c.fn = &mp->shipped;
  c.bytes = mp->bytes;
  const uint64_t base = mp->sym.value;  // a section offset (.ko) or an address (vmlinux)
  const int shndx = ship.relocatable() ? mp->sym.shndx : 0;
  if (!ship.relocatable()) c.link_address = mp->sym.value;
  for (const elf::PatchSite& p : sites) {
    if (p.shndx != shndx || p.at < base || p.at >= base + mp->bytes.size()) continue;
    c.masks.push_back({p.at - base, p.len});
    if (p.table == ".static_call_sites" || p.table == "__jump_table")
      mp->kprobe_reserved.insert(p.at - base);
    // opt.c copy_optimized_instructions: ftrace, alternatives, jump labels, static calls.
    if (p.table == ".static_call_sites" || p.table == "__jump_table" ||
        p.table == ".altinstructions" || p.table == "__mcount_loc")
      mp->opt.reserved.push_back({p.at - base, p.len});
  }
  mp->opt.fn = &mp->shipped;
  mp->opt.entry_text = mp->sym.shndx > 0 &&
                       mp->sym.shndx < static_cast<int>(ship.sections().size()) &&
                       ship.sections()[mp->sym.shndx].name == ".entry.text";
  for (const elf::PatchSite& p : extable)
    if (p.shndx == shndx && p.at >= base && p.at < base + mp->bytes.size())
      mp->opt.has_extable = true;
  if (ship.relocatable()) {
    for (const elf::ElfReloc& r : ship.relocs(mp->sym.shndx)) {
      if (r.offset < base || r.offset >= base + mp->bytes.size()) continue;
      const uint64_t off = r.offset - base;
      // A module's per-CPU data is placed by the loader, not at its section's address.
      if ((!PcReloc(r.type) && !AbsoluteReloc(r.type)) ||
          absl::StartsWith(r.target_section, ".data..percpu")) {
        c.masks.push_back({off, r.width});
        continue;
      }
      artifact::CodeReloc cr;
      cr.offset = off;
      cr.width = r.width;
      cr.kind = PcReloc(r.type) ? "pc" : "abs";
      if (r.target_shndx > 0) {  // in this module: through its section's address
        cr.symbol = r.target_section;
        cr.section = true;
        cr.addend = static_cast<int64_t>(r.target_value) + r.addend;
      } else {
        cr.symbol = r.target;
        cr.addend = r.addend;
      }
      c.relocs.push_back(cr);
    }
    return;
  }
  std::vector<int> obj_of(mp->shipped.insns.size(), -1);
  for (size_t i = 0; i < mp->match.size(); ++i)
    if (mp->match[i] >= 0) obj_of[mp->match[i]] = static_cast<int>(i);
  for (size_t j = 0; j < mp->shipped.insns.size(); ++j) {
    if (obj_of[j] < 0) continue;
    const Insn& si = mp->shipped.insns[j];
    for (const Insn::Reloc& r : mp->obj.insns[obj_of[j]].relocs) {
      const bool pcpu = absl::StartsWith(r.target_section, ".data..percpu") ||
                        (r.target_section.empty() && percpu.count(r.target));
      std::string kind;
      if (AbsoluteReloc(r.type) && !pcpu) kind = "kaslr";
      if (PcReloc(r.type) && pcpu) kind = "kaslr_pc";
      if (kind.empty()) continue;  // final in vmlinux: compared literally
      artifact::CodeReloc cr;
      cr.offset = si.offset + r.at;
      cr.width = r.width;
      cr.kind = kind;
      cr.value = FieldValue(mp->bytes, cr.offset, r.width);
      c.relocs.push_back(cr);
    }
  }
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
                          std::vector<CriticalSpan>* spans, std::vector<SafeSpan>* safe_spans,
                          std::string* unbounded) {
  auto obj = ElfFile::Open(baseline_obj);
  if (!obj.ok()) return obj.status();
  auto ship = ElfFile::Open(shipped_elf);
  if (!ship.ok()) return ship.status();
  const std::vector<elf::PatchSite> sites = elf::KernelPatchSites(**ship);
  const std::vector<elf::PatchSite> extable = elf::ExceptionTableSites(**ship);
  std::set<std::string> percpu;
  if (!(*ship)->relocatable())
    for (const ElfSymbol& s : (*ship)->symbols())
      if (s.shndx > 0 && s.shndx < static_cast<int>((*ship)->sections().size()) &&
          absl::StartsWith((*ship)->sections()[s.shndx].name, ".data..percpu"))
        percpu.insert(s.name);
  std::map<std::string, Mapping> maps;
  auto get = [&](const std::string& fn) -> absl::StatusOr<const Mapping*> {
    auto it = maps.find(fn);
    if (it != maps.end()) return &it->second;
    auto m = MapFunction(**obj, **ship, fn);
    if (!m.ok()) return m.status();
    Mapping& mp = maps.emplace(fn, std::move(*m)).first->second;
    MakeShippedCode(**ship, sites, extable, percpu, &mp);
    return &mp;
  };
  for (CriticalSpan& sp : *spans) {
    auto m = get(sp.function);
    if (!m.ok()) return m.status();
    auto out = MapSpan(**m, sp);
    if (!out.ok()) return out.status();
    sp = std::move(*out);
  }
  if (!safe_spans) return absl::OkStatus();
  for (auto it = safe_spans->begin(); it != safe_spans->end();) {
    auto m = get(it->function);
    if (!m.ok() && it->how == SafeSpanHow::kCaller && unbounded) {
      // A caller the shipped binary does not have as such (inlined, renamed): not bounded.
      if (unbounded->empty())
        *unbounded =
            absl::StrCat("read by its caller ", it->function,
                         ", which the shipped binary does not have (", m.status().message(), ")");
      it = safe_spans->erase(it);
      continue;
    }
    if (!m.ok()) return m.status();
    MapSafeSpan(**m, &*it);
    it->code = BuildCodeRanges((*m)->code, PlaceCover(it->start));
    ++it;
  }
  return absl::OkStatus();
}

}  // namespace sie::synth
