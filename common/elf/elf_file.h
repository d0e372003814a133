// Reading ELF files (relocatable .o/.ko and linked vmlinux) with libelf, the one ELF reader of
// sie: sections, symbols and relocations, one section, the build id. Relocations are resolved to a
// symbol name + addend (section symbols are rewritten to the covering object/function symbol, as
// kpatch does) so variants compare by what they point at, not by offsets that move with layout.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sie::elf {

struct ElfSection {
  int index = 0;
  std::string name;
  uint32_t type = 0;
  uint64_t flags = 0;
  uint64_t addr = 0;  // sh_addr (0 in relocatable objects)
  uint64_t size = 0;
  std::string data;  // empty for SHT_NOBITS
};

struct ElfSymbol {
  std::string name;
  int type = 0;  // STT_*
  int bind = 0;  // STB_*
  int shndx = 0;
  uint64_t value = 0;  // section offset (ET_REL) or address (ET_EXEC)
  uint64_t size = 0;
};

struct ElfReloc {
  uint64_t offset = 0;  // within the relocated section
  uint32_t type = 0;    // R_X86_64_*
  std::string target;   // symbol name (section symbols resolved to a covering symbol)
  int64_t addend = 0;   // adjusted when a section symbol was resolved
  int width = 4;        // bytes patched at offset
  // The symbol `target` names: its section (0: undefined, defined elsewhere), the section's
  // name and the symbol's value, so target_value + addend is where the relocation points
  // within section target_shndx (a section offset in ET_REL files).
  int target_shndx = 0;
  std::string target_section;
  uint64_t target_value = 0;
  bool section_target = false;  // `target` is a section (no covering symbol was found)
};

class ElfFile {
 public:
  static absl::StatusOr<std::unique_ptr<ElfFile>> Open(const std::string& path);

  const std::string& path() const { return path_; }
  bool relocatable() const { return relocatable_; }
  const std::vector<ElfSection>& sections() const { return sections_; }
  const std::vector<ElfSymbol>& symbols() const { return symbols_; }
  // Relocations applying to section `index`, sorted by offset.
  const std::vector<ElfReloc>& relocs(int index) const;

  // Bytes of [value, value+size) of a symbol's section (addresses translated for ET_EXEC).
  absl::StatusOr<std::string> SymbolBytes(const ElfSymbol& sym) const;
  // Offset of a symbol inside its section.
  uint64_t SectionOffset(const ElfSymbol& sym) const;

 private:
  ElfFile() = default;
  absl::Status Load();
  std::string path_;
  bool relocatable_ = true;
  std::vector<ElfSection> sections_;
  std::vector<ElfSymbol> symbols_;
  std::map<int, std::vector<ElfReloc>> relocs_;
};

// Reads the section `name` of `path` (e.g. ".comment") without loading the rest of the file.
absl::StatusOr<std::string> ReadElfSection(const std::string& path, const std::string& name);
// The GNU build-id note as hex, or "" when the file has none.
absl::StatusOr<std::string> ReadBuildId(const std::string& path);
// The GNU build-id in raw ELF notes (what /sys/kernel/notes and a module's
// /sys/module/<name>/notes/.note.gnu.build-id hold) as hex, "" when there is none; an error
// for a truncated note.
absl::StatusOr<std::string> BuildIdInNotes(absl::string_view notes);

// Normalizes a function name for matching across builds: numeric clone suffixes are dropped
// ("foo.isra.0" -> "foo.isra", "bar.constprop.3.cold" -> "bar.constprop.cold", "x.123" -> "x").
std::string NormalizeSymbolName(const std::string& name);

}  // namespace sie::elf
