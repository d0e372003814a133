#include "tests/support/guest_code.h"

#include <capstone/capstone.h>
#include <elf.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/files.h"
#include "common/base/unique_fd.h"
#include "common/elf/elf_file.h"
#include "tests/support/guest_files.h"

namespace sie::guest {

absl::StatusOr<std::vector<Insn>> DisassembleFunction(const std::filesystem::path& ko,
                                                      const std::string& func) {
  auto elf = elf::ElfFile::Open(ko.string());
  if (!elf.ok()) return elf.status();
  const elf::ElfSymbol* sym = nullptr;
  for (const auto& s : (*elf)->symbols())
    if (s.type == STT_FUNC && s.name == func) sym = &s;
  if (!sym) return absl::NotFoundError(absl::StrCat(func, " not in ", ko.string()));
  auto code = (*elf)->SymbolBytes(*sym);
  if (!code.ok()) return code.status();
  csh cs;
  if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK) return absl::InternalError("cs_open");
  cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
  cs_insn* insn = nullptr;
  const size_t n =
      cs_disasm(cs, reinterpret_cast<const uint8_t*>(code->data()), code->size(), 0, 0, &insn);
  std::vector<Insn> out;
  for (size_t i = 0; i < n; i++) {
    const std::string m = insn[i].mnemonic;
    bool leaves = m == "ret";
    if (m == "jmp" && insn[i].detail->x86.op_count == 1 &&
        insn[i].detail->x86.operands[0].type == X86_OP_IMM) {
      const uint64_t t = insn[i].detail->x86.operands[0].imm;
      leaves = t >= code->size();
    }
    out.push_back({insn[i].address, insn[i].size, absl::StrCat(m, " ", insn[i].op_str), leaves});
  }
  cs_free(insn, n);
  cs_close(&cs);
  if (out.empty()) return absl::InternalError(absl::StrCat(func, ": nothing disassembled"));
  return out;
}

std::string Listing(const std::vector<Insn>& insns) {
  std::string s;
  for (const Insn& i : insns) absl::StrAppendFormat(&s, "  +0x%x  %s\n", i.offset, i.text);
  return s;
}

absl::StatusOr<uint64_t> FindOffset(const std::filesystem::path& ko, const std::string& func,
                                    const std::string& text, bool after) {
  absl::StatusOr<std::vector<Insn>> insns = DisassembleFunction(ko, func);
  if (!insns.ok()) return insns.status();
  for (size_t i = 0; i < insns->size(); i++) {
    if ((*insns)[i].text != text) continue;
    if (!after) return (*insns)[i].offset;
    if (i + 1 < insns->size()) return (*insns)[i + 1].offset;
  }
  return absl::NotFoundError(
      absl::StrCat("no '", text, "' in ", func, " (code generation changed?):\n", Listing(*insns)));
}

absl::StatusOr<uint64_t> KallsymsAddress(const std::string& sym, const std::string& module) {
  absl::StatusOr<std::string> all = ReadFile("/proc/kallsyms");
  if (!all.ok()) return all.status();
  for (absl::string_view line : absl::StrSplit(*all, '\n')) {
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() < 4 || f[2] != sym || f[3] != absl::StrCat("[", module, "]")) continue;
    uint64_t addr;
    if (!absl::SimpleHexAtoi(f[0], &addr) || addr == 0)
      return absl::PermissionDeniedError("kallsyms addresses are hidden (kptr_restrict?)");
    return addr;
  }
  return absl::NotFoundError(absl::StrCat(sym, " [", module, "] not in /proc/kallsyms"));
}

std::optional<std::string> KprobeListLine(const std::string& func, uint64_t off) {
  absl::StatusOr<std::string> list = ReadFile(kKprobeList);
  if (!list.ok()) return std::nullopt;
  const std::string needle = absl::StrFormat("%s+0x%x ", func, off);
  for (absl::string_view line : absl::StrSplit(*list, '\n'))
    if (absl::StrContains(line, needle)) return std::string(absl::StripAsciiWhitespace(line));
  return std::nullopt;
}

absl::StatusOr<std::string> WaitKprobeListLine(const std::string& func, uint64_t off,
                                               bool wait_optimized) {
  std::optional<std::string> found;
  for (int i = 0; i < 40; i++) {
    found = KprobeListLine(func, off);
    if (found && (!wait_optimized || absl::StrContains(*found, "[OPTIMIZED]"))) return *found;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!found)
    return absl::NotFoundError(absl::StrFormat("%s+0x%x not in %s", func, off, kKprobeList));
  return *found;
}

}  // namespace sie::guest
