// Host tests of policy knobs: what a compiled policy's BTF says (start settings in .rodata,
// SIE_KNOB live knobs), parsing values for their types, --set errors with their hints, and
// the settings written into an object before its load. Nothing is loaded.
#include "runtime/policy/knobs.h"

#include <bpf/libbpf.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "common/base/diag.h"
#include "common/base/files.h"
#include "runtime/policy/policy.h"

namespace sie::policy {
namespace {
namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const fs::path kSrc = SIE_SOURCE_DIR;
const fs::path kTargetConsts = kSrc / "tests/policy/fixtures/sie_target";

struct ObjDeleter {
  void operator()(bpf_object* o) const { bpf_object__close(o); }
};
using ObjPtr = std::unique_ptr<bpf_object, ObjDeleter>;

class KnobsTest : public ::testing::Test {
 protected:
  // tests/policy/bpf/knobs.bpf.c, compiled once for the suite.
  static void SetUpTestSuite() {
    auto t = TempDir::Create(fs::temp_directory_path(), "sie-knobs-test-");
    ASSERT_TRUE(t.ok());
    tmp_ = new TempDir(std::move(*t));
    auto cs = ResolveConsts(kTargetConsts, {"SIE_TARGET_CALL_ARG", "SIE_TARGET_THRESHOLD"});
    ASSERT_TRUE(cs.ok()) << cs.status();
    auto r = CompilePolicy(Toolchain::FromBuild(), kSrc / "tests/policy/bpf/knobs.bpf.c", *cs,
                           tmp_->path() / "include", tmp_->path() / "knobs.o");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->diagnostics, "");
  }
  static void TearDownTestSuite() { delete tmp_; }
  static fs::path Obj() { return tmp_->path() / "knobs.o"; }
  static ObjPtr Open() { return ObjPtr(bpf_object__open_file(Obj().c_str(), nullptr)); }
  static std::map<std::string, Knob> ByName(bpf_object* o) {
    auto ks = KnobsOfObject(o);
    EXPECT_TRUE(ks.ok()) << ks.status();
    std::map<std::string, Knob> m;
    for (auto& k : *ks) m[k.name] = k;
    return m;
  }
  static TempDir* tmp_;
};
TempDir* KnobsTest::tmp_ = nullptr;

TEST_F(KnobsTest, BtfListsSettingsAndLiveKnobsWithTypesAndDefaults) {
  ObjPtr o = Open();
  ASSERT_TRUE(o);
  auto k = ByName(o.get());
  EXPECT_EQ(k.count("last_x"), 0u);  // a plain global is state, not a knob
  std::vector<std::string> names;
  for (auto& [n, v] : k) names.push_back(n);
  // Only the policy's globals: no sie_log format strings, no SDK internals.
  EXPECT_THAT(names, ElementsAre("addend", "bias", "enabled", "follow", "min_x", "mode", "tag",
                                 "threshold", "trace"));
  EXPECT_EQ(k["min_x"].kind, KnobKind::kSetting);
  EXPECT_EQ(k["min_x"].type, "__u64");
  EXPECT_EQ(k["min_x"].value, "100");
  EXPECT_EQ(k["mode"].type, "enum knob_mode");
  EXPECT_EQ(k["mode"].value, "KNOB_ON");
  EXPECT_EQ(k["bias"].type, "__s16");
  EXPECT_EQ(k["bias"].value, "-1");
  EXPECT_EQ(k["trace"].type, "bool");
  EXPECT_EQ(k["trace"].value, "false");
  EXPECT_EQ(k["tag"].type, "char[8]");
  EXPECT_EQ(k["tag"].value, "none");
  EXPECT_EQ(k["addend"].kind, KnobKind::kLive);
  EXPECT_EQ(k["addend"].type, "__u32");
  EXPECT_EQ(k["addend"].value, "50");
  EXPECT_EQ(k["threshold"].kind, KnobKind::kLive);
  EXPECT_EQ(k["threshold"].value, "1000");
  EXPECT_EQ(k["enabled"].type, "bool");
  EXPECT_EQ(k["enabled"].value, "true");
}

TEST_F(KnobsTest, ValuesAreParsedForTheirType) {
  ObjPtr o = Open();
  auto k = ByName(o.get());
  auto enc = [&](const char* name, const char* text) {
    auto b = EncodeKnobValue(k[name], text);
    return b.ok() ? FormatKnobValue(k[name], b->data()) : "error: " + MessageWithHint(b.status());
  };
  EXPECT_EQ(enc("addend", "4294967295"), "4294967295");
  EXPECT_EQ(enc("addend", "0x10"), "16");
  EXPECT_EQ(enc("min_x", "18446744073709551615"), "18446744073709551615");
  EXPECT_EQ(enc("bias", "-32768"), "-32768");
  EXPECT_EQ(enc("bias", "32767"), "32767");
  EXPECT_EQ(enc("trace", "on"), "true");
  EXPECT_EQ(enc("trace", "false"), "false");
  EXPECT_EQ(enc("mode", "knob_off"), "KNOB_OFF");
  EXPECT_EQ(enc("mode", "1"), "KNOB_ON");
  EXPECT_EQ(enc("tag", "seven77"), "seven77");
  EXPECT_EQ(enc("tag", ""), "");
  EXPECT_THAT(enc("tag", "eight888"),
              HasSubstr("value 'eight888' for knob tag (char[8]) is too long\n"
                        "hint: tag takes a string of at most 7 bytes"));
  EXPECT_THAT(enc("addend", "4294967296"), HasSubstr("is out of range"));
  EXPECT_THAT(enc("addend", "-1"), HasSubstr("is out of range"));
  EXPECT_THAT(enc("addend", "12ms"),
              HasSubstr("value '12ms' for knob addend (__u32) is not a number\n"
                        "hint: addend takes an integer 0..4294967295 (decimal or 0x hex)"));
  EXPECT_THAT(enc("bias", "-32769"), HasSubstr("takes an integer -32768..32767"));
  EXPECT_THAT(enc("trace", "maybe"), HasSubstr("is not a bool"));
  EXPECT_THAT(enc("mode", "sometimes"),
              HasSubstr("takes one of KNOB_OFF (0), KNOB_ON (1), or a number"));
}

TEST_F(KnobsTest, SetChecksNamesAndValuesWithAHintListingTheKnobs) {
  auto r = ResolveSettings(Obj(), {"min_x=5", "addend=7"}, "knobs.bpf.c");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].knob.kind, KnobKind::kSetting);
  EXPECT_EQ((*r)[0].bytes, std::string("\5\0\0\0\0\0\0\0", 8));
  EXPECT_EQ((*r)[1].knob.kind, KnobKind::kLive);

  r = ResolveSettings(Obj(), {"nope=1"}, "knobs.bpf.c");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(MessageWithHint(r.status()),
              HasSubstr("--set nope=1: knobs.bpf.c has no knob 'nope'\nhint: its knobs: "
                        "min_x (setting, __u64), mode (setting, enum knob_mode), bias (setting, "
                        "__s16), trace (setting, bool), tag (setting, char[8]), addend (live, "
                        "__u32), threshold (live, "
                        "__u32), enabled (live, bool), follow (live, bool)"));
  r = ResolveSettings(Obj(), {"min_x=lots"}, "knobs.bpf.c");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(MessageWithHint(r.status()), HasSubstr("--set min_x=lots: value 'lots' for knob "
                                                     "min_x (__u64) is not a number"));
  r = ResolveSettings(Obj(), {"min_x"}, "knobs.bpf.c");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("not NAME=VALUE"));
}

