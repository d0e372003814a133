// Host unit tests of the `sie set` decisions that need no kernel (runtime/loader/checks.h) and
// of the transaction guard that undoes a failed load (runtime/loader/transaction.h): argument
// refusals, the engine choice and its fallbacks, the code-byte verdict, the safe-span and
// mode-2 placement rules, and the other-kprobe warnings. Kernel inputs are given as samples.
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/artifact/const_json.h"
#include "common/artifact/consts_dir.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/loader/checks.h"
#include "runtime/loader/jump_window.h"
#include "runtime/loader/transaction.h"

namespace sie::loader {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kConsts = fs::path(SIE_SOURCE_DIR) / "tests/runtime/fixtures/sie_target";

// 102 SIE_TARGET_CALL_ARG: one reg span (range 0..2^32-1, shipped 4660, id 102).
artifact::SynthesizedConst Const(const std::string& id) {
  auto c = artifact::ReadConstFile(kConsts / id / "const.json");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : artifact::SynthesizedConst{};
}

SetOptions Opts(int64_t value, int mode = 0, std::string engine = "auto") {
  SetOptions o;
  o.value = value;
  o.mode = mode;
  o.engine = std::move(engine);
  return o;
}

// What the user reads: the message and its hint.
bool Has(const absl::Status& st, absl::string_view text) {
  return absl::StrContains(MessageWithHint(st), text);
}

TEST(ValidateRequest, RefusesOutOfRangeValuesAndUnknownModes) {
  artifact::SynthesizedConst c = Const("102");
  EXPECT_TRUE(ValidateRequest(c, Opts(7)).ok());
  absl::Status st = ValidateRequest(c, Opts(-1));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Has(st, "value -1 is outside the range of SIE_TARGET_CALL_ARG [0, 4294967295]"));
  EXPECT_TRUE(Has(st, "hint: the range comes from the constant's spec")) << st;
  EXPECT_TRUE(Has(ValidateRequest(c, Opts(7, 3)), "unknown mode 3"));
  // The ConstID is no sie_consistency instance any more (FreeGlobalInstance gives one).
  c.id = 5000;
  EXPECT_TRUE(ValidateRequest(c, Opts(7, 2)).ok());
  EXPECT_TRUE(ValidateRequest(c, Opts(7, 1)).ok());
  EXPECT_TRUE(ValidateEngineName("native").ok());
  EXPECT_TRUE(Has(ValidateEngineName("ebpf"), "unknown engine 'ebpf'"));
}

// A constant synthesized for powers of two only (x / V is a shift there) refuses other values
// before anything is loaded, and says which values it takes.
TEST(ValidateRequest, PowersOfTwoOnly) {
  artifact::SynthesizedConst c = Const("102");
  c.pow2_only = true;
  c.range_min = 1;
  c.range_max = 1024;
  EXPECT_TRUE(ValidateRequest(c, Opts(64)).ok());
  EXPECT_TRUE(ValidateRequest(c, Opts(1)).ok());
  absl::Status st = ValidateRequest(c, Opts(48));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Has(st,
                  "value 48 is not a power of two: SIE_TARGET_CALL_ARG takes powers of two "
                  "only"))
      << st;
  EXPECT_TRUE(Has(st, "hint: pick one of 1, 2, 4, ... within [1, 1024]")) << st;
  EXPECT_TRUE(Has(ValidateRequest(c, Opts(2048)), "outside the range"));
}

TEST(CheckUpdate, OnlyTheValueOfALoadedConstantChanges) {
  const json bpf1{{"state", "loaded"}, {"mode", 1}};
  const json native{{"state", "loaded"}, {"engine", "native"}, {"mode", 0}};
  EXPECT_TRUE(CheckUpdate("C", bpf1, Opts(1, 1)).ok());
  EXPECT_TRUE(CheckUpdate("C", bpf1, Opts(1, 1, "bpf")).ok());
  EXPECT_TRUE(CheckUpdate("C", native, Opts(1, 0)).ok());
  EXPECT_TRUE(Has(CheckUpdate("C", json{{"state", "loading"}, {"pid", 42}}, Opts(1)),
                  "C was left half-loaded by process 42"));
  absl::Status st = CheckUpdate("C", bpf1, Opts(1, 1, "native"));
  EXPECT_TRUE(Has(st, "C is loaded with the bpf engine"));
  EXPECT_TRUE(Has(st, "sie set --engine native"));
  EXPECT_TRUE(Has(CheckUpdate("C", bpf1, Opts(1, 0)), "C is loaded in mode 1"));
  EXPECT_TRUE(Has(CheckUpdate("C", native, Opts(1, 1)), "loaded in mode 0 (native engine)"));
}

