// Variant building with the generic command on a small C fixture, and object discovery: the
// user's files must be untouched whether the build succeeds or fails.
#include "synth/variants/builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/base/files.h"
#include "synth/variants/find_objects.h"

namespace sie::synth {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kHeader[] =
    "#define LIMIT 16\n"
    "static inline int over(int x) { return x > LIMIT; }\n";
constexpr char kA[] = "#include \"t.h\"\nint a(int x) { return x * LIMIT; }\n";
constexpr char kB[] = "#include \"t.h\"\nint b(int x) { return over(x); }\n";
constexpr char kC[] = "int c(int x) { return x + 1; }\n";
// Uses LIMIT as an array size: a negative value is a compile error.
constexpr char kD[] = "#include \"sub/u.h\"\nchar buf[SIZE];\n";

class BuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::Create(fs::temp_directory_path(), "sie-frontend-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(*d));
    src_ = dir_->path() / "src";
    fs::create_directories(src_ / "sub");
    Write("t.h", kHeader);
    Write("a.c", kA);
    Write("b.c", kB);
    Write("c.c", kC);
    Write("sub/u.h", "#define SIZE 8\n");
    Write("d.c", kD);
    ctx_.kind = TargetKind::kGeneric;
    ctx_.source_root = src_;
    ctx_.build_command = "gcc -O2 -c {src} -o {obj}";
    ctx_.work_dir = dir_->path() / "work";
    ctx_.progress = [](const std::string&) {};
  }
  void Write(const std::string& rel, const std::string& text) {
    ASSERT_TRUE(WriteFileAtomic(src_ / rel, text).ok());
  }
  std::string Read(const std::string& rel) { return *ReadFile(src_ / rel); }
  TunableSpec Limit(std::vector<int64_t> values = {16, 8, 32}) {
    TunableSpec t;
    t.name = "LIMIT";
    t.file = "t.h";
    t.macro = "LIMIT";
    t.values = std::move(values);
    t.range_min = -100;
    t.range_max = 100;
    return t;
  }

  std::optional<TempDir> dir_;
  fs::path src_;
  BuildContext ctx_;
};

TEST_F(BuilderTest, BuildsThreeVariantsFromCopies) {
  TunableSpec t = Limit();
  Spec spec;
  spec.path = "spec.yaml";
  auto w = CheckEdit(ctx_, spec, t);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->empty());
  auto r = BuildVariants(ctx_, {&t}, {{"a.o", "b.o"}});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 1u);
  ASSERT_EQ((*r)[0].objects.size(), 2u);
  for (const auto& ov : (*r)[0].objects) {
    std::string v[3];
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(fs::exists(ov.variant[i])) << ov.variant[i];
      EXPECT_FALSE(ov.variant[i].string().starts_with(src_.string()));
      v[i] = *ReadFile(ov.variant[i]);
    }
    EXPECT_NE(v[0], v[1]) << ov.object;
    EXPECT_NE(v[0], v[2]) << ov.object;
  }
  // The user's files are exactly as before, and no object appeared in the tree.
  EXPECT_EQ(Read("t.h"), kHeader);
  EXPECT_FALSE(fs::exists(src_ / "a.o"));
}

TEST_F(BuilderTest, SharesTheIdenticalV1Build) {
  TunableSpec a = Limit();
  TunableSpec b;
  b.name = "MUL";
  b.file = "a.c";
  b.match = "x * LIMIT";
  b.replace = "x * LIMIT + {V}";
  b.values = {0, 1, 2};
  auto r = BuildVariants(ctx_, {&a, &b}, {{"a.o"}, {"a.o"}});
  ASSERT_TRUE(r.ok()) << r.status();
  // b's V1 is "x * LIMIT + 0": a different source, so its own build.
  EXPECT_NE((*r)[0].objects[0].variant[0], (*r)[1].objects[0].variant[0]);
  b.replace = "x * {V}";
  b.match = "x * LIMIT;";
  b.values = {16, 2, 3};
  TunableSpec a2 = a;
  a2.name = "LIMIT2";
  r = BuildVariants(ctx_, {&a, &a2}, {{"a.o"}, {"a.o"}});
  ASSERT_TRUE(r.ok()) << r.status();
  // Same pristine V1 source: built once and shared.
  EXPECT_EQ((*r)[0].objects[0].variant[0], (*r)[1].objects[0].variant[0]);
  EXPECT_EQ((*r)[0].objects[0].variant[1], (*r)[1].objects[0].variant[1]);
  EXPECT_TRUE(fs::exists((*r)[1].objects[0].variant[0]));
}

TEST_F(BuilderTest, CompileErrorShowsCompilerMessageAndLeavesTreeAlone) {
  TunableSpec t;
  t.name = "SIZE";
  t.file = "sub/u.h";
  t.macro = "SIZE";
  t.values = {8, 4, -1};
  auto r = BuildVariants(ctx_, {&t}, {{"d.o"}});
  ASSERT_FALSE(r.ok());
  std::string msg(r.status().message());
  EXPECT_THAT(msg, HasSubstr("SIZE V3=-1 failed"));
  EXPECT_THAT(msg, HasSubstr("error:"));  // gcc's own message
  EXPECT_EQ(Read("sub/u.h"), "#define SIZE 8\n");
}

