// An input rewritten at a region's start and put back at its end (synth/analysis/input_rewrite.h):
// two spans with one start, which const.json lists the longer first, because the runtime
// registers the probes of one address in span order: the put-back span's save must read the
// input before the empty span's rewrite there changes it.
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "common/artifact/const_json.h"
#include "common/stubgen/stubgen.h"

namespace sie {
namespace {

artifact::SynthesizedConst RewriteConst() {
  artifact::SynthesizedConst c;
  c.id = 11;
  c.name = "FOLDED_GAMMA";
  c.values = {1, 2, 4};
  c.range_min = 1;
  c.range_max = 64;
  c.pow2_only = true;
  c.target = {"vmlinux", "6.12.117+deb12-amd64", ""};
  artifact::CriticalSpan rewrite;  // as synth finds it: the empty span first
  rewrite.function = "fx_folded";
  rewrite.cs_start = rewrite.cs_end = rewrite.probe_offset = 0xfd;
  rewrite.kind = artifact::SpanKind::kReg;
  rewrite.target_reg = rewrite.save_reg = "ax";
  rewrite.width = 4;
  rewrite.formula = "(X & 0xffffffff) / V";
  rewrite.expect_bytes = "89f7";
  artifact::CriticalSpan back = rewrite;
  back.cs_end = back.probe_offset = 0x10a;
  back.kind = artifact::SpanKind::kRecompute;
  back.save_offset = 0xfd;
  back.formula = "X";
  back.expect_bytes = "0f8ea6000000";
  c.spans = {rewrite, back};
  return c;
}

TEST(InputRewriteArtifact, TheSpanThatPutsTheInputBackIsListedFirst) {
  auto text = artifact::JsonText(artifact::ConstToJson(RewriteConst()));
  auto c = artifact::ParseConstJson(text, "test");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->spans.size(), 2u);
  EXPECT_EQ(c->spans[0].kind, artifact::SpanKind::kRecompute) << text;
  EXPECT_EQ(c->spans[0].formula, "X");
  EXPECT_EQ(c->spans[0].save_offset, std::optional<uint64_t>(0xfd));
  EXPECT_EQ(c->spans[1].kind, artifact::SpanKind::kReg);
  EXPECT_EQ(c->spans[1].cs_end, 0xfdu);
  // Written again, the order holds (deterministic output).
  EXPECT_EQ(artifact::JsonText(artifact::ConstToJson(*c)), text);
}

TEST(InputRewriteArtifact, TheStubSavesTheInputAndPutsItBack) {
  auto c =
      artifact::ParseConstJson(artifact::JsonText(artifact::ConstToJson(RewriteConst())), "test");
  ASSERT_TRUE(c.ok()) << c.status();
  auto f = stubgen::GenerateStub(*c);
  ASSERT_TRUE(f.ok()) << f.status();
  // One save program (the put-back span's, at the region start) and two applies.
  EXPECT_TRUE(absl::StrContains(f->source, "sie_save_0")) << f->source;
  EXPECT_TRUE(absl::StrContains(f->source, "sie_apply_0")) << f->source;
  EXPECT_TRUE(absl::StrContains(f->source, "sie_apply_1")) << f->source;
}

}  // namespace
}  // namespace sie
