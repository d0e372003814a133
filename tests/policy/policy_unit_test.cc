// Host tests of the policy plane: generated headers, compile errors that name the cause, the
// verifier-log translator on logs saved from real rejections, and the bpf_linker composition
// of a policy with stubs, verified by the host kernel (stubs built with -DSIE_NO_KFUNCS: the
// host has no sie_kfuncs; nothing is attached).
#include <bpf/libbpf.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "bpf/include/sie/abi.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/stubgen/stub_build.h"
#include "runtime/policy/consts_header.h"
#include "runtime/policy/policy.h"
#include "runtime/policy/verifier_log.h"

namespace sie::policy {
namespace {
namespace fs = std::filesystem;
using artifact::Location;
using ::testing::HasSubstr;
using ::testing::Not;

const fs::path kSrc = SIE_SOURCE_DIR;
const fs::path kFixtures = kSrc / "tests/policy/fixtures";
const fs::path kBpf = kSrc / "tests/policy/bpf";

class PolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Create(fs::temp_directory_path(), "sie-policy-test-");
    ASSERT_TRUE(t.ok());
    tmp_.emplace(std::move(*t));
  }
  std::vector<artifact::ConstEntry> Consts(const std::string& set,
                                           const std::vector<std::string>& names) {
    auto c = ResolveConsts(kFixtures / set, names);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : std::vector<artifact::ConstEntry>{};
  }
  absl::StatusOr<CompileResult> Compile(const fs::path& src,
                                        const std::vector<artifact::ConstEntry>& cs) {
    return CompilePolicy(Toolchain::FromBuild(), src, cs, tmp_->path() / "include",
                         tmp_->path() / (src.stem().string() + ".o"));
  }
  std::vector<artifact::ConstEntry> Target() {
    return Consts("sie_target", {"SIE_TARGET_CALL_ARG", "SIE_TARGET_THRESHOLD"});
  }
  std::optional<TempDir> tmp_;
};

TEST_F(PolicyTest, VarsHeaderHasTypedAccessorsForLocatedVariables) {
  auto cs = Consts("tcp_cubic", {"HYSTART_DELAY_SHIFT"});
  ASSERT_EQ(cs.size(), 1u);
  std::set<std::string> known = {"sock", "tcp_sock"};
  std::string h = VarsHeader(cs[0].c, known);
  EXPECT_THAT(h, HasSubstr("struct sock *sie_hystart_delay_shift__arg_sk("));
  EXPECT_THAT(h, HasSubstr("return (struct sock *)ctx->regs->bx;"));
  EXPECT_THAT(h, HasSubstr("u32 sie_hystart_delay_shift__arg_delay("));
  // ca = inet_csk_ca(sk): DW_OP_breg3 1344; DW_OP_stack_value, the value is rbx + 1344.
  EXPECT_THAT(h, HasSubstr("void *sie_hystart_delay_shift__arg_ca("));
  EXPECT_THAT(h, HasSubstr("v = (void *)(ctx->regs->bx + 1344);"));
  EXPECT_THAT(h, Not(HasSubstr("current_stack_pointer")));  // a global, not a variable
  EXPECT_THAT(h, Not(HasSubstr("__arg___UNIQUE_ID")));
  // Unknown struct types become void * rather than failing to compile.
  EXPECT_THAT(VarsHeader(cs[0].c, {}), HasSubstr("void *sie_hystart_delay_shift__arg_sk("));
}