TEST(ChooseEngine, AutoPicksNativeWhereItCoversEverySpanAndForcedEnginesAreObeyed) {
  auto ch = ChooseEngine("C", "auto", "");
  ASSERT_TRUE(ch.ok());
  EXPECT_TRUE(ch->native);
  EXPECT_TRUE(absl::StartsWith(ch->reason, "sie_native covers every span"));
  ch = ChooseEngine("C", "auto", "kind flags");
  ASSERT_TRUE(ch.ok());
  EXPECT_FALSE(ch->native);
  EXPECT_EQ(ch->reason, "sie_native cannot: kind flags");
  ch = ChooseEngine("C", "bpf", "");
  ASSERT_TRUE(ch.ok());
  EXPECT_FALSE(ch->native);
  EXPECT_EQ(ch->reason, "forced by --engine bpf");
  ch = ChooseEngine("C", "native", "");
  ASSERT_TRUE(ch.ok());
  EXPECT_TRUE(ch->native);
  EXPECT_TRUE(Has(ChooseEngine("C", "native", "kind flags").status(),
                  "C cannot use the native engine: kind flags"));
}

TEST(ChooseEngine, NativeWhyNotNeedsTheShippedValueAndAFormulaDefinedAtTheValue) {
  artifact::SynthesizedConst c = Const("102");
  EXPECT_EQ(NativeWhyNot(c, Opts(7)), "");
  EXPECT_NE(NativeWhyNot(c, Opts(7, 1)), "");  // per-task guards
  c.spans[0].formula = "100 / V";
  EXPECT_NE(NativeWhyNot(c, Opts(0)), "");
  c.spans[0].formula = "V";
  c.values.clear();
  EXPECT_TRUE(absl::StrContains(NativeWhyNot(c, Opts(7)), "the shipped value is unknown"));
}

TEST(ChooseEngine, FallsBackToBpfUnlessNativeWasForced) {
  EngineChoice ch{true, "x"};
  absl::Status refusal = absl::FailedPreconditionError("no module");
  EXPECT_EQ(FallBackToBpf(ch, "native", refusal, "why"), refusal);
  EXPECT_TRUE(ch.native);
  EXPECT_TRUE(FallBackToBpf(ch, "auto", refusal, "why").ok());
  EXPECT_FALSE(ch.native);
  EXPECT_EQ(ch.reason, "why");
}

TEST(NativePlaces, NamesTheFirstTakenPlaceAndItsOwner) {
  artifact::SynthesizedConst c = Const("107");  // two mem spans in one function
  auto np = NativeProbes(c, "sie_target");
  ASSERT_TRUE(np.ok()) << np.status();
  const std::string second = NativeKey((*np)[1].symbol, (*np)[1].offset);
  auto owner = [&](const std::string& key) { return key == second ? "OTHER" : ""; };
  EXPECT_EQ(NativePlaceTaken(*np, {}, owner), "");
  auto listing = ParseNativeListing(second + " mem-cell di 8 4 0x40 hits=5 faults=0\n");
  const std::string taken = NativePlaceTaken(*np, listing, owner);
  EXPECT_EQ(taken, absl::StrCat("span 1 (", second,
                                ") is already probed natively by OTHER (sie_native keeps one "
                                "probe per place)"));
  EXPECT_TRUE(
      absl::StrContains(NativePlaceTaken(*np, listing, [](const std::string&) { return ""; }),
                        "by another constant or tool"));
  EngineChoice ch{true, ""};
  EXPECT_TRUE(
      Has(NativePlaceRefusal(ch, "C", "native", taken), "C cannot use the native engine: span 1"));
  EXPECT_TRUE(NativePlaceRefusal(ch, "C", "auto", taken).ok());
  EXPECT_FALSE(ch.native);
  EXPECT_EQ(ch.reason, "sie_native cannot: " + taken);
}

TEST(CheckProbeBytes, AcceptsExactBytesAndBytesUnderAProbeThatCannotHideADifference) {
  const artifact::SynthesizedConst c = Const("102");  // expects "ebd0" at +0xe
  const artifact::CriticalSpan& s = c.spans[0];
  int asked = 0;
  auto nobody = [&] {
    ++asked;
    return std::string();
  };
  auto no_int3 = [] { return false; };
  auto r = CheckProbeBytes(s, "\xeb\xd0", true, "D/const.json", nobody, no_int3);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "");
  EXPECT_EQ(asked, 0);  // the state files are read only on a mismatch
  r = CheckProbeBytes(
      s, "\xcc\xd0", true, "D/const.json", [] { return std::string("OTHER"); }, no_int3);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r,
            "the code at sie_target_call_arg+0xe is under OTHER's probe, which verified the "
            "same bytes");
  r = CheckProbeBytes(s, "\xcc\xd0", true, "D/const.json", nobody, [] { return true; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r,
            "the first byte at sie_target_call_arg+0xe is another kprobe's int3 "
            "(kprobes/list); the other 1 byte(s) match");
  // An int3 with the rest different, or no int3 kprobe registered there: refused.
  r = CheckProbeBytes(s, "\xcc\xd1", true, "D/const.json", nobody, [] { return true; });
  EXPECT_TRUE(Has(r.status(),
                  "the code at sie_target_call_arg+0xe is ccd1, but D/const.json "
                  "expects ebd0"));
  EXPECT_TRUE(Has(r.status(), "hint: the running kernel is not the build synth analyzed"));
  EXPECT_FALSE(CheckProbeBytes(s, "\xcc\xd0", true, "D", nobody, no_int3).ok());
}

