#include "synth/analysis/callers.h"

#include <elf.h>

#include <map>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sie::synth::analysis {
namespace {

// Sections whose relocations may store a function's address (tables of operations, pointers
// initialized statically); code metadata (ORC, alternatives, __patchable_function_entries,
// jump tables of a switch pointing inside a function) does not make a function callable.
bool HoldsPointers(const ElfSection& s) {
  for (const char* p : {".data", ".rodata", ".init.data", ".ref.data", ".exit.data"})
    if (absl::StartsWith(s.name, p)) return true;
  return false;
}

// The function a direct call or jump of `ins` (in `g`) lands on: its relocation's symbol, or
// for one the assembler resolved (a local symbol of the same section), the function starting
// at that section offset (`starts`: fn's section).
std::optional<std::string> BranchTarget(const Function& g, const Insn& ins,
                                        const std::map<uint64_t, std::string>* starts) {
  if (!ins.call_target.empty() && ins.call_target[0] != '@') return ins.call_target;
  if (!starts || ins.ops.empty() || ins.ops[0].type != OpType::kImm) return std::nullopt;
  auto it = starts->find(g.sec_offset + static_cast<uint64_t>(ins.ops[0].imm));
  return it == starts->end() ? std::nullopt : std::optional<std::string>(it->second);
}

}  // namespace

absl::StatusOr<std::vector<CallSite>> DirectCallSites(const ElfFile& elf,
                                                      const std::vector<Function>& fns,
                                                      const Function& fn) {
  const ElfSymbol* sym = nullptr;
  for (const ElfSymbol& s : elf.symbols())
    if (s.name == fn.name && s.type == STT_FUNC) sym = &s;
  if (!sym || sym->bind != STB_LOCAL)
    return absl::FailedPreconditionError(
        absl::StrCat(fn.name, " is a global function: callers in other objects are unknown"));
  for (const ElfSection& s : elf.sections()) {
    if (!HoldsPointers(s)) continue;
    for (const ElfReloc& r : elf.relocs(s.index))
      if (r.target == fn.name && r.addend == 0)
        return absl::FailedPreconditionError(
            absl::StrCat("the address of ", fn.name, " is stored in ", s.name,
                         ": it may be called through a pointer from anywhere"));
  }
  std::map<uint64_t, std::string> starts;  // fn's section, for calls without a relocation
  for (const Function& g : fns)
    if (g.section == fn.section) starts.emplace(g.sec_offset, g.name);
  std::vector<CallSite> sites;
  for (const Function& g : fns)
    for (int i = 0; i < static_cast<int>(g.insns.size()); ++i) {
      const Insn& ins = g.insns[i];
      const bool direct = ins.is_call || ins.is_jump;
      std::optional<std::string> to;
      if (direct && !ins.target)
        to = BranchTarget(g, ins, g.section == fn.section ? &starts : nullptr);
      if (to && *to == fn.name) {
        if (!ins.is_call)
          return absl::FailedPreconditionError(
              absl::StrCat(g.name, " tail-calls ", fn.name, " at +0x", absl::Hex(ins.offset),
                           ": its caller's frame is gone while it runs"));
        if (g.name != fn.name) sites.push_back({&g, i});
        continue;
      }
      for (const Insn::Reloc& r : ins.relocs)
        if (!direct && r.target == fn.name)
          return absl::FailedPreconditionError(
              absl::StrCat("the address of ", fn.name, " is taken by ", g.name, "+0x",
                           absl::Hex(ins.offset), " (`", ins.Text(), "`)"));
    }
  return sites;
}

}  // namespace sie::synth::analysis
