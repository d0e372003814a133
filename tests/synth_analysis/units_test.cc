// Stage-level unit tests: formula language, family fitting, names, alignment, disassembly.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/artifact/formula.h"
#include "common/artifact/model.h"
#include "common/elf/elf_file.h"
#include "synth/analysis/align.h"
#include "synth/analysis/alternatives.h"
#include "synth/analysis/dataflow.h"
#include "synth/analysis/derive.h"
#include "synth/analysis/disasm.h"
#include "synth/analysis/flags_span.h"
#include "synth/analysis/linear_form.h"
#include "synth/analysis/multi_input.h"
#include "synth/analysis/predicate_span.h"

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
  // a real change: the branch condition differs (jg: not je, nor its inverse)
  std::string changed("\x85\xff\x7f\x08\xeb\x00\xb8\x02\x00\x00\x00\xc3\xb8\x01\x00\x00\x00\xc3",
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

// gcc copied the epilogue into a predecessor and inverted the branch before it at one value
// only (find_lock_later_rq with DL_MAX_TRIES=3 against 5): the block counts differ, but a walk
// of both graphs in step pairs every instruction, and only the immediate is left to differ.
TEST(Align, RelayoutWalksABlockDuplicatedInOneBuild) {
  // mov ecx,3; test edi,edi; jne L; mov eax,ecx; ret; L: add ecx,ecx; mov eax,ecx; ret
  std::string base("\xb9\x03\x00\x00\x00\x85\xff\x75\x03\x89\xc8\xc3\x01\xc9\x89\xc8\xc3", 17);
  // mov ecx,5; test edi,edi; je L; add ecx,ecx; L: mov eax,ecx; ret
  std::string merged("\xb9\x05\x00\x00\x00\x85\xff\x74\x02\x01\xc9\x89\xc8\xc3", 14);
  // the same with `sub` where base adds: a real change on one path
  std::string changed("\xb9\x05\x00\x00\x00\x85\xff\x74\x02\x29\xc9\x89\xc8\xc3", 14);
  auto b = DisassembleBytes("f", base), v = DisassembleBytes("f", merged),
       c = DisassembleBytes("f", changed);
  ASSERT_TRUE(b.ok() && v.ok() && c.ok());
  auto r = RelayoutLike(*b, *v);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->insns.size(), b->insns.size());
  EXPECT_EQ(r->insns[3].Text(), "mov eax, ecx");  // var's one epilogue, on both paths
  EXPECT_EQ(r->insns[6].Text(), "mov eax, ecx");
  EXPECT_EQ(r->insns[5].Text(), "add ecx, ecx");
  auto hunks = DiffFunctions(*b, {&*r});
  ASSERT_EQ(hunks.size(), 1u);
  EXPECT_EQ(hunks[0].base_begin, 0);  // mov ecx, 3 against mov ecx, 5
  EXPECT_EQ(hunks[0].base_end, 1);
  EXPECT_EQ(r->insns[0].Text(), "mov ecx, 5");
  EXPECT_FALSE(RelayoutLike(*b, *c).has_value());
}

// gcc gave r12 and r13 each other's roles at another value (find_lock_lowest_rq with
// RT_MAX_TRIES=5): the counter in r12, not r13. Renamed, only the counter's immediate differs;
// the prologue's saves and the epilogue's restores stay as written.
TEST(Align, RenamesAPermutationOfCalleeSavedRegisters) {
  // push r13; push r12; mov r13d,3; mov r12,rdi; add r12,r13; mov rax,r12; pop r12; pop r13; ret
  std::string base(
      "\x41\x55\x41\x54\x41\xbd\x03\x00\x00\x00\x49\x89\xfc\x4d\x01\xec\x4c\x89\xe0"
      "\x41\x5c\x41\x5d\xc3",
      24);
  // the same with r12 and r13 swapped after the saves, and 5 for 3
  std::string swapped(
      "\x41\x55\x41\x54\x41\xbc\x05\x00\x00\x00\x49\x89\xfd\x4d\x01\xe5\x4c\x89\xe8"
      "\x41\x5c\x41\x5d\xc3",
      24);
  // rdi and rsi swapped instead: argument registers are never renamed
  std::string args(
      "\x41\x55\x41\x54\x41\xbd\x05\x00\x00\x00\x49\x89\xf4\x4d\x01\xec\x4c\x89\xe0"
      "\x41\x5c\x41\x5d\xc3",
      24);
  auto b = DisassembleBytes("f", base), v = DisassembleBytes("f", swapped),
       a = DisassembleBytes("f", args);
  ASSERT_TRUE(b.ok() && v.ok() && a.ok());
  EXPECT_TRUE(b->insns[0].entry_save && b->insns[1].entry_save);
  EXPECT_EQ(DiffFunctions(*b, {&*v}).size(), 1u);  // registers differ in 4 instructions
  auto r = RenamedLike(*b, *v);
  ASSERT_TRUE(r.has_value());
  auto hunks = DiffFunctions(*b, {&*r});
  ASSERT_EQ(hunks.size(), 1u);
  EXPECT_EQ(hunks[0].base_begin, 2);  // mov r13d, 3 against mov r13d, 5
  EXPECT_EQ(hunks[0].base_end, 3);
  EXPECT_EQ(r->insns[2].Text(), "mov r13d, 5");
  EXPECT_EQ(r->insns[4].Text(), "add r12, r13");
  EXPECT_TRUE(r->insns[4].writes.count("r12"));
  EXPECT_EQ(r->insns[1].Text(), "push r12");      // the caller's r12, saved as written
  EXPECT_TRUE(r->insns[6].opaque);                // `pop r12` restores what is r13 here
  EXPECT_FALSE(RenamedLike(*b, *b).has_value());  // nothing to rename
  EXPECT_FALSE(RenamedLike(*b, *a).has_value());  // rsi for rdi is no callee-saved permutation
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

// A multiplier hoisted before a loop: `mov edx, imm` reaches the loop's `imul` on every path
// (back edge included), not the return the `je` skips to; its readers are the imul and the
// copy after the loop; a value the return hands to the caller leaves the function.
TEST(Dataflow, ConstantDefinitionAndItsReaders) {
  // 0 test rdi,rdi; 1 je 0x25; 2 mov edx,0xcccccccd; 3 mov eax,[rdi]; 4 imul rax,rdx;
  // 5 shr rax,0x23; 6 add eax,1; 7 mov [rdi+4],eax; 8 mov rdi,[rdi+8]; 9 test rdi,rdi;
  // 10 jne 0xa; 11 mov eax,edx; 12 ret
  std::string code(
      "\x48\x85\xff\x74\x20\xba\xcd\xcc\xcc\xcc\x8b\x07\x48\x0f\xaf\xc2\x48\xc1\xe8\x23"
      "\x83\xc0\x01\x89\x47\x04\x48\x8b\x7f\x08\x48\x85\xff\x75\xe7\x89\xd0\xc3",
      38);
  auto fn = DisassembleBytes("f", code);
  ASSERT_TRUE(fn.ok());
  ASSERT_EQ(fn->insns.size(), 13u);
  EXPECT_EQ(ConstantDefAt(*fn, 4, "dx"), 2);
  EXPECT_EQ(ConstantDefAt(*fn, 4, "ax"), -1);   // loaded, not a numeral
  EXPECT_EQ(ConstantDefAt(*fn, 12, "dx"), -1);  // the je path never sets it
  EXPECT_EQ(ReadersAfter(*fn, 2, "dx"), (std::optional<std::vector<int>>{{4, 11}}));
  EXPECT_EQ(ReadersAfter(*fn, 11, "ax"), std::nullopt);  // returned
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

// ext4_mb_init: `rotational ? V : 0` with V a power of two is "and eax, 4" at V=4,
// "shr eax, 1; and eax, 2" at V=2, "add eax, eax; and eax, 8" at V=8: one bit of X selects V.
TEST(FitOutput, OneBitSelectsTheConstant) {
  z3::context c;
  z3::expr x = c.bv_const("in:ax", 32);
  std::vector<int64_t> vs = {4, 2, 8};
  std::vector<z3::expr> outs = {z3::zext(x & c.bv_val(4, 32), 32),
                                z3::zext(z3::lshr(x, c.bv_val(1, 32)) & c.bv_val(2, 32), 32),
                                z3::zext((x + x) & c.bv_val(8, 32), 32)};
  auto f = FitOutput(c, outs, x, vs, 32, true);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->uses_x);
  for (int64_t v : {16, 5, 1000}) {  // values never compiled, powers of two or not
    EXPECT_EQ(*EvalFormula(f->formula, v, 0x4, 4), static_cast<uint64_t>(v)) << f->formula;
    EXPECT_EQ(*EvalFormula(f->formula, v, 0xfffffffb, 4), 0u) << f->formula;
  }
  // A bit that selects a value which is no family member of V is refused, not guessed.
  std::vector<z3::expr> odd = {outs[0], outs[1], z3::zext(x & c.bv_val(1, 32), 32)};
  EXPECT_FALSE(FitOutput(c, odd, x, vs, 32, true).ok());
}

// get_random_u32_below(80 - V): the rejection bound 256 % (80 - V) at V = 50, 25, 60 is
// 16, 36, 16; the remainder family reproduces it at values never fitted (V=37: 256 % 43).
// Only a predicate's K is fitted to it: among immediates at large it fits by chance.
TEST(FitFamily, RemainderOfAPowerOfTwo) {
  EXPECT_FALSE(FitFamily({50, 25, 60}, {16, 36, 16}, 8).ok());
  auto f = FitRemainderFamily({50, 25, 60}, {16, 36, 16}, 8);
  ASSERT_TRUE(f.ok()) << f.status();
  for (int64_t v : {37, 13, 70}) {
    std::vector<std::string> all = {f->formula};
    all.insert(all.end(), f->alternatives.begin(), f->alternatives.end());
    EXPECT_THAT(all, testing::Contains(testing::Truly([&](const std::string& g) {
                  auto got = EvalFormula(g, v, 0, 1);
                  return got.ok() && *got == 256u % (80 - v);
                })));
  }
  EXPECT_LE(f->vmax, 78);  // the divisor stays >= 2
}

// FNHE_RECLAIM_DEPTH's builds (V=5, 3, 7: 1, 1, 4) are 2^32 % V as well as 256 % V; the bound
// of a byte compare is 256 % V only (the other narrowed the range to where both agree).
TEST(FitFamily, RemainderAtTheComparesWidth) {
  auto f = FitRemainderFamily({5, 3, 7}, {1, 1, 4}, 8);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->formula, "256 % (V)");
  for (const std::string& alt : f->alternatives)
    EXPECT_EQ(alt.find("4294967296"), std::string::npos);
  EXPECT_FALSE(FitRemainderFamily({5, 3, 7}, {1, 1, 4}, 64).ok());
}