TEST(SafeSpans, DefaultToTheWholeCriticalSpanFunctionsAndAreBoundedPerMode) {
  artifact::SynthesizedConst c = Const("102");  // no safe spans from synth
  auto ss = SafeSpansOf(c);
  ASSERT_EQ(ss.size(), 1u);
  EXPECT_EQ(ss[0].function, c.spans[0].function);
  EXPECT_EQ(ss[0].how, artifact::SafeSpanHow::kWholeFunction);
  ss = SafeSpansOf(Const("107"));  // synth's own (manual) span
  ASSERT_EQ(ss.size(), 1u);
  EXPECT_EQ(ss[0].how, artifact::SafeSpanHow::kManual);
  EXPECT_EQ(ss[0].end, 85u);
  EXPECT_TRUE(CheckSafeSpanCount("C", 8, 1).ok());
  absl::Status st = CheckSafeSpanCount("C", 9, 1);
  EXPECT_TRUE(Has(st, "C has 9 safe spans; mode 1 supports 8"));
  EXPECT_TRUE(Has(st, "use --mode 0"));
  EXPECT_TRUE(CheckSafeSpanCount("C", 16, 2).ok());
  EXPECT_TRUE(Has(CheckSafeSpanCount("C", 17, 2), "use --mode 1 or 0"));
}