// What sie-run does to every object of the policy before its load: the settings become the
// sections' initial values, and the live-knob section is pointed at the shared pin.
TEST_F(KnobsTest, PrepareWritesSettingsAndSharesTheLiveSection) {
  auto s = ResolveSettings(Obj(), {"min_x=3", "mode=KNOB_OFF", "bias=-7", "threshold=10"},
                           "knobs.bpf.c");
  ASSERT_TRUE(s.ok()) << s.status();
  ObjPtr o = Open();
  ASSERT_TRUE(PrepareKnobs(o.get(), *s, true).ok());
  auto k = ByName(o.get());
  EXPECT_EQ(k["min_x"].value, "3");
  EXPECT_EQ(k["mode"].value, "KNOB_OFF");
  EXPECT_EQ(k["bias"].value, "-7");
  EXPECT_EQ(k["threshold"].value, "10");
  EXPECT_EQ(k["addend"].value, "50");  // untouched
  bpf_map* live = bpf_object__find_map_by_name(o.get(), kKnobSection);
  ASSERT_NE(live, nullptr);
  ASSERT_NE(bpf_map__pin_path(live), nullptr);
  EXPECT_STREQ(bpf_map__pin_path(live), kKnobPin);
  // Plain globals are the policy's too: its .bss is shared the same way.
  bpf_map* bss = bpf_object__find_map_by_name(o.get(), ".bss");
  ASSERT_NE(bss, nullptr);
  ASSERT_NE(bpf_map__pin_path(bss), nullptr);
  EXPECT_STREQ(bpf_map__pin_path(bss), "/sys/fs/bpf/sie_run_bss");
  bpf_map* ro = bpf_object__find_map_by_name(o.get(), ".rodata");
  ASSERT_NE(ro, nullptr);
  EXPECT_EQ(bpf_map__pin_path(ro), nullptr);
}