// The same jump decided by other compares per value: `test al, 0xf0; je` (x < 16),
// `cmp al, 0x23; jbe` (x < 36), `test al, al; je` (x < 1): one template x < K fits all three,
// and the stub's flags for the shipped consumer `je` decide as each build's own code.
TEST(PredicateSpan, OneTemplateAcrossCompareShapes) {
  z3::context c;
  z3::expr a = c.bv_const("a", 8);
  std::vector<z3::expr> conds = {*EmulatedCond(c, "test", a, c.bv_val(0xf0, 8), "e"),
                                 *EmulatedCond(c, "cmp", a, c.bv_val(0x23, 8), "be"),
                                 *EmulatedCond(c, "test", a, a, "e")};
  auto fit = FitPredicate(c, conds, a);
  ASSERT_TRUE(fit.has_value());
  EXPECT_EQ(fit->op, PredicateFit::kUlt);
  EXPECT_THAT(fit->ks, testing::ElementsAre(16, 36, 1));
  std::vector<z3::expr> preds;
  for (size_t k = 0; k < conds.size(); ++k) preds.push_back(PredicateExpr(fit->op, a, fit->ks[k]));
  EXPECT_TRUE(ProvePredicateEmulation(c, conds, preds, "je").ok());
  // A consumer whose flags the stub would set the other way round is refused by the proof.
  std::vector<z3::expr> negated = {!preds[0], !preds[1], !preds[2]};
  EXPECT_FALSE(ProvePredicateEmulation(c, conds, negated, "je").ok());
  // Signed: `cmp al, 5; jl` is x < 5 as signed bytes.
  auto sfit = FitPredicate(c, {*EmulatedCond(c, "cmp", a, c.bv_val(5, 8), "l")}, a);
  ASSERT_TRUE(sfit.has_value());
  EXPECT_EQ(sfit->op, PredicateFit::kSlt);
  const std::string f = PredicateText(sfit->op, "X", "V", 8);
  EXPECT_EQ(*EvalFormula(f, 5, 0xff, 8), 1u);  // -1 < 5
  EXPECT_EQ(*EvalFormula(f, 5, 0x05, 8), 0u);
  EXPECT_EQ(*EvalFormula(f, 5, 0x104, 8), 1u);  // only the low byte is compared
}