// A value that outlives its safe spans (synth's safe_spans_unbounded): modes 1 and 2 say that
// later readers are not covered; mode 0 has nothing to say. const.json keeps why.
TEST(SafeSpans, UnboundedAreReportedInModesOneAndTwo) {
  artifact::SynthesizedConst c = Const("102");
  c.safe_spans_unbounded =
      "returned at f+0x10 (`ret`), and f is a global function: callers in other objects are "
      "unknown";
  c.safe_spans.push_back({"g", 4, 0x40, artifact::SafeSpanHow::kCaller});
  auto back = artifact::ParseConstJson(artifact::JsonText(artifact::ConstToJson(c)), "x.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->safe_spans_unbounded, c.safe_spans_unbounded);
  EXPECT_EQ(back->safe_spans.back().how, artifact::SafeSpanHow::kCaller);
  EXPECT_FALSE(UnboundedSafeSpans(c, 0));
  for (int mode : {1, 2}) {
    auto w = UnboundedSafeSpans(c, mode);
    ASSERT_TRUE(w);
    EXPECT_THAT(*w, ::testing::HasSubstr(absl::StrCat(
                        "mode ", mode, " keeps each run of ", c.name,
                        "'s safe spans on one value, but its value is returned at f+0x10")));
    EXPECT_THAT(*w, ::testing::HasSubstr("code that reads it there later is not covered"));
  }
  c.safe_spans_unbounded.clear();
  EXPECT_FALSE(UnboundedSafeSpans(c, 1));
  std::string text = artifact::JsonText(artifact::ConstToJson(c));
  EXPECT_EQ(text.find("safe_spans_unbounded"), std::string::npos);  // absent when bounded
  text.replace(text.find("\"how\": \"caller\""), 15, "\"how\": \"callee\"");
  EXPECT_TRUE(Has(artifact::ParseConstJson(text, "x.json").status(),
                  "must be slice, manual, whole_function or caller"));
}

// The live half of the prediction: the instructions an optimized probe would copy, as the
// running kernel has them (a return thunk patched to `ret` at boot can be copied; the jmp to
// it cannot), and synth's jump_windows in const.json.
TEST(JumpWindows, LiveInstructionsAndConstJson) {
  auto live = [](std::initializer_list<uint8_t> b) {
    return LiveJumpWindow(std::string(b.begin(), b.end()));
  };
  EXPECT_EQ(*live({0x48, 0x83, 0xc0, 0x01, 0xc3, 0xcc, 0xcc, 0xcc, 0xcc}), 5);  // add; ret
  EXPECT_EQ(*live({0xb8, 0, 3, 0, 0, 0x48, 0x83, 0xc0, 0x01}), 5);              // mov eax, imm
  EXPECT_EQ(*live({0x89, 0xf8, 0x48, 0x83, 0xc0, 0x01, 0xc3}), 6);              // mov; add
  EXPECT_TRUE(Has(live({0x48, 0x83, 0xc0, 0x01, 0xe9, 0, 0, 0, 0}).status(),    // add; jmp thunk
                  "the instruction at +4 (e900000000) cannot run out of line"));
  EXPECT_FALSE(live({0xcc, 0x83, 0xc0, 0x01, 0xc3}).ok());  // another probe's int3
  EXPECT_TRUE(Has(live({0x48, 0x83, 0xc0, 0x01}).status(),  // limit reached before 5
                  "no whole instructions for the 5 bytes within the 4"));
  artifact::SynthesizedConst c = Const("102");
  c.spans[0].jump_windows = std::vector<artifact::CriticalSpan::JumpWindow>{{0x10, 7}};
  const std::string text = artifact::JsonText(artifact::ConstToJson(c));
  auto back = artifact::ParseConstJson(text, "x.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->spans[0].jump_windows, c.spans[0].jump_windows);
  nlohmann::json bad = nlohmann::json::parse(text);
  bad["spans"][0]["jump_windows"] = {{16, 2}};  // fewer than the 5 bytes of a jump
  EXPECT_TRUE(Has(artifact::ParseConstJson(bad.dump(), "x.json").status(),
                  "field 'spans[0].jump_windows' must be an array of [offset, limit]"));
  EXPECT_FALSE(Const("102").spans[0].jump_windows);  // older files: not predicted
}

TEST(GlobalMode, RefusesCodePatchedByAnotherKprobe) {
  KprobeEntry e;
  e.addr = 0x1010;
  e.where = "f+0x10";
  EXPECT_TRUE(CheckUnpatched("safe span 0", {e}, 0x1000, 0x10).ok());
  EXPECT_TRUE(Has(CheckUnpatched("safe span 0", {e}, 0x1000, 0x11),
                  "safe span 0: the code is patched by a kprobe at f+0x10"));
}

Attached Apply(int span, uint64_t func, uint64_t off, std::vector<uint64_t> candidates = {}) {
  Attached a;
  a.info = MakeProbe("apply", span, "f", off, func);
  a.func_addr = func;
  a.candidates = std::move(candidates);
  return a;
}

TEST(GlobalMode, RefusesAProbeOnAnExitOfASpanWithOtherUsesAndDropsExitCandidates) {
  GlobalSpan g;
  g.start = 0x1000;
  g.end = 0x1040;
  g.entry = 0x1000;
  g.exits = {0x1040};
  // One use on the exit alone is fine; candidates on an exit are dropped.
  std::vector<Attached> probes;
  probes.push_back(Apply(0, 0x1000, 0x40));
  probes.push_back(Apply(1, 0x2000, 0x0, {0x10}));
  probes.push_back(Apply(2, 0x1000, 0x60, {0x40, 0x50}));
  ASSERT_TRUE(CheckExitUses("C", {g}, probes).ok());
  EXPECT_EQ(probes[2].candidates, std::vector<uint64_t>{0x50});
  EXPECT_EQ(probes[1].candidates, std::vector<uint64_t>{0x10});
  // A second use inside the span: the exit probe would apply for the last task out only.
  probes.push_back(Apply(3, 0x1000, 0x8));
  absl::Status st = CheckExitUses("C", {g}, probes);
  EXPECT_TRUE(Has(st, "span 0 of C is probed at f+0x40, an exit of a safe span with 2 uses"));
  EXPECT_TRUE(Has(st, "use --mode 1 (per-task)"));
}

TEST(OtherKprobes, AreNotedOnEachProbeAndWarned) {
  std::vector<Attached> probes;
  probes.push_back(Apply(0, 0x1000, 0xe));
  probes.push_back(Apply(1, 0x2000, 0x4));
  KprobeEntry a{0x100e, "k", "f+0xe", true, false, false};
  KprobeEntry b{0x100e, "r", "f+0xe", false, false, true};
  std::vector<std::string> warnings;
  NoteOtherKprobes({a, b}, probes, warnings);
  EXPECT_EQ(probes[0].info.others_count, 2);
  EXPECT_EQ(probes[0].info.others,
            (std::vector<std::string>{"f+0xe [OPTIMIZED]", "f+0xe (kretprobe) [DISABLED]"}));
  EXPECT_EQ(probes[1].info.others_count, 0);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0],
            "apply probe of span 0 at f+0xe: 2 other kprobe(s) already registered there (f+0xe "
            "[OPTIMIZED]; f+0xe (kretprobe) [DISABLED]); they run on the same hits");
}

