// A C++ program built against the typed views synth generated at build time
// (build/tests/synth_frontend/cpp_view/<id>/<lname>.hpp + .skel.h, objects compiled with
// -DSIE_NO_KFUNCS). Opening needs nothing; loading runs the host kernel's verifier (root) and
// then drives the stub's maps through the view: value with range check, switches, counters.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "bpf/include/sie/abi.h"
#include "sie_target_batch.hpp"
#include "sie_target_scale.hpp"

namespace {

using sie::consts::SieTargetBatch;
using sie::consts::SieTargetScale;

nlohmann::json Fixture(const char* id) {
  std::ifstream in(std::string(SIE_SOURCE_DIR) + "/tests/runtime/fixtures/sie_target/" + id +
                   "/const.json");
  return nlohmann::json::parse(in);
}

// The view's constants are const.json's, not made up.
TEST(CppView, ConstantsComeFromConstJson) {
  for (auto [id, name, min, max, nspans, shipped] :
       {std::tuple{"105", SieTargetScale::kName, SieTargetScale::kMin, SieTargetScale::kMax,
                   SieTargetScale::kNumSpans, SieTargetScale::kShipped},
        std::tuple{"107", SieTargetBatch::kName, SieTargetBatch::kMin, SieTargetBatch::kMax,
                   SieTargetBatch::kNumSpans, SieTargetBatch::kShipped}}) {
    auto j = Fixture(id);
    EXPECT_EQ(name, j["name"].get<std::string>());
    EXPECT_EQ(min, j["range"][0].get<int64_t>());
    EXPECT_EQ(max, j["range"][1].get<int64_t>());
    EXPECT_EQ(nspans, j["spans"].size());
    EXPECT_EQ(shipped, j["values"][0].get<int64_t>());
  }
  auto j = Fixture("107");
  for (uint32_t i = 0; i < SieTargetBatch::kNumSpans; ++i) {
    EXPECT_EQ(SieTargetBatch::kSpans[i].function, j["spans"][i]["function"].get<std::string>());
    EXPECT_EQ(SieTargetBatch::kSpans[i].probe_offset,
              j["spans"][i]["probe_offset"].get<uint64_t>());
    EXPECT_STREQ(SieTargetBatch::kSpans[i].kind, "mem");
  }
  EXPECT_EQ(SieTargetScale::kId, Fixture("105")["id"].get<int>());
}

TEST(CppView, OpenGivesTheProgramOfEachSpan) {
  auto s = SieTargetScale::Open();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->loaded());
  ASSERT_NE(s->ApplyProgram(0), nullptr);
  EXPECT_STREQ(bpf_program__name(s->ApplyProgram(0)), "sie_apply_0");
  ASSERT_NE(s->SaveProgram(0), nullptr);  // recompute span: X saved before the CS
  EXPECT_STREQ(bpf_program__name(s->SaveProgram(0)), "sie_save_0");
  EXPECT_EQ(s->ApplyProgram(1), nullptr);
  EXPECT_STREQ(bpf_program__name(s->GuardProgram()), "sie_guard");

  auto b = SieTargetBatch::Open();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_STREQ(bpf_program__name(b->ApplyProgram(1)), "sie_apply_1");
  EXPECT_EQ(b->SaveProgram(0), nullptr);  // mem spans save nothing
  EXPECT_EQ(bpf_object__find_program_by_name(b->object(), "sie_apply_1"), b->ApplyProgram(1));

  // Maps exist only once loaded: clear errors, not crashes.
  absl::Status st = s->SetValue(5);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("hint:"), absl::string_view::npos);  // the view is standalone
  EXPECT_EQ(s->SpanCounters(0).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s->SpanCounters(7).status().code(), absl::StatusCode::kOutOfRange);

  // Range check, before any kernel access.
  EXPECT_TRUE(SieTargetScale::CheckValue(SieTargetScale::kMax).ok());
  absl::Status r = SieTargetScale::CheckValue(SieTargetScale::kMax + 1);
  EXPECT_EQ(r.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.message().find(std::to_string(SieTargetScale::kMax)), absl::string_view::npos);

  // Move: one owner, the moved-from view owns nothing.
  SieTargetScale moved = std::move(*s);
  EXPECT_NE(moved.skeleton(), nullptr);
  EXPECT_EQ(s->skeleton(), nullptr);
}