// The stub's operands for every consumer a predicate span may feed: under the flags model of
// sie_op_flags (EmulatedCond), the "true" pair makes the jump taken and the "false" pair not.
TEST(PredicateSpan, OperandsDecideEveryConsumer) {
  z3::context c;
  for (const char* cc :
       {"e", "z",   "ne", "nz", "b", "c",   "nae", "ae", "nb", "nc", "be", "na",
        "a", "nbe", "s",  "ns", "l", "nge", "ge",  "nl", "le", "ng", "g",  "nle"}) {
    auto ops = artifact::PredicateFlagsOperands(absl::StrCat("j", cc));
    ASSERT_TRUE(ops.has_value()) << cc;
    auto holds = [&](uint8_t l, uint8_t r) {
      return EmulatedCond(c, "cmp", c.bv_val(l, 8), c.bv_val(r, 8), cc)->simplify().is_true();
    };
    EXPECT_TRUE(holds(ops->lhs_true, ops->rhs_true)) << cc;
    EXPECT_FALSE(holds(ops->lhs_false, ops->rhs_false)) << cc;
  }
  EXPECT_FALSE(artifact::PredicateFlagsOperands("jo").has_value());
  EXPECT_FALSE(artifact::PredicateFlagsOperands("jp").has_value());
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

// The formula and every alternative, each reproducing the builds.
std::vector<std::string> Candidates(const FamilyFit& f) {
  std::vector<std::string> all = {f.formula};
  all.insert(all.end(), f.alternatives.begin(), f.alternatives.end());
  return all;
}
void ExpectAllFit(const FamilyFit& f, const std::vector<int64_t>& vs,
                  const std::vector<uint64_t>& cs, int width) {
  for (const std::string& c : Candidates(f))
    for (size_t i = 0; i < vs.size(); ++i)
      EXPECT_EQ(*EvalFormula(c, vs[i], 0, width), cs[i]) << c << " at V=" << vs[i];
}
// A span of `width` bytes with the fit's candidates, checked at V=v against the build computing
// `truth` there: what KeepAgreeing leaves.
std::vector<std::string> AfterCheck(const FamilyFit& f, int width,
                                    const std::vector<std::pair<int64_t, std::string>>& checks,
                                    std::string* why = nullptr) {
  CriticalSpan s;
  s.width = width;
  s.formula = f.formula;
  s.formula_alternatives = f.alternatives;
  for (const auto& [v, truth] : checks) {
    CriticalSpan seen;
    seen.width = width;
    seen.formula = truth;
    std::string w;
    if (!KeepAgreeing(&s, seen, v, &w)) {
      if (why) *why = w;
      return {};
    }
  }
  std::vector<std::string> left = {s.formula};
  left.insert(left.end(), s.formula_alternatives.begin(), s.formula_alternatives.end());
  return left;
}

// mq-deadline: `movabs rdi, 0x10000004e2` stores fifo_batch = V above another field (1250).
// A value stored into a 3-bit field (CYCLE_LEN - 1 into bbr's cycle_idx:3): the compiler emits
// (V - 1) & 7, so 15 at V=16 becomes 7.
TEST(FitFamily, TruncatedToABitField) {
  auto r = FitFamily({8, 4, 16}, {7, 3, 7}, 32);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->formula, "((V - 1) & 0x7)");
  EXPECT_TRUE(r->alternatives.empty());
  EXPECT_EQ(*EvalFormula(r->formula, 12), 3u);
  // Only the value itself truncated, and only when the shipped numeral is V1 + b unwrapped.
  EXPECT_FALSE(FitFamily({8, 4, 16}, {7, 2, 5}, 32).ok());
  EXPECT_FALSE(FitFamily({16, 4, 8}, {7, 3, 7}, 32).ok());
}

TEST(FitFamily, FieldShiftedAboveAnother) {
  std::vector<int64_t> vs = {16, 8, 32};
  std::vector<uint64_t> cs = {0x10000004e2, 0x8000004e2, 0x20000004e2};
  auto f = FitFamily(vs, cs, 64);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->formula, "(V << 32) + 1250");
  EXPECT_TRUE(f->alternatives.empty());
  EXPECT_EQ(*EvalFormula(f->formula, 100), (uint64_t{100} << 32) | 1250);
  EXPECT_EQ(artifact::Formula::Parse(f->formula)->EmitC(), "(sie_shl(V, 32ULL, &bad) + 1250ULL)");
}

// fuse: max_background = V and congestion_threshold = V * 3 / 4 in one 64-bit store. Three
// builds leave 3*V/4 .. (3*V+2)/4 (and more); V=19 and V=5 leave 3*V/4 alone.
TEST(FitFamily, TwoPackedFields) {
  std::vector<int64_t> vs = {12, 8, 24};
  std::vector<uint64_t> cs = {0x90000000c, 0x600000008, 0x1200000018};
  auto f = FitFamily(vs, cs, 64);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->alternatives.empty()) << f->formula;
  ExpectAllFit(*f, vs, cs, 8);
  const std::string truth = "((V * 3 / 4) << 32) | V";
  auto left = AfterCheck(*f, 8, {{19, truth}, {5, truth}});
  ASSERT_EQ(left.size(), 1u) << absl::StrJoin(left, "; ");
  EXPECT_EQ(*EvalFormula(left[0], 100), (uint64_t{75} << 32) | 100) << left[0];
  EXPECT_EQ(*EvalFormula(left[0], 7), (uint64_t{5} << 32) | 7) << left[0];
  EXPECT_NE(artifact::Formula::Parse(left[0])->EmitC().find("sie_shr("), std::string::npos);
}

// softirq: msecs_to_jiffies(V) at HZ=250 is (V + 3) / 4: 1, 2, 5 at V = 2, 8, 20. Several
// roundings fit; the check builds (13 -> 4, 29 -> 8) single it out, and a build computing
// something else at V=13 rejects every candidate.
TEST(FitFamily, RoundingUpDivision) {
  std::vector<int64_t> vs = {2, 8, 20};
  std::vector<uint64_t> cs = {1, 2, 5};
  auto f = FitFamily(vs, cs, 64);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_GT(f->alternatives.size(), 1u);
  EXPECT_EQ(f->vmin, 0);
  ExpectAllFit(*f, vs, cs, 8);
  auto left = AfterCheck(*f, 8, {{13, "(V * 250 + 999) / 1000"}, {29, "(V * 250 + 999) / 1000"}});
  ASSERT_EQ(left, (std::vector<std::string>{"(V + 3) >> 2"}));
  EXPECT_EQ(artifact::Formula::Parse(left[0])->EmitC(), "sie_shr((V + 3ULL), 2ULL, &bad)");
  for (int64_t v = 0; v < 2000; ++v)
    EXPECT_EQ(*EvalFormula(left[0], v), static_cast<uint64_t>((v * 250 + 999) / 1000)) << v;
  std::string why;
  EXPECT_TRUE(AfterCheck(*f, 8, {{13, "5"}}, &why).empty());
  EXPECT_NE(why.find("the build with V=13 computes 5"), std::string::npos) << why;
}

// kcompactd: msecs_to_jiffies(V) << COMPACT_MAX_DEFER_SHIFT at HZ=250, rounded before the
// shift: 8000, 4032, 16000 at V = 500, 250, 1000 (4032 = 63 << 6, where V * 16 + 48 gives 4048).
// No (a*V + b) / d fits; ((V + b) >> 2) << 6 does for b = 2, 3: the checks at 751 and 127 keep
// both, a build at 749 (as NarrowByBuilds picks one) leaves the rounding up alone.
TEST(FitFamily, RoundedThenScaledByAPowerOfTwo) {
  std::vector<int64_t> vs = {500, 250, 1000};
  std::vector<uint64_t> cs = {8000, 4032, 16000};
  auto f = FitFamily(vs, cs, 32);
  ASSERT_TRUE(f.ok()) << f.status();
  ExpectAllFit(*f, vs, cs, 4);
  const std::string truth = "((V * 250 + 999) / 1000) << 6";
  EXPECT_EQ(AfterCheck(*f, 4, {{751, truth}, {127, truth}}).size(), 2u);
  auto left = AfterCheck(*f, 4, {{751, truth}, {127, truth}, {749, truth}});
  ASSERT_EQ(left.size(), 1u) << absl::StrJoin(left, "; ");
  for (const std::string& l : left)
    for (int64_t v = 1; v < 5000; ++v)
      EXPECT_EQ(*EvalFormula(l, v), static_cast<uint64_t>((v * 250 + 999) / 1000) << 6) << l;
  // Numerals without a common power of two (or with a zero) are no scaled member.
  EXPECT_FALSE(FitFamily({500, 250, 1000}, {8000, 4033, 16000}, 32).ok());
}

