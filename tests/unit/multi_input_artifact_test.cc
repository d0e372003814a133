// Formulas over several inputs (X and the further inputs Y, Z, W of a span) through the common
// layer: the formula language, const.json's `inputs` and the BPF stub that reads them.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/match.h"
#include "common/artifact/const_json.h"
#include "common/artifact/formula.h"
#include "common/base/files.h"
#include "common/stubgen/stub_build.h"
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
  s.inputs.push_back({"Y", "si", std::nullopt, 8, std::nullopt});
  s.inputs.push_back({"Z", "", artifact::MemOperand{"bx", "", 1, 0x6cc}, 4, std::nullopt});
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

// x + y * V with x and y overwritten in the span (saved at its start) and a value the span
// loads into edx at +0x12 (saved right after the load, 4 bytes).
artifact::SynthesizedConst SavedInputConst() {
  auto c = TwoInputConst();
  artifact::CriticalSpan& s = c.spans[0];
  s.cs_end = 0x18;
  s.probe_offset = 0x18;
  s.kind = artifact::SpanKind::kRecompute;
  s.save_offset = 0x10;
  s.formula = "X + Y * V + Z";
  s.inputs = {{"Y", "si", std::nullopt, 8, 0x10}, {"Z", "dx", std::nullopt, 4, 0x15}};
  return c;
}

TEST(SavedInputArtifact, ConstJsonKeepsWhereInputsAreSaved) {
  auto c = SavedInputConst();
  std::string text = artifact::JsonText(artifact::ConstToJson(c));
  EXPECT_TRUE(absl::StrContains(text, "\"save_offset\": 21")) << text;
  auto back = artifact::ParseConstJson(text, "test");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->spans[0].inputs, c.spans[0].inputs);
  // One save point per offset, in order: X and Y at the span's start, Z after the load.
  auto points = artifact::SavePointsOf(back->spans[0]);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].offset, 0x10u);
  ASSERT_EQ(points[0].values.size(), 2u);
  EXPECT_EQ(points[0].values[0].var, 'X');
  EXPECT_EQ(points[0].values[1].var, 'Y');
  EXPECT_EQ(points[1].offset, 0x15u);
  ASSERT_EQ(points[1].values.size(), 1u);
  EXPECT_EQ(points[1].values[0].reg, "dx");
  EXPECT_EQ(points[1].values[0].width, 4);
  EXPECT_EQ(artifact::SaveProgramName(3, 0), "sie_save_3");
  EXPECT_EQ(artifact::SaveProgramName(3, 1), "sie_save_3_1");
}

TEST(SavedInputArtifact, ConstJsonRejectsASaveOutsideTheSpan) {
  for (uint64_t off : {uint64_t{0x8}, uint64_t{0x18}, uint64_t{0x40}}) {
    auto c = SavedInputConst();
    c.spans[0].inputs[1].save_offset = off;
    auto r = artifact::ParseConstJson(artifact::JsonText(artifact::ConstToJson(c)), "test");
    ASSERT_FALSE(r.ok()) << off;
    EXPECT_TRUE(absl::StrContains(r.status().message(), "inputs[1].save_offset")) << r.status();
    EXPECT_TRUE(absl::StrContains(r.status().message(), "[cs_start, probe_offset)")) << r.status();
  }
}

TEST(SavedInputStub, SavesEachPointAndTakesEveryValue) {
  auto f = stubgen::GenerateStub(SavedInputConst());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->nsaves, 3);
  ASSERT_EQ(f->save_programs.size(), 2u);
  EXPECT_TRUE(absl::StrContains(f->source, "#define SIE_NSAVES 3\n")) << f->source;
  EXPECT_TRUE(absl::StrContains(f->source,
                                "int SIE_PROG(sie_save_0)(struct pt_regs *ctx)\n{\n"
                                "\t/* f+0x10: X is di */\n\tsie_save(0, 0, ctx->di);\n"
                                "\t/* f+0x10: Y is si */\n\tsie_save(0, 1, ctx->si);\n"))
      << f->source;
  EXPECT_TRUE(absl::StrContains(f->source,
                                "int SIE_PROG(sie_save_0_1)(struct pt_regs *ctx)\n{\n"
                                "\t/* f+0x15: Z is dx (4 bytes) */\n"
                                "\tsie_save(0, 2, (ctx->dx & 0xffffffffULL));\n"))
      << f->source;
  for (const char* take :
       {"sie_take_saved(0, &X)", "sie_take_saved(1, &Y)", "sie_take_saved(2, &Z)"})
    EXPECT_TRUE(absl::StrContains(f->source, take)) << take << "\n" << f->source;
  EXPECT_FALSE(absl::StrContains(f->source, "Y = ctx->si")) << f->source;  // never at the probe
}

