#include "synth/pipeline/traceable.h"

#include <elf.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/diag.h"
#include "common/base/status_macros.h"
#include "common/elf/elf_file.h"
#include "synth/refusal.h"

namespace sie::synth::pipeline {

namespace {

// vmlinux links __mcount_loc into init data between __start_mcount_loc and __stop_mcount_loc.
std::vector<uint64_t> LinkedSites(const elf::ElfFile& elf) {
  const elf::ElfSymbol *start = nullptr, *stop = nullptr;
  for (const auto& s : elf.symbols()) {
    if (s.name == "__start_mcount_loc") start = &s;
    if (s.name == "__stop_mcount_loc") stop = &s;
  }
  if (!start || !stop || start->shndx != stop->shndx || start->shndx <= 0 ||
      start->shndx >= static_cast<int>(elf.sections().size()))
    return {};
  const elf::ElfSection& sec = elf.sections()[start->shndx];
  uint64_t off = start->value - sec.addr, len = stop->value - start->value;
  if (off + len > sec.data.size()) return {};
  std::vector<uint64_t> sites(len / 8);
  std::memcpy(sites.data(), sec.data.data() + off, sites.size() * 8);
  return sites;
}

}  // namespace

absl::StatusOr<std::optional<std::set<std::string>>> TraceableFunctions(const std::string& binary) {
  ASSIGN_OR_RETURN(elf, elf::ElfFile::Open(binary));
  std::set<std::string> out;
  if (elf->relocatable()) {  // an object or .ko: one relocation per site, resolved to its function
    for (const auto& s : elf->sections())
      if (s.name == "__mcount_loc") {
        for (const auto& r : elf->relocs(s.index)) out.insert(r.target);
        return out;
      }
    return std::nullopt;
  }
  std::vector<uint64_t> sites = LinkedSites(*elf);
  if (sites.empty()) return std::nullopt;
  std::sort(sites.begin(), sites.end());
  for (const auto& f : elf->symbols()) {
    if (f.type != STT_FUNC || f.size == 0) continue;
    auto it = std::lower_bound(sites.begin(), sites.end(), f.value);
    if (it != sites.end() && *it < f.value + f.size) out.insert(f.name);
  }
  return out;
}

absl::Status CheckTraceable(const std::set<std::string>& traceable,
                            const std::vector<CriticalSpan>& spans,
                            std::vector<std::string>* warnings) {
  std::set<std::string> native_only, refused;
  for (const auto& s : spans) {
    if (traceable.count(s.function)) continue;
    // What sie_native can probe (runtime/loader/native.cc NativeUnsupported): registers,
    // cells, and the flags of `cmp REG, IMM` and `test REG, IMM`.
    bool native =
        s.kind == SpanKind::kReg || s.kind == SpanKind::kMem || artifact::NativeFlagsSpan(s);
    (native ? native_only : refused).insert(s.function);
  }
  if (!refused.empty())
    return Classified(
        FailedWithHint(
            absl::StrCat(
                "no ftrace site in ", absl::StrJoin(refused, ", "),
                ": the kernel's kprobe events (BPF) refuse to probe it, "
                "and its spans need BPF (recompute, or flags other than `cmp/test REG, IMM`)"),
            "a kernel built with CONFIG_KPROBE_EVENTS_ON_NOTRACE=y accepts it; or "
            "restrict the tunable with 'functions:' to other callers"),
        Refusal::kNotrace);
  if (!native_only.empty())
    warnings->push_back(absl::StrCat("no ftrace site in ", absl::StrJoin(native_only, ", "),
                                     ": only the native engine (sie_native.ko) can probe it"));
  return absl::OkStatus();
}

}  // namespace sie::synth::pipeline