// btrfs: `cmp eax, 0x3f` for items < V / 2: V/2 - 1 at even V; (V + 1)/2 - 1 fits as well
// until the odd check value 193.
TEST(FitFamily, ShiftRightMinusOne) {
  std::vector<int64_t> vs = {128, 64, 256};
  std::vector<uint64_t> cs = {63, 31, 127};
  auto f = FitFamily(vs, cs, 32);
  ASSERT_TRUE(f.ok()) << f.status();
  ExpectAllFit(*f, vs, cs, 4);
  auto left = AfterCheck(*f, 4, {{193, "V / 2 - 1"}, {31, "V / 2 - 1"}});
  ASSERT_EQ(left, (std::vector<std::string>{"(V >> 1) - 1"}));
  EXPECT_EQ(*EvalFormula(left[0], 1001, 0, 4), 499u);
}

// Bytes as pages (SZ_128K / PAGE_SIZE): at multiples of the page size (V + b) / d fits in
// thousands of ways; V >> 12 is the plain member, and exact at a value never compiled.
TEST(FitFamily, ShiftedIntoLargerUnits) {
  const std::vector<int64_t> vs = {131072, 65536, 262144};
  const std::vector<uint64_t> cs = {32, 16, 64};
  auto f = FitFamily(vs, cs, 32);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->formula, "V >> 12");
  EXPECT_THAT(f->alternatives, ::testing::IsEmpty());
  EXPECT_EQ(*EvalFormula(f->formula, 196613, 0, 4), 48u);
  EXPECT_GE(f->vmin, 0);
}

// Values no member fits (V^2) are still refused, naming the families tried.
TEST(FitFamily, OutsideEveryFamily) {
  auto f = FitFamily({2, 3, 5}, {4, 9, 25}, 32);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("(a*V+b)/d"), std::string::npos) << f.status();
}

// ms to codel time units, (V * NSEC_PER_MSEC) >> 10, is (15625 * V) >> 4: a numerator far
// above the small ones, found as the simplest slope the builds allow (the smallest d, and the
// smallest power of two); every candidate reproduces the builds.
TEST(FitFamily, LargeNumeratorUnitConversion) {
  const std::vector<int64_t> vs = {100, 50, 200};
  const std::vector<uint64_t> cs = {97656, 48828, 195312};
  auto f = FitFamily(vs, cs, 32);
  ASSERT_TRUE(f.ok()) << f.status();
  std::vector<std::string> all = f->alternatives;
  all.push_back(f->formula);
  EXPECT_THAT(all, ::testing::Contains("(15625 * V) >> 4")) << absl::StrJoin(all, " | ");
  for (const std::string& c : all)
    for (size_t i = 0; i < vs.size(); ++i) EXPECT_EQ(*EvalFormula(c, vs[i]), cs[i]) << c;
  EXPECT_LE(f->vmax, INT32_MAX / 15625 + 1);  // a * V stays within 31 bits
}

// (V - 1) * y / (y - x) in 32 bits (BICTCP_B): at V = 2 the compiler drops the multiplication
// by 1, so that build lacks the operation the others apply; it is aligned as 1 * y.
TEST(FitMultiInput, OperationFoldedWithItsIdentityInOneBuild) {
  z3::context ctx;
  z3::expr x = ctx.bv_const("in:di", 64), y = ctx.bv_const("in:si", 64);
  const std::vector<int64_t> vs = {4, 2, 8};
  std::vector<z3::expr> outs;
  for (int64_t v : vs) {
    z3::expr y32 = y.extract(31, 0), x32 = x.extract(31, 0);
    z3::expr num = v == 2 ? y32 : ctx.bv_val(v - 1, 32) * y32;
    z3::expr q = z3::udiv(z3::zext(num, 32), z3::zext(y32 - x32, 32)).extract(31, 0);
    outs.push_back(z3::zext(q, 32).simplify());
  }
  auto fit = FitMultiInput(ctx, outs, {{"in:di", 'X'}, {"in:si", 'Y'}}, vs, 64);
  ASSERT_TRUE(fit.ok()) << fit.status();
  for (uint64_t v : {3, 5, 100}) {
    auto got = EvalFormula(fit->formula, artifact::FormulaVars{v, 10, 0, 30});
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, (v - 1) * 30 / 20) << fit->formula << " at V=" << v;
  }
}

// (x << V) / y signed, as idiv computes it (RATELIMIT_CALC_SHIFT: shl; cqo; idiv): the
// dividend rdx:rax is x << V sign-extended; the quotient's and remainder's low 64 bits for
// any signs. Simplified, each shift count has its own shape: the count is fitted as a symbol.
TEST(FitBySymbolicImmediates, SignedDivisionOfAShiftedInput) {
  z3::context ctx;
  z3::expr x = ctx.bv_const("in:ax", 64), y = ctx.bv_const("in:di", 64);
  auto region = [&](const z3::expr& cnt, bool rem) {  // as SymState executes it
    z3::expr ax = z3::shl(x, z3::zext(cnt, 56) & ctx.bv_val(63, 64)).simplify();
    z3::expr dividend = z3::concat(z3::sext(ax, 64).extract(127, 64).simplify(), ax);
    z3::expr d = z3::sext(y, 64);
    return (rem ? z3::srem(dividend, d) : dividend / d).extract(63, 0).simplify();
  };
  const std::vector<int64_t> vs = {10, 8, 12};
  const std::map<std::string, char> names = {{"in:ax", 'X'}, {"in:di", 'Y'}};
  std::map<std::string, std::vector<z3::expr>> imms;
  for (int64_t v : vs) imms["imm:0"].push_back(ctx.bv_val(v, 8));
  std::vector<std::string> formulas;
  for (bool rem : {false, true}) {
    std::vector<z3::expr> outs;
    for (int64_t v : vs) outs.push_back(region(ctx.bv_val(v, 8), rem));
    auto f = FitBySymbolicImmediates(ctx, region(ctx.bv_const("imm:0", 8), rem), imms, outs, names,
                                     vs, 64);
    ASSERT_TRUE(f.ok()) << f.status();
    formulas.push_back(f->formula);
  }
  for (int64_t v : {6, 9, 14})
    for (int64_t a : {0LL, 5LL, -5LL, 123456789LL, -987654321LL})
      for (int64_t b : {1LL, 3LL, -3LL, -1000LL, 77777LL}) {
        const int64_t shifted = static_cast<int64_t>(static_cast<uint64_t>(a) << v);
        artifact::FormulaVars in{static_cast<uint64_t>(v), static_cast<uint64_t>(a), 0,
                                 static_cast<uint64_t>(b)};
        EXPECT_EQ(*EvalFormula(formulas[0], in), static_cast<uint64_t>(shifted / b))
            << formulas[0] << " V=" << v << " x=" << a << " y=" << b;
        EXPECT_EQ(*EvalFormula(formulas[1], in), static_cast<uint64_t>(shifted % b))
            << formulas[1] << " V=" << v << " x=" << a << " y=" << b;
      }
  // A zero divisor leaves the formula undefined (the code would trap).
  EXPECT_FALSE(EvalFormula(formulas[0], artifact::FormulaVars{9, 5, 0, 0}).ok());
}

