#include "common/base/process.h"

#include <gtest/gtest.h>

namespace sie {
namespace {

TEST(ProcessTest, CapturesOutputAndExitCode) {
  auto r = sie::Run({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->Describe(), "exit 3");
}

TEST(ProcessTest, FeedsStdinAndSetsEnvAndCwd) {
  RunOptions o;
  o.stdin_data = "hello";
  o.env_set["SIE_T"] = "42";
  o.cwd = "/usr";
  auto r = sie::Run({"sh", "-c", "cat; echo \" $SIE_T $(pwd)\""}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "hello 42 /usr\n");
}

TEST(ProcessTest, TimeoutKillsTheWholeProcessGroup) {
  RunOptions o;
  o.timeout = std::chrono::milliseconds(300);
  // The grandchild holds stdout open; the timeout must still end the run promptly.
  auto r = sie::Run({"sh", "-c", "sleep 30 & sleep 30"}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(r->elapsed.count(), 5000);
  EXPECT_NE(r->Describe().find("timed out"), std::string::npos);
}

TEST(ProcessTest, StreamsChunksToCallbacks) {
  RunOptions o;
  std::string seen;
  o.on_stdout = [&](absl::string_view c) { seen.append(c.data(), c.size()); };
  auto r = sie::Run({"printf", "a\\nb\\n"}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(seen, "a\nb\n");
}

TEST(ProcessTest, MissingProgramIsAnErrorNotACrash) {
  auto r = sie::Run({"sie-no-such-program"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not found in PATH"), absl::string_view::npos);
}

TEST(ProcessTest, RunCheckedNamesTheCommandAndStderr) {
  auto r = RunChecked({"sh", "-c", "echo boom >&2; exit 1"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("boom"), absl::string_view::npos);
  EXPECT_NE(r.status().message().find("exit 1"), absl::string_view::npos);
}

TEST(ProcessTest, ShellJoinQuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(ShellJoin({"ls", "-l", "a b", "it's"}), "ls -l 'a b' 'it'\\''s'");
}

}  // namespace
}  // namespace sie
