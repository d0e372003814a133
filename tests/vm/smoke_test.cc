// Guest smoke test of the kernel-facing chain (runs inside the QEMU guest through `sie vm`):
//   - loads sie_kfuncs.ko and sie_target.ko from ../kmod (relative to this binary) and unloads
//     them at the end;
//   - finds probe offsets by disassembling the functions in the .ko (libelf + capstone) and
//     matching the instruction that carries each constant of sie_target_consts.h;
//   - (a) a skeleton kprobe at function+offset counts exactly N hits for N triggers;
//   - (b) kfuncs called from kprobe programs change a register, the compare flags and a memory
//     cell, and sie_target reports the changed results through debugfs; without a registered
//     site (or with a wrong cell) the kfuncs refuse;
//   - (c) each probe's line in debugfs kprobes/list is printed ([OPTIMIZED] or not).
// Missing kprobes, BTF or module BTF make it FAIL, never skip.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/files.h"
#include "common/base/status_macros.h"
#include "gtest/gtest.h"
#include "sie/kfuncs.h"
#include "sie_smoke.skel.h"
#include "sie_target_consts.h"
#include "tests/support/guest_code.h"
#include "tests/support/guest_files.h"
#include "tests/support/guest_modules.h"

namespace sie {
namespace {

using namespace std::chrono_literals;

using guest::kKfuncsControl;
using guest::kKprobeList;
using guest::kTargetDir;
using guest::ReadU64;
using guest::TargetFile;
using guest::WriteOnce;

// Runs one sie_target path: writes x, reads the result back.
absl::StatusOr<uint64_t> RunPath(absl::string_view path, uint64_t x) {
  if (absl::Status st = WriteOnce(TargetFile(path), absl::StrCat(x)); !st.ok()) return st;
  return ReadU64(TargetFile(path));
}

// ---- modules ----

using guest::KmodDir;
using guest::LoadModule;
using guest::UnloadModule;

// ---- finding probe offsets in the .ko ----

using guest::KallsymsAddress;
using guest::KprobeListLine;

absl::StatusOr<uint64_t> FindOffset(const std::string& func, const std::string& text, bool after) {
  return guest::FindOffset(KmodDir() / "sie_target.ko", func, text, after);
}

// ---- BPF ----

struct SkelDeleter {
  void operator()(sie_smoke* s) const { sie_smoke__destroy(s); }
};
using Skel = std::unique_ptr<sie_smoke, SkelDeleter>;
struct LinkDeleter {
  void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
using Link = std::unique_ptr<bpf_link, LinkDeleter>;

absl::StatusOr<Skel> OpenSkeleton() {
  Skel skel(sie_smoke__open_and_load());
  if (!skel) return absl::ErrnoToStatus(errno, "sie_smoke__open_and_load (sie_kfuncs loaded?)");
  return skel;
}

absl::StatusOr<Link> AttachAt(bpf_program* prog, const std::string& func, uint64_t off,
                              uint64_t cookie = 0) {
  LIBBPF_OPTS(bpf_kprobe_opts, opts, .bpf_cookie = cookie, .offset = off);
  Link link(bpf_program__attach_kprobe_opts(prog, func.c_str(), &opts));
  if (!link) return absl::ErrnoToStatus(errno, absl::StrFormat("attach kprobe %s+0x%x", func, off));
  return link;
}

// Kprobe optimization runs from delayed work: wait (bounded) until the probe is listed as
// [OPTIMIZED] or the time is up, then print and return its line.
std::optional<std::string> ReportProbe(const std::string& func, uint64_t off) {
  absl::StatusOr<std::string> line = guest::WaitKprobeListLine(func, off, /*wait_optimized=*/true);
  std::printf("kprobes/list: %s\n", line.ok() ? line->c_str() : "(not listed)");
  std::fflush(stdout);
  if (!line.ok()) return std::nullopt;
  return *line;
}

// ---- guest setup: prerequisites and modules ----
// Done in main(), outside GoogleTest: a failed precondition must fail the run (exit 1), while
// a fatal failure in a gtest Environment only marks the tests as skipped.

absl::Status Require(bool ok, absl::string_view what) {
  return ok ? absl::OkStatus() : absl::FailedPreconditionError(what);
}

bool Exists(const char* path) {
  struct stat st;
  return stat(path, &st) == 0;
}

bool InGuestKernel() {
  struct utsname uts;
  return uname(&uts) == 0 && std::string(uts.release) == SIE_GUEST_KERNEL_RELEASE;
}

absl::Status SetUpGuest() {
  // Never load modules into, or probe, anything but the guest kernel this was built for.
  struct utsname uts;
  if (uname(&uts) != 0) return absl::ErrnoToStatus(errno, "uname");
  RETURN_IF_ERROR(Require(InGuestKernel(),
                          absl::StrCat("running on kernel ", uts.release, ", not the guest kernel ",
                                       SIE_GUEST_KERNEL_RELEASE, ": run me through `sie vm -- ",
                                       SelfDir().string(), "/sie_vm_smoke_test`")));
  RETURN_IF_ERROR(Require(geteuid() == 0, "must run as root (in the guest)"));
  RETURN_IF_ERROR(Require(Exists(kKprobeList),
                          absl::StrCat("no kprobes in this kernel, or debugfs not mounted (",
                                       kKprobeList, " missing)")));
  RETURN_IF_ERROR(Require(Exists("/sys/kernel/btf/vmlinux"), "no kernel BTF"));
  RETURN_IF_ERROR(LoadModule("sie_kfuncs"));
  RETURN_IF_ERROR(LoadModule("sie_target"));
  RETURN_IF_ERROR(Require(Exists("/sys/kernel/btf/sie_kfuncs"), "no module BTF for sie_kfuncs"));
  RETURN_IF_ERROR(Require(Exists("/sys/kernel/btf/sie_target"), "no module BTF for sie_target"));
  RETURN_IF_ERROR(Require(Exists(kKfuncsControl), "sie_kfuncs has no control file"));
  RETURN_IF_ERROR(Require(Exists(kTargetDir), "sie_target has no debugfs directory"));
  return absl::OkStatus();
}

absl::Status TearDownGuest() {
  if (!InGuestKernel()) return absl::OkStatus();
  (void)WriteOnce(TargetFile("workers"), "0");
  (void)WriteOnce(kKfuncsControl, "clear");
  absl::Status a = UnloadModule("sie_target");
  absl::Status b = UnloadModule("sie_kfuncs");
  return a.ok() ? b : a;
}

class SmokeTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(WriteOnce(kKfuncsControl, "clear")); }
  void TearDown() override { (void)WriteOnce(kKfuncsControl, "clear"); }
};

// ---- tests ----

TEST_F(SmokeTest, PathsReportDeterministicResults) {
  constexpr uint64_t kBound = SIE_TARGET_LOOP_BOUND;
  const struct {
    const char* path;
    uint64_t x;
    uint64_t want;
  } cases[] = {
      {"loop", 7, kBound * 7 + kBound * (kBound - 1) / 2},
      {"call_arg", 5, 5 + SIE_TARGET_CALL_ARG},
      {"field", 3, SIE_TARGET_FIELD_INIT},
      {"cmp", SIE_TARGET_THRESHOLD, 0},
      {"cmp", SIE_TARGET_THRESHOLD + 1, 1},
      {"mul", 100, 100 * SIE_TARGET_SCALE},
      {"div", 12345, 12345 / SIE_TARGET_DIVISOR},
  };
  for (const auto& c : cases) {
    ASSERT_OK_AND_ASSIGN(got, RunPath(c.path, c.x));
    EXPECT_EQ(got, c.want) << c.path << " " << c.x;
  }
}

// (a) + (c): a kprobe in the middle of sie_target_mul (at the strength-reduced multiply, not the
// function entry) counts exactly the N triggers.
TEST_F(SmokeTest, KprobeAtOffsetCountsExactly) {
  const std::string func = "sie_target_mul";
  const int shift = __builtin_ctz(SIE_TARGET_SCALE);
  ASSERT_OK_AND_ASSIGN(off, FindOffset(func, absl::StrFormat("shl rax, %d", shift), false));
  ASSERT_GT(off, 0u);
  ASSERT_OK_AND_ASSIGN(skel, OpenSkeleton());
  ASSERT_OK_AND_ASSIGN(link, AttachAt(skel->progs.sie_count, func, off));
  std::optional<std::string> line = ReportProbe(func, off);
  ASSERT_TRUE(line.has_value()) << func << "+" << off << " not in " << kKprobeList;

  constexpr int kN = 1000;
  skel->bss->hits = 0;
  for (int i = 0; i < kN; i++) {
    ASSERT_OK_AND_ASSIGN(got, RunPath("mul", i));
    ASSERT_EQ(got, static_cast<uint64_t>(i) * SIE_TARGET_SCALE);
  }
  EXPECT_EQ(skel->bss->hits, static_cast<uint64_t>(kN));
  std::printf("sie_target_mul+0x%lx: %llu hits for %d triggers (%s)\n", off,
              static_cast<unsigned long long>(skel->bss->hits), kN,
              absl::StrContains(*line, "[OPTIMIZED]") ? "optimized" : "int3");
  link.reset();
  const uint64_t after = skel->bss->hits;
  ASSERT_OK(RunPath("mul", 1).status());
  EXPECT_EQ(skel->bss->hits, after) << "probe still firing after detach";
  EXPECT_FALSE(KprobeListLine(func, off).has_value());
}

// (b) sie_set_reg right after `mov $CALL_ARG, %esi`: the callee sees the new argument. Refused
// (-EPERM, no change) until the probe address is registered as a site.
TEST_F(SmokeTest, SetRegReplacesCallArgument) {
  const std::string func = "sie_target_call_arg";
  ASSERT_OK_AND_ASSIGN(off, FindOffset(func, absl::StrFormat("mov esi, 0x%x", SIE_TARGET_CALL_ARG),
                                       /*after=*/true));
  ASSERT_OK_AND_ASSIGN(base, KallsymsAddress(func, "sie_target"));
  ASSERT_OK_AND_ASSIGN(skel, OpenSkeleton());
  constexpr uint64_t kNew = 0x777;
  skel->bss->reg_idx = SIE_REG_SI;
  skel->bss->reg_val = 0xdead000000000000ULL | kNew;  // width 4: the high half must vanish
  skel->bss->reg_width = 4;
  ASSERT_OK_AND_ASSIGN(link, AttachAt(skel->progs.sie_setreg, func, off));
  ASSERT_TRUE(ReportProbe(func, off).has_value());

  ASSERT_OK_AND_ASSIGN(refused, RunPath("call_arg", 5));
  EXPECT_EQ(refused, 5 + SIE_TARGET_CALL_ARG);
  EXPECT_EQ(skel->bss->reg_ret, -EPERM);
  EXPECT_EQ(skel->bss->reg_calls, 1u);

  ASSERT_OK(WriteOnce(kKfuncsControl, absl::StrFormat("site 0x%x", base + off)));
  for (uint64_t x : {5, 1000, 123456}) {
    ASSERT_OK_AND_ASSIGN(got, RunPath("call_arg", x));
    EXPECT_EQ(got, x + kNew);
    EXPECT_EQ(skel->bss->reg_ret, 0);
  }
  // Invalid arguments are refused even at a registered site.
  skel->bss->reg_width = 3;
  ASSERT_OK_AND_ASSIGN(bad_width, RunPath("call_arg", 5));
  EXPECT_EQ(bad_width, 5 + SIE_TARGET_CALL_ARG);
  EXPECT_EQ(skel->bss->reg_ret, -EINVAL);
  skel->bss->reg_width = 8;
  skel->bss->reg_idx = SIE_REG_SP;  // sp is never writable
  ASSERT_OK_AND_ASSIGN(bad_reg, RunPath("call_arg", 5));
  EXPECT_EQ(bad_reg, 5 + SIE_TARGET_CALL_ARG);
  EXPECT_EQ(skel->bss->reg_ret, -EINVAL);
  link.reset();
  ASSERT_OK_AND_ASSIGN(restored, RunPath("call_arg", 5));
  EXPECT_EQ(restored, 5 + SIE_TARGET_CALL_ARG);
}

// sie_set_flags at the conditional branch after `cmp $THRESHOLD, %rdi`: the branch follows the
// new threshold.
TEST_F(SmokeTest, SetFlagsMovesTheThreshold) {
  const std::string func = "sie_target_cmp";
  ASSERT_OK_AND_ASSIGN(off, FindOffset(func, absl::StrFormat("cmp rdi, 0x%x", SIE_TARGET_THRESHOLD),
                                       /*after=*/true));
  ASSERT_OK_AND_ASSIGN(base, KallsymsAddress(func, "sie_target"));
  ASSERT_OK_AND_ASSIGN(skel, OpenSkeleton());
  constexpr uint64_t kNew = 100;
  skel->bss->flags_rhs = kNew;
  skel->bss->flags_width = 8;
  ASSERT_OK_AND_ASSIGN(link, AttachAt(skel->progs.sie_setflags, func, off));
  ASSERT_TRUE(ReportProbe(func, off).has_value());
  ASSERT_OK(WriteOnce(kKfuncsControl, absl::StrFormat("site 0x%x", base + off)));
  for (uint64_t x : {0, 99, 100, 101, 500, 1000, 1001, 5000}) {
    ASSERT_OK_AND_ASSIGN(got, RunPath("cmp", x));
    EXPECT_EQ(got, x > kNew ? 1u : 0u) << "x=" << x;
    EXPECT_EQ(skel->bss->flags_ret, 0);
  }
}

// sie_set_flags_op at the same `ja`: the branch follows the flags of sub, add and test of %rdi
// and the immediate as the CPU sets them (add carries out exactly when x >= 2^64 - rhs; ja is
// CF = 0 and ZF = 0), so flags spans of add/sub/test are exact in the kernel too.
TEST_F(SmokeTest, SetFlagsOpFollowsAddSubAndTest) {
  const std::string func = "sie_target_cmp";
  ASSERT_OK_AND_ASSIGN(off, FindOffset(func, absl::StrFormat("cmp rdi, 0x%x", SIE_TARGET_THRESHOLD),
                                       /*after=*/true));
  ASSERT_OK_AND_ASSIGN(base, KallsymsAddress(func, "sie_target"));
  ASSERT_OK_AND_ASSIGN(skel, OpenSkeleton());
  ASSERT_OK_AND_ASSIGN(link, AttachAt(skel->progs.sie_setflagsop, func, off));
  ASSERT_OK(WriteOnce(kKfuncsControl, absl::StrFormat("site 0x%x", base + off)));
  constexpr uint64_t kNew = 100;
  struct Case {
    uint32_t op;
    uint64_t rhs;
    std::function<bool(uint64_t)> ja;
  };
  const Case cases[] = {
      {SIE_FLAGS_OP_SUB, kNew, [](uint64_t x) { return x > kNew; }},
      // x + (2^64 - 101) carries for x >= 101: ja (no carry, non-zero) exactly for x <= 100.
      {SIE_FLAGS_OP_ADD, ~kNew, [](uint64_t x) { return x <= kNew; }},
      {SIE_FLAGS_OP_AND, 0xf0, [](uint64_t x) { return (x & 0xf0) != 0; }},
  };
  for (const Case& c : cases) {
    skel->bss->flags_op = c.op;
    skel->bss->flags_rhs = c.rhs;
    for (uint64_t x : {0, 15, 16, 99, 100, 101, 255, 256, 500, 1000, 1001, 5000}) {
      ASSERT_OK_AND_ASSIGN(got, RunPath("cmp", x));
      EXPECT_EQ(got, c.ja(x) ? 1u : 0u) << "op " << c.op << " x=" << x;
      EXPECT_EQ(skel->bss->flags_op_ret, 0);
    }
  }
  skel->bss->flags_op = SIE_FLAGS_OP_NR;  // unknown op: refused, flags untouched
  ASSERT_OK_AND_ASSIGN(got, RunPath("cmp", 5000));
  EXPECT_EQ(got, 5000u > SIE_TARGET_THRESHOLD ? 1u : 0u);
  EXPECT_EQ(skel->bss->flags_op_ret, -EINVAL);
}

// sie_set_flags at the loop's back edge after `cmp $LOOP_BOUND, %ebx`: the loop runs the new
// number of times, fewer or more than compiled in.
TEST_F(SmokeTest, SetFlagsChangesLoopBound) {
  const std::string func = "sie_target_loop";
  ASSERT_OK_AND_ASSIGN(off, FindOffset(func, absl::StrFormat("cmp ebx, %d", SIE_TARGET_LOOP_BOUND),
                                       /*after=*/true));
  ASSERT_OK_AND_ASSIGN(base, KallsymsAddress(func, "sie_target"));
  ASSERT_OK_AND_ASSIGN(skel, OpenSkeleton());
  skel->bss->flags_lhs_reg = SIE_REG_BX;
  skel->bss->flags_width = 4;
  ASSERT_OK(WriteOnce(kKfuncsControl, absl::StrFormat("site 0x%x", base + off)));
  ASSERT_OK_AND_ASSIGN(link, AttachAt(skel->progs.sie_setflags, func, off));
  ASSERT_TRUE(ReportProbe(func, off).has_value());
  for (uint64_t bound : {3, 12}) {
    skel->bss->flags_rhs = bound;
    ASSERT_OK_AND_ASSIGN(got, RunPath("loop", 7));
    EXPECT_EQ(got, bound * 7 + bound * (bound - 1) / 2) << "bound " << bound;
    EXPECT_EQ(skel->bss->flags_ret, 0);
  }
}

// sie_write_cell right after `movl $FIELD_INIT, 0x8(%rdi)`: the struct field holds the new value.
TEST_F(SmokeTest, WriteCellReplacesStoredField) {
  const std::string func = "sie_target_init_req";
  ASSERT_OK_AND_ASSIGN(
      off, FindOffset(func, absl::StrFormat("mov dword ptr [rdi + 8], 0x%x", SIE_TARGET_FIELD_INIT),
                      /*after=*/true));
  ASSERT_OK_AND_ASSIGN(base, KallsymsAddress(func, "sie_target"));
  ASSERT_OK_AND_ASSIGN(skel, OpenSkeleton());
  constexpr uint64_t kNew = 0x1111;
  skel->bss->cell_id = 3;
  skel->bss->cell_val = 0xffffffff00000000ULL | kNew;  // width 4: only the low half is stored
  ASSERT_OK_AND_ASSIGN(link, AttachAt(skel->progs.sie_writecell, func, off));
  ASSERT_TRUE(ReportProbe(func, off).has_value());

  ASSERT_OK_AND_ASSIGN(unregistered, RunPath("field", 1));
  EXPECT_EQ(unregistered, SIE_TARGET_FIELD_INIT);
  EXPECT_EQ(skel->bss->cell_ret, -ENOENT);

  // cell ID SITE BASE INDEX SCALE DISP WIDTH: [rdi + 8], 4 bytes, valid at this probe only.
  ASSERT_OK(WriteOnce(kKfuncsControl, absl::StrFormat("cell 3 0x%x %d %d 1 8 4", base + off,
                                                      SIE_REG_DI, SIE_REG_NONE)));
  ASSERT_OK_AND_ASSIGN(rewritten, RunPath("field", 1));
  EXPECT_EQ(rewritten, kNew);
  EXPECT_EQ(skel->bss->cell_ret, 0);

  // The same cell registered for another address is refused here.
  ASSERT_OK(WriteOnce(kKfuncsControl, absl::StrFormat("cell 3 0x%x %d %d 1 8 4", base + off + 1,
                                                      SIE_REG_DI, SIE_REG_NONE)));
  ASSERT_OK_AND_ASSIGN(wrong_site, RunPath("field", 1));
  EXPECT_EQ(wrong_site, SIE_TARGET_FIELD_INIT);
  EXPECT_EQ(skel->bss->cell_ret, -EPERM);
}

// sie_set_reg at an OPTIMIZED probe: right after `movabs $magic, %rax` of the division by
// DIVISOR, the magic is replaced by the one for twice the divisor (same post-shift), so the
// function divides by 2 * DIVISOR. Proves register writes survive the optprobe trampoline.
TEST_F(SmokeTest, SetRegAtOptimizedProbeChangesDivisor) {
  static_assert(SIE_TARGET_DIVISOR == 10, "the magic numbers below are for /10 -> /20");
  const std::string func = "sie_target_div";
  ASSERT_OK_AND_ASSIGN(off, FindOffset(func, "movabs rax, 0xcccccccccccccccd", /*after=*/true));
  ASSERT_OK_AND_ASSIGN(base, KallsymsAddress(func, "sie_target"));
  ASSERT_OK_AND_ASSIGN(skel, OpenSkeleton());
  constexpr uint64_t kMagic20 = 0x6666666666666667ULL;  // ceil(2^67 / 20): x/20 = mulhi >> 3
  skel->bss->reg_idx = SIE_REG_AX;
  skel->bss->reg_val = kMagic20;
  skel->bss->reg_width = 8;
  ASSERT_OK(WriteOnce(kKfuncsControl, absl::StrFormat("site 0x%x", base + off)));
  ASSERT_OK_AND_ASSIGN(link, AttachAt(skel->progs.sie_setreg, func, off));
  std::optional<std::string> line = ReportProbe(func, off);
  ASSERT_TRUE(line.has_value());
  ASSERT_OK_AND_ASSIGN(optimization, ReadU64("/proc/sys/debug/kprobes-optimization"));
  if (optimization == 1) {
    EXPECT_TRUE(absl::StrContains(*line, "[OPTIMIZED]")) << "expected an optprobe: " << *line;
  }
  for (uint64_t x : {0, 19, 20, 12345, 999999999}) {
    ASSERT_OK_AND_ASSIGN(got, RunPath("div", x));
    EXPECT_EQ(got, x / 20) << "x=" << x;
    EXPECT_EQ(skel->bss->reg_ret, 0);
  }
  link.reset();
  ASSERT_OK_AND_ASSIGN(restored, RunPath("div", 12345));
  EXPECT_EQ(restored, 12345u / SIE_TARGET_DIVISOR);
}

TEST_F(SmokeTest, ControlFileRejectsBadCommands) {
  const std::string past_last_cell =
      absl::StrCat("cell ", SIE_MAX_CELLS, " 0xffffffff81000000 5 255 1 0 4");
  for (const std::string& bad :
       {std::string("site"), std::string("site zz"), past_last_cell,
        std::string("cell 1 0xffffffff81000000 15 255 3 0 4"),
        std::string("cell 1 0xffffffff81000000 5 255 1 0 3"), std::string("poke 0x1 0x2")}) {
    EXPECT_FALSE(WriteOnce(kKfuncsControl, bad).ok()) << bad;
  }
  ASSERT_OK(WriteOnce(kKfuncsControl, "cell 2 0xffffffff81000000 15 255 1 -16 8"));
  ASSERT_OK_AND_ASSIGN(listing, ReadFile(kKfuncsControl));
  EXPECT_TRUE(absl::StrContains(listing, "cell 2 0xffffffff81000000 15 255 1 -16 8")) << listing;
}

// (g) kthreads loop over the twice-used constant; with no updates nothing is ever mixed.
TEST_F(SmokeTest, WorkersRunWithoutMixedObservations) {
  ASSERT_OK(WriteOnce(TargetFile("ops"), "0"));
  ASSERT_OK(WriteOnce(TargetFile("mixed"), "0"));
  ASSERT_OK(WriteOnce(TargetFile("workers"), "2"));
  ASSERT_OK_AND_ASSIGN(n, ReadU64(TargetFile("workers")));
  EXPECT_EQ(n, 2u);
  std::this_thread::sleep_for(1s);
  ASSERT_OK(WriteOnce(TargetFile("workers"), "0"));
  ASSERT_OK_AND_ASSIGN(ops, ReadU64(TargetFile("ops")));
  ASSERT_OK_AND_ASSIGN(mixed, ReadU64(TargetFile("mixed")));
  ASSERT_OK_AND_ASSIGN(last, ReadU64(TargetFile("batch_last")));
  std::printf("workers: %llu ops, %llu mixed in 1 s\n", static_cast<unsigned long long>(ops),
              static_cast<unsigned long long>(mixed));
  EXPECT_GT(ops, 0u);
  EXPECT_EQ(mixed, 0u);
  EXPECT_EQ(last, static_cast<uint64_t>(SIE_TARGET_BATCH));
}

// (g) with kthreads running: rewriting only the SECOND use of BATCH makes every cycle a mixed
// observation; rewriting BOTH uses (two cells, two probes, one program keyed by the attach
// cookie) gives the new value with no mixing. This is the case sie's consistency modes guard.
TEST_F(SmokeTest, CellWritesOnBothUsesAvoidMixedObservations) {
  const std::string func = "sie_target_batch_cycle";
  ASSERT_OK_AND_ASSIGN(
      off1, FindOffset(func, absl::StrFormat("mov dword ptr [rdi + 8], 0x%x", SIE_TARGET_BATCH),
                       /*after=*/true));
  ASSERT_OK_AND_ASSIGN(
      off2, FindOffset(func, absl::StrFormat("mov dword ptr [rbx + 0xc], 0x%x", SIE_TARGET_BATCH),
                       /*after=*/true));
  ASSERT_OK_AND_ASSIGN(base, KallsymsAddress(func, "sie_target"));
  ASSERT_OK_AND_ASSIGN(skel, OpenSkeleton());
  constexpr uint64_t kNew = 96;
  skel->bss->cookie_cell_val = kNew;
  ASSERT_OK(WriteOnce(kKfuncsControl, absl::StrFormat("cell 1 0x%x %d %d 1 8 4", base + off1,
                                                      SIE_REG_DI, SIE_REG_NONE)));
  ASSERT_OK(WriteOnce(kKfuncsControl, absl::StrFormat("cell 2 0x%x %d %d 1 12 4", base + off2,
                                                      SIE_REG_BX, SIE_REG_NONE)));
  ASSERT_OK(WriteOnce(TargetFile("workers"), "2"));
  // Counters are reset and read one at a time while the workers run. Resetting `mixed` before
  // `ops` and reading `ops` before `mixed` bounds the skew: only a cycle in flight at the reset
  // (at most one per worker) can count in ops but not in mixed.
  auto measure = [&](uint64_t* ops, uint64_t* mixed) {
    std::this_thread::sleep_for(300ms);  // cycles that started before the change finish
    ASSERT_OK(WriteOnce(TargetFile("mixed"), "0"));
    ASSERT_OK(WriteOnce(TargetFile("ops"), "0"));
    std::this_thread::sleep_for(1s);
    ASSERT_OK_AND_ASSIGN(o, ReadU64(TargetFile("ops")));
    ASSERT_OK_AND_ASSIGN(m, ReadU64(TargetFile("mixed")));
    *ops = o;
    *mixed = m;
  };

  uint64_t ops = 0, mixed = 0;
  ASSERT_OK_AND_ASSIGN(link2, AttachAt(skel->progs.sie_writecell_cookie, func, off2, 2));
  measure(&ops, &mixed);
  std::printf("second use only: %llu ops, %llu mixed\n", static_cast<unsigned long long>(ops),
              static_cast<unsigned long long>(mixed));
  EXPECT_GT(ops, 0u);
  EXPECT_GE(mixed + 2, ops) << "every cycle should be mixed";
  EXPECT_GT(mixed, 0u);

  ASSERT_OK_AND_ASSIGN(link1, AttachAt(skel->progs.sie_writecell_cookie, func, off1, 1));
  measure(&ops, &mixed);
  std::printf("both uses: %llu ops, %llu mixed\n", static_cast<unsigned long long>(ops),
              static_cast<unsigned long long>(mixed));
  ReportProbe(func, off1);
  ReportProbe(func, off2);
  ASSERT_OK_AND_ASSIGN(last, ReadU64(TargetFile("batch_last")));
  ASSERT_OK(WriteOnce(TargetFile("workers"), "0"));
  EXPECT_GT(ops, 0u);
  EXPECT_EQ(mixed, 0u);
  EXPECT_EQ(last, kNew);
  EXPECT_EQ(skel->bss->cookie_errors, 0u) << "last error " << skel->bss->cookie_ret;
}

}  // namespace
}  // namespace sie

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (::testing::GTEST_FLAG(list_tests)) return RUN_ALL_TESTS();
  if (absl::Status st = sie::SetUpGuest(); !st.ok()) {
    std::fprintf(stderr, "sie_vm_smoke_test: FAILED before any test: %s\n", st.ToString().c_str());
    (void)sie::TearDownGuest();
    return 1;
  }
  int rc = RUN_ALL_TESTS();
  if (absl::Status st = sie::TearDownGuest(); !st.ok()) {
    std::fprintf(stderr, "sie_vm_smoke_test: teardown FAILED: %s\n", st.ToString().c_str());
    rc = 1;
  }
  return rc;
}