// `and edx, 0xf` (flags and result used) overwrites its input: X saved as it starts, then the
// flags and the register recomputed with the new mask.
TEST(SavedInputStub, FlagsOfAnAndTakeTheSavedInput) {
  auto c = TwoInputConst();
  artifact::CriticalSpan& s = c.spans[0];
  s.kind = artifact::SpanKind::kFlags;
  s.flags_op = "and";
  s.flags_cc = "je";
  s.target_reg = "dx";
  s.save_reg = "dx";
  s.save_offset = 0x10;
  s.width = 4;
  s.formula = "V - 1";
  s.inputs.clear();
  auto back = artifact::ParseConstJson(artifact::JsonText(artifact::ConstToJson(c)), "test");
  ASSERT_TRUE(back.ok()) << back.status();
  auto f = stubgen::GenerateStub(*back);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(absl::StrContains(f->source, "sie_save(0, 0, ctx->dx);")) << f->source;
  EXPECT_TRUE(absl::StrContains(f->source, "sie_take_saved(0, &X)")) << f->source;
  EXPECT_TRUE(absl::StrContains(f->source, "sie_set_flags_op(ctx, SIE_FLAGS_OP_AND, X, nv, 4)"))
      << f->source;
  EXPECT_TRUE(absl::StrContains(f->source, "sie_set_reg(ctx, SIE_REG_DX, X & nv, 4)")) << f->source;
  // Without the save (and no x_from_probe) the stub cannot know X: refused.
  back->spans[0].save_offset.reset();
  EXPECT_FALSE(stubgen::GenerateStub(*back).ok());
}

TEST(SavedInputStub, CompilesAndTheHostVerifierAcceptsIt) {
  auto tmp = TempDir::Create(std::filesystem::temp_directory_path(), "sie-saved-");
  ASSERT_TRUE(tmp.ok());
  setenv("SIE_CACHE_DIR", tmp->path().c_str(), 1);
  artifact::ConstEntry e{tmp->path() / "7/const.json", SavedInputConst()};
  auto stub = stubgen::BuildStub(e, false, "-DSIE_NO_KFUNCS");
  ASSERT_TRUE(stub.ok()) << stub.status();
  if (geteuid() != 0) GTEST_SKIP() << "loading BPF needs root";
  bpf_object* obj = bpf_object__open_file(stub->object.c_str(), nullptr);
  ASSERT_NE(obj, nullptr);
  for (const char* p : {"sie_save_0", "sie_save_0_1", "sie_apply_0"})
    EXPECT_NE(bpf_object__find_program_by_name(obj, p), nullptr) << p;
  EXPECT_EQ(bpf_object__load(obj), 0);
  bpf_object__close(obj);
}