TEST(Transaction, UndoesEveryRecordedStepNewestFirstUnlessCommitted) {
  std::vector<int> undone;
  {
    Transaction t;
    t.OnRollback([&] { undone.push_back(1); });
    t.OnRollback([&] { undone.push_back(2); });
    t.OnRollback([&] { undone.push_back(3); });
  }
  EXPECT_EQ(undone, (std::vector<int>{3, 2, 1}));
  undone.clear();
  {
    Transaction t;
    t.OnRollback([&] { undone.push_back(1); });
    t.Commit();
  }
  EXPECT_TRUE(undone.empty());
  {
    Transaction t;
    t.OnRollback([&] { undone.push_back(1); });
    t.Rollback();
    EXPECT_EQ(undone, std::vector<int>{1});
  }
  EXPECT_EQ(undone, std::vector<int>{1});  // each undo runs once
}

// `sie status` of a constant in a module: live while the module is loaded with its probes armed;
// "module unloaded" once it is gone; "module reloaded" when a new copy runs without the probes.
TEST(ModuleTargetGone, SaysWhatBecameOfTheModule) {
  EXPECT_FALSE(ModuleTargetGone("SHRINK_BATCH", "vmlinux", false, 1, 0).has_value());
  EXPECT_FALSE(ModuleTargetGone("SHRINK_BATCH", "", false, 1, 0).has_value());
  EXPECT_FALSE(ModuleTargetGone("FQ_DEFAULT_LIMIT", "sch_fq", true, 2, 0).has_value());
  auto unloaded = ModuleTargetGone("FQ_DEFAULT_LIMIT", "sch_fq", false, 2, 2);
  ASSERT_TRUE(unloaded.has_value());
  EXPECT_EQ(unloaded->state, "module unloaded");
  EXPECT_EQ(unloaded->message,
            "module sch_fq was unloaded after 'sie set': its 2 probe(s) went with it, so "
            "FQ_DEFAULT_LIMIT no longer applies");
  EXPECT_TRUE(absl::StrContains(unloaded->hint, "sie unload FQ_DEFAULT_LIMIT"));
  EXPECT_TRUE(absl::StrContains(unloaded->hint, "modprobe sch_fq"));
  auto reloaded = ModuleTargetGone("FQ_DEFAULT_LIMIT", "sch_fq", true, 2, 1);
  ASSERT_TRUE(reloaded.has_value());
  EXPECT_EQ(reloaded->state, "module reloaded");
  EXPECT_TRUE(absl::StrContains(reloaded->message, "1 of its 2 probe(s) are gone"));
}

// The decision from the state file and the kprobes list as the kernel shows them.
TEST(TargetGoneNow, CountsTheConstantsGoneProbes) {
  json state = {{"binary", "sie_no_such_module"},
                {"probes", json::array({{{"address", 0x1000u}}, {{"address", 0x2000u}}})}};
  std::vector<KprobeEntry> list(2);
  list[0].addr = 0x1000;
  list[0].gone = true;
  list[1].addr = 0x3000;
  list[1].gone = true;  // someone else's
  auto g = TargetGoneNow("X", state, list);
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->state, "module unloaded");  // no /sys/module/sie_no_such_module
  EXPECT_TRUE(absl::StrContains(g->message, "its 2 probe(s)"));
  state["binary"] = "vmlinux";
  EXPECT_FALSE(TargetGoneNow("X", state, list).has_value());
}

// ConstIDs are per consts directory, so mode 2's instance is given per load: the lowest one no
// loaded constant holds, whatever their ids.
TEST(GlobalInstance, FreeOneIsNotTheConstIdAndOlderStateFilesCount) {
  EXPECT_EQ(*FreeGlobalInstance({}), 1);
  std::vector<json> loaded = {
      {{"name", "A"}, {"id", 1}, {"mode", 2}, {"instance", 1}},
      {{"name", "B"}, {"id", 1}, {"mode", 0}},    // mode 0: no instance
      {{"name", "OLD"}, {"id", 2}, {"mode", 2}},  // an older sie's: instance = id
      {{"name", "C"}, {"id", 7}, {"mode", 2}, {"instance", 4}}};
  EXPECT_EQ(GlobalInstanceIn(loaded[0]), 1);
  EXPECT_EQ(GlobalInstanceIn(loaded[1]), -1);
  EXPECT_EQ(GlobalInstanceIn(loaded[2]), 2);
  EXPECT_EQ(*FreeGlobalInstance(loaded), 3);
  std::vector<json> full;
  for (int i = 1; i < 4096; ++i) full.push_back({{"mode", 2}, {"instance", i}});
  auto st = FreeGlobalInstance(full);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(Has(st.status(), "all 4095 sie_consistency instances are held")) << st.status();
  EXPECT_TRUE(Has(st.status(), "hint: unload constants loaded in mode 2"));
}