// Variables in stack slots (breg: memory at register + offset) are read with
// bpf_probe_read_kernel at the register + offset of every span; val: is the value register +
// offset itself. The accessors compile into a policy and the policy passes clang -Werror.
TEST_F(PolicyTest, StackSlotVariablesAreReadFromMemory) {
  auto cs = Consts("tcp_cubic", {"HYSTART_DELAY_SHIFT"});
  ASSERT_EQ(cs.size(), 1u);
  ASSERT_GE(cs[0].c.spans.size(), 1u);
  for (size_t i = 0; i < cs[0].c.spans.size(); ++i) {
    auto& vars = cs[0].c.spans[i].vars;
    vars.push_back({"slot", "u32", Location::Parse("breg:sp+28")});
    // Another slot per span: the accessor switches on the span.
    vars.push_back({"depth", "long int", Location::Parse(i == 0 ? "breg:bp-16" : "breg:sp+8")});
    vars.push_back({"mode", "enum tcp_ca_state", Location::Parse("breg:sp+4")});
    vars.push_back({"piece", "u64", Location::Parse("fbreg:-24")});  // never readable
  }
  std::string h = VarsHeader(cs[0].c, {});
  EXPECT_THAT(h, HasSubstr("u32 sie_hystart_delay_shift__arg_slot("));
  EXPECT_THAT(h, HasSubstr("bpf_probe_read_kernel(&v, sizeof(v), (void *)(ctx->regs->sp + 28));"));
  EXPECT_THAT(h, HasSubstr("long int sie_hystart_delay_shift__arg_depth("));
  EXPECT_THAT(h, HasSubstr("(void *)(ctx->regs->bp - 16)"));
  if (cs[0].c.spans.size() > 1) {
    EXPECT_THAT(h, HasSubstr("switch (ctx->span)"));
    EXPECT_THAT(h, HasSubstr("(void *)(ctx->regs->sp + 8)"));
  }
  EXPECT_THAT(h, HasSubstr("mode: location breg:sp+4 at span 0: an enum in memory"));
  EXPECT_THAT(h, HasSubstr("piece: location fbreg:-24 at span 0: is not a register or a stack"));
  EXPECT_THAT(h, Not(HasSubstr("__arg_mode(")));
  EXPECT_THAT(h, Not(HasSubstr("__arg_piece(")));
  std::string src = (tmp_->path() / "slot.bpf.c").string();
  ASSERT_TRUE(WriteFileAtomic(src,
                              "// SPDX-License-Identifier: GPL-2.0\n#include <sie/policy.bpf.h>\n"
                              "SIE_POLICY(hystart_delay_shift, ctx)\n{\n"
                              "\tu32 slot = sie_arg(ctx, slot);\n"
                              "\tlong int depth = sie_arg(ctx, depth);\n"
                              "\treturn slot > 3 && depth > 0 ? sie_value(ctx, 5) : "
                              "sie_default(ctx);\n}\n")
                  .ok());
  auto r = Compile(src, cs);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->diagnostics, "");
}

TEST_F(PolicyTest, UnknownConstantIsAnErrorListingTheKnownOnes) {
  auto r = ResolveConsts(kFixtures / "sie_target", {"NO_SUCH_CONST"});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("unknown constant 'NO_SUCH_CONST'"));
  // The hint lists the names with the ids one can type instead.
  EXPECT_THAT(
      MessageWithHint(r.status()),
      HasSubstr("hint: known constants: SIE_TARGET_CALL_ARG (1), SIE_TARGET_THRESHOLD (2)"));
  r = ResolveConsts(kFixtures / "sie_target", {"3"});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("unknown constant '3'"));
}

// sie-run --const takes ConstIDs and names in any case, mixed.
TEST_F(PolicyTest, ConstArgumentsAreIdsOrNames) {
  auto r = ResolveConsts(kFixtures / "tcp_cubic", {"2", "hystart_delay_shift"});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].c.name, "HYSTART_DELAY_MAX");
  EXPECT_EQ((*r)[0].c.id, 2);
  EXPECT_EQ((*r)[1].c.name, "HYSTART_DELAY_SHIFT");
  EXPECT_EQ((*r)[1].c.id, 1);
  // One constant by id and by name is one constant given twice.
  r = ResolveConsts(kFixtures / "tcp_cubic", {"1", "HYSTART_DELAY_SHIFT"});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("HYSTART_DELAY_SHIFT is given twice"));
}

TEST_F(PolicyTest, ExamplePoliciesCompileWithWerror) {
  auto r = Compile(kBpf / "per_task.bpf.c", Target());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->diagnostics, "");
  auto cubic = Consts("tcp_cubic", {"HYSTART_DELAY_SHIFT", "HYSTART_DELAY_MAX"});
  r = Compile(kSrc / "policies/tcp_cubic_rtt/tcp_cubic_rtt.bpf.c", cubic);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->diagnostics, "");
  r = Compile(kSrc / "sdk/examples/tutorial.bpf.c", Consts("sie_target", {"SIE_TARGET_CALL_ARG"}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->diagnostics, "");
  r = Compile(kSrc / "sdk/examples/knobs.bpf.c", Consts("sie_target", {"SIE_TARGET_CALL_ARG"}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->diagnostics, "");
}

TEST_F(PolicyTest, NonCompilingPolicyShowsClangDiagnostics) {
  auto r = Compile(kBpf / "bad_syntax.bpf.c", Target());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("the policy does not compile"));
  EXPECT_THAT(r.status().message(), HasSubstr("bad_syntax.bpf.c:7:"));
  EXPECT_THAT(r.status().message(), HasSubstr("undefined_variable"));
}

TEST_F(PolicyTest, SieLogFormatIsChecked) {
  auto r = Compile(kBpf / "bad_format.bpf.c", Target());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("bad_format.bpf.c:7:"));
  EXPECT_THAT(r.status().message(), HasSubstr("-Wformat"));
}