TEST_F(KnobsTest, DescribeFindsTheConstantsOfTheSiePolicies) {
  auto names = PolicyConstNames(kSrc / "tests/policy/bpf/knobs.bpf.c", kTargetConsts);
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, ElementsAre("SIE_TARGET_CALL_ARG", "SIE_TARGET_THRESHOLD"));
  auto cubic = PolicyConstNames(kSrc / "policies/tcp_cubic_rtt/tcp_cubic_rtt.bpf.c",
                                kSrc / "tests/policy/fixtures/tcp_cubic");
  ASSERT_TRUE(cubic.ok()) << cubic.status();
  EXPECT_THAT(*cubic, ElementsAre("HYSTART_DELAY_SHIFT", "HYSTART_DELAY_MAX"));
}

// The shipped policy's knobs, as its README documents them.
TEST_F(KnobsTest, CubicPolicyHasItsKnobs) {
  auto cs = ResolveConsts(kSrc / "tests/policy/fixtures/tcp_cubic",
                          {"HYSTART_DELAY_SHIFT", "HYSTART_DELAY_MAX"});
  ASSERT_TRUE(cs.ok());
  auto r =
      CompilePolicy(Toolchain::FromBuild(), kSrc / "policies/tcp_cubic_rtt/tcp_cubic_rtt.bpf.c",
                    *cs, tmp_->path() / "cubic-include", tmp_->path() / "cubic.o");
  ASSERT_TRUE(r.ok()) << r.status();
  ObjPtr o(bpf_object__open_file((tmp_->path() / "cubic.o").c_str(), nullptr));
  ASSERT_TRUE(o);
  auto k = ByName(o.get());
  ASSERT_EQ(k.size(), 3u);
  EXPECT_EQ(k["long_shift"].kind, KnobKind::kSetting);
  EXPECT_EQ(k["long_shift"].value, "1");
  EXPECT_EQ(k["rtt_threshold_us"].kind, KnobKind::kLive);
  EXPECT_EQ(k["rtt_threshold_us"].value, "40000");
  EXPECT_EQ(k["long_delay_max_us"].value, "100000");
  EXPECT_EQ(bpf_object__find_map_by_name(o.get(), "cubic_rtt_cfg"), nullptr);
}

}  // namespace
}  // namespace sie::policy