// `sie unload` and `sie status` take a name (any case) or an id; ids are per directory.
TEST(ResolveLoaded, NameOrIdAmongLoadedConstants) {
  auto t = TempDir::Create(fs::temp_directory_path(), "sie-resolve-");
  ASSERT_TRUE(t.ok());
  const fs::path a = t->path() / "a", b = t->path() / "b";
  fs::create_directories(a / "1");
  fs::create_directories(b / "1");
  fs::create_directories(b / "2");
  std::vector<json> loaded = {
      {{"name", "SIE_TARGET_CALL_ARG"}, {"id", 1}, {"const_path", (a / "1/const.json").string()}},
      {{"name", "SHRINK_BATCH"}, {"id", 1}, {"const_path", (b / "1/const.json").string()}},
      {{"name", "SIE_TARGET_BATCH"}, {"id", 2}, {"const_path", (b / "2/const.json").string()}}};
  EXPECT_EQ(*ResolveLoaded("shrink_batch", loaded, ""), "SHRINK_BATCH");
  EXPECT_EQ(*ResolveLoaded("SHRINK_BATCH", loaded, a.string()), "SHRINK_BATCH");  // names: any
  EXPECT_EQ(*ResolveLoaded("2", loaded, ""), "SIE_TARGET_BATCH");
  EXPECT_EQ(*ResolveLoaded("1", loaded, a.string()), "SIE_TARGET_CALL_ARG");
  EXPECT_EQ(*ResolveLoaded("1", loaded, (b / ".").string()), "SHRINK_BATCH");
  auto amb = ResolveLoaded("1", loaded, "");
  ASSERT_FALSE(amb.ok());
  EXPECT_TRUE(Has(amb.status(), "id 1 names 2 loaded constants")) << amb.status();
  EXPECT_TRUE(Has(amb.status(), "SHRINK_BATCH (from " + b.string() + ")")) << amb.status();
  EXPECT_TRUE(Has(amb.status(), "hint: name the constant, or add --consts DIR"));
  auto none = ResolveLoaded("2", loaded, a.string());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Has(none.status(), "no loaded constant has id 2 in " + a.string()));
  auto unknown = ResolveLoaded("NOPE", loaded, "");
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(Has(unknown.status(), "NOPE is not loaded"));
  EXPECT_TRUE(Has(unknown.status(), "hint: see 'sie status'"));
}

// ---- CheckCode: every byte synth recorded (const.json "code") ----

// The function f at 0xffffffffc0001000: a range [0x10, 0x20) with a masked site (2 bytes at
// 0x13), a module call (pc to printk at 0x18..0x1c) and a kaslr-free literal rest.
struct CodeCase {
  artifact::CodeRange r;
  CodeContext ctx;
  std::string live;
  CodeCase() {
    r.offset = 0x10;
    //        10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f
    r.bytes = "4889c7????31c0e8????????4883c408";
    artifact::CodeReloc call;
    call.offset = 0x18;
    call.width = 4;
    call.kind = "pc";
    call.symbol = "printk";
    r.relocs = {call};
    ctx.func_addr = 0xffffffffc0001000;
    ctx.symbol_address = [](const artifact::CodeReloc& x) -> std::optional<uint64_t> {
      if (x.symbol == "printk") return 0xffffffff81100000;
      return std::nullopt;
    };
    ctx.owner = [](uint64_t) { return std::string(); };
    // printk - (field + 4): the call's displacement as the module loader wrote it.
    const uint64_t disp = 0xffffffff81100000 - 4 - (0xffffffffc0001000 + 0x18);
    live = std::string("\x48\x89\xc7\x66\x90\x31\xc0\xe8", 8);
    for (int k = 0; k < 4; ++k) live.push_back(static_cast<char>((disp >> (8 * k)) & 0xff));
    live += std::string("\x48\x83\xc4\x08", 4);
    call.addend = -4;
    r.relocs = {call};
  }
};

TEST(CheckCode, AcceptsMatchingBytesMaskedSitesAndResolvedRelocations) {
  CodeCase k;
  auto notes = CheckCode("span 0", "f", k.r, k.live, k.ctx, "D/const.json");
  ASSERT_TRUE(notes.ok()) << notes.status();
  EXPECT_TRUE(notes->empty());
  // The masked site may hold anything the kernel patched in.
  k.live[3] = '\xeb';
  k.live[4] = '\x00';
  EXPECT_TRUE(CheckCode("span 0", "f", k.r, k.live, k.ctx, "D/const.json").ok());
}

