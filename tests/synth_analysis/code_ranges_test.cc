// The bytes a constant relies on (synth/analysis/code_ranges.h) and the sites the kernel
// rewrites (common/elf/patch_sites.h), on synthetic code and table contents.
#include "synth/analysis/code_ranges.h"

#include <cstring>

#include "absl/strings/escaping.h"
#include "common/elf/patch_sites.h"
#include "gtest/gtest.h"

namespace sie::synth {
namespace {

// A function shaped like scan_swap_map_slots around LATENCY_LIMIT: endbr, ftrace's nop, the
// constant, a static call (cond_resched), an absolute address (KASLR moves it), ret.
const char kHex[] =
    "f30f1efa"        // 0x00 endbr64
    "0f1f440000"      // 0x04 nop5 (__mcount_loc)
    "41bc00010000"    // 0x09 mov r12d, 0x100
    "e801549100"      // 0x0f call __SCT__cond_resched (.static_call_sites)
    "0fb6742418"      // 0x14 movzx esi, byte [rsp+0x18]
    "48c7c7c0b0a082"  // 0x19 mov rdi, 0xffffffff82a0b0c0 (R_X86_64_32S at 0x1c)
    "89c3"            // 0x20 mov ebx, eax
    "c3";             // 0x22 ret

struct Fixture {
  analysis::Function fn;
  ShippedCode code;
  Fixture() {
    std::string bytes;
    bytes = absl::HexStringToBytes(kHex);
    auto f = analysis::DisassembleBytes("f", bytes);
    EXPECT_TRUE(f.ok()) << f.status();
    fn = *f;
    code.fn = &fn;
    code.bytes = bytes;
    code.link_address = 0xffffffff81001000;
  }
};

artifact::CriticalSpan Span(uint64_t cs_start, uint64_t cs_end, uint64_t probe,
                            std::vector<uint64_t> candidates = {}) {
  artifact::CriticalSpan s;
  s.cs_start = cs_start;
  s.cs_end = cs_end;
  s.probe_offset = probe;
  s.candidates = std::move(candidates);
  return s;
}

TEST(CodeRanges, CoverTheSpanAndEveryProbePlaceAsWholeInstructionsMerged) {
  Fixture fx;
  // CS [0x09, 0x0f), apply at 0x0f, a candidate at 0x14: one range [0x09, 0x19).
  auto r = BuildCodeRanges(fx.code, SpanCover(Span(0x09, 0x0f, 0x0f, {0x14})));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].offset, 0x09u);
  EXPECT_EQ(r[0].bytes, "41bc00010000e8015491000fb6742418");
  EXPECT_TRUE(r[0].relocs.empty());
  // A place inside an instruction widens to it; touching ranges merge.
  r = BuildCodeRanges(fx.code, {{0x0f, 0x10}, {0x14, 0x15}});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].offset, 0x0fu);
  EXPECT_EQ(r[0].end(), 0x19u);
  r = BuildCodeRanges(fx.code, {{0x1a, 0x1b}, {0x10, 0x11}});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].offset, 0x0fu);
  EXPECT_EQ(r[0].end(), 0x14u);
  EXPECT_EQ(r[1].offset, 0x19u);
  EXPECT_EQ(r[1].end(), 0x20u);
  // A probe near the end is clamped to the function; disjoint places stay apart.
  r = BuildCodeRanges(fx.code, SpanCover(Span(0x09, 0x0f, 0x20)));
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].bytes, "41bc00010000");
  EXPECT_EQ(r[1].offset, 0x20u);
  EXPECT_EQ(r[1].bytes, "89c3c3");
  // Save points and the mark are places too.
  artifact::CriticalSpan s = Span(0x14, 0x19, 0x20);
  s.mark_offset = 0x14;
  s.kind = artifact::SpanKind::kRecompute;
  s.save_offset = 0x04;
  s.save_reg = "si";
  r = BuildCodeRanges(fx.code, SpanCover(s));
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].offset, 0x04u);
  EXPECT_EQ(r[0].end(), 0x09u);
  EXPECT_EQ(r[1].offset, 0x14u);
  EXPECT_EQ(r[2].offset, 0x20u);
}

