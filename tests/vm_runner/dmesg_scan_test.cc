#include "runtime/vm/dmesg_scan.h"

#include <gtest/gtest.h>

#include "common/base/files.h"

namespace sie::vm {
namespace {

std::string Sample(const std::string& name) {
  auto r = ReadFile(std::string(SIE_DMESG_SAMPLES) + "/" + name);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : "";
}

TEST(DmesgScanTest, CleanGuestBootHasNoReports) {
  // Captured from the 6.12 guest: a boot that loads modules and taints the kernel, no splat.
  EXPECT_TRUE(ScanDmesg(Sample("clean_boot.txt")).empty());
}

TEST(DmesgScanTest, ModuleWarningIsReportedOnce) {
  // Captured from the guest after `insmod sie_warn.ko`.
  auto s = ScanDmesg(Sample("warn_module.txt"));
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].kind, "WARN");
  EXPECT_NE(s[0].text.find("sie_warn_init"), std::string::npos);
}

struct Case {
  const char* file;
  const char* kind;
};

class KnownReports : public ::testing::TestWithParam<Case> {};

TEST_P(KnownReports, AreFound) {
  auto s = ScanDmesg(Sample(GetParam().file));
  ASSERT_FALSE(s.empty()) << GetParam().file;
  EXPECT_EQ(s[0].kind, GetParam().kind);
  EXPECT_GT(s[0].line, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Samples, KnownReports,
    ::testing::Values(Case{"null_deref_oops.txt", "BUG"}, Case{"rcu_stall.txt", "RCU stall"},
                      Case{"hung_task.txt", "hung task"}, Case{"lockdep_circular.txt", "lockdep"},
                      Case{"kasan.txt", "BUG"}, Case{"soft_lockup.txt", "soft lockup"}));

TEST(DmesgScanTest, OrdinaryMessagesThatMentionBugsAreNotReports) {
  EXPECT_TRUE(ScanDmesg("[ 1.0] x86/cpu: SGX disabled by BIOS.\n"
                        "[ 1.1] Spectre V2 : Mitigation: Retpolines; debug BUG_ON() checks off\n"
                        "[ 2.0] sie_target: loaded, warnings=0\n")
                  .empty());
}

}  // namespace
}  // namespace sie::vm