// Products squared and shifted back ten times over (q = q * q >> V): as a tree the text doubles
// per step, past any limit; with the repeated subterms bound by lets it stays small, and is
// still exact at values never compiled.
TEST(FitBySymbolicImmediates, RepeatedSubtermsAreBoundOnce) {
  z3::context ctx;
  z3::expr x = ctx.bv_const("in:ax", 64);
  auto region = [&](const z3::expr& cnt) {
    z3::expr q = x;
    for (int i = 0; i < 10; ++i) q = z3::ashr(q * q, z3::zext(cnt, 56) & ctx.bv_val(63, 64));
    return z3::ite(z3::sgt(q, ctx.bv_val(100, 64)), ctx.bv_val(100, 64), q).simplify();
  };
  const std::vector<int64_t> vs = {10, 8, 12};
  std::map<std::string, std::vector<z3::expr>> imms;
  std::vector<z3::expr> outs;
  for (int64_t v : vs) {
    imms["imm:0"].push_back(ctx.bv_val(v, 8));
    outs.push_back(region(ctx.bv_val(v, 8)));
  }
  auto f = FitBySymbolicImmediates(ctx, region(ctx.bv_const("imm:0", 8)), imms, outs,
                                   {{"in:ax", 'X'}}, vs, 64);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_NE(f->formula.find("let t"), std::string::npos) << f->formula;
  EXPECT_LT(f->formula.size(), 2000u) << f->formula;
  for (int64_t v : {9, 11})
    for (int64_t a : {0LL, 3LL, -7LL, 1000LL}) {
      int64_t q = a;
      for (int i = 0; i < 10; ++i)
        q = static_cast<int64_t>(static_cast<uint64_t>(q) * static_cast<uint64_t>(q)) >> v;
      const int64_t want = q > 100 ? 100 : q;
      auto got = EvalFormula(
          f->formula, artifact::FormulaVars{static_cast<uint64_t>(v), static_cast<uint64_t>(a)});
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(static_cast<int64_t>(*got), want) << "V=" << v << " x=" << a;
    }
}

// x * y >> V of s64 values (imul; sar by the constant) and of s32 ones (sar of a 32-bit
// register): the count is the fitted hole, the shift keeps the sign.
// V * x as the compiler writes it per value (a shift at 8, lea + shl at 12) and as Z3 keeps
// it (a product by 8 is concat(extract(28, 0, x), 0b000)): one product by a numeral, exact.
TEST(LinearForm, ProductsByNumeralsHaveOneShape) {
  z3::context ctx;
  z3::expr x = ctx.bv_const("in:si", 64), y = ctx.bv_const("in:dx", 64);
  z3::expr x32 = x.extract(31, 0), y32 = y.extract(31, 0);
  const std::vector<z3::expr> forms = {
      (z3::shl(x32, 3) - z3::shl(y32, 5)).simplify(),
      (z3::shl(x32 + z3::shl(x32, 1), 2) - ctx.bv_val(32, 32) * y32).simplify(),
      z3::zext(z3::concat(x.extract(28, 0), ctx.bv_val(0, 3)) - y32 * 32, 32).simplify()};
  std::vector<z3::expr> lin;
  for (const z3::expr& e : forms) {
    lin.push_back(LinearForm(e));
    EXPECT_TRUE(Valid(ctx, lin.back() == e)) << e << " -> " << lin.back();
  }
  // Both sums: bvmul(numeral, atom) over the same atoms in the same order.
  auto skeleton = [](const z3::expr& e) {
    return std::regex_replace(e.to_string(), std::regex("#x[0-9a-f]+"), "#");
  };
  EXPECT_EQ(skeleton(lin[0]), skeleton(lin[1]));
  EXPECT_NE(lin[0].to_string(), lin[1].to_string());  // 8 and 12
  EXPECT_THAT(lin[2].to_string(), testing::HasSubstr("bvmul #x00000008"));
}

// Illinois' beta: (V * d3 - 32 * d2 + (32 - V) * da) / (d3 - d2), where each build writes
// the products by V its own way; the numerator differs in two places, so neither the hole nor
// the raw shapes fit. As sums of products its coefficients are V, -32 and 32 - V; the proof
// divides equal sums (by congruence, no divider bit-blasted).
TEST(FitMultiInput, SumOfProductsWrittenPerValue) {
  z3::context ctx;
  z3::expr d3 = ctx.bv_const("in:r9", 64), d2 = ctx.bv_const("in:dx", 64),
           da = ctx.bv_const("in:si", 64);
  z3::expr a = d3.extract(31, 0), b = d2.extract(31, 0), c = da.extract(31, 0);
  const std::vector<int64_t> vs = {8, 4, 16};
  std::vector<z3::expr> outs;
  for (int64_t v : vs) {
    const unsigned k = v == 8 ? 3 : v == 4 ? 2 : 4;
    z3::expr num = z3::shl(a + ctx.bv_val((32 - v) / v, 32) * c - ctx.bv_val(32 / v, 32) * b,
                           static_cast<int>(k));
    z3::expr q = z3::udiv(z3::zext(num, 32), z3::zext(a - b, 32)).extract(31, 0);
    outs.push_back(z3::zext(q, 32).simplify());
  }
  auto fit = FitMultiInput(ctx, outs, {{"in:r9", 'X'}, {"in:dx", 'Y'}, {"in:si", 'Z'}}, vs, 64);
  ASSERT_TRUE(fit.ok()) << fit.status();
  for (uint64_t v : {5, 13, 31}) {
    const uint64_t x = 900, y = 100, z = 500;
    auto got = EvalFormula(fit->formula, artifact::FormulaVars{v, x, 0, y, z});
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, (v * x - 32 * y + (32 - v) * z) / (x - y)) << fit->formula << " V=" << v;
  }
}

