// SIE_FAIL_STEP fails exactly the N-th kernel step of a process, with a message that names it;
// SIE_STOP_AT stops the process before the step that names its text.
#include "common/base/fault.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "common/base/diag.h"

namespace sie {
namespace {

using ::testing::HasSubstr;

// Read once per process at its first step, so set before any test runs.
const bool kStopAt = (setenv("SIE_STOP_AT", "stop here", 1), true);

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

TEST(KernelStep, StopsBeforeTheStepNamingStopAt) {
  ASSERT_TRUE(kStopAt);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    (void)KernelStep("a step that goes on");
    (void)KernelStep("then stop here, before the kernel changes");
    _exit(0);  // only if it did not stop
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, WUNTRACED), pid);
  EXPECT_TRUE(WIFSTOPPED(status)) << "status " << status;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

}  // namespace
}  // namespace sie