TEST_F(PolicyTest, VariableNotLiveAtTheSpanFailsToCompileWithItsName) {
  auto r = Compile(kBpf / "bad_var.bpf.c", Target());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("bad_var.bpf.c:7: variable 'amount' cannot be "
                                              "read with sie_arg(): not live at "
                                              "SIE_TARGET_CALL_ARG's critical span"));
  EXPECT_THAT(r.status().message(), HasSubstr("variables readable here: x (SIE_TARGET_CALL_ARG)"));
}

TEST_F(PolicyTest, PolicyForAConstantNotInTheRunFailsToCompile) {
  auto r = Compile(kBpf / "bad_const.bpf.c", Target());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("SIE_POLICY(sie_target_loop_bound): 'sie_target_loop_bound' is not a "
                        "constant of this run"));
}

struct SavedLog {
  const char* file;
  const char* message;
  const char* src_file;
  int line;
};

TEST(VerifierLogTest, SavedRejectionsTranslate) {
  const SavedLog cases[] = {
      {"null_deref.log", "may be NULL", "null_deref.bpf.c", 19},
      {"raw_deref.log", "dereferenced directly", "raw_deref.bpf.c", 12},
      {"oob.log", "not bounded", "oob.bpf.c", 22},
      {"unbounded_loop.log", "cannot prove to terminate", "unbounded_loop.bpf.c", 11},
      {"gpl_helper.log", "GPL-only", "gpl_helper.bpf.c", 11},
  };
  for (const auto& c : cases) {
    auto text = ReadFile(kSrc / "tests/policy/verifier_logs" / c.file);
    ASSERT_TRUE(text.ok()) << c.file;
    VerifierError v = TranslateVerifierLog(*text);
    EXPECT_THAT(v.message, HasSubstr(c.message)) << c.file;
    EXPECT_EQ(v.file, c.src_file) << c.file;
    EXPECT_EQ(v.line, c.line) << c.file;
    EXPECT_FALSE(v.hint.empty()) << c.file;
    EXPECT_FALSE(v.truncated) << c.file;
  }
  VerifierError t = TranslateVerifierLog("0: R1=ctx() R10=fp0\n; int x; @ a.bpf.c:3\n");
  EXPECT_TRUE(t.truncated);
  EXPECT_EQ(t.line, 3);
}

// The real composition: policy object linked over the stubs' weak hooks with bpf_linker, loaded
// by the host kernel's verifier.
class LinkTest : public PolicyTest {
 protected:
  absl::Status LinkAndVerify(const fs::path& policy_src, const artifact::ConstEntry& e,
                             std::string* raw = nullptr) {
    auto r = Compile(policy_src, Target());
    if (!r.ok()) return r.status();
    auto stub = stubgen::BuildStub(e, false, "-DSIE_NO_KFUNCS");
    if (!stub.ok()) return stub.status();
    fs::path linked = tmp_->path() / "linked.bpf.o";
    if (auto st = stubgen::LinkObjects({stub->object, r->object}, linked); !st.ok()) return st;
    return VerifyObject(linked, policy_src, raw);
  }
  bool CanLoadBpf() { return geteuid() == 0 && fs::exists("/sys/kernel/btf/vmlinux"); }
};

TEST_F(LinkTest, PolicyLinksOverEachStubAndVerifies) {
  if (!CanLoadBpf()) GTEST_SKIP() << "needs root and kernel BTF to load BPF on this host";
  setenv("SIE_CACHE_DIR", (tmp_->path() / "cache").c_str(), 1);
  for (const auto& e : Target()) {
    absl::Status st = LinkAndVerify(kBpf / "per_task.bpf.c", e);
    EXPECT_TRUE(st.ok()) << e.c.name << ": " << st;
  }
}