TEST(CppView, LoadedOnTheHostSetValueAndCounters) {
  if (geteuid() != 0) GTEST_SKIP() << "loading BPF needs root";
  auto b = SieTargetBatch::OpenAndLoad();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(b->loaded());
  EXPECT_GE(bpf_program__fd(b->ApplyProgram(0)), 0);

  // The value: written to sie_ctl, read back, out-of-range refused and not written.
  ASSERT_EQ(*b->Value(), 0);
  ASSERT_TRUE(b->SetValue(128).ok());
  EXPECT_EQ(*b->Value(), 128);
  EXPECT_FALSE(b->SetValue(SieTargetBatch::kMin - 1).ok());
  EXPECT_FALSE(b->SetValue(SieTargetBatch::kMax + 1).ok());
  EXPECT_EQ(*b->Value(), 128);
  ASSERT_TRUE(b->SetValue(SieTargetBatch::kMax).ok());
  EXPECT_EQ(*b->Value(), SieTargetBatch::kMax);
  // The same word the programs read (sie_ctl[0]), seen through libbpf directly.
  uint32_t key = 0;
  uint64_t raw = 0;
  ASSERT_EQ(
      bpf_map__lookup_elem(b->skeleton()->maps.sie_ctl, &key, sizeof key, &raw, sizeof raw, 0), 0);
  EXPECT_EQ(raw, static_cast<uint64_t>(SieTargetBatch::kMax));

  EXPECT_FALSE(*b->Active());
  ASSERT_TRUE(b->SetActive(true).ok());
  EXPECT_TRUE(*b->Active());
  ASSERT_TRUE(b->SetMode(SieTargetBatch::Mode::kPerTask).ok());
  key = 2;
  ASSERT_EQ(
      bpf_map__lookup_elem(b->skeleton()->maps.sie_ctl, &key, sizeof key, &raw, sizeof raw, 0), 0);
  EXPECT_EQ(raw, 1u);

  // Counters: nothing is attached on the host, so all zero; then per-CPU slots written through
  // libbpf (as the programs would) come back summed, per span and in total.
  auto c0 = b->SpanCounters(0);
  ASSERT_TRUE(c0.ok()) << c0.status();
  EXPECT_EQ(c0->hits + c0->applied + c0->rejected + c0->failed + c0->gated + c0->nosave, 0u);
  const int ncpus = libbpf_num_possible_cpus();
  ASSERT_GT(ncpus, 0);
  auto put = [&](uint32_t k, uint64_t base) {
    std::vector<uint64_t> v(ncpus);
    for (int c = 0; c < ncpus; ++c) v[c] = base + c;
    return bpf_map__update_elem(b->skeleton()->maps.sie_stats, &k, sizeof k, v.data(),
                                v.size() * sizeof(uint64_t), 0);
  };
  const uint64_t n = ncpus, tri = n * (n - 1) / 2;  // sum of base + c over the CPUs
  constexpr uint32_t kStatNr = SIE_STAT_NR;         // bpf/include/sie/abi.h
  ASSERT_EQ(put(0 * kStatNr + 0, 10), 0);           // span 0 hits
  ASSERT_EQ(put(0 * kStatNr + 1, 7), 0);            // span 0 applied
  ASSERT_EQ(put(1 * kStatNr + 2, 3), 0);            // span 1 rejected
  ASSERT_EQ(put(1 * kStatNr + 4, 100), 0);          // span 1 gated
  c0 = b->SpanCounters(0);
  ASSERT_TRUE(c0.ok());
  EXPECT_EQ(c0->hits, 10 * n + tri);
  EXPECT_EQ(c0->applied, 7 * n + tri);
  EXPECT_EQ(c0->rejected, 0u);
  auto c1 = b->SpanCounters(1);
  ASSERT_TRUE(c1.ok());
  EXPECT_EQ(c1->rejected, 3 * n + tri);
  EXPECT_EQ(c1->gated, 100 * n + tri);
  auto t = b->TotalCounters();
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->hits, c0->hits);
  EXPECT_EQ(t->rejected, c1->rejected);
  EXPECT_EQ(t->gated, c1->gated);

  // A stub with a task-storage save program loads too.
  auto s = SieTargetScale::OpenAndLoad();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GE(bpf_program__fd(s->SaveProgram(0)), 0);
}

}  // namespace