TEST(CheckCode, RefusesAByteThatDiffersInTheMiddleOfASpan) {
  CodeCase k;
  k.live[6] = '\xd2';  // xor eax, eax -> xor edx, eax: another build
  auto notes = CheckCode("span 0", "f", k.r, k.live, k.ctx, "D/const.json");
  ASSERT_FALSE(notes.ok());
  EXPECT_TRUE(Has(notes.status(), "the code at f+0x16 (span 0) is d2e8"));
  EXPECT_TRUE(Has(notes.status(), "but D/const.json expects c0e8????????4883"));
  EXPECT_TRUE(Has(notes.status(), "code range f+0x10..0x20); nothing was attached"));
  EXPECT_TRUE(Has(notes.status(), "hint: the running kernel or module is not the build"));
}

TEST(CheckCode, ComparesRelocatedFieldsItCanCompute) {
  CodeCase k;
  k.live[0x19 - 0x10] ^= 1;  // the call goes elsewhere
  auto notes = CheckCode("span 0", "f", k.r, k.live, k.ctx, "D/const.json");
  ASSERT_FALSE(notes.ok());
  EXPECT_TRUE(Has(notes.status(), "the relocated field at f+0x18 (span 0)"));
  EXPECT_TRUE(Has(notes.status(), "printk (0xffffffff81100000) - 0x4 - the field's address"));
  // A target with no unique address is not compared, and said so.
  k.r.relocs[0].symbol = "dup_static";
  notes = CheckCode("span 0", "f", k.r, k.live, k.ctx, "D/const.json");
  ASSERT_TRUE(notes.ok()) << notes.status();
  ASSERT_EQ(notes->size(), 1u);
  EXPECT_TRUE(absl::StrContains((*notes)[0],
                                "1 relocated field(s) in f+0x10..0x20 not compared "
                                "(dup_static has no unique address"));
}

TEST(CheckCode, MovesKaslrFieldsByTheSlide) {
  // mov rdi, 0xffffffff82a0b0c0 (R_X86_64_32S) at 0x20 of a function linked at
  // 0xffffffff81001000, running 0x2e00000 higher; add r9, gs:[rip + this_cpu_off] at 0x27.
  artifact::CodeRange r;
  r.offset = 0x20;
  r.bytes = "48c7c7????????654c030d????????";
  r.link_address = 0xffffffff81001020;
  artifact::CodeReloc a{0x23, 4, "kaslr", "", false, 0, 0x82a0b0c0};
  artifact::CodeReloc p{0x2b, 4, "kaslr_pc", "", false, 0, 0x7ec3912b};
  r.relocs = {a, p};
  CodeContext ctx;
  ctx.func_addr = 0xffffffff83e01000;
  const uint64_t slide = 0x2e00000;
  std::string live("\x48\xc7\xc7", 3);
  for (uint64_t v : {uint64_t{0x82a0b0c0} + slide})
    live += std::string(reinterpret_cast<const char*>(&v), 4);
  live += std::string("\x65\x4c\x03\x0d", 4);
  for (uint64_t v : {uint64_t{0x7ec3912b} - slide})
    live += std::string(reinterpret_cast<const char*>(&v), 4);
  auto notes = CheckCode("span 1", "g", r, live, ctx, "D/const.json");
  ASSERT_TRUE(notes.ok()) << notes.status();
  // The file's value, unmoved, is another kernel layout: refused.
  live.replace(3, 4, std::string("\xc0\xb0\xa0\x82", 4));
  notes = CheckCode("span 1", "g", r, live, ctx, "D/const.json");
  ASSERT_FALSE(notes.ok());
  EXPECT_TRUE(Has(notes.status(), "the relocated field at g+0x23 (span 1) is c0b0a082"));
  EXPECT_TRUE(Has(notes.status(), "plus the KASLR slide 0x2e00000"));
}

TEST(CheckCode, BytesUnderAnotherKprobeAreNotComparedButNoted) {
  CodeCase k;
  // An int3 on 0x15 (another tool), an optimized probe's jmp on 0x1b..0x1f (a sie constant).
  k.live[5] = '\xcc';
  k.live[0xb] = '\xe9';
  k.live[0xc] = '\x01';
  k.live[0xd] = '\x02';
  k.live[0xe] = '\x03';
  k.live[0xf] = '\x04';
  k.ctx.kprobes = ParseKprobeList(
      "ffffffffc0001015  k  f+0x15 [sie_target]\n"
      "ffffffffc000101b  k  f+0x1b [sie_target] [OPTIMIZED]\n");
  k.ctx.owner = [](uint64_t a) {
    return a == 0xffffffffc000101b ? std::string("SIE_TARGET_OTHER") : std::string();
  };
  auto notes = CheckCode("span 0", "f", k.r, k.live, k.ctx, "D/const.json");
  ASSERT_TRUE(notes.ok()) << notes.status();
  ASSERT_EQ(notes->size(), 2u);
  EXPECT_TRUE(absl::StrContains((*notes)[0],
                                "span 0: 1 byte(s) at f+0x15 are under another "
                                "tool's kprobe (f+0x15 [sie_target])"));
  EXPECT_TRUE(absl::StrContains((*notes)[1],
                                "5 byte(s) at f+0x1b are under sie constant "
                                "SIE_TARGET_OTHER's jump-optimized kprobe"));
  // An int3 where no kprobe is listed is a difference.
  k.ctx.kprobes.clear();
  EXPECT_FALSE(CheckCode("span 0", "f", k.r, k.live, k.ctx, "D/const.json").ok());
}

