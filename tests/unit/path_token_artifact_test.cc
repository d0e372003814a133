// Spans ending at a control-flow join (path token): const.json's optional "path_token" /
// "mark_offset", the stub's mark program and the apply that checks it, and the engine choice.
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "common/artifact/const_json.h"
#include "common/stubgen/stubgen.h"
#include "nlohmann/json.hpp"
#include "runtime/loader/native.h"

namespace sie {
namespace {

using nlohmann::json;

artifact::SynthesizedConst JoinConst() {
  artifact::SynthesizedConst c;
  c.id = 9;
  c.name = "JOIN_BATCH";
  c.values = {8, 16, 32};
  c.range_min = 1;
  c.range_max = 1000;
  c.target = {"vmlinux", "6.12.117+deb12-amd64", ""};
  artifact::CriticalSpan s;
  s.function = "fx_join";
  s.cs_start = 0x5;
  s.cs_end = 0xc;
  s.probe_offset = 0xc;
  s.candidates = {0xc};
  s.kind = artifact::SpanKind::kMem;
  s.target_mem = artifact::MemOperand{"di", "", 1, 4};
  s.width = 4;
  s.formula = "V";
  s.expect_bytes = "8937";
  s.mark_offset = 0x5;
  c.spans.push_back(s);
  return c;
}

absl::StatusOr<artifact::SynthesizedConst> Edited(const std::function<void(json&)>& edit) {
  json j = artifact::ConstToJson(JoinConst());
  edit(j["spans"][0]);
  return artifact::ParseConstJson(artifact::JsonText(j), "test");
}

TEST(PathTokenArtifact, ConstJsonRoundTrip) {
  auto c = JoinConst();
  std::string text = artifact::JsonText(artifact::ConstToJson(c));
  EXPECT_TRUE(absl::StrContains(text, "\"path_token\": true")) << text;
  auto back = artifact::ParseConstJson(text, "test");
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE(back->spans[0].mark_offset.has_value());
  EXPECT_EQ(*back->spans[0].mark_offset, 0x5u);
  // Spans without a token write neither key, and files without them read as before.
  c.spans[0].mark_offset.reset();
  text = artifact::JsonText(artifact::ConstToJson(c));
  EXPECT_FALSE(absl::StrContains(text, "path_token")) << text;
  EXPECT_FALSE(absl::StrContains(text, "mark_offset")) << text;
  back = artifact::ParseConstJson(text, "test");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->spans[0].mark_offset.has_value());
  auto f = Edited([](json& s) { s["path_token"] = false, s.erase("mark_offset"); });
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->spans[0].mark_offset.has_value());
}

TEST(PathTokenArtifact, ConstJsonRejectsMalformedTokens) {
  struct Case {
    std::function<void(json&)> edit;
    const char* error;
  };
  const Case cases[] = {
      {[](json& s) { s["path_token"] = "yes"; },
       "field 'spans[0].path_token' must be true or false"},
      {[](json& s) { s.erase("mark_offset"); }, "field 'spans[0].mark_offset' is missing"},
      {[](json& s) { s["mark_offset"] = -1; }, "field 'spans[0].mark_offset' must not be negative"},
      {[](json& s) { s["mark_offset"] = 7; },
       "must be the CS's first instruction cs_start (0x5), before cs_end (0xc) and the probe "
       "(0xc); it is 0x7"},
      {[](json& s) { s.erase("path_token"); },
       "field 'spans[0].mark_offset' is set without \"path_token\": true"},
      {[](json& s) { s["path_token"] = false; }, "is set without \"path_token\": true"},
  };
  for (const Case& c : cases) {
    auto r = Edited(c.edit);
    ASSERT_FALSE(r.ok()) << c.error;
    EXPECT_TRUE(absl::StrContains(r.status().message(), c.error)) << r.status();
  }
}

TEST(PathTokenStub, MarksAtTheStartAndAppliesOnlyWithTheMark) {
  auto f = stubgen::GenerateStub(JoinConst());
  ASSERT_TRUE(f.ok()) << f.status();
  const std::string& src = f->source;
  EXPECT_TRUE(absl::StrContains(src,
                                "int SIE_PROG(sie_mark_0)(struct pt_regs *ctx)\n{\n"
                                "\t/* fx_join+0x5, the CS's start: this frame takes the CS */\n"
                                "\tsie_mark(0, ctx);\n"))
      << src;
  // The mark is taken before the gate, so it never outlives its pass through the join.
  size_t take = src.find("if (!sie_take_mark(0, ctx)) {\n\t\tsie_count(0, SIE_STAT_BYPASS);");
  ASSERT_NE(take, std::string::npos) << src;
  EXPECT_LT(take, src.find("sie_gate(&value)"));
  EXPECT_LT(src.find("sie_mark_0"), src.find("sie_apply_0"));
  // Without a token: no mark program, no check.
  auto c = JoinConst();
  c.spans[0].mark_offset.reset();
  f = stubgen::GenerateStub(c);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(absl::StrContains(f->source, "sie_mark")) << f->source;
}

// sie_native tracks the mark itself (a second kprobe at the CS's start): a token span is
// native, its add command names the mark, and the listing's extra counters parse.
TEST(PathTokenEngine, NativeProbesCarryTheMark) {
  auto c = JoinConst();
  EXPECT_EQ(loader::NativeUnsupported(c, 0, false), "");
  auto probes = loader::NativeProbes(c, "vmlinux");
  ASSERT_TRUE(probes.ok()) << probes.status();
  ASSERT_EQ(probes->size(), 1u);
  EXPECT_EQ(loader::NativeAddCommand((*probes)[0], 8),
            "probe fx_join 0xc mem-cell di 4 4 0x8 mark 0x5");
  c.spans[0].mark_offset.reset();
  probes = loader::NativeProbes(c, "vmlinux");
  ASSERT_TRUE(probes.ok()) << probes.status();
  EXPECT_EQ(loader::NativeAddCommand((*probes)[0], 8), "probe fx_join 0xc mem-cell di 4 4 0x8");
  auto listing = loader::ParseNativeListing(
      "fx_join+0xc mem-cell di 4 4 0x8 hits=7 faults=0 mark=0x5 bypass=3\n"
      "other+0x10 reg-set ax 4 0x20 hits=2 faults=1\n");
  ASSERT_EQ(listing.size(), 2u);
  EXPECT_EQ(listing["fx_join+0xc"].value, 8u);
  EXPECT_EQ(listing["fx_join+0xc"].hits, 7u);
  EXPECT_EQ(listing["fx_join+0xc"].bypass, 3u);
  EXPECT_EQ(listing["other+0x10"].value, 0x20u);
  EXPECT_EQ(listing["other+0x10"].faults, 1u);
}

}  // namespace
}  // namespace sie
