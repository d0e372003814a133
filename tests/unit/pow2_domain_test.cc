// Constants valid at powers of two only (const.json "pow2_only"): the artifact keeps the
// domain, and the stub rejects other values a policy may decide, as it does values out of range.
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "common/artifact/const_json.h"
#include "common/stubgen/stubgen.h"
#include "nlohmann/json.hpp"

namespace sie {
namespace {

using nlohmann::json;

artifact::SynthesizedConst PlugConst() {
  artifact::SynthesizedConst c;
  c.id = 4;
  c.name = "MAX_PLUG_BIO";
  c.values = {32, 16, 64};
  c.range_min = 1;
  c.range_max = 1024;
  c.pow2_only = true;
  c.target = {"raid1", "6.12.117+deb12-amd64", ""};
  artifact::CriticalSpan s;
  s.function = "raid1_write_request";
  s.cs_start = 0x55a;
  s.cs_end = 0x55d;
  s.probe_offset = 0x55d;
  s.candidates = {0x55d};
  s.kind = artifact::SpanKind::kRecompute;
  s.target_reg = "ax";
  s.save_reg = "ax";
  s.save_offset = 0x55a;
  s.width = 4;
  s.formula = "X / V";
  s.expect_bytes = "39d8";
  c.spans.push_back(s);
  return c;
}

TEST(Pow2Domain, ConstJsonRoundTripAndChecks) {
  auto c = PlugConst();
  std::string text = artifact::JsonText(artifact::ConstToJson(c));
  EXPECT_TRUE(absl::StrContains(text, "\"pow2_only\": true")) << text;
  auto back = artifact::ParseConstJson(text, "test");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->pow2_only);
  // Absent in every other constant's file, and read as false.
  c.pow2_only = false;
  text = artifact::JsonText(artifact::ConstToJson(c));
  EXPECT_FALSE(absl::StrContains(text, "pow2_only")) << text;
  back = artifact::ParseConstJson(text, "test");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->pow2_only);
  // Malformed: not a Boolean; a range that admits 0 or negative values.
  json j = artifact::ConstToJson(PlugConst());
  j["pow2_only"] = "yes";
  auto bad = artifact::ParseConstJson(artifact::JsonText(j), "test");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "pow2_only")) << bad.status();
  j = artifact::ConstToJson(PlugConst());
  j["range"] = {0, 1024};
  bad = artifact::ParseConstJson(artifact::JsonText(j), "test");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "must start at 1 or more")) << bad.status();
}

TEST(Pow2Domain, StubRejectsOtherValues) {
  auto f = stubgen::GenerateStub(PlugConst());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(absl::StrContains(f->header, "#define SIE_MAX_PLUG_BIO_POW2 1\n")) << f->header;
  EXPECT_TRUE(
      absl::StrContains(f->source,
                        "if (value < SIE_MAX_PLUG_BIO_MIN || value > SIE_MAX_PLUG_BIO_MAX ||\n"
                        "\t    (SIE_MAX_PLUG_BIO_POW2 && (value & (value - 1)))) {\n"
                        "\t\tsie_count(0, SIE_STAT_REJECTED);"))
      << f->source;
  auto c = PlugConst();
  c.pow2_only = false;
  f = stubgen::GenerateStub(c);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(absl::StrContains(f->header, "#define SIE_MAX_PLUG_BIO_POW2 0\n")) << f->header;
}

}  // namespace
}  // namespace sie