// `++cnt >= V` of a 2-bit field: sete at 3, seta at 2, setne of a shift at 1; no shape in
// common, but the range [1, 3] is exactly the values built: each build's own output.
TEST(FitEveryValue, RangeOfTheBuiltValuesOnly) {
  z3::context ctx;
  z3::expr x = ctx.bv_const("in:ax", 64);
  z3::expr cnt = (x.extract(1, 0) + ctx.bv_val(1, 2));
  auto flag = [&](const z3::expr& p) { return z3::ite(p, ctx.bv_val(1, 64), ctx.bv_val(0, 64)); };
  const std::vector<int64_t> vs = {3, 2, 1};
  const std::vector<z3::expr> outs = {flag(cnt == 3), flag(z3::ugt(cnt, 1)),
                                      flag(z3::shl(z3::zext(cnt, 6), 6) != 0)};
  auto fit = FitEveryValue(ctx, outs, {{"in:ax", 'X'}}, vs, 64, 1, 3);
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_EQ(fit->vmin, 1);
  EXPECT_EQ(fit->vmax, 3);
  for (uint64_t v : {1, 2, 3})
    for (uint64_t c : {0, 1, 2, 3}) {
      auto got = EvalFormula(fit->formula, artifact::FormulaVars{v, c});
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(*got, ((c + 1) & 3) >= v ? 1u : 0u) << fit->formula << " V=" << v << " c=" << c;
    }
  // A value of the range never built is not guessed.
  auto wider = FitEveryValue(ctx, outs, {{"in:ax", 'X'}}, vs, 64, 1, 4);
  EXPECT_FALSE(wider.ok());
  EXPECT_THAT(wider.status().message(), testing::HasSubstr("never built"));
}

// V * 128 * (x + y) as gcc writes it at V = 10, 5, 20: (5 * x << 8) + (5 * y << 8), << 7,
// << 9. The shape fit reads the shift count alone as (V + 2) / 6 + 6, right at the three
// builds only; the sum-of-products reading 128 * V is kept beside it for the checks to choose.
TEST(FitMultiInput, SumOfProductsKeptBesideAShiftCountFit) {
  z3::context ctx;
  z3::expr x = ctx.bv_const("in:bx", 64), y = ctx.bv_const("in:dx", 64);
  const std::vector<int64_t> vs = {10, 5, 20};
  std::vector<z3::expr> outs;
  for (int64_t v : vs) {
    const int k = v == 10 ? 8 : v == 5 ? 7 : 9;
    z3::expr p = z3::shl(ctx.bv_val(5, 32) * x.extract(31, 0), k) +
                 z3::shl(ctx.bv_val(5, 32) * y.extract(31, 0), k);
    outs.push_back(z3::zext(p, 32));
  }
  auto fit = FitMultiInput(ctx, outs, {{"in:bx", 'X'}, {"in:dx", 'Y'}}, vs, 64);
  ASSERT_TRUE(fit.ok()) << fit.status();
  std::vector<std::string> all = fit->alternatives;
  all.insert(all.begin(), fit->formula);
  int right = 0;
  for (const std::string& f : all) {
    auto got = EvalFormula(f, artifact::FormulaVars{17, 3, 0, 1});
    if (got.ok() && *got == 17 * 128 * (3 + 1)) ++right;
  }
  EXPECT_EQ(right, 1) << absl::StrJoin(all, " | ");
  EXPECT_EQ(all.size(), 2u) << absl::StrJoin(all, " | ");
}

// The division of equal sums, proved by congruence; a wrong numerator is still refuted.
TEST(UnsatWithin, TheSameQueryInAnotherContextIsAnsweredFromMemory) {
  auto ask = [](int times, int plus) {
    z3::context c;
    z3::expr x = c.bv_const("in:ax", 32);
    return UnsatWithin(c, x * c.bv_val(times, 32) != x + x + x + c.bv_val(plus, 32), 2000);
  };
  const int64_t before = UnsatWithinReused();
  EXPECT_TRUE(ask(3, 0));
  EXPECT_EQ(UnsatWithinReused(), before);
  EXPECT_TRUE(ask(3, 0));  // another context, the same SMT-LIB text
  EXPECT_EQ(UnsatWithinReused(), before + 1);
  EXPECT_FALSE(ask(3, 1));  // another query: solved, and it has a model
  EXPECT_FALSE(ask(4, 0));
  EXPECT_EQ(UnsatWithinReused(), before + 1);
  EXPECT_FALSE(ask(3, 1));
  EXPECT_EQ(UnsatWithinReused(), before + 2);
}

TEST(DivisionsAbstracted, EqualArgumentsDivideEqually) {
  z3::context ctx;
  z3::expr x = ctx.bv_const("x", 32), y = ctx.bv_const("y", 32);
  z3::expr lhs = z3::udiv(z3::shl(x, 3) + x, y), rhs = z3::udiv(ctx.bv_val(9, 32) * x, y);
  bool found = false;
  EXPECT_TRUE(Valid(ctx, DivisionsAbstracted(lhs == rhs, &found), 1000));
  EXPECT_TRUE(found);
  EXPECT_FALSE(Valid(ctx, DivisionsAbstracted(lhs == z3::udiv(ctx.bv_val(8, 32) * x, y)), 1000));
}

// Signed divisions and products of two variables abstract too (products only when asked, in
// one order of their factors): sdiv(a << 3, b) squared is proved equal to the same term with
// the product's factors swapped, without a multiplier or divider per side.
TEST(DivisionsAbstracted, SignedDivisionsAndProductsOfVariables) {
  z3::context ctx;
  z3::expr a = ctx.bv_const("a", 64), b = ctx.bv_const("b", 64);
  z3::expr q = z3::shl(a, 3) / b, r = (a * 8) / b;  // operator/ is bvsdiv
  bool found = false;
  EXPECT_TRUE(Valid(ctx, DivisionsAbstracted(q * r == r * q, &found, true), 1000));
  EXPECT_TRUE(found);
  EXPECT_FALSE(Valid(ctx, DivisionsAbstracted(q * q == q * r + 1, nullptr, true), 1000));
  // A product by a numeral stays interpreted: 3 * x == x + x + x still holds.
  EXPECT_TRUE(Valid(ctx, DivisionsAbstracted(3 * a == a + a + a, nullptr, true), 1000));
}

// A multiply-high by the magic number of 11 (gcc's `imul rax, 0xba2e8ba3; shr rax, 35` on a
// 32-bit product) is rewritten as that product divided by 11; the same sequence with a wrong
// shift (36) is left as it is.
TEST(MagicQuotientsAsDivisions, MultiplyHighBecomesADivision) {
  z3::context ctx;
  z3::expr x = ctx.bv_const("x", 32), y = ctx.bv_const("y", 32);
  z3::expr k = x * y;
  z3::expr prod = ctx.bv_val(uint64_t{0xba2e8ba3}, 64) * z3::concat(ctx.bv_val(0, 32), k);
  for (unsigned sh : {35u, 36u}) {
    z3::expr code = z3::zext(z3::lshr(prod, ctx.bv_val(sh, 64)).extract(31, 0), 32);
    bool found = false;
    z3::expr rewritten = MagicQuotientsAsDivisions(ctx, code, {11}, &found);
    EXPECT_EQ(found, sh == 35) << sh;
    if (!found) continue;
    z3::expr want = z3::udiv(z3::zext(k, 32), ctx.bv_val(11, 64));
    EXPECT_TRUE(Valid(ctx, DivisionsAbstracted(rewritten == want), 1000)) << rewritten;
  }
}

