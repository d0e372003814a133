// The arithmetic inside sie_kfuncs.ko (kmod/include/sie/kfuncs_logic.h), checked on the host
// against what the CPU itself computes: real `cmp` instructions for the flags and real partial
// register `mov`s for the width rules.
#include "sie/kfuncs_logic.h"

#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace {

// EFLAGS after `cmp rhs, lhs` (AT&T), executed at `width` bytes. The push/pop of the flags steps
// over the red zone, which the compiler may be using around the asm statement.
uint64_t HardwareCmpFlags(uint64_t lhs, uint64_t rhs, unsigned width) {
  uint64_t flags;
  switch (width) {
    case 1:
      asm("cmpb %b2, %b1\n\tlea -128(%%rsp), %%rsp\n\tpushfq\n\tpopq %0\n\tlea 128(%%rsp), %%rsp"
          : "=r"(flags)
          : "q"(lhs), "q"(rhs)
          : "cc");
      break;
    case 2:
      asm("cmpw %w2, %w1\n\tlea -128(%%rsp), %%rsp\n\tpushfq\n\tpopq %0\n\tlea 128(%%rsp), %%rsp"
          : "=r"(flags)
          : "r"(lhs), "r"(rhs)
          : "cc");
      break;
    case 4:
      asm("cmpl %k2, %k1\n\tlea -128(%%rsp), %%rsp\n\tpushfq\n\tpopq %0\n\tlea 128(%%rsp), %%rsp"
          : "=r"(flags)
          : "r"(lhs), "r"(rhs)
          : "cc");
      break;
    default:
      asm("cmpq %2, %1\n\tlea -128(%%rsp), %%rsp\n\tpushfq\n\tpopq %0\n\tlea 128(%%rsp), %%rsp"
          : "=r"(flags)
          : "r"(lhs), "r"(rhs)
          : "cc");
      break;
  }
  return flags;
}

// The register after an x86 `mov` of val into its low `width` bytes.
uint64_t HardwareRegWrite(uint64_t old, uint64_t val, unsigned width) {
  uint64_t r = old;
  switch (width) {
    case 1:
      asm("movb %b1, %b0" : "+q"(r) : "q"(val));
      break;
    case 2:
      asm("movw %w1, %w0" : "+r"(r) : "r"(val));
      break;
    case 4:
      asm("movl %k1, %k0" : "+r"(r) : "r"(val));
      break;
    default:
      asm("movq %1, %0" : "+r"(r) : "r"(val));
      break;
  }
  return r;
}

std::vector<uint64_t> InterestingValues() {
  std::vector<uint64_t> v = {0,
                             1,
                             2,
                             0xf,
                             0x10,
                             0x11,
                             0x7e,
                             0x7f,
                             0x80,
                             0x81,
                             0xfe,
                             0xff,
                             0x100,
                             0x7fff,
                             0x8000,
                             0xffff,
                             0x10000,
                             0x7fffffff,
                             0x80000000,
                             0xffffffff,
                             0x100000000ULL,
                             0x7fffffffffffffffULL,
                             0x8000000000000000ULL,
                             0xffffffffffffffffULL,
                             0x3e8,
                             0x1234,
                             0xffffffffffffff80ULL};
  // The same values with garbage in the bits above each width, which a compare must ignore.
  const size_t n = v.size();
  for (size_t i = 0; i < n; i++) v.push_back(v[i] ^ 0xa5a5a5a5a5a5a500ULL);
  return v;
}

constexpr unsigned kWidths[] = {1, 2, 4, 8};

TEST(CmpFlags, MatchesHardwareOnEdgeValues) {
  const std::vector<uint64_t> values = InterestingValues();
  for (unsigned w : kWidths) {
    for (uint64_t a : values) {
      for (uint64_t b : values) {
        ASSERT_EQ(sie_cmp_flags(a, b, w), HardwareCmpFlags(a, b, w) & SIE_FLAGS_ARITH)
            << "width " << w << " lhs 0x" << std::hex << a << " rhs 0x" << b;
      }
    }
  }
}

TEST(CmpFlags, MatchesHardwareOnRandomValues) {
  std::mt19937_64 rng(12345);
  for (int i = 0; i < 200000; i++) {
    const unsigned w = kWidths[i % 4];
    uint64_t a = rng(), b = rng();
    if (i % 3 == 0) b = a + (rng() % 5) - 2;  // near-equal operands: ZF, CF and AF edges
    ASSERT_EQ(sie_cmp_flags(a, b, w), HardwareCmpFlags(a, b, w) & SIE_FLAGS_ARITH)
        << "width " << w << " lhs 0x" << std::hex << a << " rhs 0x" << b;
  }
}

// EFLAGS after the instruction `op` (sub, add, and, test: AT&T `op rhs, lhs`) at `width` bytes.
#define SIE_HW_FLAGS(insn, sfx, mod, lhsc, rhsc)                                            \
  asm(insn sfx " %" mod "2, %" mod "1\n\tlea -128(%%rsp), %%rsp\n\tpushfq\n\tpopq %0\n\t" \
      "lea 128(%%rsp), %%rsp"                                                              \
      : "=r"(flags), "+" lhsc(lhs)                                                         \
      : rhsc(rhs)                                                                          \
      : "cc")
