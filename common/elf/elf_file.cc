#include "common/elf/elf_file.h"

#include <elf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/base/unique_fd.h"

namespace sie::elf {
namespace {

struct ElfCloser {
  void operator()(Elf* e) const { elf_end(e); }
};
using ElfPtr = std::unique_ptr<Elf, ElfCloser>;

int RelocWidth(uint32_t type) {
  switch (type) {
    case R_X86_64_64:
    case R_X86_64_PC64:
      return 8;
    case R_X86_64_16:
    case R_X86_64_PC16:
      return 2;
    case R_X86_64_8:
    case R_X86_64_PC8:
      return 1;
    default:
      return 4;
  }
}

bool PcRelative(uint32_t type) {
  return type == R_X86_64_PC32 || type == R_X86_64_PLT32 || type == R_X86_64_GOTPCREL ||
         type == R_X86_64_GOTPCRELX || type == R_X86_64_REX_GOTPCRELX;
}

}  // namespace

std::string NormalizeSymbolName(const std::string& name) {
  std::vector<std::string> parts = absl::StrSplit(name, '.');
  std::string out = parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p.empty() || std::all_of(p.begin(), p.end(), [](char c) { return isdigit(c); })) continue;
    absl::StrAppend(&out, ".", p);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<ElfFile>> ElfFile::Open(const std::string& path) {
  std::unique_ptr<ElfFile> f(new ElfFile());
  f->path_ = path;
  absl::Status s = f->Load();
  if (!s.ok()) return s;
  return f;
}

absl::Status ElfFile::Load() {
  if (elf_version(EV_CURRENT) == EV_NONE) return absl::InternalError("libelf init failed");
  UniqueFd fd(open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return absl::NotFoundError(absl::StrCat("cannot open ", path_));
  ElfPtr elf(elf_begin(fd.get(), ELF_C_READ_MMAP, nullptr));
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF)
    return absl::InvalidArgumentError(absl::StrCat(path_, ": not an ELF file"));
  GElf_Ehdr eh;
  if (!gelf_getehdr(elf.get(), &eh) || eh.e_machine != EM_X86_64)
    return absl::InvalidArgumentError(absl::StrCat(path_, ": not an x86-64 ELF file"));
  relocatable_ = eh.e_type == ET_REL;
  size_t shstrndx = 0;
  elf_getshdrstrndx(elf.get(), &shstrndx);

  std::vector<std::pair<Elf_Scn*, GElf_Shdr>> rela_secs;
  Elf_Scn* symtab = nullptr;
  GElf_Shdr symtab_sh{};
  size_t nsec = 0;
  elf_getshdrnum(elf.get(), &nsec);
  sections_.resize(nsec);
  for (Elf_Scn* scn = elf_nextscn(elf.get(), nullptr); scn; scn = elf_nextscn(elf.get(), scn)) {
    GElf_Shdr sh;
    gelf_getshdr(scn, &sh);
    ElfSection& s = sections_[elf_ndxscn(scn)];
    s.index = elf_ndxscn(scn);
    const char* n = elf_strptr(elf.get(), shstrndx, sh.sh_name);
    s.name = n ? n : "";
    s.type = sh.sh_type;
    s.flags = sh.sh_flags;
    s.addr = sh.sh_addr;
    s.size = sh.sh_size;
    // Only code and data are kept in memory: vmlinux debug sections are hundreds of MB.
    bool wanted = (sh.sh_flags & SHF_ALLOC) && sh.sh_type != SHT_NOBITS;
    if (wanted) {
      Elf_Data* d = elf_getdata(scn, nullptr);
      if (d && d->d_buf) s.data.assign(static_cast<const char*>(d->d_buf), d->d_size);
    }
    if (sh.sh_type == SHT_SYMTAB) {
      symtab = scn;
      symtab_sh = sh;
    } else if (sh.sh_type == SHT_RELA) {
      rela_secs.push_back({scn, sh});
    }
  }
  if (!symtab) return absl::InvalidArgumentError(absl::StrCat(path_, ": no symbol table"));
  Elf_Data* sd = elf_getdata(symtab, nullptr);
  size_t nsym = symtab_sh.sh_entsize ? symtab_sh.sh_size / symtab_sh.sh_entsize : 0;
  symbols_.resize(nsym);
  for (size_t i = 0; i < nsym; ++i) {
    GElf_Sym gs;
    gelf_getsym(sd, i, &gs);
    ElfSymbol& sym = symbols_[i];
    const char* n = elf_strptr(elf.get(), symtab_sh.sh_link, gs.st_name);
    sym.name = n ? n : "";
    sym.type = GELF_ST_TYPE(gs.st_info);
    sym.bind = GELF_ST_BIND(gs.st_info);
    sym.shndx = gs.st_shndx;
    sym.value = gs.st_value;
    sym.size = gs.st_size;
    if (sym.type == STT_SECTION && sym.shndx > 0 && sym.shndx < static_cast<int>(nsec))
      sym.name = sections_[sym.shndx].name;
  }
  // Symbols by section, for resolving section-relative relocations to the covering symbol.
  std::map<int, std::vector<const ElfSymbol*>> by_sec;
  for (const ElfSymbol& s : symbols_)
    if ((s.type == STT_OBJECT || s.type == STT_FUNC) && s.size > 0) by_sec[s.shndx].push_back(&s);

  for (auto& [scn, sh] : rela_secs) {
    int target_sec = sh.sh_info;
    if (target_sec <= 0 || target_sec >= static_cast<int>(nsec)) continue;
    if (!(sections_[target_sec].flags & SHF_ALLOC)) continue;  // debug info relocations
    Elf_Data* d = elf_getdata(scn, nullptr);
    size_t n = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
    std::vector<ElfReloc>& out = relocs_[target_sec];
    for (size_t i = 0; i < n; ++i) {
      GElf_Rela r;
      gelf_getrela(d, i, &r);
      ElfReloc rel;
      rel.offset = r.r_offset;
      rel.type = GELF_R_TYPE(r.r_info);
      rel.width = RelocWidth(rel.type);
      rel.addend = r.r_addend;
      size_t si = GELF_R_SYM(r.r_info);
      if (si < symbols_.size()) {
        const ElfSymbol& s = symbols_[si];
        rel.target = s.name;
        rel.target_shndx = s.shndx < static_cast<int>(nsec) ? s.shndx : 0;
        rel.target_section = rel.target_shndx > 0 ? sections_[rel.target_shndx].name : "";
        rel.target_value = s.value;
        rel.section_target = s.type == STT_SECTION;
        if (s.type == STT_SECTION) {
          int64_t where = rel.addend + (PcRelative(rel.type) ? 4 : 0);
          for (const ElfSymbol* c : by_sec[s.shndx]) {
            if (where >= static_cast<int64_t>(c->value) &&
                where < static_cast<int64_t>(c->value + c->size)) {
              rel.target = NormalizeSymbolName(c->name);
              rel.addend -= c->value;
              rel.target_value = c->value;
              rel.section_target = false;
              break;
            }
          }
        }
      }
      out.push_back(rel);
    }
    std::sort(out.begin(), out.end(),
              [](const ElfReloc& a, const ElfReloc& b) { return a.offset < b.offset; });
  }
  return absl::OkStatus();
}

const std::vector<ElfReloc>& ElfFile::relocs(int index) const {
  static const std::vector<ElfReloc> kEmpty;
  auto it = relocs_.find(index);
  return it == relocs_.end() ? kEmpty : it->second;
}

uint64_t ElfFile::SectionOffset(const ElfSymbol& sym) const {
  if (relocatable_ || sym.shndx <= 0 || sym.shndx >= static_cast<int>(sections_.size()))
    return sym.value;
  return sym.value - sections_[sym.shndx].addr;
}

absl::StatusOr<std::string> ElfFile::SymbolBytes(const ElfSymbol& sym) const {
  if (sym.shndx <= 0 || sym.shndx >= static_cast<int>(sections_.size()))
    return absl::NotFoundError(absl::StrCat(sym.name, ": undefined symbol in ", path_));
  const ElfSection& s = sections_[sym.shndx];
  uint64_t off = SectionOffset(sym);
  if (off + sym.size > s.data.size())
    return absl::OutOfRangeError(absl::StrCat(sym.name, ": extends past section ", s.name));
  return s.data.substr(off, sym.size);
}

namespace {
// A libelf handle with its file, for the readers that need one section and not the whole file
// (vmlinux with debug info is hundreds of MB).
struct Handle {
  UniqueFd fd;
  ElfPtr elf;
  Elf* get() const { return elf.get(); }
};

absl::StatusOr<Handle> OpenHandle(const std::string& path) {
  if (elf_version(EV_CURRENT) == EV_NONE) return absl::InternalError("libelf init failed");
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  ElfPtr e(elf_begin(fd.get(), ELF_C_READ_MMAP, nullptr));
  if (!e || elf_kind(e.get()) != ELF_K_ELF)
    return absl::InvalidArgumentError(absl::StrCat(path, " is not an ELF file"));
  return Handle{std::move(fd), std::move(e)};
}

}  // namespace

absl::StatusOr<std::string> ReadElfSection(const std::string& path, const std::string& name) {
  auto elf = OpenHandle(path);
  if (!elf.ok()) return elf.status();
  size_t shstrndx;
  if (elf_getshdrstrndx(elf->get(), &shstrndx) != 0)
    return absl::InvalidArgumentError(absl::StrCat(path, ": no section names"));
  for (Elf_Scn* scn = nullptr; (scn = elf_nextscn(elf->get(), scn)) != nullptr;) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh)) continue;
    const char* n = elf_strptr(elf->get(), shstrndx, sh.sh_name);
    if (!n || name != n) continue;
    Elf_Data* d = elf_getdata(scn, nullptr);
    if (!d || !d->d_buf) return std::string();
    return std::string(static_cast<const char*>(d->d_buf), d->d_size);
  }
  return absl::NotFoundError(absl::StrCat(path, " has no ", name, " section"));
}