TEST(FitMultiInput, ArithmeticShiftByTheConstant) {
  z3::context ctx;
  z3::expr x = ctx.bv_const("in:ax", 64), y = ctx.bv_const("in:dx", 64);
  const std::vector<int64_t> vs = {10, 8, 12};
  for (unsigned w : {64u, 32u}) {
    std::vector<z3::expr> outs;
    for (int64_t v : vs) {
      z3::expr p = (x * y).extract(w - 1, 0);
      outs.push_back(z3::ashr(p, ctx.bv_val(v, w)));
    }
    auto f = FitMultiInput(ctx, outs, {{"in:ax", 'X'}, {"in:dx", 'Y'}}, vs, w);
    ASSERT_TRUE(f.ok()) << w << ": " << f.status();
    for (int64_t v : {6, 9, 14})
      for (int64_t a : {0LL, 5LL, -5LL, 123456789LL, -987654321LL})
        for (int64_t b : {1LL, -3LL, 77777LL}) {
          const uint64_t prod = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
          const uint64_t want =
              w == 64
                  ? static_cast<uint64_t>(static_cast<int64_t>(prod) >> v)
                  : static_cast<uint32_t>(static_cast<int32_t>(static_cast<uint32_t>(prod)) >> v);
          artifact::FormulaVars in{static_cast<uint64_t>(v), static_cast<uint64_t>(a), 0,
                                   static_cast<uint64_t>(b)};
          auto got = EvalFormula(f->formula, in);
          ASSERT_TRUE(got.ok()) << f->formula;
          EXPECT_EQ(*got & (w == 64 ? ~0ULL : 0xffffffffULL), want)
              << f->formula << " V=" << v << " x=" << a << " y=" << b;
        }
  }
}

// round_down(x, V / 4) (MIN_WRITEBACK_KB) ands with ~(V/4 - 1): a negated family member.
// V * NSEC_PER_MSEC (SELECT_MAX_SLACK_MS): a slope beyond the solver's small coefficients is
// read off the integers, not split into two 16-bit halves that only the three builds share.
TEST(FitFamily, LargeSlopeOverTheIntegers) {
  for (int bits : {32, 64}) {
    const std::vector<int64_t> vs = {100, 50, 151};
    std::vector<uint64_t> cs;
    for (int64_t v : vs) cs.push_back(static_cast<uint64_t>(v) * 1000000 - 1);
    auto f = FitFamily(vs, cs, bits);
    ASSERT_TRUE(f.ok()) << f.status();
    // The line is the formula; packed 16-bit halves, which reproduce the three builds too, are
    // alternatives only.
    EXPECT_EQ(f->formula, "1000000 * V - 1") << bits;
    ExpectAllFit(*f, vs, cs, bits / 8);
    auto left = AfterCheck(*f, bits / 8, {{14, "1000000 * V - 1"}, {7, "1000000 * V - 1"}});
    ASSERT_FALSE(left.empty());
    EXPECT_EQ(left[0], "1000000 * V - 1") << bits;
  }
  // Read as signed: -3000000 * V + 7 at 32 bits.
  std::vector<uint64_t> neg;
  for (int64_t v : {100, 50, 151})
    neg.push_back(static_cast<uint32_t>(static_cast<int32_t>(-3000000 * v + 7)));
  auto g = FitFamily({100, 50, 151}, neg, 32);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(*EvalFormula(g->formula, 20, 0, 4), static_cast<uint32_t>(-3000000 * 20 + 7))
      << g->formula;
}

TEST(FitFamily, NegatedMemberForAMask) {
  const std::vector<int64_t> vs = {4096, 2048, 8192};
  std::vector<uint64_t> cs;
  for (int64_t v : vs) cs.push_back(~(static_cast<uint64_t>(v / 4) - 1));
  auto f = FitFamily(vs, cs, 64);
  ASSERT_TRUE(f.ok()) << f.status();
  for (uint64_t v : {1024, 16384, 65536})
    EXPECT_EQ(*EvalFormula(f->formula, v), ~(v / 4 - 1)) << f->formula << " at V=" << v;
  // Small numerals are never explained by a flip.
  EXPECT_FALSE(FitFamily({4, 2, 8}, {7, 1, 3}, 64).ok());
  // The mask applied to an input: X & -(V >> 2).
  z3::context ctx;
  z3::expr x = ctx.bv_const("in:ax", 64);
  std::vector<z3::expr> outs;
  for (uint64_t c : cs) outs.push_back(x & ctx.bv_val(c, 64));
  auto o = FitOutput(ctx, outs, x, vs, 64, false);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(*EvalFormula(o->formula, artifact::FormulaVars{16384, 0x12345, 0, 0}),
            0x12345 & ~uint64_t{4095})
      << o->formula;
}

// Builds close together also fit a smaller slope ((1953 * V) >> 1 at V = 5, 3, 10): every
// power-of-two divisor that pins the slope stays a candidate for further builds to settle.
TEST(FitFamily, LargeNumeratorKeepsEveryShiftThatFits) {
  const std::vector<int64_t> vs = {5, 3, 10};
  const std::vector<uint64_t> cs = {4882, 2929, 9765};  // ms to codel time: (V * 10^6) >> 10
  auto f = FitFamily(vs, cs, 32);
  ASSERT_TRUE(f.ok()) << f.status();
  std::vector<std::string> all = f->alternatives;
  all.push_back(f->formula);
  EXPECT_THAT(all, ::testing::Contains("(15625 * V) >> 4")) << absl::StrJoin(all, " | ");
  EXPECT_THAT(all, ::testing::Contains("(1953 * V) >> 1"));
  for (const std::string& c : all)
    for (size_t i = 0; i < vs.size(); ++i) EXPECT_EQ(*EvalFormula(c, vs[i]), cs[i]) << c;
}

// The constant in three places, next to two inputs (min(x, V) + y * 3V): no single hole, so the
// builds are matched as one shape whose numerals are functions of V, and proved.
TEST(FitMultiInput, OneShapeWithTheConstantInSeveralPlaces) {
  z3::context ctx;
  z3::expr x = ctx.bv_const("in:ax", 64), y = ctx.bv_const("in:si", 64);
  const std::vector<int64_t> vs = {10, 4, 7};
  std::vector<z3::expr> outs;
  for (int64_t v : vs) {
    z3::expr k = ctx.bv_val(v, 64), k3 = ctx.bv_val(3 * v, 64);
    outs.push_back(z3::ite(z3::ult(x, k), x, k) + y * k3);
  }
  auto fit = FitMultiInput(ctx, outs, {{"in:ax", 'X'}, {"in:si", 'Y'}}, vs, 64);
  ASSERT_TRUE(fit.ok()) << fit.status();
  for (uint64_t v : {1, 13, 1000})
    for (uint64_t xv : {uint64_t{0}, uint64_t{5}, uint64_t{999}})
      for (uint64_t yv : {uint64_t{2}, ~uint64_t{0}}) {
        auto got = EvalFormula(fit->formula, artifact::FormulaVars{v, xv, 0, yv});
        ASSERT_TRUE(got.ok()) << got.status();
        EXPECT_EQ(*got, std::min(xv, v) + yv * 3 * v) << fit->formula;
      }
  // Builds that differ only in a condition (the constant compared, its result a flag): a
  // refusal of the fit, never a Z3 exception out of it.
  {
    std::vector<z3::expr> conds;
    for (int64_t v : vs)
      conds.push_back(z3::ite(z3::ult(x, ctx.bv_val(v, 64)) && z3::ult(y, x), x, y));
    EXPECT_NO_THROW((void)FitMultiInput(ctx, conds, {{"in:ax", 'X'}, {"in:si", 'Y'}}, vs, 64));
  }
  // Outputs of another shape in one build are refused, never fitted.
  outs[1] = x + y * ctx.bv_val(12, 64);
  EXPECT_FALSE(FitMultiInput(ctx, outs, {{"in:ax", 'X'}, {"in:si", 'Y'}}, vs, 64).ok());
}