TEST(CodeRanges, MasksRewrittenSitesAndRecordsRelocatedFields) {
  Fixture fx;
  fx.code.masks = {{0x04, 5}, {0x0f, 0}};  // ftrace's nop; a static call (its instruction)
  artifact::CodeReloc k;
  k.offset = 0x1c;
  k.width = 4;
  k.kind = "kaslr";
  k.value = 0x82a0b0c0;
  artifact::CodeReloc under;  // a field inside a masked site keeps only the mask
  under.offset = 0x10;
  under.width = 4;
  under.kind = "pc";
  under.symbol = "__SCT__cond_resched";
  fx.code.relocs = {k, under};
  auto r = BuildCodeRanges(fx.code, {{0x00, 0x23}});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].offset, 0u);
  EXPECT_EQ(r[0].bytes, "f30f1efa??????????41bc00010000??????????0fb674241848c7c7????????89c3c3");
  ASSERT_EQ(r[0].relocs.size(), 1u);
  EXPECT_EQ(r[0].relocs[0], k);
  EXPECT_EQ(r[0].link_address, 0xffffffff81001000u);
  // A range without KASLR fields records no link address.
  r = BuildCodeRanges(fx.code, {{0x20, 0x22}});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].link_address, 0u);
  EXPECT_TRUE(r[0].relocs.empty());
}

const elf::PatchTable& Table(const std::string& section) {
  for (const auto& t : elf::KernelPatchTables())
    if (section == t.section) return t;
  ADD_FAILURE() << "no table " << section;
  return elf::KernelPatchTables()[0];
}

template <typename T>
void Put(std::string& data, size_t at, T v) {
  if (data.size() < at + sizeof v) data.resize(at + sizeof v);
  std::memcpy(data.data() + at, &v, sizeof v);
}

TEST(PatchSites, LinkedTablesAreSelfRelativeOrAbsolute) {
  // struct static_call_site { s32 addr; s32 key; } at 0x1000: sites 0x1500 and 0x0ff8.
  std::string sc;
  Put<int32_t>(sc, 0, 0x500);
  Put<int32_t>(sc, 4, 0x7777);
  Put<int32_t>(sc, 8, -0x10);
  Put<int32_t>(sc, 12, 0x7777);
  auto s = elf::SitesInLinkedTable(Table(".static_call_sites"), sc, 0x1000);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].at, 0x1500u);
  EXPECT_EQ(s[0].len, 5);
  EXPECT_EQ(s[1].at, 0x0ff8u);
  // struct alt_instr (14 bytes, packed): the length is the entry's instrlen (byte 12).
  std::string alt;
  Put<int32_t>(alt, 0, 0x40);
  Put<uint8_t>(alt, 12, 6);
  Put<uint8_t>(alt, 13, 3);
  Put<int32_t>(alt, 14, 0x40);
  Put<uint8_t>(alt, 26, 11);
  Put<uint8_t>(alt, 27, 11);
  s = elf::SitesInLinkedTable(Table(".altinstructions"), alt, 0x2000);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].at, 0x2040u);
  EXPECT_EQ(s[0].len, 6);
  EXPECT_EQ(s[1].at, 0x204eu);
  EXPECT_EQ(s[1].len, 11);
  // struct jump_entry { s32 code; s32 target; long key; }: the instruction at code.
  std::string jt;
  Put<int32_t>(jt, 0, 0x100);
  Put<int64_t>(jt, 8, 0);
  s = elf::SitesInLinkedTable(Table("__jump_table"), jt, 0x3000);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].at, 0x3100u);
  EXPECT_EQ(s[0].len, 0);
  // __mcount_loc: absolute addresses of the 5-byte call __fentry__.
  std::string mc;
  Put<uint64_t>(mc, 0, 0xffffffff81000004);
  s = elf::SitesInLinkedTable(Table("__mcount_loc"), mc, 0x4000);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].at, 0xffffffff81000004u);
  EXPECT_EQ(s[0].len, 5);
}

TEST(PatchSites, RelocatableTablesComeFromTheirRelocations) {
  // A module's .static_call_sites: R_X86_64_PC32 at each entry's addr (offset 0, 8) and key
  // (4, 12, ignored); the site is the target's value + addend in its section.
  std::vector<elf::ElfReloc> rel(4);
  for (int i = 0; i < 4; ++i) {
    rel[i].offset = 4 * i;
    rel[i].type = 2;  // R_X86_64_PC32
    rel[i].target_shndx = i % 2 ? 0 : 2;
    rel[i].target_value = 0x40;
    rel[i].addend = 0x10 * i;
  }
  auto s = elf::SitesInRelocatableTable(Table(".static_call_sites"), std::string(16, '\0'), rel);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].shndx, 2);
  EXPECT_EQ(s[0].at, 0x40u);
  EXPECT_EQ(s[1].at, 0x60u);
  EXPECT_EQ(s[1].len, 5);
  // A module's alt_instr: instrlen from the table's bytes.
  std::string alt(14, '\0');
  alt[12] = 9;
  elf::ElfReloc a;
  a.offset = 0;
  a.target_shndx = 3;
  a.addend = 0x123;
  s = elf::SitesInRelocatableTable(Table(".altinstructions"), alt, {a});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].at, 0x123u);
  EXPECT_EQ(s[0].len, 9);
}

}  // namespace
}  // namespace sie::synth