absl::StatusOr<std::string> ReadBuildId(const std::string& path) {
  auto elf = OpenHandle(path);
  if (!elf.ok()) return elf.status();
  for (Elf_Scn* scn = nullptr; (scn = elf_nextscn(elf->get(), scn)) != nullptr;) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE) continue;
    Elf_Data* d = elf_getdata(scn, nullptr);
    if (!d) continue;
    GElf_Nhdr nh;
    size_t off = 0, name_off, desc_off;
    while ((off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
      const char* base = static_cast<const char*>(d->d_buf);
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
          absl::string_view(base + name_off, 3) == "GNU") {
        std::string hex;
        for (size_t i = 0; i < nh.n_descsz; ++i)
          absl::StrAppendFormat(&hex, "%02x", static_cast<unsigned char>(base[desc_off + i]));
        return hex;
      }
    }
  }
  return std::string();
}

absl::StatusOr<std::string> BuildIdInNotes(absl::string_view notes) {
  // Elf64_Nhdr (three u32: namesz, descsz, type), then name and desc, each padded to 4 bytes.
  auto pad4 = [](size_t n) { return (n + 3) & ~size_t{3}; };
  size_t off = 0;
  while (off + 12 <= notes.size()) {
    uint32_t h[3];
    std::memcpy(h, notes.data() + off, sizeof h);
    const size_t name = off + 12, desc = name + pad4(h[0]), end = desc + pad4(h[1]);
    if (end > notes.size() || end <= off)
      return absl::InvalidArgumentError(absl::StrCat("truncated ELF note at byte ", off));
    if (h[2] == NT_GNU_BUILD_ID && h[0] == 4 &&
        notes.substr(name, 4) == absl::string_view("GNU\0", 4)) {
      std::string hex;
      for (size_t i = 0; i < h[1]; ++i)
        absl::StrAppendFormat(&hex, "%02x", static_cast<unsigned char>(notes[desc + i]));
      return hex;
    }
    off = end;
  }
  return std::string();
}

}  // namespace sie::elf
