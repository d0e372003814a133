// `sie apply` on the host: the desired-state files (every bad input names file:line and says how
// to fix it), the plan against what is loaded (each kind of difference gives the fewest actions),
// the checks made before anything changes (names, ranges, kernel release, stale directories), and
// the command's plan output for loaded state files.
#include "runtime/apply/apply.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/process.h"
#include "common/base/status_macros.h"
#include "runtime/loader/loader.h"

namespace sie::apply {
namespace {
namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const fs::path kFixtures = fs::path(SIE_SOURCE_DIR) / "tests/runtime/fixtures/sie_target";
constexpr char kRelease[] = "6.12.117+deb12-amd64";  // the fixtures' kernel

absl::StatusOr<DesiredState> Parse(const std::string& text) {
  return ParseDesiredText(text, "/etc/sie/tune.yaml");
}

TEST(Desired, ShortAndLongFormsAndAPolicy) {
  ASSERT_OK_AND_ASSIGN(d, Parse("consts: /var/lib/sie/consts/r\n"
                                "constants:\n"
                                "  SIE_TARGET_BATCH: 0x20\n"
                                "  sie_target_divisor: {value: 7, mode: 1, engine: bpf}\n"
                                "policy:\n"
                                "  file: policies/p.bpf.c\n"
                                "  consts: SIE_TARGET_SCALE\n"
                                "  mode: 2\n"
                                "  knobs: {gain: 3}\n"
                                "  shadow: true\n"
                                "  cgroup: /sys/fs/cgroup/canary\n"));
  EXPECT_EQ(d.consts_dir, "/var/lib/sie/consts/r");
  ASSERT_EQ(d.constants.size(), 2u);
  EXPECT_EQ(d.constants[0].value, 32);
  EXPECT_EQ(d.constants[0].mode, 0);
  EXPECT_EQ(d.constants[0].engine, "auto");
  EXPECT_EQ(d.constants[0].where, "/etc/sie/tune.yaml:3");
  EXPECT_EQ(d.constants[1].value, 7);
  EXPECT_EQ(d.constants[1].mode, 1);
  EXPECT_EQ(d.constants[1].engine, "bpf");
  ASSERT_TRUE(d.policy);
  EXPECT_EQ(d.policy->file, "/etc/sie/policies/p.bpf.c");  // relative to the YAML file
  EXPECT_THAT(d.policy->consts, ElementsAre("SIE_TARGET_SCALE"));
  EXPECT_EQ(d.policy->mode, 2);
  EXPECT_EQ(d.policy->knobs.at("gain"), "3");
  EXPECT_TRUE(d.policy->shadow);
  EXPECT_EQ(d.policy->cgroup, "/sys/fs/cgroup/canary");
}

TEST(Desired, AnEmptyFileAsksForNothing) {
  ASSERT_OK_AND_ASSIGN(d, Parse("# all commented out\n"));
  EXPECT_TRUE(d.constants.empty());
  EXPECT_FALSE(d.policy);
}

TEST(Desired, BadInputNamesTheLineAndTheFix) {
  struct Case {
    std::string text, message, hint;
  } cases[] = {
      {"constant:\n  A: 1\n", "tune.yaml:1: unknown key 'constant' in the file",
       "did you mean 'constants'?"},
      {"constants:\n  A: many\n", "tune.yaml:2: the value of A is not an integer", "32 or 0x20"},
      {"constants:\n  A: {value: 1, mode: 3}\n", "the mode of A 3 is not 0, 1 or 2", "1 per-task"},
      {"constants:\n  A: {value: 1, engin: bpf}\n", "unknown key 'engin' in A",
       "did you mean 'engine'?"},
      {"constants:\n  A: {mode: 1}\n", "A has no 'value'", "{value: 64}"},
      {"constants:\n  A: {value: 1, engine: jit}\n", "engine 'jit' of A is unknown",
       "auto, bpf or native"},
      {"constants: [A, B]\n", "'constants' is not a mapping", "NAME: VALUE"},
      {"policy: {consts: [A]}\n", "'policy' has no 'file'", "file:"},
      {"constants:\n  A: 1\n  - B\n", "tune.yaml:", "format"},
      {"policy: {file: p.bpf.c, shadow: maybe}\n", "'shadow' is not true or false", "shadow: true"},
      {"policy: {file: p.bpf.c, cgroup: canary}\n", "cgroup 'canary' is not an absolute path",
       "/sys/fs/cgroup/NAME"},
  };
  for (const auto& c : cases) {
    auto d = Parse(c.text);
    ASSERT_FALSE(d.ok()) << c.text;
    EXPECT_THAT(d.status().message(), HasSubstr(c.message)) << c.text;
    EXPECT_THAT(Hint(d.status()), HasSubstr(c.hint)) << c.text;
  }
}

TEST(Desired, ADirectoryIsItsYamlFilesInNameOrderAndConflictsNameBothPlaces) {
  auto t = TempDir::Create(fs::temp_directory_path(), "sie-apply-");
  ASSERT_TRUE(t.ok());
  ASSERT_OK(WriteFileAtomic(t->path() / "10-a.yaml", "constants:\n  A: 1\n"));
  ASSERT_OK(WriteFileAtomic(t->path() / "20-b.yml", "constants:\n  B: 2\n  a: 1\n"));
  ASSERT_OK(WriteFileAtomic(t->path() / "README", "not yaml: ["));
  ASSERT_OK_AND_ASSIGN(d, ReadDesired(t->path()));
  ASSERT_EQ(d.constants.size(), 2u);  // a: 1 is A: 1 again, in any case
  EXPECT_EQ(d.constants[0].name, "A");
  EXPECT_EQ(d.constants[1].name, "B");
  EXPECT_EQ(d.files.size(), 2u);
  ASSERT_OK(WriteFileAtomic(t->path() / "30-c.yaml", "constants:\n  A: 5\n"));
  auto bad = ReadDesired(t->path());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("A is set twice with different settings: " +
                                                (t->path() / "10-a.yaml").string() + ":2 and " +
                                                (t->path() / "30-c.yaml").string() + ":2"));
  auto missing = ReadDesired(t->path() / "nope.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("does not exist"));
}

// ---- the plan ----

Resolved Want(const std::string& name, int64_t v, int mode = 0, std::string engine = "auto") {
  return Resolved{DesiredConst{name, v, mode, engine, "f.yaml:1"}, name, "/c"};
}
Loaded Have(const std::string& name, int64_t v, int mode = 0, std::string engine = "bpf") {
  return Loaded{name, v, mode, engine, "/c", true, false};
}
std::vector<std::string> Lines(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& a : p.actions) out.push_back(Describe(a));
  return out;
}

TEST(Plan, OnlyWhatDiffers) {
  ASSERT_OK_AND_ASSIGN(
      p, MakePlan(
             {Want("A", 1), Want("B", 2), Want("C", 3, 1), Want("D", 4, 0, "native"), Want("E", 5)},
             std::nullopt,
             {Have("A", 1), Have("B", 9), Have("C", 3, 0), Have("D", 4, 0, "bpf"),
              Have("E", 5, 0, "native"), Have("F", 6)},
             std::nullopt));
  EXPECT_THAT(
      Lines(p),
      ElementsAre("- unload F (now 6; not in the desired state)", "~ reload C = 3 (mode 0 -> 1)",
                  "~ reload D = 4 (engine bpf -> native)", "~ update B value 9 -> 2"));
  ASSERT_OK_AND_ASSIGN(same, MakePlan({Want("A", 1)}, std::nullopt, {Have("A", 1)}, std::nullopt));
  EXPECT_FALSE(same.changes());
}

TEST(Plan, NewConstantsLoadAndHalfLoadedOnesReload) {
  Loaded half = Have("B", 2);
  half.complete = false;
  ASSERT_OK_AND_ASSIGN(p,
                       MakePlan({Want("A", 1), Want("B", 2)}, std::nullopt, {half}, std::nullopt));
  EXPECT_THAT(Lines(p), ElementsAre("~ reload B = 2 (left half-loaded by a killed sie set)",
                                    "+ load A = 1 (mode 0, engine auto)"));
}

TEST(Plan, RestoreUnloadsEverythingAndStopsThePinnedPolicy) {
  Loaded by_policy = Have("P", 7);
  by_policy.by_policy = true;
  PinnedPolicy pinned{"/etc/sie/p.bpf.c", "h1", {"P"}, 0, {}, "/c", false, ""};
  ASSERT_OK_AND_ASSIGN(p, MakePlan({}, std::nullopt, {Have("A", 1), by_policy}, pinned));
  EXPECT_THAT(Lines(p), ElementsAre("- stop policy /etc/sie/p.bpf.c (not in the desired state)",
                                    "- unload A (now 1; not in the desired state)"));
}

TEST(Plan, APolicyRestartsOnlyWhenItDiffers) {
  Loaded by_policy = Have("P", 7);
  by_policy.by_policy = true;
  PinnedPolicy pinned{"/etc/sie/p.bpf.c", "h1", {"P"}, 0, {"gain=3"}, "/c", false, ""};
  ResolvedPolicy want{
      DesiredPolicy{"/etc/sie/p.bpf.c", {}, 0, {{"gain", "3"}}, "f.yaml:4", false, ""},
      "h1",
      {"P"},
      {"gain=3"},
      "/c"};
  ASSERT_OK_AND_ASSIGN(same, MakePlan({}, want, {by_policy}, pinned));
  EXPECT_FALSE(same.changes()) << Lines(same)[0];
  want.sets = {"gain=4"};
  ASSERT_OK_AND_ASSIGN(knob, MakePlan({}, want, {by_policy}, pinned));
  EXPECT_THAT(Lines(knob),
              ElementsAre("- stop policy /etc/sie/p.bpf.c (knobs [gain=3] -> [gain=4])",
                          "+ start policy /etc/sie/p.bpf.c (knobs [gain=3] -> [gain=4])"));
  want.sets = {"gain=3"};
  want.hash = "h2";
  ASSERT_OK_AND_ASSIGN(edited, MakePlan({}, want, {by_policy}, pinned));
  EXPECT_EQ(edited.actions.size(), 2u);
  EXPECT_EQ(edited.actions[0].why, "the file's content changed");
  want.hash = "h1";
  want.want.shadow = true;
  ASSERT_OK_AND_ASSIGN(shadow, MakePlan({}, want, {by_policy}, pinned));
  ASSERT_EQ(shadow.actions.size(), 2u);
  EXPECT_EQ(shadow.actions[0].why, "shadow off -> on");
  pinned.shadow = true;
  want.want.cgroup = "/sys/fs/cgroup/canary";
  ASSERT_OK_AND_ASSIGN(canary, MakePlan({}, want, {by_policy}, pinned));
  ASSERT_EQ(canary.actions.size(), 2u);
  EXPECT_EQ(canary.actions[0].why, "canary cgroup '' -> '/sys/fs/cgroup/canary'");
  pinned.cgroup = want.want.cgroup;
  ASSERT_OK_AND_ASSIGN(same_canary, MakePlan({}, want, {by_policy}, pinned));
  EXPECT_FALSE(same_canary.changes());
  // Its constant may take a fixed value once the policy stops.
  ASSERT_OK_AND_ASSIGN(fixed, MakePlan({Want("P", 9)}, std::nullopt, {by_policy}, pinned));
  EXPECT_THAT(Lines(fixed), ElementsAre("- stop policy /etc/sie/p.bpf.c (not in the desired state)",
                                        "+ load P = 9 (mode 0, engine auto)"));
}

TEST(Plan, AConstantHasAValueOrAPolicyNotBoth) {
  ResolvedPolicy want{
      DesiredPolicy{"/p.bpf.c", {}, 0, {}, "f.yaml:4", false, ""}, "h", {"P"}, {}, "/c"};
  auto both = MakePlan({Want("P", 1)}, want, {}, std::nullopt);
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(both.status().message(), HasSubstr("P is also decided by the policy /p.bpf.c"));
  // A foreground sie-run's constants are never touched, nor pruned.
  Loaded fg = Have("Q", 3);
  fg.by_policy = true;
  auto taken = MakePlan({Want("Q", 1)}, std::nullopt, {fg}, std::nullopt);
  ASSERT_FALSE(taken.ok());
  EXPECT_THAT(taken.status().message(), HasSubstr("Q is decided by a running sie-run"));
  EXPECT_THAT(Hint(taken.status()), HasSubstr("sie-run --stop"));
  ASSERT_OK_AND_ASSIGN(left, MakePlan({}, std::nullopt, {fg}, std::nullopt));
  EXPECT_FALSE(left.changes());
}

// ---- checks before anything changes ----

TEST(Resolve, NamesRangesAndTheKernelReleaseAreCheckedFirst) {
  ApplyOptions o;
  o.consts_dir = kFixtures;
  ASSERT_OK_AND_ASSIGN(d, Parse("constants:\n  sie_target_batch: 128\n"));
  ASSERT_OK_AND_ASSIGN(t, Resolve(d, o, kRelease));
  ASSERT_EQ(t.consts.size(), 1u);
  EXPECT_EQ(t.consts[0].name, "SIE_TARGET_BATCH");
  ASSERT_OK_AND_ASSIGN(range, Parse("constants:\n  SIE_TARGET_LOOP_BOUND: 5000\n"));
  auto r = Resolve(range, o, kRelease);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("tune.yaml:2: value 5000 is outside the range"));
  ASSERT_OK_AND_ASSIGN(unknown, Parse("constants:\n  NO_SUCH: 1\n"));
  EXPECT_FALSE(Resolve(unknown, o, kRelease).ok());
  auto other = Resolve(d, o, "6.12.200+deb12-amd64");
  ASSERT_FALSE(other.ok());
  EXPECT_THAT(other.status().message(),
              HasSubstr("was synthesized for kernel 6.12.117+deb12-amd64, but this kernel is "
                        "6.12.200+deb12-amd64"));
  EXPECT_THAT(Hint(other.status()), HasSubstr("sie synth SPEC --out "));
}

