#include "common/elf/patch_sites.h"

#include <algorithm>
#include <cstring>
#include <tuple>

#include "absl/strings/match.h"

namespace sie::elf {

const std::vector<PatchTable>& KernelPatchTables() {
  static const std::vector<PatchTable> t = {
      // struct alt_instr { s32 instr_offset; s32 repl_offset; u32 ft_flags; u8 instrlen;
      // u8 replacementlen; } __packed: 14 bytes, instrlen at byte 12.
      {".altinstructions", "__alt_instructions", "__alt_instructions_end", 14, false, -12},
      // struct static_call_site { s32 addr; s32 key; }: a 5-byte call/jmp.
      {".static_call_sites", "__start_static_call_sites", "__stop_static_call_sites", 8, false, 5},
      // struct jump_entry { s32 code; s32 target; long key; }: a 2- or 5-byte jmp/nop.
      {"__jump_table", "__start___jump_table", "__stop___jump_table", 16, false, 0},
      // s32 each: a call/jmp/jcc to __x86_indirect_thunk_*, a jmp/jcc to __x86_return_thunk.
      {".retpoline_sites", "__retpoline_sites", "__retpoline_sites_end", 4, false, 0},
      {".return_sites", "__return_sites", "__return_sites_end", 4, false, 0},
      // unsigned long each: the 5-byte call __fentry__ (a nop until ftrace uses it).
      {"__mcount_loc", "__start_mcount_loc", "__stop_mcount_loc", 8, true, 5},
      // s32 each: a lock prefix (a ds prefix on one CPU).
      {".smp_locks", "__smp_locks", "__smp_locks_end", 4, false, 1},
      // s32 each: an endbr64 sealed when IBT is enabled.
      {".ibt_endbr_seal", "__ibt_endbr_seal", "__ibt_endbr_seal_end", 4, false, 4},
      // s32 each (runtime-const.h): the imm64 of a mov, the imm8 of a shr.
      {"runtime_ptr_*", "", "", 4, false, 8},
      {"runtime_shift_*", "", "", 4, false, 1},
  };
  return t;
}

namespace {

int EntryLen(const PatchTable& t, absl::string_view data, size_t entry) {
  if (t.len >= 0) return t.len;
  const size_t at = entry + static_cast<size_t>(-t.len);
  return at < data.size() ? static_cast<unsigned char>(data[at]) : 0;
}

bool SectionMatches(const PatchTable& t, const std::string& name) {
  absl::string_view want = t.section;
  if (absl::EndsWith(want, "*")) return absl::StartsWith(name, want.substr(0, want.size() - 1));
  return name == want;
}

}  // namespace

std::vector<PatchSite> SitesInLinkedTable(const PatchTable& t, absl::string_view data,
                                          uint64_t addr) {
  std::vector<PatchSite> out;
  for (size_t e = 0; e + t.entsize <= data.size(); e += t.entsize) {
    PatchSite s;
    s.table = t.section;
    s.len = EntryLen(t, data, e);
    if (t.abs64) {
      std::memcpy(&s.at, data.data() + e, 8);
    } else {
      int32_t rel = 0;
      std::memcpy(&rel, data.data() + e, 4);
      s.at = addr + e + static_cast<int64_t>(rel);
    }
    if (s.at != 0) out.push_back(s);
  }
  return out;
}

std::vector<PatchSite> SitesInRelocatableTable(const PatchTable& t, absl::string_view data,
                                               const std::vector<ElfReloc>& relocs) {
  std::vector<PatchSite> out;
  for (const ElfReloc& r : relocs) {
    if (r.offset % t.entsize != 0) continue;  // another field of the entry (a key, a target)
    if (r.target_shndx <= 0) continue;        // a site outside this module: none
    PatchSite s;
    s.table = t.section;
    s.shndx = r.target_shndx;
    s.at = r.target_value + r.addend;
    s.len = EntryLen(t, data, r.offset);
    out.push_back(s);
  }
  return out;
}

std::vector<PatchSite> KernelPatchSites(const ElfFile& f) {
  return SitesOfTables(f, KernelPatchTables());
}

std::vector<PatchSite> ExceptionTableSites(const ElfFile& f) {
  // struct exception_table_entry { int insn, fixup, data; } (arch/x86/include/asm/extable.h).
  static const std::vector<PatchTable> kExTable = {
      {"__ex_table", "__start___ex_table", "__stop___ex_table", 12, false, 0}};
  return SitesOfTables(f, kExTable);
}

std::vector<PatchSite> SitesOfTables(const ElfFile& f, const std::vector<PatchTable>& tables) {
  std::vector<PatchSite> out;
  auto add = [&](std::vector<PatchSite> v) { out.insert(out.end(), v.begin(), v.end()); };
  for (const PatchTable& t : tables) {
    if (f.relocatable()) {
      for (const ElfSection& sec : f.sections())
        if (SectionMatches(t, sec.name))
          add(SitesInRelocatableTable(t, sec.data, f.relocs(sec.index)));
      continue;
    }
    // vmlinux: between the bounding symbols, else the section of that name.
    uint64_t start = 0, stop = 0;
    if (*t.start) {
      for (const ElfSymbol& s : f.symbols()) {
        if (s.name == t.start) start = s.value;
        if (s.name == t.stop) stop = s.value;
      }
    }
    bool found = false;
    if (start && stop > start) {
      for (const ElfSection& sec : f.sections()) {
        if (sec.data.empty() || start < sec.addr || stop > sec.addr + sec.data.size()) continue;
        add(SitesInLinkedTable(
            t, absl::string_view(sec.data).substr(start - sec.addr, stop - start), start));
        found = true;
        break;
      }
    }
    if (found) continue;
    for (const ElfSection& sec : f.sections())
      if (SectionMatches(t, sec.name) && !sec.data.empty())
        add(SitesInLinkedTable(t, sec.data, sec.addr));
  }
  std::sort(out.begin(), out.end(), [](const PatchSite& a, const PatchSite& b) {
    return std::tie(a.shndx, a.at) < std::tie(b.shndx, b.at);
  });
  return out;
}

}  // namespace sie::elf