TEST_F(BuilderTest, EditErrorsNameTheFile) {
  TunableSpec t = Limit();
  t.macro = "NOT_THERE";
  Spec spec;
  spec.path = "spec.yaml";
  auto w = CheckEdit(ctx_, spec, t);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(std::string(w.status().message()), HasSubstr("macro NOT_THERE not defined in"));
  t = Limit({12, 8, 32});  // V1 is not the shipped 16
  w = CheckEdit(ctx_, spec, t);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(std::string(w.status().message()), HasSubstr("values[0] is 12"));
  t = Limit();
  t.macro.clear();
  t.match = "x * LIMIT;";
  t.replace = "x * {V};";
  t.file = "a.c";
  w = CheckEdit(ctx_, spec, t);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->size(), 1u);  // "x * 16;" is not the shipped text: warned
  t.match = "x * NOPE";
  w = CheckEdit(ctx_, spec, t);
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(std::string(w.status().message()), HasSubstr("text not found in"));
}

TEST_F(BuilderTest, FindsObjectsForHeaderMacro) {
  TunableSpec t = Limit();
  auto all = FindAffectedObjects(src_, t, nullptr);
  ASSERT_TRUE(all.ok()) << all.status();
  // a.c uses LIMIT; b.c includes t.h whose inline function uses it; c.c neither.
  EXPECT_THAT(all->objects, ElementsAre("a.o", "b.o"));
  std::set<std::string> built = {"a.c", "c.c"};
  auto some = FindAffectedObjects(src_, t, &built);
  ASSERT_TRUE(some.ok());
  EXPECT_THAT(some->objects, ElementsAre("a.o"));
  EXPECT_THAT(some->skipped, ElementsAre("b.c"));
  // A header whose macro is not used in the header itself: only direct users count.
  TunableSpec u = t;
  u.name = u.macro = "SIZE";
  u.file = "sub/u.h";
  auto size = FindAffectedObjects(src_, u, nullptr);
  ASSERT_TRUE(size.ok());
  EXPECT_THAT(size->objects, ElementsAre("d.o"));
}

TEST(KbuildCommandTest, RewritesOutputOverlayAndDepFile) {
  std::string cmd =
      "x86_64-linux-gnu-gcc-12 -Wp,-MMD,net/ipv4/.tcp_cubic.o.d -nostdinc -I./arch/x86/include "
      "-I./include -fmacro-prefix-map=./= -DKBUILD_MODNAME='\"tcp_cubic\"' -c -o "
      "net/ipv4/tcp_cubic.o net/ipv4/tcp_cubic.c";
  auto d = TempDir::Create(fs::temp_directory_path(), "sie-kb-");
  ASSERT_TRUE(d.ok());
  fs::path ov = d->path();
  fs::create_directories(ov / "include");
  std::string src;
  auto r = RewriteKbuildCommand(cmd, "/tree", ov, "/out/x.o", &src);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(src, "net/ipv4/tcp_cubic.c");
  EXPECT_THAT(*r, Not(HasSubstr("-MMD")));
  EXPECT_THAT(*r, HasSubstr("-o /out/x.o"));
  EXPECT_THAT(*r, HasSubstr("-I" + (ov / "include").string() + " -I./include"));
  EXPECT_THAT(*r, Not(HasSubstr("-I" + (ov / "arch").string())));
  EXPECT_THAT(*r, HasSubstr("-iquote /tree/net/ipv4"));
  EXPECT_THAT(*r, HasSubstr("-ffile-prefix-map=" + ov.string() + "/="));
  EXPECT_THAT(*r, HasSubstr((ov / "net/ipv4/tcp_cubic.c").string()));
  EXPECT_EQ(KbuildSource(cmd), "net/ipv4/tcp_cubic.c");
  EXPECT_THAT(*r, Not(HasSubstr("-g0")));
}

TEST(KbuildCommandTest, BuildsWithoutDebugInfoAfterTheKernelsOwnFlag) {
  std::string cmd =
      "gcc -Wp,-MMD,block/.blk-mq.o.d -O2 -g -DKBUILD_MODNAME='\"blk_mq\"' -c -o "
      "block/blk-mq.o block/blk-mq.c";
  auto d = TempDir::Create(fs::temp_directory_path(), "sie-kb-");
  ASSERT_TRUE(d.ok());
  std::string src;
  auto r = RewriteKbuildCommand(cmd, "/tree", d->path(), "/out/x.o", &src, /*debug_info=*/false);
  ASSERT_TRUE(r.ok()) << r.status();
  // The last -g option wins: -g0 must follow the kernel's -g and precede the source.
  size_t g = r->find(" -g "), g0 = r->find(" -g0 ");
  ASSERT_NE(g, std::string::npos);
  ASSERT_NE(g0, std::string::npos);
  EXPECT_LT(g, g0);
  EXPECT_LT(g0, r->find((d->path() / "block/blk-mq.c").string()));
}

}  // namespace
}  // namespace sie::synth
