// Which binary an object is built into, from kbuild's own data: the saved compile command
// (-DMODULE, KBUILD_MODNAME, KBUILD_MODFILE) and modules.order. The command texts are the
// shapes kbuild 6.12 writes (cut to the flags that matter).
#include "synth/variants/module_of.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/base/diag.h"

namespace sie::synth {
namespace {

using ::testing::HasSubstr;

// block/.bfq-iosched.o.cmd: part of the composite module bfq (bfq-y := bfq-iosched.o ...).
constexpr char kBfq[] =
    "savedcmd_block/bfq-iosched.o := x86_64-linux-gnu-gcc-12 -Wp,-MMD,block/.bfq-iosched.o.d "
    "-nostdinc -I./include -D__KERNEL__ -O2 -fsanitize=kernel-address -DMODULE  "
    "-DKBUILD_BASENAME='\"bfq_iosched\"' -DKBUILD_MODNAME='\"bfq\"' -D__KBUILD_MODNAME=kmod_bfq "
    "-c -o block/bfq-iosched.o block/bfq-iosched.c  ; ./tools/objtool/objtool --hacks=jump_label "
    "block/bfq-iosched.o\n";
// block/.blk-core.o.cmd: built into vmlinux (KBUILD_MODNAME and KBUILD_MODFILE, no -DMODULE).
constexpr char kBlkCore[] =
    "savedcmd_block/blk-core.o := x86_64-linux-gnu-gcc-12 -D__KERNEL__ "
    "-DKBUILD_MODFILE='\"block/blk-core\"' -DKBUILD_BASENAME='\"blk_core\"' "
    "-DKBUILD_MODNAME='\"blk_core\"' -D__KBUILD_MODNAME=kmod_blk_core -c -o block/blk-core.o "
    "block/blk-core.c\n";

constexpr char kOrder[] =
    "kernel/block/bfq.ko\n"
    "kernel/block/kyber-iosched.ko\n"
    "kernel/drivers/md/dm-bufio.ko\n"
    "kernel/fs/ext4/ext4.ko\n"
    "kernel/fs/jbd2/jbd2.ko\n"
    "kernel/drivers/md/raid456.ko\n"
    "kernel/net/sched/sch_fq.ko\n";

TEST(ModuleOfCommand, ModuleObjectNamesItsModule) {
  auto m = ModuleOfCommand(kBfq);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(m->has_value());
  EXPECT_EQ((*m)->name, "bfq");
  EXPECT_EQ((*m)->file, "");
}

TEST(ModuleOfCommand, BuiltInObjectIsVmlinuxDespiteModname) {
  auto m = ModuleOfCommand(kBlkCore);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE(m->has_value());
}

TEST(ModuleOfCommand, NameAsTheKernelSpellsItAndModfile) {
  auto m = ModuleOfCommand(
      "gcc -DMODULE -DKBUILD_MODFILE='\"drivers/md/dm-bufio\"' "
      "-DKBUILD_MODNAME='\"dm-bufio\"' -c -o drivers/md/dm-bufio.o drivers/md/dm-bufio.c");
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(m->has_value());
  EXPECT_EQ((*m)->name, "dm_bufio");  // /sys/module and /proc/kallsyms use '_'
  EXPECT_EQ((*m)->file, "drivers/md/dm-bufio");
}

TEST(ModuleOfCommand, ModuleWithoutModnameIsAnError) {
  auto m = ModuleOfCommand("gcc -DMODULE -c -o a.o a.c");
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("KBUILD_MODNAME"));
  EXPECT_FALSE(Hint(m.status()).empty());
}

TEST(ModulePathInOrder, SameDirectory) {
  auto p = ModulePathInOrder(kOrder, "block/bfq-iosched.o", {"bfq", ""});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, "kernel/block/bfq.ko");
}

TEST(ModulePathInOrder, DashInTheFileName) {
  auto p = ModulePathInOrder(kOrder, "drivers/md/dm-bufio.o", {"dm_bufio", ""});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, "kernel/drivers/md/dm-bufio.ko");
}

// A composite module's objects may sit in a subdirectory of the module's own directory.
TEST(ModulePathInOrder, ObjectBelowTheModuleDirectory) {
  auto p = ModulePathInOrder(kOrder, "fs/ext4/sub/mballoc.o", {"ext4", ""});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, "kernel/fs/ext4/ext4.ko");
  // ...but never in another directory: a module of the same name elsewhere is not it.
  auto q = ModulePathInOrder(kOrder, "fs/jbd2/journal.o", {"ext4", ""});
  EXPECT_FALSE(q.ok());
}

TEST(ModulePathInOrder, ModfileWins) {
  auto p = ModulePathInOrder(kOrder, "drivers/md/raid5.o", {"raid456", "drivers/md/raid456"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, "kernel/drivers/md/raid456.ko");
}

TEST(ModulePathInOrder, BuildTreeOrderSpelling) {
  // A build tree's modules.order lists objects ("net/sched/sch_fq.o"), not installed files.
  auto p = ModulePathInOrder("net/sched/sch_fq.o\n", "net/sched/sch_fq.o", {"sch_fq", ""});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, "kernel/net/sched/sch_fq.ko");
}

TEST(ModulePathInOrder, MissingAndAmbiguousAreRefusedWithAHint) {
  auto none = ModulePathInOrder(kOrder, "net/ipv4/tcp_bbr.o", {"tcp_bbr", ""});
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(none.status().message(), HasSubstr("tcp_bbr"));
  EXPECT_THAT(none.status().message(), HasSubstr("modules.order does not list"));
  EXPECT_FALSE(Hint(none.status()).empty());
  auto two = ModulePathInOrder("kernel/a/m.ko\nkernel/a/b/m.ko\n", "a/b/x.o", {"m", ""});
  ASSERT_FALSE(two.ok());
  EXPECT_THAT(two.status().message(), HasSubstr("several times"));
}

}  // namespace
}  // namespace sie::synth
