// Config-aware macros: a macro defined under several #if branches resolves to the definition
// the kernel's autoconf.h compiles, and only that one is edited; definitions under conditions
// the configuration cannot decide are all edited alike.
#include "synth/variants/config_if.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "synth/refusal.h"
#include "synth/variants/edit.h"

namespace sie::synth {
namespace {

using ::testing::HasSubstr;

constexpr char kAutoconf[] =
    "/* Automatically generated file; DO NOT EDIT. */\n"
    "#define CONFIG_64BIT 1\n"
    "#define CONFIG_NET 1\n"
    "#define CONFIG_BLOCK 1\n"
    "#define CONFIG_TCP_CONG_CUBIC_MODULE 1\n"
    "#define CONFIG_NR_CPUS 8192\n"
    "#define CONFIG_LOCALVERSION \"\"\n";

// A kernel-style header: BATCH depends on the configuration, RETRIES on a non-CONFIG macro.
constexpr char kHeader[] =
    "#ifndef _FIXTURE_H\n"                     // 1
    "#define _FIXTURE_H\n"                     // 2
    "#ifdef CONFIG_SMALL_SYSTEM\n"             // 3
    "#define BATCH 16\n"                       // 4
    "#elif defined(CONFIG_NET) && \\\n"        // 5
    "      CONFIG_NR_CPUS > 64 /* big */\n"    // 6
    "#define BATCH (128U)\n"                   // 7
    "#else\n"                                  // 8
    "#define BATCH 64\n"                       // 9
    "#endif\n"                                 // 10
    "#if IS_ENABLED(CONFIG_TCP_CONG_CUBIC)\n"  // 11
    "#define DELAY 8\n"                        // 12
    "#else\n"                                  // 13
    "#define DELAY 4\n"                        // 14
    "#endif\n"                                 // 15
    "#ifdef MODULE\n"                          // 16
    "#define RETRIES 3\n"                      // 17
    "#else\n"                                  // 18
    "#define RETRIES 5\n"                      // 19
    "#endif\n"                                 // 20
    "#endif\n";                                // 21

TEST(ConfigIfTest, ParsesAutoconfAndEvaluatesConditions) {
  KernelConfig c = ParseAutoconf(kAutoconf);
  EXPECT_EQ(c.symbols.size(), 6u);
  EXPECT_EQ(c.symbols.at("CONFIG_NR_CPUS"), "8192");
  EXPECT_EQ(EvalCondition("defined(CONFIG_NET)", c), 1);
  EXPECT_EQ(EvalCondition("defined CONFIG_NOPE", c), 0);
  EXPECT_EQ(EvalCondition("CONFIG_NR_CPUS >= 8192 && !defined(CONFIG_NOPE)", c), 1);
  EXPECT_EQ(EvalCondition("IS_BUILTIN(CONFIG_TCP_CONG_CUBIC)", c), 0);
  EXPECT_EQ(EvalCondition("IS_MODULE(CONFIG_TCP_CONG_CUBIC)", c), 1);
  EXPECT_EQ(EvalCondition("(CONFIG_NR_CPUS / 2) == 4096 ? 1 : 0", c), 1);
  // Anything but CONFIG_ symbols is unknown, unless the other side decides.
  EXPECT_EQ(EvalCondition("defined(MODULE)", c), std::nullopt);
  EXPECT_EQ(EvalCondition("BITS_PER_LONG == 64", c), std::nullopt);
  EXPECT_EQ(EvalCondition("defined(CONFIG_NOPE) && defined(MODULE)", c), 0);
  EXPECT_EQ(EvalCondition("defined(CONFIG_NET) || defined(MODULE)", c), 1);
  EXPECT_EQ(EvalCondition("FOO(1) + 1", c), std::nullopt);
}

TEST(ConfigIfTest, ActiveLinesFollowTheBranches) {
  KernelConfig c = ParseAutoconf(kAutoconf);
  std::vector<LineState> s = ActiveLines(kHeader, c);
  EXPECT_EQ(s[4 - 1], LineState::kInactive);
  EXPECT_EQ(s[7 - 1], LineState::kActive);  // the #elif continued over two lines
  EXPECT_EQ(s[9 - 1], LineState::kInactive);
  EXPECT_EQ(s[12 - 1], LineState::kActive);
  EXPECT_EQ(s[14 - 1], LineState::kInactive);
  EXPECT_EQ(s[17 - 1], LineState::kUnknown);
  EXPECT_EQ(s[19 - 1], LineState::kUnknown);
}

TEST(ConfigIfTest, OnlyTheActiveDefinitionIsEdited) {
  KernelConfig c = ParseAutoconf(kAutoconf);
  EXPECT_EQ(*MacroValueText(kHeader, "BATCH", "fixture.h", &c), "(128U)");
  auto edited = ApplyMacroEdit(kHeader, "BATCH", 256, "fixture.h", &c);
  ASSERT_TRUE(edited.ok()) << edited.status();
  std::string expect = kHeader;
  expect.replace(expect.find("(128U)"), 6, "(256U)");
  EXPECT_EQ(*edited, expect);  // lines 4 and 9 untouched
  auto delay = ApplyMacroEdit(kHeader, "DELAY", 2, "fixture.h", &c);
  ASSERT_TRUE(delay.ok()) << delay.status();
  EXPECT_THAT(*delay, HasSubstr("#define DELAY 2\n#else\n#define DELAY 4\n"));
}

TEST(ConfigIfTest, UndecidableBranchesAreEditedAlike) {
  KernelConfig c = ParseAutoconf(kAutoconf);
  // `#ifdef MODULE` is not decided by the configuration: both definitions may be compiled and
  // are exclusive, so both get the value and whichever the compiler takes carries it.
  auto r = ApplyMacroEdit(kHeader, "RETRIES", 7, "fixture.h", &c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, HasSubstr("#ifdef MODULE\n#define RETRIES 7\n#else\n#define RETRIES 7\n"));
  EXPECT_THAT(*r, HasSubstr("#define BATCH 16\n"));  // other macros untouched
  // Their shipped texts differ: no single value text to check V1 against.
  auto text = MacroValueText(kHeader, "RETRIES", "fixture.h", &c);
  ASSERT_FALSE(text.ok());
  EXPECT_THAT(std::string(text.status().message()), HasSubstr("lines 17 and 19"));
}

TEST(ConfigIfTest, UnconfiguredOrNeverCompiledStaysARefusal) {
  KernelConfig c = ParseAutoconf(kAutoconf);
  // Without a configuration (a plain object), several definitions are refused as before.
  auto none = ApplyMacroEdit(kHeader, "BATCH", 256, "fixture.h");
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("defined 3 times"));
  EXPECT_EQ(RefusalOf(none.status()), Refusal::kMacroAmbiguous);
  // A definition under a branch the configuration never compiles is no candidate.
  constexpr char kNever[] =
      "#ifdef CONFIG_NOPE\n#define N 1\n#elif defined(CONFIG_NOPE2)\n#define N 2\n#endif\n";
  auto never = ApplyMacroEdit(kNever, "N", 3, "never.h", &c);
  ASSERT_FALSE(never.ok());
  EXPECT_THAT(std::string(never.status().message()), HasSubstr("compiles none of them"));
  EXPECT_EQ(RefusalOf(never.status()), Refusal::kMacroAmbiguous);
}

}  // namespace
}  // namespace sie::synth