TEST(CheckExpectAgainstCode, RefusesAProbeOffsetOrExpectBytesTheCodeDisagreesWith) {
  artifact::CriticalSpan s;
  s.function = "f";
  s.probe_offset = 0x12;
  s.expect_bytes = "e8????????";
  artifact::CodeRange r;
  r.offset = 0x10;
  r.bytes = "31c0e801020304c3";
  s.code = {r};
  EXPECT_TRUE(CheckExpectAgainstCode(s, "span 0", "D/const.json").ok());
  s.probe_offset = 0x13;  // inside the call
  absl::Status st = CheckExpectAgainstCode(s, "span 0", "D/const.json");
  EXPECT_TRUE(Has(st,
                  "the code at f+0x13 (span 0) is 01020304c3, but D/const.json expects "
                  "e8????????"))
      << st;
  s.probe_offset = 0x30;
  EXPECT_TRUE(
      Has(CheckExpectAgainstCode(s, "span 0", "D/const.json"), "is outside every code range"));
}

// sie-run --mode 2: the constants of a policy share one sie_consistency instance; a span two
// constants have in common joins once, an overlapping one is refused with a hint.
TEST(JoinsSharedSpans, EqualSpansJoinOnceOverlapsAreRefused) {
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  GlobalSpan f{.start = 0x1000, .end = 0x1024, .entry = 0x1000, .exits = {0x1023}};
  auto a = JoinsSharedSpans("A", spans, f);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(*a);
  spans.emplace_back(f.start, f.end);
  auto b = JoinsSharedSpans("B", spans, f);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_FALSE(*b);  // the same function: already there
  GlobalSpan g{.start = 0x2000, .end = 0x2010, .entry = 0x2000, .exits = {0x200f}};
  auto c = JoinsSharedSpans("B", spans, g);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(*c);
  GlobalSpan h{.start = 0x1010, .end = 0x1030, .entry = 0x1010, .exits = {0x102f}};
  auto d = JoinsSharedSpans("C", spans, h);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(std::string(d.status().message()),
              ::testing::HasSubstr("a safe span of C [0x1010, 0x1030) overlaps another "
                                   "constant's of the policy [0x1000, 0x1024)"));
  EXPECT_THAT(Hint(d.status()), ::testing::HasSubstr("run the policy in mode 1"));
}

TEST(CodeJson, RoundTripsAndRefusesInconsistentRanges) {
  artifact::SynthesizedConst c = Const("102");
  artifact::CodeRange r;
  r.offset = 0x10;
  r.bytes = "e8????????ebd0";
  r.relocs = {{0x11, 4, "pc", ".text", true, 0x40, 0}};
  c.spans[0].code = {r};
  c.safe_spans.push_back({c.spans[0].function, 0, 0x30, artifact::SafeSpanHow::kSlice, {r}});
  const std::string text = artifact::JsonText(artifact::ConstToJson(c));
  auto back = artifact::ParseConstJson(text, "x.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->spans[0].code, c.spans[0].code);
  EXPECT_EQ(back->safe_spans[0].code, c.safe_spans[0].code);
  auto refused = [&](const std::string& from, const std::string& to, const std::string& why) {
    std::string t = text;
    const size_t at = t.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    t.replace(at, from.size(), to);
    auto p = artifact::ParseConstJson(t, "x.json");
    ASSERT_FALSE(p.ok()) << to;
    EXPECT_TRUE(Has(p.status(), why)) << p.status();
  };
  refused("\"bytes\": \"e8????????ebd0\"", "\"bytes\": \"e8????????ebd\"", "even-length hex");
  refused("\"bytes\": \"e8????????ebd0\"", "\"bytes\": \"e8?1??????ebd0\"", "must be hex");
  refused("\"bytes\": \"e8????????ebd0\"", "\"bytes\": \"e801020304ebd0\"",
          "must point at '?"
          "?' bytes");
  refused("\"kind\": \"pc\"", "\"kind\": \"got\"", "must be pc, abs, kaslr or kaslr_pc");
  refused("\"kind\": \"pc\"", "\"kind\": \"kaslr\"", "needs the range's link_address");
  // An older file without "code" stays valid.
  EXPECT_TRUE(artifact::ReadConstFile(kConsts / "102" / "const.json").ok());
}

}  // namespace
}  // namespace sie::loader
