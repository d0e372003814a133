// Host unit tests of the loader's kernel-file parsing and engine choice, on saved samples
// (fixtures/kernel_samples) and the sie_target fixtures: the kprobe list (other kprobes at our
// addresses), /sys/kernel/livepatch (refusing livepatched functions, flagging bypassed probes),
// sie_native's listing (places another constant holds), which constants the native engine
// may take, and the order the probes of one address open in.
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/artifact/const_json.h"
#include "common/base/files.h"
#include "gtest/gtest.h"
#include "runtime/loader/attach.h"
#include "runtime/loader/kernel.h"
#include "runtime/loader/native.h"

namespace sie {
namespace {
namespace fs = std::filesystem;

const fs::path kSamples = fs::path(SIE_SOURCE_DIR) / "tests/runtime/fixtures/kernel_samples";
const fs::path kConsts = fs::path(SIE_SOURCE_DIR) / "tests/runtime/fixtures/sie_target";

TEST(KprobeList, ParsesTypesFlagsAndSharedAddresses) {
  auto text = ReadFile(kSamples / "kprobes_list.txt");
  ASSERT_TRUE(text.ok());
  auto l = loader::ParseKprobeList(*text);
  ASSERT_EQ(l.size(), 5u);
  EXPECT_EQ(l[0].addr, 0xffffffffc056600eull);
  EXPECT_EQ(l[0].type, "k");
  EXPECT_EQ(l[0].where, "sie_target_call_arg+0xe [sie_target]");
  EXPECT_TRUE(l[0].optimized);
  EXPECT_FALSE(l[0].disabled);
  // Two probes at one address are two entries: the second is someone else's, disabled.
  EXPECT_EQ(l[1].addr, l[0].addr);
  EXPECT_TRUE(l[1].disabled);
  EXPECT_FALSE(l[2].optimized);
  EXPECT_EQ(l[3].type, "r");
  EXPECT_TRUE(l[3].ftrace);
  EXPECT_EQ(l[3].where, "do_sys_openat2+0x4");
  EXPECT_TRUE(l[4].disabled && l[4].ftrace);
  EXPECT_TRUE(loader::ParseKprobeList("garbage\n\nzz k x\n").empty());
}

// A module's symbols come in its symbol table's order, not by address (as in the guest's
// /proc/kallsyms for sie_target): a function's size is the distance to the next higher
// address of any symbol, not to the next line.
TEST(Kallsyms, SizesComeFromTheNextHigherAddressNotTheNextLine) {
  auto dir = TempDir::Create(fs::temp_directory_path(), "sie-kallsyms-");
  ASSERT_TRUE(dir.ok());
  const fs::path f = dir->path() / "kallsyms";
  std::ofstream(f) << "ffffffff81000000 T _stext\n"
                      "ffffffff81000100 T vfs_write\n"
                      "ffffffff81000180 t __pfx_ksys_write\n"
                      "ffffffff81000190 t ksys_write\n"
                      "ffffffffc02eb9f0 t sie_target_path_set\t[sie_target]\n"
                      "ffffffffc02eb980 t sie_target_batch_cycle\t[sie_target]\n"
                      "ffffffffc02ebaf0 t sie_target_hold_cycle\t[sie_target]\n"
                      "ffffffffc02ebb30 t sie_target_hold\t[sie_target]\n"
                      "ffffffffc02eb9e0 t __pfx_sie_target_path_set\t[sie_target]\n"
                      "ffffffffc02ebb20 t __pfx_sie_target_hold\t[sie_target]\n";
  auto k = loader::Kallsyms::Load({}, f.string());
  ASSERT_TRUE(k.ok()) << k.status();
  auto size = [&](const char* name, const char* bin) {
    auto s = k->Find(name, bin);
    return s.ok() ? s->size : ~0ull;
  };
  EXPECT_EQ(size("sie_target_batch_cycle", "sie_target"), 0x60u);  // to __pfx_ of path_set
  EXPECT_EQ(size("sie_target_hold_cycle", "sie_target"), 0x30u);
  EXPECT_EQ(size("sie_target_path_set", "sie_target"), 0x100u);  // to hold_cycle
  EXPECT_EQ(size("vfs_write", "vmlinux"), 0x80u);
}

// A kprobe in a module that was unloaded: the kernel keeps it registered (its perf event holds
// it), no longer resolves the address to a symbol and flags it [GONE] (report_probe, 6.12).
TEST(KprobeList, FlagsProbesOfAnUnloadedModuleAsGone) {
  auto l = loader::ParseKprobeList(
      "ffffffffc0b3a02d  k  0xffffffffc0b3a02d  [GONE]\n"
      "ffffffffc0b3a02d  k  fq_init+0x2d  sch_fq\n");
  ASSERT_EQ(l.size(), 2u);
  EXPECT_TRUE(l[0].gone);
  EXPECT_EQ(l[0].where, "0xffffffffc0b3a02d");
  EXPECT_FALSE(l[1].gone);
  EXPECT_EQ(l[1].where, "fq_init+0x2d [sch_fq]");
}

// Recreates the saved /sys/kernel/livepatch tree under a temp dir.
fs::path LivepatchTree() {
  fs::path root = fs::temp_directory_path() / ("sie-lp-" + std::to_string(getpid()));
  fs::remove_all(root);
  auto text = ReadFile(kSamples / "livepatch.txt");
  EXPECT_TRUE(text.ok());
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> kv = absl::StrSplit(line, " = ");
    fs::path p = root / kv[0];
    if (kv.size() == 1) {
      fs::create_directories(p);
      continue;
    }
    fs::create_directories(p.parent_path());
    std::ofstream(p) << kv[1] << "\n";
  }
  return root;
}

TEST(Livepatch, ListsEveryPatchedFunctionWithItsPatchState) {
  const fs::path root = LivepatchTree();
  auto lps = loader::ReadLivepatches(root);
  ASSERT_TRUE(lps.ok()) << lps.status();
  ASSERT_EQ(lps->size(), 3u);
  // Sorted by patch, object, function.
  EXPECT_EQ((*lps)[0].patch, "livepatch_sample");
  EXPECT_EQ((*lps)[0].object, "vmlinux");
  EXPECT_EQ((*lps)[0].function, "cmdline_proc_show");
  EXPECT_EQ((*lps)[0].sympos, 1);
  EXPECT_FALSE((*lps)[0].enabled);
  EXPECT_TRUE((*lps)[0].transition);
  EXPECT_EQ((*lps)[1].function, "meminfo_proc_show");
  EXPECT_EQ((*lps)[1].sympos, 2);
  EXPECT_EQ((*lps)[2].patch, "sie_lp_target");
  EXPECT_EQ((*lps)[2].object, "sie_target");
  EXPECT_EQ((*lps)[2].function, "sie_target_call_arg");
  EXPECT_TRUE((*lps)[2].enabled);
  EXPECT_FALSE((*lps)[2].transition);
  fs::remove_all(root);
}

TEST(Livepatch, ActivePatchIsTheEnabledOrSwitchingOneOfThatObject) {
  const fs::path root = LivepatchTree();
  auto lps = loader::ReadLivepatches(root);
  ASSERT_TRUE(lps.ok()) << lps.status();
  fs::remove_all(root);
  // Enabled: what `sie set` refuses and `sie status` flags as bypassed.
  const auto* lf = loader::ActiveLivepatch(*lps, "sie_target_call_arg", "sie_target");
  ASSERT_NE(lf, nullptr);
  EXPECT_EQ(lf->patch, "sie_lp_target");
  EXPECT_FALSE(lf->transition);
  // The same name in another object is another function.
  EXPECT_EQ(loader::ActiveLivepatch(*lps, "sie_target_call_arg", "vmlinux"), nullptr);
  EXPECT_EQ(loader::ActiveLivepatch(*lps, "sie_target_loop", "sie_target"), nullptr);
  // Disabled but still switching: some tasks may run the replacement.
  lf = loader::ActiveLivepatch(*lps, "cmdline_proc_show", "vmlinux");
  ASSERT_NE(lf, nullptr);
  EXPECT_EQ(lf->patch, "livepatch_sample");
  EXPECT_TRUE(lf->transition);
  // Disabled and settled: redirects nothing.
  auto off = *lps;
  for (auto& f : off) f.enabled = f.transition = false;
  EXPECT_EQ(loader::ActiveLivepatch(off, "sie_target_call_arg", "sie_target"), nullptr);
}

TEST(Livepatch, NoLivepatchDirectoryMeansNothingPatched) {
  auto lps = loader::ReadLivepatches("/nonexistent/sie/livepatch");
  ASSERT_TRUE(lps.ok());
  EXPECT_TRUE(lps->empty());
}

TEST(NativeEngine, CoversFixedRegAndMemSpansInModeZeroOnly) {
  auto c = [](const char* id) {
    auto r = artifact::ReadConstFile(kConsts / id / "const.json");
    EXPECT_TRUE(r.ok()) << r.status();
    return *r;
  };
  // 102 CALL_ARG (reg, V) and 103 FIELD_INIT (mem, base + disp): native in mode 0.
  EXPECT_EQ(loader::NativeUnsupported(c("102"), 0, false), "");
  EXPECT_EQ(loader::NativeUnsupported(c("103"), 0, false), "");
  // Not in mode 1/2, not with a policy.
  EXPECT_NE(loader::NativeUnsupported(c("102"), 1, false).find("per-task guards"),
            std::string::npos);
  EXPECT_NE(loader::NativeUnsupported(c("102"), 2, false).find("sie_consistency"),
            std::string::npos);
  EXPECT_NE(loader::NativeUnsupported(c("102"), 0, true).find("policy"), std::string::npos);
  // flags of `cmp REG, IMM` (101 LOOP_BOUND): the register against the new immediate, natively;
  // other flag operations and memory compares, and recompute (105 SCALE, 106 DIVISOR), not.
  EXPECT_EQ(loader::NativeUnsupported(c("101"), 0, false), "");
  auto f = c("101");
  // `test REG, IMM` too (x % V == 0 at powers of two), as flags-test.
  f.spans[0].flags_op = "test";
  EXPECT_EQ(loader::NativeUnsupported(f, 0, false), "");
  auto ft = loader::NativeProbes(f, "sie_target");
  ASSERT_TRUE(ft.ok()) << ft.status();
  EXPECT_NE(loader::NativeAddCommand((*ft)[0], 3).find(" flags-test bx "), std::string::npos);
  f.spans[0].flags_op = "add";
  EXPECT_NE(loader::NativeUnsupported(f, 0, false).find("kind flags of an operation other than"),
            std::string::npos);
  f.spans[0].flags_op = "cmp";
  f.spans[0].target_reg = "";
  f.spans[0].target_mem = artifact::MemOperand{"di", "", 1, 8};
  EXPECT_NE(loader::NativeUnsupported(f, 0, false).find("with a memory operand"),
            std::string::npos);
  auto fp = loader::NativeProbes(c("101"), "sie_target");
  ASSERT_TRUE(fp.ok()) << fp.status();
  EXPECT_NE(loader::NativeAddCommand((*fp)[0], 3).find(" flags-cmp bx "), std::string::npos);
  EXPECT_NE(loader::NativeUnsupported(c("105"), 0, false).find("kind recompute"),
            std::string::npos);
  // A reg span whose formula reads X is not a fixed value.
  auto x = c("102");
  x.spans[0].formula = "X + V";
  EXPECT_NE(loader::NativeUnsupported(x, 0, false).find("reads the instruction's input"),
            std::string::npos);
  // A mem cell with an index register, or RIP-relative, is not expressible natively.
  auto m = c("103");
  m.spans[0].target_mem->index = "cx";
  EXPECT_NE(loader::NativeUnsupported(m, 0, false).find("index"), std::string::npos);
  m.spans[0].target_mem->index = "";
  m.spans[0].target_mem->base = "ip";
  EXPECT_NE(loader::NativeUnsupported(m, 0, false).find("base register"), std::string::npos);
}

TEST(NativeEngine, CommandsUseTheModuleQualifiedSymbolAndEvaluatedFormula) {
  auto c = artifact::ReadConstFile(kConsts / "103" / "const.json");
  ASSERT_TRUE(c.ok());
  auto np = loader::NativeProbes(*c, "sie_target");
  ASSERT_TRUE(np.ok()) << np.status();
  ASSERT_EQ(np->size(), 1u);
  const auto& s = c->spans[0];
  EXPECT_EQ((*np)[0].symbol, "sie_target:" + s.function);
  EXPECT_EQ(
      loader::NativeAddCommand((*np)[0], 0x3039),
      absl::StrCat("probe sie_target:", s.function, " 0x", absl::Hex(s.probe_offset), " mem-cell ",
                   s.target_mem->base, " ", s.target_mem->disp, " ", s.width, " 0x3039"));
  // Registered disarmed, the loader arms a constant's probes together (no optimizer between).
  EXPECT_TRUE(absl::EndsWith(loader::NativeAddCommand((*np)[0], 0x3039, /*disarmed=*/true),
                             " 0x3039 disarmed"));
  EXPECT_EQ(
      loader::NativeValueCommand((*np)[0], 7),
      absl::StrCat("value sie_target:", s.function, " 0x", absl::Hex(s.probe_offset), " 0x7"));
  auto vm = loader::NativeProbes(*c, "vmlinux");
  ASSERT_TRUE(vm.ok());
  EXPECT_EQ((*vm)[0].symbol, s.function);
  // The value is the span's formula at V, evaluated once.
  artifact::CriticalSpan f = s;
  f.formula = "(V << 3) + 1";
  EXPECT_EQ(*loader::NativeValue(f, 5), 41u);
  f.formula = "100 / V";
  EXPECT_FALSE(loader::NativeValue(f, 0).ok());
}

TEST(NativeEngine, ParsesTheModuleListing) {
  auto m = loader::ParseNativeListing(
      "sie_target:sie_target_call_arg+0xe reg-set si 4 0x7 hits=12 faults=0\n"
      "sie_target:sie_target_init_req+0xf mem-cell di 8 4 0x3039 hits=3 faults=1\n"
      "bogus line\n");
  ASSERT_EQ(m.size(), 2u);
  const auto& a = m.at(loader::NativeKey("sie_target:sie_target_call_arg", 0xe));
  EXPECT_EQ(a.value, 7u);
  EXPECT_EQ(a.hits, 12u);
  EXPECT_EQ(a.faults, 0u);
  const auto& b = m.at("sie_target:sie_target_init_req+0xf");
  EXPECT_EQ(b.value, 0x3039u);
  EXPECT_EQ(b.hits, 3u);
  EXPECT_EQ(b.faults, 1u);
}

TEST(NativeEngine, FindsTheFirstPlaceTheModuleAlreadyProbes) {
  // 107 BATCH has two mem spans in one function (+0x1a, +0x2b).
  auto c = artifact::ReadConstFile(kConsts / "107" / "const.json");
  ASSERT_TRUE(c.ok()) << c.status();
  auto np = loader::NativeProbes(*c, "sie_target");
  ASSERT_TRUE(np.ok()) << np.status();
  ASSERT_EQ(np->size(), 2u);
  EXPECT_EQ(loader::NativeConflict(*np, {}), -1);
  // Another constant's probe at the second place: sie_native would refuse that add.
  const std::string second =
      loader::NativeKey("sie_target:" + c->spans[1].function, c->spans[1].probe_offset);
  auto listing = loader::ParseNativeListing(
      "sie_target:sie_target_call_arg+0xe reg-set si 4 0x7 hits=0 faults=0\n" + second +
      " mem-cell di 8 4 0x40 hits=5 faults=0\n");
  ASSERT_EQ(listing.size(), 2u);
  EXPECT_EQ(loader::NativeConflict(*np, listing), 1);
  // Only the same module-qualified symbol and offset is the same place.
  listing = loader::ParseNativeListing(absl::StrCat(
      c->spans[1].function, "+0x", absl::Hex(c->spans[1].probe_offset),
      " mem-cell di 8 4 0x40 hits=5 faults=0\n", "sie_target:", c->spans[1].function, "+0x",
      absl::Hex(c->spans[1].probe_offset + 1), " mem-cell di 8 4 0x40 hits=5 faults=0\n"));
  ASSERT_EQ(listing.size(), 2u);
  EXPECT_EQ(loader::NativeConflict(*np, listing), -1);
}

// At one address the kernel runs the newest kprobe first, so the probes open in the reverse of
// their run order: the apply of a span ending there (its effect belongs to the safe span just
// left), the guard entering a safe span there, the saves of spans starting there (in plan
// order), then an input rewrite, which must not change what those saves read.
TEST(OpenOrder, OpensTheProbesOfOneAddressInTheReverseOfTheirRunOrder) {
  using loader::Attached;
  using loader::RunRank;
  const struct {
    const char* role;
    uint64_t addr;
    RunRank rank;
  } plan[] = {
      {"apply", 0x10, RunRank::kApplyAfterSpan},  // 0
      {"apply", 0x10, RunRank::kRewrite},         // 1
      {"save", 0x10, RunRank::kSave},             // 2
      {"apply", 0x20, RunRank::kApplyAfterSpan},  // 3, alone at its address
      {"save", 0x10, RunRank::kSave},             // 4
      {"guard", 0x10, RunRank::kGuard},           // 5: guards come last in a plan
  };
  std::vector<Attached> probes(std::size(plan));
  std::vector<Attached*> ptrs;
  for (size_t i = 0; i < probes.size(); ++i) {
    probes[i].info = loader::MakeProbe(plan[i].role, 0, "f", plan[i].addr, 0);
    probes[i].run_rank = plan[i].rank;
    ptrs.push_back(&probes[i]);
  }
  const auto order = loader::OpenOrder(ptrs);
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order.at(0x10), (std::vector<size_t>{1, 4, 2, 5, 0}));
  EXPECT_EQ(order.at(0x20), (std::vector<size_t>{3}));
}

}  // namespace
}  // namespace sie