TEST(Resolve, AStaleReleaseDirectoryIsRefusedWithTheCommandThatRegeneratesIt) {
  auto t = TempDir::Create(fs::temp_directory_path(), "sie-apply-root-");
  ASSERT_TRUE(t.ok());
  fs::create_directories(t->path() / "6.12.110+deb12-amd64");
  setenv("SIE_CONSTS_ROOT", t->path().c_str(), 1);
  ApplyOptions o;
  o.consts_dir = t->path() / kRelease;
  ASSERT_OK_AND_ASSIGN(d, Parse("constants:\n  A: 1\n"));
  auto r = Resolve(d, o, kRelease);
  unsetenv("SIE_CONSTS_ROOT");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("no constants for the running kernel 6.12.117+deb12-amd64"));
  EXPECT_THAT(r.status().message(), HasSubstr("has only 6.12.110+deb12-amd64"));
  EXPECT_THAT(Hint(r.status()),
              HasSubstr(absl::StrCat("sie synth SPEC --out ", (t->path() / kRelease).string())));
}

// ---- the command, on state files (nothing loaded in a kernel: --dry-run) ----

TEST(ApplyCommand, DryRunPrintsThePlanForWhatIsLoadedAndChangesNothing) {
  auto t = TempDir::Create(fs::temp_directory_path(), "sie-apply-run-");
  ASSERT_TRUE(t.ok());
  const std::string state = R"({"name": "SIE_TARGET_BATCH", "value": 32, "mode": 0,
    "engine": "native", "state": "loaded", "const_path": ")" +
                            (kFixtures / "107/const.json").string() + R"("})";
  ASSERT_OK(WriteFileAtomic(t->path() / "SIE_TARGET_BATCH.json", state));
  const std::string env = absl::StrCat("SIE_RUN_DIR=", t->path().string());
  auto r = sie::Run(
      {"env", env, SIE_BIN, "apply", "--restore", "--dry-run", "--json", "--detailed-exitcode"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2) << r->err;
  auto j = nlohmann::json::parse(r->out);
  EXPECT_EQ(j["would_change"], true);
  EXPECT_EQ(j["changed"], false);
  ASSERT_EQ(j["actions"].size(), 1u);
  EXPECT_EQ(j["actions"][0]["op"], "unload");
  EXPECT_EQ(j["actions"][0]["name"], "SIE_TARGET_BATCH");
  EXPECT_EQ(j["actions"][0]["from"], 32);
  EXPECT_TRUE(fs::exists(t->path() / "SIE_TARGET_BATCH.json"));  // nothing changed
  // The pinned policy's record lives next to the constants' states: a policy, not a constant.
  ASSERT_OK(WriteFileAtomic(t->path() / "sie-run.json",
                            R"({"policy": "/etc/sie/p.bpf.c", "consts": ["SIE_TARGET_SCALE"],
                                "mode": 0, "link_pins": [], "map_pins": []})"));
  auto with_policy = sie::Run({"env", env, SIE_BIN, "apply", "--restore", "--dry-run", "--json"});
  ASSERT_TRUE(with_policy.ok());
  EXPECT_EQ(with_policy->exit_code, 0) << with_policy->err;
  auto jp = nlohmann::json::parse(with_policy->out, nullptr, false);
  ASSERT_FALSE(jp.is_discarded()) << with_policy->out << with_policy->err;
  ASSERT_EQ(jp["actions"].size(), 2u) << jp.dump();
  EXPECT_EQ(jp["actions"][0]["op"], "stop-policy");
  EXPECT_EQ(jp["actions"][0]["name"], "/etc/sie/p.bpf.c");
  EXPECT_EQ(jp["actions"][1]["name"], "SIE_TARGET_BATCH");
  fs::remove(t->path() / "sie-run.json");
  fs::remove(t->path() / "SIE_TARGET_BATCH.json");
  auto none = sie::Run({"env", env, SIE_BIN, "apply", "--restore", "--detailed-exitcode"});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->exit_code, 0) << none->err;
  EXPECT_THAT(none->out, HasSubstr("nothing to change"));
  auto usage = sie::Run({SIE_BIN, "apply"});
  ASSERT_TRUE(usage.ok());
  EXPECT_NE(usage->exit_code, 0);
  EXPECT_THAT(usage->err, HasSubstr("no desired state given"));
}

}  // namespace
}  // namespace sie::apply
