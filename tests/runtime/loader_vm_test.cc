// Guest test of the loader's resource ownership (label vm; runs inside the QEMU guest through
// `sie vm`): a process that loads and unloads constants through sie::loader in-process (what
// sie-run does) keeps no fd of them: no perf event, no BPF link, map or program. A leaked
// perf-event fd would keep the kprobe registered after Unload removed the pins, so the check is
// made on both sides: this process's /proc/self/fd, and the kernel's kprobe list.
//   argv[1]: constants directory with precompiled stubs (build/tests/runtime/consts)
#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/base/files.h"
#include "common/base/unique_fd.h"
#include "gtest/gtest.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/loader.h"

namespace sie {
namespace {

namespace fs = std::filesystem;

fs::path g_consts;
constexpr char kTarget[] = "/sys/kernel/debug/sie_target";

// What this process has open, by kind ("anon_inode:[perf_event]", "anon_inode:bpf_link", ...).
std::map<std::string, int> OpenFds() {
  std::map<std::string, int> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/self/fd", ec)) {
    std::error_code ec2;
    fs::path t = fs::read_symlink(e.path(), ec2);
    if (ec2) continue;  // the directory iterator's own fd, gone already
    std::string k = t.string();
    if (!absl::StartsWith(k, "anon_inode:")) k = "file";
    out[k]++;
  }
  return out;
}

std::string Describe(const std::map<std::string, int>& m) {
  std::string s;
  for (const auto& [k, n] : m) absl::StrAppend(&s, k, "=", n, " ");
  return s;
}

int SieKprobes() {
  auto list = loader::ReadKprobeList();
  if (!list.ok()) return -1;
  int n = 0;
  for (const auto& e : *list) n += absl::StrContains(e.where, "sie_target");
  return n;
}

std::string RunPath(const std::string& path, const std::string& input) {
  const std::string p = absl::StrCat(kTarget, "/", path);
  {
    UniqueFd fd(open(p.c_str(), O_WRONLY | O_CLOEXEC));
    const std::string line = input + "\n";
    if (!fd.valid() || write(fd.get(), line.data(), line.size()) < 0) return "write failed";
  }
  auto out = ReadFile(p);
  return out.ok() ? std::string(absl::StripAsciiWhitespace(*out)) : "read failed";
}

void LoadUnload(const std::string& name, int64_t value, int mode, const std::string& path,
                const std::string& in, const std::string& want_new, const std::string& want_old,
                const std::string& engine = "bpf") {
  loader::SetOptions o;
  o.engine = engine;
  o.consts_dir = g_consts;
  o.name = name;
  o.value = value;
  o.mode = mode;
  o.opt_wait_s = 0.5;
  const auto before = OpenFds();
  auto r = loader::SetConst(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->engine, engine);
  EXPECT_EQ(RunPath(path, in), want_new);
  EXPECT_EQ(Describe(OpenFds()), Describe(before)) << "fds kept after SetConst of " << name;
  ASSERT_TRUE(loader::Unload(name, false).ok());
  EXPECT_EQ(Describe(OpenFds()), Describe(before)) << "fds kept after Unload of " << name;
  EXPECT_EQ(SieKprobes(), 0) << "kprobes left after Unload of " << name;
  EXPECT_EQ(RunPath(path, in), want_old);
}

TEST(LoaderFds, RegSpanMode0) {
  LoadUnload("SIE_TARGET_CALL_ARG", 7, 0, "call_arg", "100", "107", "4760");
}

TEST(LoaderFds, RegSpanNativeEngine) {
  LoadUnload("SIE_TARGET_CALL_ARG", 7, 0, "call_arg", "100", "107", "4760", "native");
}

TEST(LoaderFds, MemSpanMode1WithGuards) {
  LoadUnload("SIE_TARGET_FIELD_INIT", 12345, 1, "field", "1", "12345", "23130");
}

TEST(LoaderFds, RepeatedCyclesKeepNothing) {
  const auto before = OpenFds();
  for (int b = 3; b < 6; ++b)  // loop(x) = B*x + B*(B-1)/2
    LoadUnload("SIE_TARGET_LOOP_BOUND", b, 0, "loop", "10",
               std::to_string(b * 10 + b * (b - 1) / 2), "108");
  EXPECT_EQ(Describe(OpenFds()), Describe(before));
}

// sie_kfuncs' sites and cells, from its control listing ("site 0x..", "cell ID 0x.. ...").
std::string KfuncsListing() {
  auto t = ReadFile(loader::kKfuncsControl);
  return t.ok() ? *t : "unreadable";
}
bool HasSite(uint64_t addr) {
  return absl::StrContains(KfuncsListing(), absl::StrCat("site 0x", absl::Hex(addr), "\n"));
}
uint64_t ApplyAddress(const loader::SetResult& r) {
  for (const auto& p : r.probes)
    if (p.role == "apply") return p.address;
  return 0;
}
uint64_t Failed(const std::string& name) {
  auto st = loader::Status();
  if (!st.ok()) return ~0ull;
  for (const auto& lc : *st)
    if (lc.state.value("name", "") == name) {
      uint64_t n = 0;
      for (const auto& s : lc.spans) n += s.failed;
      return n;
    }
  return ~0ull;
}

// Per-site unregistration: unloading one constant removes its sites (and cells) from
// sie_kfuncs and keeps those of another loaded constant; a program left at a removed site
// can no longer write (the kfunc refuses, the stub counts a failure, the code keeps its value).
TEST(LoaderSites, UnloadRemovesOnlyItsOwnSites) {
  loader::SetOptions o;
  o.consts_dir = g_consts;
  o.opt_wait_s = 0.5;
  o.engine = "bpf";  // sie_kfuncs sites are the BPF engine's
  o.name = "SIE_TARGET_CALL_ARG";
  o.value = 7;
  auto call = loader::SetConst(o);
  ASSERT_TRUE(call.ok()) << call.status();
  o.name = "SIE_TARGET_FIELD_INIT";
  o.value = 12345;
  auto field = loader::SetConst(o);
  ASSERT_TRUE(field.ok()) << field.status();
  const uint64_t call_site = ApplyAddress(*call), field_site = ApplyAddress(*field);
  ASSERT_NE(call_site, 0u);
  ASSERT_NE(field_site, 0u);
  EXPECT_TRUE(HasSite(call_site)) << KfuncsListing();
  EXPECT_TRUE(HasSite(field_site)) << KfuncsListing();

  ASSERT_TRUE(loader::Unload("SIE_TARGET_CALL_ARG", false).ok());
  EXPECT_FALSE(HasSite(call_site)) << "site kept after unload:\n" << KfuncsListing();
  EXPECT_TRUE(HasSite(field_site)) << "another constant's site removed:\n" << KfuncsListing();
  EXPECT_TRUE(absl::StrContains(KfuncsListing(), absl::StrCat("0x", absl::Hex(field_site), " ")))
      << "the other constant's cell is gone:\n"
      << KfuncsListing();
  EXPECT_EQ(RunPath("field", "1"), "12345");
  EXPECT_EQ(RunPath("call_arg", "100"), "4760");

  // A write at a removed site is refused: take FIELD_INIT's site away under its program.
  const uint64_t failed_before = Failed("SIE_TARGET_FIELD_INIT");
  {
    UniqueFd fd(open(loader::kKfuncsControl, O_WRONLY | O_CLOEXEC));
    const std::string cmd = absl::StrCat("unsite 0x", absl::Hex(field_site));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(write(fd.get(), cmd.data(), cmd.size()), static_cast<ssize_t>(cmd.size()));
    // A second removal of the same site is an error (ENOENT), not silently accepted.
    EXPECT_LT(write(fd.get(), cmd.data(), cmd.size()), 0);
    EXPECT_EQ(errno, ENOENT);
  }
  EXPECT_FALSE(HasSite(field_site));
  EXPECT_EQ(RunPath("field", "1"), "23130") << "a write at a removed site was not refused";
  EXPECT_GT(Failed("SIE_TARGET_FIELD_INIT"), failed_before);
  ASSERT_TRUE(loader::Unload("SIE_TARGET_FIELD_INIT", false).ok());
  EXPECT_EQ(SieKprobes(), 0);
}

}  // namespace
}  // namespace sie

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  struct utsname u {};
  uname(&u);
  if (std::string(u.release) != SIE_GUEST_KERNEL_RELEASE) {
    std::fprintf(stderr, "loader_vm_test runs in the guest (%s), not on %s\n",
                 SIE_GUEST_KERNEL_RELEASE, u.release);
    return 2;
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CONSTS_DIR\n", argv[0]);
    return 2;
  }
  sie::g_consts = argv[1];
  return RUN_ALL_TESTS();
}
