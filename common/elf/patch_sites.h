// The places in a kernel binary's code that the kernel itself rewrites at boot (vmlinux) or at
// module load (.ko), read from the binary's own tables: alternatives, static calls, jump
// labels, retpoline and return-thunk sites, ftrace's entry call (__mcount_loc), lock
// prefixes (.smp_locks), sealed endbr (.ibt_endbr_seal) and runtime constants
// (runtime_ptr_*, runtime_shift_*). Their bytes on disk are not what the live kernel holds,
// so a byte check masks them. Layouts follow the 6.12 kernel (arch/x86/include/asm/
// alternative.h struct alt_instr, include/linux/static_call_types.h struct static_call_site,
// include/linux/jump_label.h struct jump_entry, arch/x86/include/asm/runtime-const.h).
//
// Not read: .call_sites (call depth tracking rewrites every direct call, only under
// retbleed=stuff) and .cfi_sites (FineIBT, clang builds): a kernel that patches them fails
// the byte check rather than passing it wrongly.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/elf/elf_file.h"

namespace sie::elf {

// One table: its section name in a module and the symbols bounding it in vmlinux (where the
// linker merges some tables into other sections), its entry size, where the entry's site field
// is and how wide it is, and how many bytes the kernel may rewrite there.
struct PatchTable {
  const char* section;  // in a .ko; a name ending in '*' is a prefix (runtime_ptr_*)
  const char* start;    // vmlinux: first byte of the table ("" when the section is used)
  const char* stop;     // vmlinux: one past its end
  int entsize;
  bool abs64;  // the site field is an absolute u64 (else s32 relative to the field)
  // Bytes rewritten at the site: > 0 that many; 0 the instruction there; < 0 the u8 at byte
  // -len of the entry (alt_instr.instrlen).
  int len;
};
const std::vector<PatchTable>& KernelPatchTables();

// A place the kernel rewrites: [at, at + len) of section `shndx` (ET_REL: at is a section
// offset) or at address `at` (ET_EXEC, shndx 0). len 0: the whole instruction at `at`.
struct PatchSite {
  int shndx = 0;
  uint64_t at = 0;
  int len = 0;
  std::string table;  // the table's section name, for messages and tests
};

// ET_EXEC: the sites of table `t` whose bytes are `data`, linked at `addr`.
std::vector<PatchSite> SitesInLinkedTable(const PatchTable& t, absl::string_view data,
                                          uint64_t addr);
// ET_REL: the sites of table `t` from the relocations of its site fields (each points at
// target_value + addend of section target_shndx); `data` is the table (for alt_instr lengths).
std::vector<PatchSite> SitesInRelocatableTable(const PatchTable& t, absl::string_view data,
                                               const std::vector<ElfReloc>& relocs);
// Every site of every table `f` has, sorted by (shndx, at).
std::vector<PatchSite> KernelPatchSites(const ElfFile& f);
// The same for `tables`.
std::vector<PatchSite> SitesOfTables(const ElfFile& f, const std::vector<PatchTable>& tables);
// The instructions the exception table (__ex_table) lists: they may fault and be fixed up. The
// kernel never jump-optimizes a kprobe in a function holding one (can_optimize). Not rewritten:
// not part of KernelPatchSites.
std::vector<PatchSite> ExceptionTableSites(const ElfFile& f);

}  // namespace sie::elf
