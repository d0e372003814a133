// Spans in functions without an ftrace site: kprobe events (so BPF) cannot probe them; reg and
// mem spans stay for the native engine, any other kind is refused with the notrace class.
#include "synth/pipeline/traceable.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/base/diag.h"
#include "synth/refusal.h"

namespace sie::synth::pipeline {
namespace {

using ::testing::HasSubstr;

CriticalSpan Span(const std::string& function, SpanKind kind) {
  CriticalSpan s;
  s.function = function;
  s.kind = kind;
  return s;
}

TEST(TraceableTest, TraceableFunctionsPass) {
  std::vector<std::string> warnings;
  EXPECT_TRUE(CheckTraceable({"f"}, {Span("f", SpanKind::kFlags)}, &warnings).ok());
  EXPECT_TRUE(warnings.empty());
}

TEST(TraceableTest, RegAndMemSpansInNotraceCodeAreLeftToTheNativeEngine) {
  std::vector<std::string> warnings;
  auto s = CheckTraceable({"f"}, {Span("g", SpanKind::kReg), Span("h", SpanKind::kMem)}, &warnings);
  EXPECT_TRUE(s.ok()) << s;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("no ftrace site in g, h"));
  EXPECT_THAT(warnings[0], HasSubstr("native engine"));
}

TEST(TraceableTest, SpansThatNeedBpfInNotraceCodeAreRefused) {
  std::vector<std::string> warnings;
  auto s = CheckTraceable({"f"}, {Span("f", SpanKind::kFlags), Span("g", SpanKind::kRecompute)},
                          &warnings);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(RefusalOf(s), Refusal::kNotrace);
  EXPECT_THAT(std::string(s.message()), HasSubstr("no ftrace site in g"));
  EXPECT_THAT(MessageWithHint(s), HasSubstr("CONFIG_KPROBE_EVENTS_ON_NOTRACE"));
}

}  // namespace
}  // namespace sie::synth::pipeline
