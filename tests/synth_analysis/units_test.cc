// Stage-level unit tests: formula language, family fitting, names, alignment, disassembly.
#include <gtest/gtest.h>

#include "synth/analysis/align.h"
#include "synth/analysis/derive.h"
#include "synth/analysis/disasm.h"
#include "synth/analysis/elf_file.h"
#include "synth/analysis/formula.h"

namespace sie::synth::analysis {
namespace {

TEST(Formula, EvaluatesCExpressions) {
  EXPECT_EQ(*EvalFormula("3 * V", 7), 21u);
  EXPECT_EQ(*EvalFormula("(1 << V) - 1", 5), 31u);
  EXPECT_EQ(*EvalFormula("X >> V", 3, 800), 100u);
  EXPECT_EQ(*EvalFormula("X / V", 7, 100), 14u);
  EXPECT_EQ(*EvalFormula("V - 1", 0, 0, 4), 0xffffffffu);
  EXPECT_EQ(*EvalFormula("~V & 0xff", 1), 0xfeu);
  EXPECT_EQ(*EvalFormula("X ^ V | 1", 2, 4), 7u);
  EXPECT_FALSE(EvalFormula("X / V", 0, 1).ok());
  EXPECT_FALSE(EvalFormula("V +", 1).ok());
  EXPECT_FALSE(EvalFormula("sizeof(V)", 1).ok());
}

TEST(FitFamily, Linear) {
  auto f = FitFamily({5, 10, 17}, {10, 20, 34}, 32);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->formula, "2 * V");
  f = FitFamily({3, 2, 1}, {2, 1, 0}, 32);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->formula, "V - 1");
  f = FitFamily({8, 16, 32}, {0xfffffff8, 0xfffffff0, 0xffffffe0}, 32);  // -V (and-masks)
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*EvalFormula(f->formula, 64, 0, 4), 0xffffffc0u);
}

TEST(FitFamily, ShiftMasksAndDivision) {
  auto f = FitFamily({3, 2, 1}, {7, 3, 1}, 32);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->formula, "(1 << V) - 1");
  f = FitFamily({2, 4, 5}, {500, 250, 200}, 32);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*EvalFormula(f->formula, 10), 100u);
  f = FitFamily({2, 3, 5}, {4, 9, 25}, 32);
  EXPECT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("V=5 -> 0x19"), std::string::npos) << f.status();
}

TEST(Names, CloneSuffixesNormalize) {
  EXPECT_EQ(NormalizeSymbolName("foo.isra.0"), "foo.isra");
  EXPECT_EQ(NormalizeSymbolName("bar.constprop.3.cold"), "bar.constprop.cold");
  EXPECT_EQ(NormalizeSymbolName("tcp_ack"), "tcp_ack");
}

TEST(Disasm, ImplicitShiftAndRegisters) {
  // shr eax (D1 /5), shr eax,2, lea eax,[rdi+rdi*2], cmp edi,3
  std::string code = "\xd1\xe8\xc1\xe8\x02\x8d\x04\x7f\x83\xff\x03";
  auto fn = DisassembleBytes("t", code);
  ASSERT_TRUE(fn.ok());
  ASSERT_EQ(fn->insns.size(), 4u);
  EXPECT_TRUE(fn->insns[0].implicit_imm);
  EXPECT_EQ(fn->insns[0].shape, fn->insns[1].shape);  // same shape, different count
  EXPECT_NE(fn->insns[0].sig, fn->insns[1].sig);
  EXPECT_TRUE(fn->insns[2].reads.count("di"));
  EXPECT_TRUE(fn->insns[2].writes.count("ax"));
  EXPECT_TRUE(fn->insns[3].writes_flags);
}

TEST(Align, IgnoresBranchDisplacementsAndFindsHunks) {
  // base: mov eax,3 ; jmp +2 ; nop ; nop ; ret   var: mov eax,5 ; nop ; jmp +3 ... (shifted)
  std::string a = std::string("\xb8\x03\x00\x00\x00\xeb\x01\x90\xc3", 9);
  std::string b = std::string("\xb8\x05\x00\x00\x00\xeb\x01\x90\xc3", 9);
  auto fa = DisassembleBytes("f", a), fb = DisassembleBytes("f", b);
  auto hunks = DiffFunctions(*fa, {&*fb, &*fb});
  ASSERT_EQ(hunks.size(), 1u);
  EXPECT_EQ(hunks[0].base_begin, 0);
  EXPECT_EQ(hunks[0].base_end, 1);
}

}  // namespace
}  // namespace sie::synth::analysis