// 250/V and 251/V agree at every build (10, 5, 20, 17, 3) and everywhere but V=1: the range is
// narrowed to [2, 250], with a warning; candidates differing between the builds are refused.
TEST(Alternatives, NarrowOrRefuse) {
  CriticalSpan s;
  s.function = "f";
  s.width = 4;
  s.formula = "250 / V";
  s.formula_alternatives = {"251 / V"};
  std::vector<CriticalSpan> spans = {s};
  int64_t lo = 1, hi = 250;
  std::vector<std::string> warnings;
  ASSERT_TRUE(ResolveAlternatives({10, 5, 20, 17, 3}, &spans, &lo, &hi, &warnings).ok());
  EXPECT_EQ(lo, 2);
  EXPECT_EQ(hi, 250);
  EXPECT_TRUE(spans[0].formula_alternatives.empty());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("agree on [2, 250] only"), std::string::npos) << warnings[0];
  spans[0].formula_alternatives = {"249 / V"};
  lo = 1;
  auto st = ResolveAlternatives({10, 5, 20, 17, 3}, &spans, &lo, &hi, &warnings);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("they differ at V=5: `250 / V` gives 50, `249 / V` gives 49"),
            std::string::npos)
      << st.message();
}

// A constant valid at powers of two only (DIRTY_POLL_THRESH_KB, `(V >> 2) - 1` where other
// values compile to another shape): candidates that differ only between powers of two are
// the same knob; the range is cut where they differ at a power of two (V = 2).
TEST(Alternatives, PowersOfTwoOnlyCompareAtPowersOfTwo) {
  CriticalSpan s;
  s.function = "f";
  s.width = 4;
  s.formula = "(V >> 2) - 1";
  s.formula_alternatives = {"((V + 3) >> 2) - 1"};
  const std::vector<int64_t> built = {128, 64, 256, 512, 32};
  std::vector<CriticalSpan> spans = {s};
  int64_t lo = 1, hi = 4096;
  std::vector<std::string> warnings;
  auto st = ResolveAlternatives(built, &spans, &lo, &hi, &warnings);
  ASSERT_FALSE(st.ok());  // every value counts: they differ at V=33
  EXPECT_NE(st.message().find("they differ at V=33"), std::string::npos) << st.message();
  ASSERT_TRUE(ResolveAlternatives(built, &spans, &lo, &hi, &warnings, /*pow2=*/true).ok());
  EXPECT_EQ(spans[0].formula, "(V >> 2) - 1");
  EXPECT_TRUE(spans[0].formula_alternatives.empty());
  EXPECT_EQ(lo, 3);  // 2 >> 2 is 0, (2 + 3) >> 2 is 1: 2 is excluded, 4 kept
  EXPECT_EQ(hi, 4096);
}

// Two plain families fit 5, 3, 2 at V=2, 3, 5 (AD_MAX_TX_IN_SECOND's `10 / V`): both are kept,
// for a further build to tell apart, never one picked silently.
TEST(FitFamily, SeveralFamiliesKeptAsAlternatives) {
  auto f = FitFamily({2, 3, 5}, {5, 3, 2}, 32);
  ASSERT_TRUE(f.ok()) << f.status();
  std::vector<std::string> all = {f->formula};
  all.insert(all.end(), f->alternatives.begin(), f->alternatives.end());
  EXPECT_THAT(all, ::testing::Contains("10 / V"));
  EXPECT_THAT(all, ::testing::Contains("(12 >> V) + 2"));
  EXPECT_EQ(f->vmax, 31);  // where the shift is defined, while it is a candidate
}

// The value to build next splits the candidates left: for (V + b) / 250 with b = 0..4 it must
// be one of 246..249 mod 250, which an evenly strided scan of a wide range has to reach.
TEST(Alternatives, SplittingValueSeparatesCandidates) {
  CriticalSpan s;
  s.function = "gc_worker";
  s.width = 4;
  s.formula = "V / 250";
  s.formula_alternatives = {"(V + 1) / 250", "(V + 2) / 250", "(V + 3) / 250", "(V + 4) / 250"};
  auto v = SplittingValue({s}, 250, 10000000, {64000, 32000, 128000});
  ASSERT_TRUE(v.has_value());
  EXPECT_GE(*v % 250, 246) << *v;
  // Candidates agreeing everywhere in the range: nothing to build.
  s.formula_alternatives = {"(V + 0) / 250"};
  EXPECT_FALSE(SplittingValue({s}, 250, 10000000, {}).has_value());
}

// A check compares densely: a wrong divisor under a clamp agrees with the right one at every
// edge value sampled (0, 1, 2, 3, 7, 100, 255, 4096, ...) and differs at X=34.
TEST(Alternatives, CheckSeesAWrongDivisorUnderAClamp) {
  const std::string fitted = "(X / 20) > 8 ? 0 : 8 - (X / 20)";
  const std::string seen = "(X / 17) > 8 ? 0 : 8 - (X / 17)";
  std::string why;
  EXPECT_FALSE(AgreesAt(fitted, 4, seen, 4, 17, &why));
  EXPECT_NE(why.find("(X="), std::string::npos) << why;
  EXPECT_TRUE(AgreesAt(seen, 4, seen + " + 0", 4, 17, &why)) << why;
}

// Several spans with candidates: the value built splits them all at once where one can, and
// is taken near the builds (small values often compile to another shape).
TEST(Alternatives, SplittingValueSplitsEverySpanNearTheBuilds) {
  CriticalSpan a, b;
  a.function = b.function = "select_estimate_accuracy";
  a.width = b.width = 8;
  a.formula = "V / 5";
  a.formula_alternatives = {"(V + 1) / 5"};
  b.formula = "V / 7";
  b.formula_alternatives = {"(V + 1) / 7"};
  auto v = SplittingValue({a, b}, 1, 10000, {100, 50, 200});
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v % 5, 4) << *v;
  EXPECT_EQ(*v % 7, 6) << *v;
  EXPECT_GT(*v, 20) << *v;
}

TEST(Formula, NewShapesParseEvaluateAndEmit) {
  auto f = artifact::Formula::Parse("(((3 * V) >> 2) << 32) | (V & 0xffffffff)");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f->Eval(8), (uint64_t{6} << 32) | 8);
  EXPECT_EQ(f->EmitC(),
            "(sie_shl(sie_shr((3ULL * V), 2ULL, &bad), 32ULL, &bad) | (V & 4294967295ULL))");
  EXPECT_EQ(*EvalFormula("(V + 3) / 4 - 1", 5), 1u);
}

}  // namespace
}  // namespace sie::synth::analysis
