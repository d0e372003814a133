// `sie metrics` (runtime/policy/metrics.h): the Prometheus text of loaded constants and the
// running policy, checked by promtool (Debian's prometheus package) as node_exporter's textfile
// collector would read it.
#include "runtime/policy/metrics.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "bpf/include/sie/abi.h"
#include "common/base/process.h"

namespace sie {
namespace {

loader::LoadedConst Loaded(const std::string& name, int id, int64_t value, int mode,
                           const std::string& engine) {
  loader::LoadedConst lc;
  lc.state = {
      {"name", name}, {"id", id}, {"value", value}, {"mode", mode}, {"loaded_at", 1765000000}};
  lc.engine = engine;
  lc.pins_present = true;
  loader::ProbeInfo p;
  p.optimized = true;
  lc.probes = {p, loader::ProbeInfo{}};
  loader::SpanCounters a, b;
  a.hits = 9007199254740993ULL;  // 2^53 + 1: no rounding through a double
  a.applied = 10;
  b.hits = 7;
  b.rejected = 2;
  b.failed = 1;
  lc.spans = {a, b};
  return lc;
}

TEST(Metrics, ConstantsAndPolicyInTheTextFormat) {
  auto sb = Loaded("SHRINK_BATCH", 3, 512, 1, "bpf");
  sb.epoch = {4, 12.5, 40};
  auto fq = Loaded("FQ_\"ODD\"", 7, 20, 2, "native");
  fq.global = {{"elapsed_ns", "1500000"}};
  policy::PolicyMetrics pol;
  pol.running = true;
  pol.active = true;
  pol.log_dropped = 3;
  pol.counters = {{"plugged", 41}, {"merge_fail", 2}};
  // A shadow run: SHRINK_BATCH would have been 256 ten times and its shipped 128 four times.
  pol.flags = SIE_RUN_SHADOW;
  pol.decisions = {{3, SIE_DECISION_SHADOW, 128, 4},
                   {3, SIE_DECISION_SHADOW, 256, 10},
                   {7, SIE_DECISION_OUTSIDE, -5, 2}};
  pol.decisions_dropped = 1;
  const std::string t = policy::MetricsText({sb, fq}, {{"SHRINK_BATCH", 128}}, pol);
  for (const char* line :
       {"# TYPE sie_const_value gauge\n",
        "sie_const_value{const=\"SHRINK_BATCH\",id=\"3\"} 512\n",
        "sie_const_shipped_value{const=\"SHRINK_BATCH\",id=\"3\"} 128\n",
        "sie_const_mode{const=\"SHRINK_BATCH\",id=\"3\"} 1\n",
        "sie_const_engine_info{const=\"FQ_\\\"ODD\\\"\",id=\"7\",engine=\"native\"} 1\n",
        "sie_const_probes{const=\"SHRINK_BATCH\",id=\"3\"} 2\n",
        "sie_const_probes_optimized{const=\"SHRINK_BATCH\",id=\"3\"} 1\n",
        "# TYPE sie_const_hits_total counter\n",
        "sie_const_hits_total{const=\"SHRINK_BATCH\",id=\"3\"} 9007199254741000\n",
        "sie_const_rejected_total{const=\"SHRINK_BATCH\",id=\"3\"} 2\n",
        "sie_const_transition_seconds{const=\"SHRINK_BATCH\",id=\"3\",stat=\"max\"} "
        "0.040000000000000001\n",
        "sie_const_transition_seconds{const=\"FQ_\\\"ODD\\\"\",id=\"7\",stat=\"global\"} 0.0015\n",
        "sie_policy_running 1\n",
        "sie_policy_active 1\n",
        "sie_policy_log_dropped_total 3\n",
        "sie_policy_events_total{name=\"plugged\"} 41\n",
        "sie_policy_shadow 1\n",
        "sie_policy_canary 0\n",
        "sie_policy_decisions_total{const=\"SHRINK_BATCH\",id=\"3\",kind=\"shadow\",value=\"256\"} "
        "10\n",
        "sie_policy_decisions_total{const=\"FQ_\\\"ODD\\\"\",id=\"7\",kind=\"outside\",value=\"-"
        "5\"} "
        "2\n",
        "sie_policy_shadow_differences_total{const=\"SHRINK_BATCH\",id=\"3\"} 10\n",
        "sie_policy_decisions_dropped_total 1\n"})
    EXPECT_TRUE(absl::StrContains(t, line)) << line << "\n" << t;
  // No shipped value known for FQ: no sample rather than a made-up one.
  EXPECT_FALSE(absl::StrContains(t, "sie_const_shipped_value{const=\"FQ_")) << t;
  RunOptions o;
  o.stdin_data = t;
  auto r = sie::Run({"promtool", "check", "metrics"}, o);
  ASSERT_TRUE(r.ok()) << r.status() << " (promtool comes with Debian's prometheus package)";
  EXPECT_TRUE(r->ok()) << r->out << r->err << "\n" << t;
}

TEST(Metrics, DecisionSummaryPerConstant) {
  const std::vector<policy::Decision> all = {{3, SIE_DECISION_APPLIED, 1, 5},
                                             {3, SIE_DECISION_APPLIED, 8, 2},
                                             {3, SIE_DECISION_OUTSIDE, 8, 7},
                                             {4, SIE_DECISION_APPLIED, 1, 100}};
  const policy::DecisionSummary s = policy::Summarize(all, 3, 8);
  EXPECT_EQ(s.total, 14u);
  EXPECT_EQ(s.differ, 5u);  // the 1s; the applied 8s are the default, outside never differs
  EXPECT_EQ(s.outside, 7u);
  EXPECT_EQ(s.by_kind.at(SIE_DECISION_APPLIED).at(8), 2u);
  EXPECT_EQ(policy::Summarize(all, 9, 0).total, 0u);
  EXPECT_STREQ(policy::DecisionKindName(SIE_DECISION_OUTSIDE), "outside");
}

TEST(Metrics, NothingLoaded) {
  const std::string t = policy::MetricsText({}, {}, policy::PolicyMetrics{});
  EXPECT_EQ(t,
            "# HELP sie_policy_running 1 while a sie-run policy is loaded.\n"
            "# TYPE sie_policy_running gauge\nsie_policy_running 0\n");
}

}  // namespace
}  // namespace sie
