// Spec parsing: every bad input must name file:line and say how to fix it.
#include "synth/spec/spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/base/diag.h"

namespace sie::synth {
namespace {

using ::testing::HasSubstr;

constexpr char kGood[] = R"(source_dir: src
build:
  command: "gcc -O2 -c {src} -o {obj}"
tunables:
  - name: LIMIT
    description: a limit
    file: t.h
    macro: LIMIT
    objects: [a.o]
    functions: [f]
    values: [16, 8, 0x20]
    range: [1, 100]
    safe_spans: [{function: f, start: 0x10, end: 0x90}]
  - name: SHIFT
    file: a.c
    match: "x >> 3"
    replace: "x >> {V}"
    values: [3, 2, 1]
    range: [0, 8]
)";

TEST(SpecTest, ParsesAGoodSpec) {
  auto s = ParseSpecText(kGood, "/p/spec.yaml");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->kind, TargetKind::kGeneric);
  EXPECT_EQ(s->source_dir, "/p/src");
  ASSERT_EQ(s->tunables.size(), 2u);
  const auto& t = s->tunables[0];
  EXPECT_EQ(t.name, "LIMIT");
  EXPECT_EQ(t.macro, "LIMIT");
  EXPECT_EQ(t.values, (std::vector<int64_t>{16, 8, 32}));
  EXPECT_EQ(t.range_min, 1);
  EXPECT_EQ(t.range_max, 100);
  EXPECT_EQ(t.line, 5);
  EXPECT_EQ(t.file_line, 7);
  ASSERT_EQ(t.safe_spans.size(), 1u);
  EXPECT_EQ(t.safe_spans[0].start, 0x10u);
  EXPECT_EQ(t.safe_spans[0].end, 0x90u);
  EXPECT_TRUE(t.is_header());
  EXPECT_EQ(s->tunables[1].match, "x >> 3");
  EXPECT_FALSE(s->tunables[1].is_header());
}

TEST(SpecTest, KernelAndModuleTargets) {
  auto k = ParseSpecText(
      "tunables:\n  - {name: A, file: a.c, macro: A, values: [1,2,3], "
      "range: [1,3]}\n",
      "k.yaml");
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->kind, TargetKind::kKernel);
  EXPECT_FALSE(k->has_source_dir);
  auto m = ParseSpecText(
      "module: kmod/sie_target\ntunables:\n  - {name: A, file: a.c, macro: A, "
      "values: [1,2,3], range: [1,3]}\n",
      "m.yaml");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->kind, TargetKind::kModule);
  EXPECT_EQ(m->module_dir, "kmod/sie_target");
  EXPECT_TRUE(m->module_ko.empty());
}

TEST(SpecTest, ModuleKoIsRelativeToTheSpec) {
  const char* tun =
      "tunables:\n  - {name: A, file: a.c, macro: A, values: [1,2,3], range: [1,3]}\n";
  auto m = ParseSpecText(absl::StrCat("module: kmod/t\nmodule_ko: ../../build/kmod/t.ko\n", tun),
                         "/r/synth/specs/m.yaml");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->module_ko, std::filesystem::path("/r/build/kmod/t.ko"));
  auto a = ParseSpecText(absl::StrCat("module: kmod/t\nmodule_ko: /abs/t.ko\n", tun), "m.yaml");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->module_ko, std::filesystem::path("/abs/t.ko"));
  auto bad = ParseSpecText(absl::StrCat("module_ko: t.ko\n", tun), "k.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("without 'module'"), std::string::npos) << bad.status();
}

struct BadCase {
  const char* label;
  const char* yaml;
  const char* where;    // "spec.yaml:N:"
  const char* message;  // part of the error
  const char* hint;     // part of the hint
};

constexpr char kHead[] = "tunables:\n  - name: A\n    file: a.h\n";

class BadSpecTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadSpecTest, NamesLineAndFix) {
  const BadCase& c = GetParam();
  auto s = ParseSpecText(c.yaml, "spec.yaml");
  ASSERT_FALSE(s.ok()) << c.label;
  std::string msg = MessageWithHint(s.status());
  EXPECT_THAT(msg, HasSubstr(c.where)) << msg;
  EXPECT_THAT(msg, HasSubstr(c.message)) << msg;
  EXPECT_THAT(msg, HasSubstr("\nhint: ")) << msg;
  EXPECT_THAT(msg, HasSubstr(c.hint)) << msg;
}