#define SIE_HW_WIDTHS(insn)                       \
  switch (width) {                                \
    case 1:                                       \
      SIE_HW_FLAGS(insn, "b", "b", "q", "q");     \
      break;                                      \
    case 2:                                       \
      SIE_HW_FLAGS(insn, "w", "w", "r", "r");     \
      break;                                      \
    case 4:                                       \
      SIE_HW_FLAGS(insn, "l", "k", "r", "r");     \
      break;                                      \
    default:                                      \
      SIE_HW_FLAGS(insn, "q", "q", "r", "r");     \
      break;                                      \
  }

uint64_t HardwareOpFlags(unsigned op, uint64_t lhs, uint64_t rhs, unsigned width, bool test) {
  uint64_t flags = 0;
  if (op == SIE_FLAGS_OP_SUB) {
    SIE_HW_WIDTHS("sub");
  } else if (op == SIE_FLAGS_OP_ADD) {
    SIE_HW_WIDTHS("add");
  } else if (test) {
    SIE_HW_WIDTHS("test");
  } else {
    SIE_HW_WIDTHS("and");
  }
  return flags;
}

// sub/add/and/test with the immediate the stub recomputes: the same flags as the CPU's
// instruction, on edge values (carries, sign changes, zero results at every width) and random.
TEST(OpFlags, MatchesHardwareForEveryOp) {
  const std::vector<uint64_t> values = InterestingValues();
  std::mt19937_64 rng(777);
  for (unsigned op : {SIE_FLAGS_OP_SUB, SIE_FLAGS_OP_ADD, SIE_FLAGS_OP_AND}) {
    for (bool test : {false, true}) {
      if (test && op != SIE_FLAGS_OP_AND) continue;
      for (unsigned w : kWidths) {
        for (uint64_t a : values)
          for (uint64_t b : values)
            ASSERT_EQ(sie_op_flags(op, a, b, w),
                      HardwareOpFlags(op, a, b, w, test) & SIE_FLAGS_ARITH)
                << "op " << op << (test ? " (test)" : "") << " width " << w << " lhs 0x"
                << std::hex << a << " rhs 0x" << b;
        for (int i = 0; i < 20000; i++) {
          uint64_t a = rng(), b = i % 2 ? rng() : (0 - a) + (rng() % 5) - 2;  // sums near 0
          ASSERT_EQ(sie_op_flags(op, a, b, w), HardwareOpFlags(op, a, b, w, test) & SIE_FLAGS_ARITH)
              << "op " << op << " width " << w << " lhs 0x" << std::hex << a << " rhs 0x" << b;
        }
      }
    }
  }
  EXPECT_EQ(sie_op_flags(SIE_FLAGS_OP_NR, 1, 2, 8), ~0ULL);
}

TEST(FlagsMerge, KeepsNonArithmeticBits) {
  // IF | reserved bit 1 | DF | TF, plus every arithmetic flag set beforehand.
  const uint64_t old = 0x200 | 0x2 | 0x400 | 0x100 | SIE_FLAGS_ARITH;
  const uint64_t merged = sie_flags_merge(old, 5, 5, 8);
  EXPECT_EQ(merged & ~SIE_FLAGS_ARITH, old & ~SIE_FLAGS_ARITH);
  EXPECT_EQ(merged & SIE_FLAGS_ARITH, SIE_FLAG_ZF | SIE_FLAG_PF);
}

TEST(RegMerge, FollowsX86WidthRules) {
  const std::vector<uint64_t> values = InterestingValues();
  for (unsigned w : kWidths) {
    for (uint64_t old : values) {
      for (uint64_t val : values) {
        ASSERT_EQ(sie_reg_merge(old, val, w), HardwareRegWrite(old, val, w))
            << "width " << w << " old 0x" << std::hex << old << " val 0x" << val;
      }
    }
  }
  EXPECT_EQ(sie_reg_merge(0xffffffffffffffffULL, 0x1234, 4), 0x1234u);  // zero-extends
  EXPECT_EQ(sie_reg_merge(0xffffffffffffffffULL, 0x1234, 2), 0xffffffffffff1234ULL);
  EXPECT_EQ(sie_reg_merge(0xffffffffffffffffULL, 0x1234, 1), 0xffffffffffffff34ULL);
}

TEST(Width, OnlyPowersOfTwoUpToEight) {
  for (unsigned w = 0; w <= 16; w++) {
    EXPECT_EQ(sie_width_valid(w) != 0, w == 1 || w == 2 || w == 4 || w == 8) << w;
  }
}

TEST(CellAddress, BaseIndexScaleDisp) {
  EXPECT_EQ(sie_cell_address(0xffff888000001000ULL, 3, 8, -16), 0xffff888000001008ULL);
  EXPECT_EQ(sie_cell_address(0xffff888000001000ULL, 0, 1, 8), 0xffff888000001008ULL);
  EXPECT_EQ(sie_cell_address(0, 0, 1, -8), 0xfffffffffffffff8ULL);  // wraps like the CPU
}

}  // namespace