// One object per policy file: both constants' stubs (names suffixed by id) and the policy, with
// one copy of the policy's maps and globals, and the object passes the verifier as a whole.
TEST_F(LinkTest, EveryStubOfAPolicyLinksIntoOneObject) {
  if (!CanLoadBpf()) GTEST_SKIP() << "needs root and kernel BTF to load BPF on this host";
  setenv("SIE_CACHE_DIR", (tmp_->path() / "cache").c_str(), 1);
  const auto cs = Target();
  ASSERT_EQ(cs.size(), 2u);
  auto r = Compile(kBpf / "per_task.bpf.c", cs);
  ASSERT_TRUE(r.ok()) << r.status();
  fs::path linked = tmp_->path() / "one.bpf.o";
  std::set<std::string> stub_progs;
  absl::Status st = LinkPolicyObject(cs, r->object, linked, "-DSIE_NO_KFUNCS", &stub_progs);
  ASSERT_TRUE(st.ok()) << st;
  std::unique_ptr<bpf_object, void (*)(bpf_object*)> obj(
      bpf_object__open_file(linked.c_str(), nullptr), bpf_object__close);
  ASSERT_NE(obj, nullptr);
  std::multiset<std::string> maps, progs;
  bpf_map* m;
  bpf_object__for_each_map(m, obj.get()) maps.insert(bpf_map__name(m));
  bpf_program* p;
  bpf_object__for_each_program(p, obj.get()) progs.insert(bpf_program__name(p));
  for (const auto& e : cs) {
    const std::string sfx = absl::StrCat("_", e.c.id);
    for (const char* base : {"sie_ctl", "sie_stats", "sie_task", "sie_safe", "sie_blocked"})
      EXPECT_EQ(maps.count(base + sfx), 1u) << base << sfx;
    EXPECT_EQ(progs.count("sie_apply_0" + sfx), 1u) << e.c.name;
    EXPECT_EQ(progs.count("sie_guard" + sfx), 1u) << e.c.name;
    EXPECT_TRUE(stub_progs.count("sie_apply_0" + sfx)) << e.c.name;
  }
  EXPECT_EQ(maps.count("sie_ctl"), 0u);  // no unsuffixed stub
  EXPECT_EQ(maps.count("tid_values"), 1u);
  EXPECT_EQ(maps.count(SIE_RUN_MAP_TXN), 1u);
  EXPECT_FALSE(stub_progs.count("sie_decide_sie_target_call_arg"));
  std::string raw;
  st = VerifyObject(linked, kBpf / "per_task.bpf.c", &raw);
  EXPECT_TRUE(st.ok()) << st << "\n" << raw;
}

// A stack-slot variable's accessor (bpf_probe_read_kernel at regs->sp + 24) passes the host
// kernel's verifier inside the linked policy.
TEST_F(LinkTest, StackSlotAccessorVerifies) {
  if (!CanLoadBpf()) GTEST_SKIP() << "needs root and kernel BTF to load BPF on this host";
  setenv("SIE_CACHE_DIR", (tmp_->path() / "cache").c_str(), 1);
  auto cs = Consts("sie_target", {"SIE_TARGET_CALL_ARG"});
  ASSERT_EQ(cs.size(), 1u);
  for (auto& sp : cs[0].c.spans) sp.vars.push_back({"slot", "u32", Location::Parse("breg:sp+24")});
  std::string src = (tmp_->path() / "slot.bpf.c").string();
  ASSERT_TRUE(WriteFileAtomic(src,
                              "// SPDX-License-Identifier: GPL-2.0\n#include <sie/policy.bpf.h>\n"
                              "SIE_POLICY(sie_target_call_arg, ctx)\n{\n"
                              "\tu32 slot = sie_arg(ctx, slot);\n"
                              "\treturn slot == 7 ? sie_value(ctx, 9) : sie_default(ctx);\n}\n")
                  .ok());
  auto r = Compile(src, cs);
  ASSERT_TRUE(r.ok()) << r.status();
  auto stub = stubgen::BuildStub(cs[0], false, "-DSIE_NO_KFUNCS");
  ASSERT_TRUE(stub.ok()) << stub.status();
  fs::path linked = tmp_->path() / "linked.bpf.o";
  ASSERT_TRUE(stubgen::LinkObjects({stub->object, r->object}, linked).ok());
  std::string raw;
  absl::Status st = VerifyObject(linked, src, &raw);
  EXPECT_TRUE(st.ok()) << st << "\n" << raw;
}

TEST_F(LinkTest, VerifierRejectionNamesThePolicyLine) {
  if (!CanLoadBpf()) GTEST_SKIP() << "needs root and kernel BTF to load BPF on this host";
  setenv("SIE_CACHE_DIR", (tmp_->path() / "cache").c_str(), 1);
  std::string raw;
  absl::Status st = LinkAndVerify(kBpf / "bad_verifier.bpf.c", Target()[0], &raw);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("bad_verifier.bpf.c:18: the kernel's verifier rejected"));
  EXPECT_THAT(st.message(), HasSubstr("may be NULL"));
  EXPECT_THAT(st.message(), HasSubstr("return sie_value(ctx, *v);"));
  EXPECT_THAT(st.message(), HasSubstr("hint: check the result of bpf_map_lookup_elem()"));
  EXPECT_THAT(raw, HasSubstr("processed"));
}

}  // namespace
}  // namespace sie::policy
