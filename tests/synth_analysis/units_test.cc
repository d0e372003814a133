// Stage-level unit tests: formula language, family fitting, names, alignment, disassembly.
#include <gtest/gtest.h>

#include "common/artifact/formula.h"
#include "common/elf/elf_file.h"
#include "synth/analysis/align.h"
#include "synth/analysis/dataflow.h"
#include "synth/analysis/derive.h"
#include "synth/analysis/disasm.h"
#include "synth/analysis/flags_span.h"

namespace sie::synth::analysis {
using artifact::EvalFormula;
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

// gcc swapped two out-of-line blocks in one build (handle_softirqs with MAX_SOFTIRQ_RESTART=5):
// the same control flow laid out differently must not look like a control-flow change.
TEST(Align, RelayoutPairsReorderedBlocks) {
  // test edi,edi; je X; jmp Y; X: mov eax,1; ret; Y: mov eax,2; ret
  std::string base("\x85\xff\x74\x02\xeb\x06\xb8\x01\x00\x00\x00\xc3\xb8\x02\x00\x00\x00\xc3", 18);
  // the same with Y laid out before X
  std::string swapped("\x85\xff\x74\x08\xeb\x00\xb8\x02\x00\x00\x00\xc3\xb8\x01\x00\x00\x00\xc3",
                      18);
  // a real change: the branch condition differs
  std::string changed("\x85\xff\x75\x08\xeb\x00\xb8\x02\x00\x00\x00\xc3\xb8\x01\x00\x00\x00\xc3",
                      18);
  auto b = DisassembleBytes("f", base), v = DisassembleBytes("f", swapped),
       c = DisassembleBytes("f", changed);
  ASSERT_TRUE(b.ok() && v.ok() && c.ok());
  EXPECT_FALSE(DiffFunctions(*b, {&*v}).empty());  // as laid out, the builds differ
  auto r = RelayoutLike(*b, *v);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(DiffFunctions(*b, {&*r}).empty());
  EXPECT_FALSE(RelayoutLike(*b, *b).has_value());  // same layout: nothing to do
  EXPECT_FALSE(RelayoutLike(*b, *c).has_value());  // different structure: refused upstream
}

TEST(Dataflow, ReadWidthFollowsTheNarrowestConsumer) {
  // add eax,0x40; cmp dx,ax; mov eax,[rsi]; ret
  std::string code("\x83\xc0\x40\x66\x39\xc2\x8b\x06\xc3", 9);
  auto fn = DisassembleBytes("f", code);
  ASSERT_TRUE(fn.ok());
  EXPECT_EQ(ReadWidthAt(*fn, 1, "ax"), 2);
  EXPECT_EQ(ReadWidthAt(*fn, 3, "ax"), 8);  // the returned value: all of it
  EXPECT_EQ(ReadWidthAt(*fn, 1, "bx"), 0);
}

// blk_add_rq_to_plug: "sbb eax,eax; and eax,-V; add eax,2*V" selects V or 2*V. The fitted
// formula must hold for values never compiled (not only powers of two).
TEST(FitOutput, AndThenAdd) {
  z3::context c;
  z3::expr x = c.bv_const("in:ax", 32);
  std::vector<int64_t> vs = {32, 16, 64};
  std::vector<z3::expr> outs;
  for (int64_t v : vs)
    outs.push_back(
        z3::zext((x & c.bv_val(static_cast<uint64_t>(-v), 32)) + c.bv_val(2 * v, 32), 32));
  auto f = FitOutput(c, outs, x, vs, 32, true);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->uses_x);
  for (int64_t v : {17, 100, 1000}) {
    EXPECT_EQ(*EvalFormula(f->formula, v, 0xffffffff, 4), static_cast<uint64_t>(v)) << f->formula;
    EXPECT_EQ(*EvalFormula(f->formula, v, 0, 4), static_cast<uint64_t>(2 * v)) << f->formula;
  }
}

// At 16 bits 4095*V also reproduces V in {16, 32, 64} as -V; the smallest coefficient is -1.
// The stub's flags model (flags_span.cc, as sie_op_flags) against the conditions' meaning,
// proved by Z3 for every 32-bit a and b: add's CF is the carry out, sub's signed conditions
// compare as signed, test's ZF is "no common bit".
TEST(FlagsSpan, EmulatedConditionsMeanWhatTheyShould) {
  z3::context c;
  z3::expr a = c.bv_const("a", 32), b = c.bv_const("b", 32);
  auto proved = [&](const z3::expr& claim) {
    z3::solver s(c);
    s.add(!claim);
    return s.check() == z3::unsat;
  };
  auto cond = [&](const char* op, const char* cc) { return *EmulatedCond(c, op, a, b, cc); };
  z3::expr carry = z3::ugt(z3::zext(a, 1) + z3::zext(b, 1), c.bv_val(uint64_t{0xffffffff}, 33));
  EXPECT_TRUE(proved(cond("add", "b") == carry));
  EXPECT_TRUE(proved(cond("add", "s") == (a + b < 0)));
  EXPECT_TRUE(proved(cond("sub", "l") == (a < b)));
  EXPECT_TRUE(proved(cond("cmp", "a") == z3::ugt(a, b)));
  EXPECT_TRUE(proved(cond("sub", "g") == (a > b)));
  EXPECT_TRUE(proved(cond("test", "e") == ((a & b) == 0)));
  EXPECT_TRUE(proved(cond("and", "le") == ((a & b) <= 0)));
  EXPECT_FALSE(proved(cond("add", "l") == (a + b < 0)));        // OF matters: not the same
  EXPECT_FALSE(EmulatedCond(c, "add", a, b, "p").has_value());  // PF consumers: refused
  EXPECT_TRUE(FlagsSpanOp("sub") && FlagsSpanOp("test") && !FlagsSpanOp("imul"));
}

TEST(FitFamily, PrefersTheSmallestCoefficient) {
  auto f = FitFamily({32, 16, 64}, {0xffe0, 0xfff0, 0xffc0}, 16);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*EvalFormula(f->formula, 17, 0, 2), 0xffefu) << f->formula;
}

}  // namespace
}  // namespace sie::synth::analysis
