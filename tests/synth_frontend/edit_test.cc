// Source edits: the edit must apply exactly, keep the literal's type, and fail clearly.
#include "synth/variants/edit.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sie::synth {
namespace {

using ::testing::HasSubstr;

TEST(EditTest, MacroKeepsParenthesesAndSuffix) {
  std::string src =
      "#define HYSTART_DELAY_MIN\t(4000U)\n#define HYSTART_DELAY_MAX\t(16000U)\t/* 16 ms */\n";
  auto r = ApplyMacroEdit(src, "HYSTART_DELAY_MAX", 32000, "tcp_cubic.c");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(
      *r, "#define HYSTART_DELAY_MIN\t(4000U)\n#define HYSTART_DELAY_MAX\t(32000U)\t/* 16 ms */\n");
}

TEST(EditTest, MacroPlainAndHex) {
  auto r =
      ApplyMacroEdit("#define BLK_MAX_REQUEST_COUNT\t32\n", "BLK_MAX_REQUEST_COUNT", 64, "blk.h");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "#define BLK_MAX_REQUEST_COUNT\t64\n");
  r = ApplyMacroEdit("# define X 0x80UL // c\n", "X", 255, "f.h");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "# define X 0xffUL // c\n");
  r = ApplyMacroEdit("#define X (1 << 4)\n", "X", 8, "f.h");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "#define X ((__typeof__((1 << 4)))(8))\n");
}

// A cast in the body keeps its type: `(unsigned)(HZ/25)` edited to a bare `(10)` turns the
// shipped `ja` into `jg`, and the rebuild no longer matches the shipped binary.
TEST(EditTest, MacroExpressionKeepsItsType) {
  auto r =
      ApplyMacroEdit("#define TCP_DELACK_MIN\t((unsigned)(HZ/25))\n", "TCP_DELACK_MIN", 5, "tcp.h");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "#define TCP_DELACK_MIN\t((__typeof__(((unsigned)(HZ/25))))(5))\n");
  // The preprocessor cannot evaluate __typeof__: a macro tested by #if stays a plain value.
  r = ApplyMacroEdit("#define X (1 << 4)\n#if X > 8\n#endif\n", "X", 2, "f.h");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "#define X (2)\n#if X > 8\n#endif\n");
}

TEST(EditTest, MacroDoesNotTouchSimilarNames) {
  std::string src = "#define X_MAX 5\n#define X 3\nint a = X;\n#define XY 7\n";
  auto r = ApplyMacroEdit(src, "X", 9, "f.h");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "#define X_MAX 5\n#define X 9\nint a = X;\n#define XY 7\n");
}

TEST(EditTest, MacroErrors) {
  auto r = ApplyMacroEdit("#define Y 3\n", "X", 9, "mm/shrinker.c");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("macro X not defined in mm/shrinker.c"));
  r = ApplyMacroEdit("#ifdef A\n#define X 3\n#else\n#define X 4\n#endif\n", "X", 9, "f.h");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("defined 2 times"));
  r = ApplyMacroEdit("#define X(a) (a)\n", "X", 9, "f.h");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("takes arguments"));
  r = ApplyMacroEdit("#define X 3 + \\\n  4\n", "X", 9, "f.h");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("several lines"));
}

TEST(EditTest, MacroLiteralValue) {
  EXPECT_EQ(*MacroLiteralValue("(16000U)"), 16000);
  EXPECT_EQ(*MacroLiteralValue("0x20"), 32);
  EXPECT_EQ(*MacroLiteralValue("-1"), -1);
  EXPECT_FALSE(MacroLiteralValue("(1 << 4)").ok());
  EXPECT_FALSE(MacroLiteralValue("010").ok());  // octal: not guessed
}

TEST(EditTest, Match) {
  std::string src =
      "if (ca->curr_rtt > ca->delay_min +\n HYSTART_DELAY_THRESH(ca->delay_min >> 3)) {";
  auto r = ApplyMatchEdit(src, "ca->delay_min >> 3", "ca->delay_min >> {V}", 1, "tcp_cubic.c");
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(*r, HasSubstr("HYSTART_DELAY_THRESH(ca->delay_min >> 1))"));
  r = ApplyMatchEdit(src, "delay_min >> 4", "delay_min >> {V}", 1, "net/ipv4/tcp_cubic.c");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("text not found in net/ipv4/tcp_cubic.c"));
  r = ApplyMatchEdit(src, "delay_min", "x{V}", 1, "f.c");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("more than once"));
}

}  // namespace
}  // namespace sie::synth
