// The symbolic executor (synth/analysis/semantics*.cc) against the host CPU: each snippet runs
// natively (inline asm) and symbolically on the same concrete inputs, and every register and
// every architecturally defined flag must agree; flags the SDM leaves undefined must stay
// unknown. Then the unknown values: an unmodelled instruction outside the constant's data
// flow must not block a span, one inside it must be named.
#include "synth/analysis/semantics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/elf/kprobe_rules.h"
#include "synth/analysis/disasm.h"
#include "synth/analysis/optprobe.h"
#include "synth/analysis/slice.h"
#include "synth/refusal.h"

namespace sie::synth::analysis {
namespace {

struct Regs {
  Regs(uint64_t a = 0, uint64_t b = 0, uint64_t c = 0, uint64_t d = 0, uint64_t s = 0,
       uint64_t i = 0)
      : ax(a), bx(b), cx(c), dx(d), si(s), di(i) {}
  uint64_t ax, bx, cx, dx, si, di, flags = 0;
};

// Runs `code` (Intel syntax) on the host with `r` in rax..rdi; the flags after it in r.flags.
#define NATIVE(code, r)                                                                            \
  do {                                                                                             \
    register uint64_t f asm("r8");                                                                 \
    asm volatile(".intel_syntax noprefix\n lea rsp, [rsp-128]\n " code                             \
                 "\n pushfq\n pop r8\n lea rsp, [rsp+128]\n .att_syntax prefix"                    \
                 : "+a"(r.ax), "+b"(r.bx), "+c"(r.cx), "+d"(r.dx), "+S"(r.si), "+D"(r.di), "=r"(f) \
                 :                                                                                 \
                 : "memory", "cc");                                                                \
    r.flags = f;                                                                                   \
  } while (0)

// Assembles Intel-syntax `code` with GNU as.
Function Assemble(const std::string& code) {
  std::string base = absl::StrCat(::testing::TempDir(), "/sem_", getpid());
  std::ofstream(base + ".s") << ".intel_syntax noprefix\n" << code << "\n";
  std::string cmd = absl::StrCat("as --64 -o ", base, ".o ", base,
                                 ".s && objcopy -O binary -j .text ", base, ".o ", base, ".bin");
  EXPECT_EQ(system(cmd.c_str()), 0) << code;
  std::ifstream bin(base + ".bin", std::ios::binary);
  std::stringstream bytes;
  bytes << bin.rdbuf();
  auto fn = DisassembleBytes("snippet", bytes.str());
  EXPECT_TRUE(fn.ok()) << fn.status();
  return fn.ok() ? *fn : Function{};
}

// Runs `code` symbolically from the concrete registers `in`.
void Execute(SymState& st, const std::string& code, const Regs& in, Function* keep) {
  std::string init = absl::StrFormat(
      "movabs rax, %d\nmovabs rbx, %d\nmovabs rcx, %d\nmovabs rdx, %d\nmovabs rsi, %d\n"
      "movabs rdi, %d\nmovabs rsp, 0x7fff0000\n",
      in.ax, in.bx, in.cx, in.dx, in.si, in.di);
  *keep = Assemble(init + code);
  for (const Insn& i : keep->insns) ASSERT_TRUE(st.Step(i)) << i.Text() << ": " << st.unsupported();
}

std::optional<uint64_t> Value(const z3::expr& e) {
  uint64_t v = 0;
  z3::expr s = e.simplify();
  if (s.is_bool()) return s.is_true() ? 1 : s.is_false() ? 0 : std::optional<uint64_t>();
  return s.is_numeral_u64(v) ? std::optional<uint64_t>(v) : std::nullopt;
}

// Compares the symbolic run of `code` with the native one (`out`); `undefined` lists the
// flags the SDM leaves undefined after the snippet: those must not be constants.
void Check(const std::string& code, const Regs& in, const Regs& out, const std::string& undefined) {
  SCOPED_TRACE(code);
  z3::context ctx;
  SymState st(ctx);
  Function fn;
  Execute(st, code, in, &fn);
  const std::pair<const char*, uint64_t> regs[] = {{"ax", out.ax}, {"bx", out.bx}, {"cx", out.cx},
                                                   {"dx", out.dx}, {"si", out.si}, {"di", out.di}};
  for (auto [f, v] : regs) {
    auto got = Value(st.Reg(f));
    ASSERT_TRUE(got.has_value()) << f << " = " << st.Reg(f).simplify();
    EXPECT_EQ(*got, v) << f;
  }
  const std::pair<const char*, int> flags[] = {
      {"CF", 0}, {"PF", 2}, {"ZF", 6}, {"SF", 7}, {"OF", 11}};
  const std::map<std::string, std::string> cc = {
      {"CF", "b"}, {"PF", "p"}, {"ZF", "e"}, {"SF", "s"}, {"OF", "o"}};
  for (auto [f, bit] : flags) {
    auto got = Value(*st.Cond(cc.at(f)));
    if (undefined.find(f) != std::string::npos) {
      EXPECT_FALSE(got.has_value()) << f << " is undefined but modelled as " << *got;
    } else {
      ASSERT_TRUE(got.has_value()) << f;
      EXPECT_EQ(*got, (out.flags >> bit) & 1) << f;
    }
  }
}

// No flag is set by the snippet: all are the flags before it.
constexpr const char* kUnset = "CF PF ZF SF OF";

#define SAME(code, undefined, ...)   \
  do {                               \
    Regs in(__VA_ARGS__);            \
    Regs out = in;                   \
    NATIVE(code, out);               \
    Check(code, in, out, undefined); \
  } while (0)

TEST(Semantics, StackPushPop) {
  SAME("cmp eax, ebx\n push rbx\n push rcx\n push -5\n pop rsi\n pop rax\n pop rdx", "", 1, 2, 3, 4,
       5, 6);
}

TEST(Semantics, BitScans) {
  SAME("bsr rdx, rcx", "CF SF OF PF", 0, 0, 0x1234, 0, 0, 0);
  SAME("bsf eax, ecx", "CF SF OF PF", 0, 0, 0x1230, 0, 0, 0);
  SAME("bsr dx, cx", "CF SF OF PF", 0, 0, 0x80, 0x55550000, 0, 0);
  SAME("popcnt rax, rbx", "", 0, 0xf0f0ff, 0, 0, 0, 0);
  // tzcnt is bsf on CPUs without BMI1: its flags differ between CPUs.
  SAME("tzcnt rsi, rdi", "CF ZF SF OF PF", 0, 0, 0, 0, 0, 0x100);
}

TEST(Semantics, ZeroSourceOfABitScanIsUndefinedBelow64Bits) {
  z3::context ctx;
  SymState st(ctx);
  Function fn;
  Execute(st, "bsr edx, ecx", Regs{0, 0, 0, 7, 0, 0}, &fn);
  EXPECT_FALSE(Value(st.Reg("dx")).has_value()) << st.Reg("dx");  // not "unchanged"
  EXPECT_EQ(Value(*st.Cond("e")), 1u);                            // ZF = source is 0
}

// A 64-bit bsr/bsf of zero keeps the destination, as the kernel's fls64 relies on.
TEST(Semantics, ZeroSourceOfA64BitBitScanKeepsTheDestination) {
  SAME("bsr rdx, rcx", "CF SF OF PF", 0, 0, 0, 7, 0, 0);
  SAME("bsf rax, rbx", "CF SF OF PF", 0x55, 0, 0, 0, 0, 0);
}

TEST(Semantics, BitTests) {
  SAME("bt rax, rcx", "ZF SF OF PF", 0x10, 0, 68, 0, 0, 0);
  SAME("cmp eax, eax\n bts eax, 31", "SF OF PF", 5, 0, 0, 0, 0, 0);
  SAME("btr rbx, 3", "ZF SF OF PF", 0, 0xff, 0, 0, 0, 0);
  SAME("btc dx, cx", "ZF SF OF PF", 0, 0, 17, 0xfff0, 0, 0);
}

TEST(Semantics, BitStringInMemoryBeyondTheOperand) {
  // The register offset addresses the bit string from the operand on: 70 is bit 6 of the next
  // qword, -3 is bit 61 of the previous one.
  alignas(16) static uint64_t buf[4];
  Regs in{0, 0, 0, 70, 0, reinterpret_cast<uint64_t>(&buf[1])};
  const char* code =
      "mov qword ptr [rdi-8], -1\n mov qword ptr [rdi], -1\n mov qword ptr [rdi+8], -1\n"
      "btr qword ptr [rdi], rdx\n mov rax, [rdi+8]\n mov rcx, -3\n bts qword ptr [rdi], rcx\n"
      "btc qword ptr [rdi], rcx\n mov rbx, [rdi-8]\n mov rsi, [rdi]";
  Regs out = in;
  NATIVE(
      "mov qword ptr [rdi-8], -1\n mov qword ptr [rdi], -1\n mov qword ptr [rdi+8], -1\n"
      "btr qword ptr [rdi], rdx\n mov rax, [rdi+8]\n mov rcx, -3\n bts qword ptr [rdi], rcx\n"
      "btc qword ptr [rdi], rcx\n mov rbx, [rdi-8]\n mov rsi, [rdi]",
      out);
  EXPECT_EQ(out.ax, ~(uint64_t{1} << 6));
  Check(code, in, out, "ZF SF OF PF");
}

TEST(Semantics, ConditionalMovesAndSets) {
  SAME("cmp ecx, edx\n cmovae eax, ebx\n setb sil\n setg dil", "", 1, 2, 5, 7, 0, 0);
  SAME("cmp rcx, rdx\n cmovl rax, rbx\n setbe sil\n setp dil", "", 1, 2, -5, 7, 0x100, 0);
  SAME("test eax, eax\n cmove eax, ecx", "", 0xffffffff00000000, 0, 9, 0, 0, 0);
}

TEST(Semantics, Exchanges) {
  SAME("xchg rax, rbx\n xchg ecx, edx", kUnset, 1, 2, 3, 0xffffffff00000004, 0, 0);
  SAME("xadd esi, edi", "", 0, 0, 0, 0, 0x7fffffff, 1);
}

TEST(Semantics, Multiplications) {
  SAME("imul ecx", "ZF SF PF", 0x80000000, 0, 3, 0, 0, 0);
  SAME("mul rcx", "ZF SF PF", 0x8000000000000000, 0, 3, 0, 0, 0);
  SAME("imul rax, rbx, -7", "ZF SF PF", 0, 1 << 20, 0, 0, 0, 0);
  SAME("imul cx, dx", "ZF SF PF", 0, 0, 300, 300, 0, 0);
  SAME("imul bl", "ZF SF PF", 0x1234, 0xfe, 0, 0, 0, 0);
  SAME("mul si", "ZF SF PF", 0x4000, 0, 0, 0x7777, 4, 0);
}

TEST(Semantics, Divisions) {
  const char* all = "CF PF ZF SF OF";
  SAME("div rcx", all, 1000003, 0, 7, 5, 0, 0);  // rdx:rax = 5 * 2^64 + 1000003
  SAME("div ecx", all, 0xffffffff12345678, 0, 0x10000, 0xffffffff00000003, 0, 0);
  SAME("idiv esi", all, -1000, 0, 0, -1, 7, 0);  // truncates toward 0, remainder -6
  SAME("idiv rbx", all, -7, -2, 0, -1, 0, 0);
  SAME("div bl", all, 0x1234, 0x99, 0, 0, 0, 0);
  SAME("idiv cl", all, -300, 0, 7, 0, 0, 0);
  SAME("div si", all, 0x5678, 0, 0, 0x12, 0x100, 0);
}

TEST(Semantics, Carries) {
  SAME("add rax, rbx\n adc rcx, rdx", "", -1, 1, 5, 7, 0, 0);
  SAME("cmp eax, ebx\n sbb ecx, ecx", "", 1, 2, 0, 0, 0, 0);
  SAME("sub al, bl\n sbb dl, cl", "", 0, 1, 0x7f, 0x80, 0, 0);
  SAME("stc\n adc esi, edi", "", 0, 0, 0, 0, 0x7fffffff, 0);
}

TEST(Semantics, SignExtensions) {
  SAME("cdq", kUnset, 0x80000000, 0, 0, -1, 0, 0);
  SAME("cqo", kUnset, -2, 0, 0, 5, 0, 0);
  SAME("cdqe", kUnset, 0xffff0000ffffff00, 0, 0, 0, 0, 0);
  SAME("cwde\n cwd", kUnset, 0x8000, 0, 0, 0x123456789, 0, 0);
  SAME("cbw", kUnset, 0x1111180, 0, 0, 0, 0, 0);
  SAME("movsx rax, bl\n movzx ecx, dx\n movsxd rsi, edi", kUnset, 0, 0x80, 0, 0xfff0ff, 0,
       0xffffffff);
}

TEST(Semantics, NegNot) {
  SAME("neg ecx\n not rdx", "", 0, 0, 5, 9, 0, 0);
  SAME("neg rsi", "", 0, 0, 0, 0, 0, 0);
}

TEST(Semantics, ShiftsAndRotatesByCl) {
  SAME("sar edx, cl", "OF", 0, 0, 3, 0x80000010, 0, 0);
  SAME("shl rdx, cl", "", 0, 0, 1, 0xc000000000000000, 0, 0);
  SAME("shr ax, cl", "", 0x8001, 0, 1, 0, 0, 0);
  SAME("shl bl, cl", "CF OF", 0, 0xff, 9, 0, 0, 0);           // count past a byte: CF undefined
  SAME("cmp eax, ebx\n shl edx, cl", "", 1, 2, 32, 5, 0, 0);  // masked count 0: flags kept
  SAME("cmp eax, ebx\n rol edx, cl", "", 1, 2, 1, 0x80000001, 0, 0);
  SAME("cmp eax, ebx\n ror rdx, cl", "OF", 1, 2, 5, 0x31, 0, 0);
  SAME("test eax, eax\n rol si, 1\n ror di, 1", "", 0, 0, 0, 0, 0x8000, 1);
  SAME("rol bl, cl", "OF ZF SF PF", 0, 0x81, 8, 0, 0, 0);  // masked count 8: rotation by 0, CF set
}

TEST(Semantics, IncDecKeepTheCarry) {
  SAME("stc\n inc eax\n dec ebx", "", 0x7fffffff, 0, 0, 0, 0, 0);
}

TEST(Semantics, LeaForms) {
  SAME("lea eax, [rbx+rcx*4+0x10]\n lea rdx, [rsi+rsi*2]\n lea di, [rdi-1]", kUnset, 0, 5, 6, 0,
       0x100000000, 0);
}

// Three "builds" of one span (V = 3, 5, 9), each with `extra` after the constant.
std::vector<std::unique_ptr<SymState>> Builds(z3::context& ctx, const std::string& extra,
                                              std::vector<Function>* keep) {
  std::vector<std::unique_ptr<SymState>> st;
  keep->resize(3);
  int k = 0;
  for (int v : {3, 5, 9}) {
    st.push_back(std::make_unique<SymState>(ctx));
    (*keep)[k] = Assemble(absl::StrCat("imul eax, edi, ", v, "\n", extra));
    for (const Insn& i : (*keep)[k].insns) EXPECT_TRUE(st.back()->Step(i)) << i.Text();
    ++k;
  }
  return st;
}

std::vector<z3::expr> Outputs(const std::vector<std::unique_ptr<SymState>>& st, const char* f) {
  std::vector<z3::expr> o;
  for (const auto& s : st) o.push_back(s->Reg(f));
  return o;
}

TEST(Semantics, UnmodelledInstructionOutsideTheDataFlowDoesNotBlock) {
  z3::context ctx;
  std::vector<Function> keep;
  // bswap and lzcnt are not modelled; they only touch registers the constant does not reach.
  auto st = Builds(ctx, "bswap rsi\n lzcnt rcx, rdx\n push r12", &keep);
  std::vector<const SymState*> ss = {st[0].get(), st[1].get(), st[2].get()};
  auto ax = Outputs(st, "ax");
  EXPECT_TRUE(CheckModelled(ctx, &ax, ss, "register ax").ok());
  z3::solver s(ctx);
  s.add(ax[2] != z3::zext(ctx.bv_const("in:di", 64).extract(31, 0) * ctx.bv_val(9, 32), 32));
  EXPECT_EQ(s.check(), z3::unsat) << ax[2];
  auto si = Outputs(st, "si");  // unknown, but the same in every build
  EXPECT_TRUE(CheckModelled(ctx, &si, ss, "register si").ok());
  auto cx = Outputs(st, "cx");
  EXPECT_TRUE(CheckModelled(ctx, &cx, ss, "register cx").ok());
}

TEST(Semantics, UnmodelledInstructionInTheDataFlowIsNamed) {
  z3::context ctx;
  std::vector<Function> keep;
  auto st = Builds(ctx, "bswap eax", &keep);
  std::vector<const SymState*> ss = {st[0].get(), st[1].get(), st[2].get()};
  auto ax = Outputs(st, "ax");
  absl::Status s = CheckModelled(ctx, &ax, ss, "register ax");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(RefusalOf(s), Refusal::kUnmodelledInstruction);
  EXPECT_NE(s.message().find("cannot model instruction `bswap eax` at +0x3 in the span: its "
                             "result reaches register ax"),
            std::string::npos)
      << s.message();
}

TEST(Semantics, UndefinedValueOnlyMattersWhenTheOutputDependsOnIt) {
  z3::context ctx;
  std::vector<Function> keep;
  // bsr of a zero source is undefined: masked away it is harmless, used it is refused.
  auto st = Builds(ctx, "bsr edx, eax\n and edx, 0\n bsr ecx, eax\n add ecx, eax", &keep);
  std::vector<const SymState*> ss = {st[0].get(), st[1].get(), st[2].get()};
  auto dx = Outputs(st, "dx");
  EXPECT_TRUE(CheckModelled(ctx, &dx, ss, "register dx").ok());
  auto cx = Outputs(st, "cx");
  absl::Status s = CheckModelled(ctx, &cx, ss, "register cx");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("register cx depends on the destination of `bsr ecx, eax`"),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("architecturally undefined"), std::string::npos);
}

TEST(Semantics, HiddenEffectsStillStopExecution) {
  z3::context ctx;
  SymState st(ctx);
  Function fn = Assemble("rep stosq");
  ASSERT_EQ(fn.insns.size(), 1u);
  EXPECT_FALSE(st.Step(fn.insns[0]));
  EXPECT_NE(st.unsupported().find("rep stos"), std::string::npos) << st.unsupported();
}

// The Safe Span of a value computed into eax by its first instruction (the CS) and probed at
// the second, in the function `text`.
std::pair<Function, SafeSpan> SliceOf(const std::string& text) {
  Function fn = Assemble(text);
  fn.size = fn.insns.back().offset + fn.insns.back().size;
  CriticalSpan cs;
  cs.kind = SpanKind::kReg;
  cs.target_reg = "ax";
  cs.cs_start = 0;
  cs.cs_end = cs.probe_offset = fn.insns[1].offset;
  SafeSpan s = SliceSafeSpan(fn, cs);
  return {std::move(fn), s};
}

// The Safe Span follows the value only through named locations: a value pushed and popped
// elsewhere makes the whole function the span.
TEST(Slice, ValueThroughPushIsNotLost) {
  auto [fn, s] = SliceOf(
      "imul eax, edi, 5\n nop\n push rax\n pop rcx\n mov [rsi], ecx\n"
      " xor eax, eax\n ret");
  EXPECT_EQ(s.how, SafeSpanHow::kWholeFunction) << s.start << "-" << s.end;
  // Without the push the slice ends at the last use of eax.
  auto [plain, p] = SliceOf("imul eax, edi, 5\n nop\n mov ecx, eax\n xor eax, eax\n ret");
  EXPECT_EQ(p.how, SafeSpanHow::kSlice);
  EXPECT_EQ(p.end, plain.insns[2].offset + plain.insns[2].size);
}

// A value stored outside the frame (a field of an object through a pointer) is followed to
// the loads of the same cell while the base register is unchanged; left in the cell at a call
// or a return, or with its base register changed, its readers are unbounded: the whole function.
TEST(Slice, ValueStoredThroughAPointerIsFollowedOrWidened) {
  // Read back (add), then the cell is overwritten before the return: the slice ends at the add.
  auto [fn, s] = SliceOf(
      "imul eax, edi, 5\n nop\n mov [rbx + 8], eax\n mov ecx, [rbx + 8]\n add ecx, 1\n"
      " mov dword ptr [rbx + 8], 0\n xor eax, eax\n ret");
  EXPECT_EQ(s.how, SafeSpanHow::kSlice);
  EXPECT_EQ(s.end, fn.insns[4].offset + fn.insns[4].size);
  // Still in the cell at the return: it outlives the function.
  EXPECT_EQ(SliceOf("imul eax, edi, 5\n nop\n mov [rsi], eax\n xor eax, eax\n ret").second.how,
            SafeSpanHow::kWholeFunction);
  // A call while the cell holds it (a sleep between two uses, as sie_target's batch cycle).
  EXPECT_EQ(SliceOf("imul eax, edi, 5\n nop\n mov [rbx + 8], eax\n call 0\n mov dword ptr "
                    "[rbx + 8], 0\n ret")
                .second.how,
            SafeSpanHow::kWholeFunction);
  // The base register changes: the cell can no longer be named.
  EXPECT_EQ(SliceOf("imul eax, edi, 5\n nop\n mov [rbx + 8], eax\n mov rbx, rdi\n mov dword "
                    "ptr [rdi + 8], 0\n ret")
                .second.how,
            SafeSpanHow::kWholeFunction);
  // A stack slot dies with the frame: not widened.
  EXPECT_EQ(SliceOf("imul eax, edi, 5\n nop\n mov [rsp + 8], eax\n xor eax, eax\n ret").second.how,
            SafeSpanHow::kSlice);
}

// Where the kernel may jump-optimize a kprobe (opt.c can_optimize, copy_optimized_instructions):
// not where a jump lands inside the 5 bytes (or on the byte after them), not in a function with
// an exception-table entry, never over bytes the kernel patches; the limit stops at those.
TEST(JumpLimit, FollowsTheKernelsRules) {
  // `je` lands 6 bytes after the mov (one nop between): outside its 5 bytes and the byte after.
  Function fn = Assemble(
      "test edi, 1\n je 1f\n mov eax, 0x300\n nop\n 1: add rax, 1\n nop\n nop\n nop\n nop\n"
      " nop\n nop\n ret");
  fn.size = fn.insns.back().offset + fn.insns.back().size;
  OptimizeContext c;
  c.fn = &fn;
  const uint64_t mov = fn.insns[2].offset, add = fn.insns[4].offset;
  ASSERT_EQ(add, mov + 6);
  auto at_mov = JumpLimit(c, mov);
  ASSERT_TRUE(at_mov.ok()) << at_mov.status();
  EXPECT_EQ(*at_mov, static_cast<int>(fn.size - mov));
  // Without the nop it lands on the byte after the 5: refused, as the kernel does.
  Function tight = Assemble("test edi, 1\n je 1f\n mov eax, 0x300\n 1: add rax, 1\n nop\n ret");
  tight.size = tight.insns.back().offset + tight.insns.back().size;
  OptimizeContext t;
  t.fn = &tight;
  EXPECT_THAT(JumpLimit(t, tight.insns[2].offset).status().message(),
              ::testing::HasSubstr("`je 0xd` at +0x6 jumps into the 5 bytes"));
  EXPECT_TRUE(JumpLimit(c, add).ok());
  EXPECT_THAT(JumpLimit(c, fn.insns.back().offset - 1).status().message(),
              ::testing::HasSubstr("fewer than 5 bytes"));
  // A patched byte (an alternative, say) 6 bytes after add: the window may use 6 bytes.
  c.reserved = {{add + 6, 1}};
  EXPECT_EQ(*JumpLimit(c, add), 6);
  c.reserved = {{add + 2, 4}};
  EXPECT_THAT(JumpLimit(c, add).status().message(), ::testing::HasSubstr("patches a byte"));
  c.reserved.clear();
  c.has_extable = true;
  EXPECT_THAT(JumpLimit(c, add).status().message(),
              ::testing::HasSubstr("exception-table entries"));
}

// can_boost: what may run out of line in an optimized probe's copy.
TEST(JumpLimit, BoostableInstructionsAreTheKernels) {
  auto boost = [](std::initializer_list<uint8_t> b) {
    return elf::KprobeCanBoost(std::string(b.begin(), b.end()));
  };
  EXPECT_TRUE(boost({0x48, 0x83, 0xc0, 0x01}));        // add rax, 1
  EXPECT_TRUE(boost({0xc3}));                          // ret (a return thunk patched at boot)
  EXPECT_TRUE(boost({0xb8, 0, 3, 0, 0}));              // mov eax, 0x300
  EXPECT_TRUE(boost({0x0f, 0xb6, 0xc0}));              // movzx eax, al
  EXPECT_TRUE(boost({0x0f, 0x1f, 0x44, 0x00, 0x00}));  // nopl
  EXPECT_TRUE(boost({0xf0, 0x48, 0x01, 0x07}));        // lock add [rdi], rax
  EXPECT_FALSE(boost({0xe8, 0, 0, 0, 0}));             // call
  EXPECT_FALSE(boost({0xe9, 0, 0, 0, 0}));             // jmp rel32 (an unpatched return thunk)
  EXPECT_FALSE(boost({0x74, 0x05}));                   // je
  EXPECT_FALSE(boost({0x0f, 0x84, 0, 0, 0, 0}));       // je rel32
  EXPECT_FALSE(boost({0xcc}));                         // int3
  EXPECT_FALSE(boost({0x2e, 0xe8, 0, 0, 0, 0}));       // cs call (retpoline thunk call)
  EXPECT_FALSE(boost({0xf6, 0xc8, 0x01}));             // F6 /1: reserved on Intel
  EXPECT_TRUE(boost({0xf6, 0xc7, 0x01}));              // test bh, 1 (F6 /0)
  EXPECT_FALSE(boost({0x0f, 0x38, 0xf0, 0x07}));       // three-byte opcode (movbe)
  EXPECT_FALSE(boost({0xff, 0xd0}));                   // call rax (FF /2)
  EXPECT_TRUE(boost({0xff, 0xc0}));                    // inc eax (FF /0)
}

}  // namespace
}  // namespace sie::synth::analysis