const std::string kMissingValues = std::string(kHead) + "    macro: A\n    range: [1, 9]\n";
const std::string kUnknownKey =
    std::string(kHead) + "    macor: A\n    values: [1, 2, 3]\n    range: [1, 9]\n";
const std::string kTwoValues =
    std::string(kHead) + "    macro: A\n    values: [1, 2]\n    range: [1, 9]\n";
const std::string kEqual =
    std::string(kHead) + "    macro: A\n    values: [1, 2, 1]\n    range: [1, 9]\n";
const std::string kRange =
    std::string(kHead) + "    macro: A\n    values: [1, 2, 30]\n    range: [1, 9]\n";
const std::string kBoth = std::string(kHead) +
                          "    macro: A\n    match: \"x\"\n    replace: \"{V}\"\n"
                          "    values: [1, 2, 3]\n    range: [1, 9]\n";
const std::string kNeither = std::string(kHead) + "    values: [1, 2, 3]\n    range: [1, 9]\n";
const std::string kNoV = std::string(kHead) +
                         "    match: \"x >> 3\"\n    replace: \"x >> 2\"\n"
                         "    values: [1, 2, 3]\n    range: [1, 9]\n";
const std::string kMalformed =
    std::string(kHead) + "    macro: A\n    values: [1, 2, 3\n    range: [1, 9]\n";
const std::string kBadInt =
    std::string(kHead) + "    macro: A\n    values: [1, two, 3]\n    range: [1, 9]\n";
const std::string kTopKey = "tunable:\n  - name: A\n";
const std::string kDup = std::string(kHead) +
                         "    macro: A\n    values: [1, 2, 3]\n    range: [1, 9]\n" +
                         "  - name: A\n    file: a.h\n    macro: A\n    values: [1, 2, 3]\n"
                         "    range: [1, 9]\n";

INSTANTIATE_TEST_SUITE_P(
    Cases, BadSpecTest,
    ::testing::Values(
        BadCase{"missing values", kMissingValues.c_str(), "spec.yaml:2:", "has no 'values'",
                "values: [V1, V2, V3]"},
        BadCase{"unknown key", kUnknownKey.c_str(), "spec.yaml:4:", "unknown key 'macor'",
                "did you mean 'macro'?"},
        BadCase{"two values", kTwoValues.c_str(), "spec.yaml:5:", "needs exactly 3",
                "shipped value first"},
        BadCase{"equal values", kEqual.c_str(), "spec.yaml:5:", "not all distinct",
                "three different values"},
        BadCase{"range", kRange.c_str(), "spec.yaml:6:", "does not contain value 30",
                "widen the range"},
        BadCase{"both", kBoth.c_str(), "spec.yaml:5:", "both 'macro' and 'match'", "keep one"},
        BadCase{"neither", kNeither.c_str(), "spec.yaml:2:", "neither 'macro' nor 'match'",
                "macro: A"},
        BadCase{"replace without {V}", kNoV.c_str(), "spec.yaml:5:", "does not contain {V}", "{V}"},
        BadCase{"malformed", kMalformed.c_str(), "spec.yaml:", "malformed YAML", "indentation"},
        BadCase{"not an int", kBadInt.c_str(), "spec.yaml:5:", "not an integer", "whole number"},
        BadCase{"top-level key", kTopKey.c_str(), "spec.yaml:1:", "unknown key 'tunable'",
                "did you mean 'tunables'?"},
        BadCase{"duplicate", kDup.c_str(), "spec.yaml:7:", "listed twice", "unique name"}),
    [](const auto& info) {
      std::string n = info.param.label;
      for (char& ch : n)
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

TEST(SpecTest, MissingFileIsAnError) {
  auto s = ParseSpecFile("/nonexistent/spec.yaml");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("/nonexistent/spec.yaml"));
}

TEST(SpecTest, DidYouMean) {
  EXPECT_EQ(DidYouMean("valuse", {"values", "range"}), "values");
  EXPECT_EQ(DidYouMean("zzzzzz", {"values", "range"}), "");
}

}  // namespace
}  // namespace sie::synth
