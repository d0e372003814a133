// The leveled logger and hints carried as status payloads.
#include <gtest/gtest.h>

#include <vector>

#include "common/base/diag.h"
#include "common/base/log.h"

namespace sie {
namespace {

TEST(DiagTest, HintIsAPayloadThatSurvivesContext) {
  absl::Status s = FailedWithHint("probe place taken", "use --engine bpf");
  EXPECT_EQ(s.message(), "probe place taken");
  EXPECT_EQ(Hint(s), "use --engine bpf");
  absl::Status c = WithContext(s, "SHRINK_BATCH");
  EXPECT_EQ(c.message(), "SHRINK_BATCH: probe place taken");
  EXPECT_EQ(c.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Hint(c), "use --engine bpf");
  EXPECT_EQ(MessageWithHint(c), "SHRINK_BATCH: probe place taken\nhint: use --engine bpf");
  EXPECT_EQ(Hint(absl::InternalError("x")), "");
  EXPECT_EQ(MessageWithHint(absl::InternalError("x")), "x");
  EXPECT_EQ(Hint(WithHint(c, "")), "");
  EXPECT_TRUE(WithHint(absl::OkStatus(), "h").ok());
}

TEST(LogTest, LevelsFilterAndSinkReceives) {
  std::vector<std::pair<LogLevel, std::string>> got;
  LogSink old = SetLogSink([&](LogLevel l, absl::string_view m) { got.emplace_back(l, m); });
  const LogLevel before = GetLogLevel();
  SetLogLevel(LogLevel::kInfo);
  Log(LogLevel::kDebug, "hidden");
  Logf(LogLevel::kWarn, "%d probes", 3);
  RaiseLogLevel(LogLevel::kDebug);
  RaiseLogLevel(LogLevel::kWarn);  // never lowers
  Log(LogLevel::kDebug, "shown");
  SetLogLevel(before);
  SetLogSink(old);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].first, LogLevel::kWarn);
  EXPECT_EQ(got[0].second, "3 probes");
  EXPECT_EQ(got[1].second, "shown");
  EXPECT_STREQ(LogLevelName(LogLevel::kTrace), "trace");
}

}  // namespace
}  // namespace sie
