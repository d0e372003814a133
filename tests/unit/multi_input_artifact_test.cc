// Formulas over several inputs (X and the further inputs Y, Z, W of a span) through the common
// layer: the formula language, const.json's `inputs` and the BPF stub that reads them.
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "common/artifact/const_json.h"
#include "common/artifact/formula.h"
#include "common/stubgen/stubgen.h"

namespace sie {
namespace {

using artifact::Formula;
using artifact::FormulaVars;

TEST(MultiInputFormula, EvaluatesEveryInput) {
  auto f = Formula::Parse("((X * V) + Y) - (Z >> W)", "VXYZW");
  ASSERT_TRUE(f.ok()) << f.status();
  FormulaVars in{3, 10, 0, 5, 64, 2};
  EXPECT_EQ(*f->Eval(in), 10u * 3 + 5 - (64 >> 2));
  EXPECT_TRUE(f->Uses('Y') && f->Uses('Z') && f->Uses('W'));
  // Undefined operations stay undefined whatever input causes them.
  auto d = Formula::Parse("Y / (Z - V)", "VXYZ");
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->Eval(FormulaVars{4, 0, 0, 9, 4}).has_value());
  EXPECT_EQ(*artifact::EvalFormula("(Y & 0xffffffff) + V", FormulaVars{1, 0, 0, 0x1ffffffff}),
            0x100000000u);
}

TEST(MultiInputFormula, OneInputFormulasAreUnchanged) {
  // Existing const.json formulas in V and X parse and evaluate as before.
  EXPECT_EQ(*artifact::EvalFormula("(X & (-V)) + (2 * V)", 32, ~uint64_t{0}), 32u);
  EXPECT_EQ(*artifact::EvalFormula("X >> V", 3, 800), 100u);
  // A further input is only a variable where it is allowed.
  auto f = Formula::Parse("X + Y", "VX");
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(absl::StrContains(f.status().message(), "unknown identifier 'Y'")) << f.status();
  EXPECT_FALSE(artifact::EvalFormula("X + Y", 1, 2).ok());
}

TEST(MultiInputFormula, EmitsEachInputAsAnIdentifier) {
  auto f = Formula::Parse("(X + Y) >> V", "VXY");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->EmitC(), "sie_shr((X + Y), V, &bad)");
}

artifact::SynthesizedConst TwoInputConst() {
  artifact::SynthesizedConst c;
  c.id = 7;
  c.name = "TWO_IN";
  c.values = {4, 2, 8};
  c.range_min = 1;
  c.range_max = 64;
  c.target = {"vmlinux", "6.12.117+deb12-amd64", ""};
  artifact::CriticalSpan s;
  s.function = "f";
  s.cs_start = 0x10;
  s.cs_end = 0x14;
  s.probe_offset = 0x14;
  s.kind = artifact::SpanKind::kReg;
  s.target_reg = "ax";
  s.width = 8;
  s.formula = "(X * V) + Y + (Z & 0xffffffff)";
  s.save_reg = "di";
  s.inputs.push_back({"Y", "si", std::nullopt, 8});
  s.inputs.push_back({"Z", "", artifact::MemOperand{"bx", "", 1, 0x6cc}, 4});
  s.expect_bytes = "c3";
  c.spans.push_back(s);
  return c;
}

TEST(MultiInputArtifact, ConstJsonKeepsTheInputs) {
  auto c = TwoInputConst();
  std::string text = artifact::JsonText(artifact::ConstToJson(c));
  EXPECT_TRUE(absl::StrContains(text, "\"inputs\"")) << text;
  auto back = artifact::ParseConstJson(text, "test");
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->spans[0].inputs.size(), 2u);
  EXPECT_EQ(back->spans[0].inputs, c.spans[0].inputs);
  // A span without inputs writes no "inputs" key (older files stay byte-identical).
  c.spans[0].inputs.clear();
  EXPECT_FALSE(absl::StrContains(artifact::JsonText(artifact::ConstToJson(c)), "\"inputs\""));
}

TEST(MultiInputArtifact, ConstJsonRejectsBadInputs) {
  auto c = TwoInputConst();
  c.spans[0].inputs[0].name = "Q";
  auto r = artifact::ParseConstJson(artifact::JsonText(artifact::ConstToJson(c)), "test");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(r.status().message(), "spans[0].inputs[0].name")) << r.status();
  c = TwoInputConst();
  c.spans[0].inputs[1].mem->base = "ip";
  r = artifact::ParseConstJson(artifact::JsonText(artifact::ConstToJson(c)), "test");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(r.status().message(), "RIP-relative")) << r.status();
}

TEST(MultiInputStub, ReadsEachInputAtTheProbe) {
  auto f = stubgen::GenerateStub(TwoInputConst());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(absl::StrContains(f->source, "__u64 V, X = 0, Y = 0, Z = 0, R = 0, nv;"))
      << f->source;
  EXPECT_TRUE(absl::StrContains(f->source, "\tX = ctx->di;\n")) << f->source;
  EXPECT_TRUE(absl::StrContains(f->source, "\tY = ctx->si;\n")) << f->source;
  EXPECT_TRUE(
      absl::StrContains(f->source, "\tZ = sie_read_mem((__u64)(ctx->bx + (1740LL)), 4, &bad);\n"))
      << f->source;
  EXPECT_TRUE(absl::StrContains(f->source, "nv = ((((X * V) + Y) + (Z & 4294967295ULL)));") ||
              absl::StrContains(f->source, "nv = (((X * V) + Y) + (Z & 4294967295ULL));"))
      << f->source;
}

TEST(MultiInputStub, AFormulaMayUseOnlyDeclaredInputs) {
  auto c = TwoInputConst();
  c.spans[0].inputs.pop_back();  // Z is used but no longer declared
  auto f = stubgen::GenerateStub(c);
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(absl::StrContains(f.status().message(), "unknown identifier 'Z'")) << f.status();
  // A span without inputs gets the declarations it always had.
  c = TwoInputConst();
  c.spans[0].inputs.clear();
  c.spans[0].formula = "X * V";
  f = stubgen::GenerateStub(c);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(absl::StrContains(f->source, "__u64 V, X = 0, R = 0, nv;")) << f->source;
}

}  // namespace
}  // namespace sie
