#include "common/base/args.h"

#include <gtest/gtest.h>

#include "common/base/diag.h"

namespace sie {
namespace {

struct Parsed {
  bool v = false;
  std::string out;
  long n = 0;
  std::vector<std::string> adds, pos, rest;
};

ArgParser MakeParser(Parsed& p) {
  ArgParser a("t [-v] [--out DIR] [--n N] POS... -- REST", "test parser");
  a.Flag("-v,--verbose", &p.v, "verbose");
  a.String("--out", "DIR", &p.out, "out");
  a.Int("--n", "N", &p.n, "n");
  a.StringList("--add", "X", &p.adds, "add");
  a.Positionals("POS", &p.pos, 1, 2);
  a.Rest(&p.rest);
  return a;
}

TEST(ArgParserTest, ParsesOptionsPositionalsAndRest) {
  Parsed p;
  auto a = MakeParser(p);
  ASSERT_TRUE(
      a.Parse({"x", "-v", "--out=d", "--n", "5", "--add", "a", "--add", "b", "--", "cmd", "--out"})
          .ok());
  EXPECT_TRUE(p.v);
  EXPECT_EQ(p.out, "d");
  EXPECT_EQ(p.n, 5);
  EXPECT_EQ(p.adds, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.pos, (std::vector<std::string>{"x"}));
  EXPECT_EQ(p.rest, (std::vector<std::string>{"cmd", "--out"}));
}

TEST(ArgParserTest, UnknownOptionHasAHint) {
  Parsed p;
  auto a = MakeParser(p);
  auto s = a.Parse({"x", "--bogus"});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("unknown option '--bogus'"), absl::string_view::npos);
  EXPECT_NE(MessageWithHint(s).find("hint:"), std::string::npos);
}

TEST(ArgParserTest, NegativeNumbersArePositionals) {
  Parsed p;
  auto a = MakeParser(p);
  ASSERT_TRUE(a.Parse({"x", "-1"}).ok());
  EXPECT_EQ(p.pos, (std::vector<std::string>{"x", "-1"}));
}

TEST(ArgParserTest, BadValuesAndCountsAreErrors) {
  Parsed p;
  auto a = MakeParser(p);
  EXPECT_FALSE(a.Parse({"x", "--n", "five"}).ok());
  EXPECT_FALSE(a.Parse({"x", "--out"}).ok());
  EXPECT_FALSE(a.Parse({}).ok());
  EXPECT_FALSE(a.Parse({"a", "b", "c"}).ok());
  EXPECT_FALSE(a.Parse({"x", "-v=1"}).ok());
}

TEST(ArgParserTest, HelpListsEveryOption) {
  Parsed p;
  auto a = MakeParser(p);
  std::string h = a.Help();
  for (const char* opt : {"--verbose", "--out DIR", "--n N", "--add X", "--help"})
    EXPECT_NE(h.find(opt), std::string::npos) << opt;
}

}  // namespace
}  // namespace sie
