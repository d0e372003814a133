// The real guest kernel: prepare the cached tree (about a minute the first time), rebuild one
// object three times, and check V1 matches kbuild's own object after the same objtool step.
#include "synth/variants/kernel_tree.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/base/files.h"
#include "common/base/process.h"
#include "common/elf/elf_file.h"
#include "synth/variants/builder.h"
#include "synth/variants/find_objects.h"

namespace sie::synth {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;

class KernelTreeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    files_ = new GuestKernelFiles(GuestKernelFiles::ForRelease());
    auto t = KernelTree::PrepareGuest(*files_, DefaultCacheRoot(), [](const std::string& s) {
      fprintf(stderr, "%s\n", s.c_str());
    });
    ASSERT_TRUE(t.ok()) << t.status();
    tree_ = new KernelTree(std::move(*t));
  }
  static GuestKernelFiles* files_;
  static KernelTree* tree_;
};
GuestKernelFiles* KernelTreeTest::files_ = nullptr;
KernelTree* KernelTreeTest::tree_ = nullptr;

TEST_F(KernelTreeTest, CompilerMatchesShippedKernel) {
  EXPECT_TRUE(CheckCompilerMatches(*files_).ok());
  EXPECT_EQ(CompilerIdentity("GCC: (Debian 12.2.0-14+deb12u1) 12.2.0"),
            CompilerIdentity("x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0\nCopy"));
  auto id = elf::ReadBuildId(files_->dbg_vmlinux);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->size(), 40u);
}

TEST_F(KernelTreeTest, FindsObjectsUsingHeaderMacro) {
  ASSERT_NE(tree_, nullptr);
  auto built = CompileUnitSources(files_->dbg_vmlinux, "");
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_THAT(*built, Contains("block/blk-mq.c"));
  TunableSpec t;
  t.name = t.macro = "BLK_MAX_REQUEST_COUNT";
  t.file = "block/blk.h";
  auto found = FindAffectedObjects(tree_->root(), t, &*built);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(found->objects, Contains("block/blk-mq.o"));
  EXPECT_THAT(found->objects, Contains("block/blk-core.o"));
}

TEST_F(KernelTreeTest, RebuildsOneObjectWithoutTouchingTheTree) {
  ASSERT_NE(tree_, nullptr);
  auto work = TempDir::Create(fs::temp_directory_path(), "sie-ktest-");
  ASSERT_TRUE(work.ok());
  BuildContext ctx;
  ctx.kind = TargetKind::kKernel;
  ctx.tree = tree_;
  ctx.work_dir = work->path();
  ctx.progress = [](const std::string& s) { fprintf(stderr, "%s\n", s.c_str()); };
  TunableSpec t;
  t.name = t.macro = "SHRINK_BATCH";
  t.file = "mm/shrinker.c";
  t.values = {128, 64, 256};
  std::string before = *ReadFile(tree_->root() / t.file);
  auto r = BuildVariants(ctx, {&t}, {{"mm/shrinker.o"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*ReadFile(tree_->root() / t.file), before);

  // kbuild's own object, through the same objtool step, has the same .text as V1.
  fs::path ref = work->path() / "ref.o";
  fs::copy_file(tree_->root() / "mm/shrinker.o", ref);
  ASSERT_TRUE(
      RunChecked({tree_->objtool().string(), "--hacks=jump_label", "--link", ref.string()}).ok());
  const auto& v = (*r)[0].objects[0].variant;
  auto text_ref = elf::ReadElfSection(ref, ".text");
  auto text_v1 = elf::ReadElfSection(v[0], ".text");
  auto text_v2 = elf::ReadElfSection(v[1], ".text");
  ASSERT_TRUE(text_ref.ok() && text_v1.ok() && text_v2.ok());
  EXPECT_EQ(*text_v1, *text_ref);
  EXPECT_NE(*text_v2, *text_ref);
}

// A module target: kbuild against the guest headers. Two tunables of one module have the same
// pristine V1 source, so the module is built once for V1 and both get that build's objects.
TEST(ModuleVariantsTest, SharesTheV1ModuleBuild) {
  GuestKernelFiles files = GuestKernelFiles::ForRelease();
  auto dir = TempDir::Create(fs::temp_directory_path(), "sie-kmod-");
  ASSERT_TRUE(dir.ok());
  fs::path src = dir->path() / "m";
  fs::create_directories(src);
  ASSERT_TRUE(WriteFileAtomic(src / "m.h", "#define M_A 3\n#define M_B 5\n").ok());
  ASSERT_TRUE(WriteFileAtomic(src / "m.c",
                              "#include <linux/module.h>\n#include \"m.h\"\n"
                              "int m_a(int x) { return x * M_A; }\nEXPORT_SYMBOL(m_a);\n"
                              "int m_b(int x) { return x + M_B; }\nEXPORT_SYMBOL(m_b);\n"
                              "MODULE_LICENSE(\"GPL\");\n")
                  .ok());
  BuildContext ctx;
  ctx.kind = TargetKind::kModule;
  ctx.source_root = src;
  ctx.headers_dir = files.headers_dir;
  ctx.cc = files.cc;
  ctx.work_dir = dir->path() / "work";
  std::vector<std::string> log;
  ctx.progress = [&](const std::string& s) { log.push_back(s); };
  TunableSpec a, b;
  a.name = a.macro = "M_A";
  b.name = b.macro = "M_B";
  a.file = b.file = "m.h";
  a.values = {3, 4, 6};
  b.values = {5, 7, 9};
  auto r = BuildVariants(ctx, {&a, &b}, {{"m.o"}, {"m.o"}});
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& va = (*r)[0].objects[0].variant;
  const auto& vb = (*r)[1].objects[0].variant;
  EXPECT_EQ(va[0], vb[0]);  // one V1 build
  EXPECT_EQ((*r)[0].module_ko, (*r)[1].module_ko);
  EXPECT_EQ((*r)[1].module_name, "m");
  EXPECT_TRUE(fs::exists((*r)[1].module_ko));
  for (int v = 1; v < 3; ++v) {
    EXPECT_NE(va[v], vb[v]);
    EXPECT_NE(*ReadFile(va[v]), *ReadFile(va[0]));
    EXPECT_NE(*ReadFile(vb[v]), *ReadFile(vb[0]));
    // Only V1's .ko is mapped onto: the other values build their objects alone.
    EXPECT_FALSE(fs::exists(fs::path(va[v]).parent_path() / "m.ko")) << va[v];
  }
  size_t builds = 0;
  for (const auto& l : log) builds += l.find("built module") != std::string::npos;
  EXPECT_EQ(builds, 5u);  // not 6
}

}  // namespace
}  // namespace sie::synth