// idiv and sar: s64 semantics on u64 bits, defined except for a zero divisor or a count of
// 64 or more (as / and >>), INT64_MIN / -1 wrapping (idiv would have trapped there).
TEST(SignedFormula, DividesAndShiftsAsS64) {
  struct Case {
    const char* f;
    int64_t x, y, want;
  };
  for (const Case& c :
       {Case{"sdiv(X, Y)", -7, 2, -3}, Case{"sdiv(X, Y)", 7, -2, -3}, Case{"sdiv(X, Y)", -7, -2, 3},
        Case{"srem(X, Y)", -7, 2, -1}, Case{"srem(X, Y)", 7, -2, 1},
        Case{"sar(X, Y)", -256, 4, -16}, Case{"sar(X, Y)", 256, 4, 16},
        Case{"sar(X, Y)", -1, 63, -1}, Case{"sdiv(X, Y)", INT64_MIN, -1, INT64_MIN},
        Case{"sdiv(X << V, Y | 1)", -5, 4, -4}}) {
    auto f = Formula::Parse(c.f, "VXY");
    ASSERT_TRUE(f.ok()) << c.f << ": " << f.status();
    auto got = f->Eval(FormulaVars{2, static_cast<uint64_t>(c.x), 0, static_cast<uint64_t>(c.y)});
    ASSERT_TRUE(got.has_value()) << c.f;
    EXPECT_EQ(static_cast<int64_t>(*got), c.want) << c.f << " X=" << c.x << " Y=" << c.y;
  }
  EXPECT_FALSE(Formula::Parse("sdiv(X, Y)", "VXY")->Eval(FormulaVars{0, 5, 0, 0}).has_value());
  EXPECT_FALSE(Formula::Parse("sar(X, V)", "VX")->Eval(64, 5).has_value());
  EXPECT_EQ(Formula::Parse("sar(X, V) + sdiv(X, 3)", "VX")->EmitC(),
            "(sie_sar(X, V, &bad) + sie_sdiv(X, 3ULL, &bad))");
  // Only these names, always with two arguments.
  for (const char* bad : {"sdiv(X)", "sar X, V", "sdiv(X, V, 1)", "udiv(X, V)", "SAR(X, V)"}) {
    auto g = Formula::Parse(bad, "VX");
    EXPECT_FALSE(g.ok()) << bad;
  }
}

// let tN = E in B: E once, B names it; scoped, bound once, only t0 ... t255.
TEST(LetFormula, BindsOnceAndScopes) {
  auto f = Formula::Parse("let t0 = X * V in let t1 = t0 + 1 in t1 * t1 - t0", "VX");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f->Eval(3, 5), 16u * 16u - 15u);
  EXPECT_TRUE(f->Uses('X'));
  EXPECT_EQ(Formula::Parse("let t0 = X + V in t0 * t0", "VX")->EmitC(),
            "({ __u64 sie_t0 = (X + V); (sie_t0 * sie_t0); })");
  // A let's value is evaluated before its body: undefined there, undefined whole.
  EXPECT_FALSE(Formula::Parse("let t0 = X / V in 1", "VX")->Eval(0, 5).has_value());
  EXPECT_EQ(*Formula::Parse("(let t0 = V in t0) + 1", "VX")->Eval(4, 0), 5u);
  for (const char* bad :
       {"t0 + 1", "let t0 = 1 in t1", "let t0 = 1 in let t0 = 2 in t0", "let x = 1 in x",
        "let t0 = 1 t0", "let t0 1 in t0", "(let t0 = 1 in t0) + t0", "let t256 = 1 in t256"}) {
    auto g = Formula::Parse(bad, "VX");
    EXPECT_FALSE(g.ok()) << bad;
  }
}

TEST(SignedFormula, StubCompilesAndTheHostVerifierAcceptsIt) {
  auto tmp = TempDir::Create(std::filesystem::temp_directory_path(), "sie-signed-");
  ASSERT_TRUE(tmp.ok());
  setenv("SIE_CACHE_DIR", tmp->path().c_str(), 1);
  artifact::SynthesizedConst c = TwoInputConst();
  c.spans[0].formula =
      "let t0 = sdiv(X << V, Y | 1) in sar(t0 * t0, V) + srem(X, Y | 1) + (t0 > V ? t0 : V)";
  c.spans[0].inputs.pop_back();
  artifact::ConstEntry e{tmp->path() / "7/const.json", c};
  auto stub = stubgen::BuildStub(e, false, "-DSIE_NO_KFUNCS");
  ASSERT_TRUE(stub.ok()) << stub.status();
  if (geteuid() != 0) GTEST_SKIP() << "loading BPF needs root";
  bpf_object* obj = bpf_object__open_file(stub->object.c_str(), nullptr);
  ASSERT_NE(obj, nullptr);
  EXPECT_EQ(bpf_object__load(obj), 0);
  bpf_object__close(obj);
}

}  // namespace
}  // namespace sie
