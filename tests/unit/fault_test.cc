// SIE_FAIL_STEP fails exactly the N-th kernel step of a process, with a message that names it.
#include "common/base/fault.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "common/base/diag.h"

namespace sie {
namespace {

using ::testing::HasSubstr;

TEST(KernelStep, FailsTheNthStepOnly) {
  // Read once per process, at the first step: set before any.
  ASSERT_EQ(KernelStepsTaken(), 0);
  setenv("SIE_FAIL_STEP", "3", 1);
  EXPECT_TRUE(KernelStep("load").ok());
  EXPECT_TRUE(KernelStep("attach").ok());
  absl::Status st = KernelStep("pin the link at f+0x4");
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("injected fault at kernel step 3 (pin the link at f+0x4)"));
  EXPECT_THAT(Hint(st), HasSubstr("SIE_FAIL_STEP"));
  EXPECT_TRUE(KernelStep("activate").ok());
  EXPECT_EQ(KernelStepsTaken(), 4);
}

}  // namespace
}  // namespace sie
