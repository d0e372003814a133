#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/base/diag.h"
#include "runtime/vm/guest_runner.h"

namespace sie::vm {
namespace {

std::string Args(const std::string& accel, int cpus, const std::string& icount) {
  auto a = AccelArgs(accel, cpus, icount);
  return a.ok() ? absl::StrJoin(*a, " ") : "error: " + std::string(a.status().message());
}

TEST(AccelArgsTest, TcgDefaultsToOneMultiThreadedVcpu) {
  EXPECT_EQ(Args("tcg", 0, ""), "-accel tcg,thread=multi -cpu max -smp 1");
  EXPECT_EQ(Args("tcg", 2, ""), "-accel tcg,thread=multi -cpu max -smp 2");
  EXPECT_EQ(Args("kvm", 0, ""), "-accel kvm -cpu host -smp 2");
}

TEST(AccelArgsTest, IcountRunsSingleThreadedTcgOnOneVcpu) {
  EXPECT_EQ(Args("tcg", 0, "1"), "-accel tcg,thread=single -cpu max -smp 1 -icount shift=1");
  EXPECT_EQ(Args("tcg", 1, "3,sleep=off,align=off"),
            "-accel tcg,thread=single -cpu max -smp 1 -icount shift=3,sleep=off,align=off");
}

TEST(AccelArgsTest, IcountIgnoredUnderKvm) {
  EXPECT_EQ(Args("kvm", 0, "1"), "-accel kvm -cpu host -smp 2");
}

TEST(AccelArgsTest, BadIcountIsAnErrorWithHint) {
  for (const char* bad : {"x", "-1", "11", "1,sleep=maybe", "1,rr=record", ""}) {
    if (!*bad) continue;
    auto a = AccelArgs("tcg", 0, bad);
    ASSERT_FALSE(a.ok()) << bad;
    EXPECT_NE(MessageWithHint(a.status()).find("hint:"), std::string::npos) << a.status();
  }
  auto two = AccelArgs("tcg", 2, "1");
  ASSERT_FALSE(two.ok());
  EXPECT_NE(std::string(two.status().message()).find("one vCPU"), std::string::npos);
}

}  // namespace
}  // namespace sie::vm
