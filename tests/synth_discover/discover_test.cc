// sie discover's pure stages on small C snippets: how each occurrence of a name is classified,
// which definitions are candidates with which value, and the spec it writes (parsed back by
// synth's own spec parser).
#include "synth/discover/discover.h"

#include <gtest/gtest.h>

#include "synth/discover/ctoken.h"
#include "synth/discover/definitions.h"
#include "synth/discover/preprocess.h"
#include "synth/discover/uses.h"
#include "synth/spec/spec.h"

namespace sie::synth::discover {
namespace {

std::vector<Use> UsesOf(const std::string& src, const std::string& name) {
  return ClassifyUses(Tokenize(src), {name});
}

std::vector<UseKind> KindsOf(const std::string& src, const std::string& name) {
  std::vector<UseKind> out;
  for (const Use& u : UsesOf(src, name)) out.push_back(u.kind);
  return out;
}

TEST(Tokenize, CommentsStringsAndDirectives) {
  auto t = Tokenize("#define N 4 /* N */\nint x = N; // N\nchar *s = \"N\";\n");
  int n_code = 0, n_dir = 0;
  for (const Token& k : t) {
    if (k.text != "N") continue;
    (k.directive.empty() ? n_code : n_dir)++;
  }
  EXPECT_EQ(n_code, 1);
  EXPECT_EQ(n_dir, 1);
  EXPECT_TRUE(t[0].directive_start);
  EXPECT_EQ(t[0].text, "define");
}

TEST(Classify, LoopBoundInFor) {
  auto k = KindsOf("void f(void) { int i; for (i = 0; i < MAX_TRIES; i++) g(i); }", "MAX_TRIES");
  ASSERT_EQ(k.size(), 1u);
  EXPECT_EQ(k[0], UseKind::kLoopBound);
}

TEST(Classify, CompareArithCallArgAndFunction) {
  auto u = UsesOf(
      "static int f(int x) {\n if (x > LIM) return 1;\n x = x * LIM;\n g(x, LIM);\n"
      " return min(x, LIM);\n}\n",
      "LIM");
  ASSERT_EQ(u.size(), 4u);
  EXPECT_EQ(u[0].kind, UseKind::kCompare);
  EXPECT_EQ(u[0].function, "f");
  EXPECT_EQ(u[1].kind, UseKind::kArith);
  EXPECT_EQ(u[2].kind, UseKind::kCallArg);
  EXPECT_EQ(u[3].kind, UseKind::kCompare);
}

TEST(Classify, ArraySizesAreExcluded) {
  EXPECT_EQ(KindsOf("static int table[NR];", "NR"), std::vector<UseKind>{UseKind::kArraySize});
  EXPECT_EQ(KindsOf("struct s { u32 v[NR]; };", "NR"), std::vector<UseKind>{UseKind::kArraySize});
  EXPECT_EQ(KindsOf("void f(void) { u8 buf[NR]; use(buf); }", "NR"),
            std::vector<UseKind>{UseKind::kArraySize});
  EXPECT_EQ(KindsOf("void f(int *a) { a[NR - 1] = 0; }", "NR"),
            std::vector<UseKind>{UseKind::kIndex});
}

TEST(Classify, BitFieldCaseLabelFlagAndCompileTime) {
  EXPECT_EQ(KindsOf("struct s { unsigned int x : W; };", "W"),
            std::vector<UseKind>{UseKind::kBitField});
  EXPECT_EQ(KindsOf("int f(int x) { switch (x) { case C: return 1; } return 0; }", "C"),
            std::vector<UseKind>{UseKind::kCaseLabel});
  EXPECT_EQ(KindsOf("int f(int x) { return x & F; }", "F"),
            std::vector<UseKind>{UseKind::kBitwise});
  EXPECT_EQ(KindsOf("int f(void) { BUILD_BUG_ON(N > 4); return 0; }", "N"),
            std::vector<UseKind>{UseKind::kCompileTime});
  EXPECT_EQ(KindsOf("static int v = N;", "N"), std::vector<UseKind>{UseKind::kInitializer});
}

TEST(Classify, MemberWithTheSameNameIsNoUse) {
  EXPECT_TRUE(KindsOf("int f(struct s *p) { return p->knob + q.knob; }", "knob").empty());
}

TEST(Classify, UseThroughAFunctionLikeMacro) {
  auto u =
      UsesOf("#define SCALED(x) ((x) * K)\nint f(int y) { return SCALED(y) < 3; }\n", "SCALED");
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].kind, UseKind::kCompare);
  auto k = UsesOf("#define SCALED(x) ((x) * K)\n", "K");
  ASSERT_EQ(k.size(), 1u);
  EXPECT_EQ(k[0].kind, UseKind::kMacroBody);
  EXPECT_EQ(k[0].via, "SCALED");
}

Definition Only(const std::string& src, const std::string& file, const std::string& name) {
  KernelConfig cfg;
  cfg.symbols["CONFIG_HZ"] = "250";
  cfg.symbols["CONFIG_X"] = "1";
  MacroTable m = {{"HZ", "CONFIG_HZ"}};
  for (Definition d : DefinitionsInText(Tokenize(src), src, file, cfg)) {
    if (d.kind == DefKind::kMacro) m[d.name] = d.body;
    if (d.name != name) continue;
    Judge(&d, m, cfg);
    return d;
  }
  return {};
}

TEST(Definitions, ConfigActiveMacroAndValue) {
  std::string src =
      "#ifdef CONFIG_X\n#define BATCH 32\n#else\n#define BATCH 8\n#endif\n"
      "#define DELAY ((unsigned)(HZ / 25))\n";
  Definition b = Only(src, "mm/x.c", "BATCH");
  ASSERT_TRUE(b.value);
  EXPECT_EQ(*b.value, 32);
  EXPECT_EQ(b.line, 2);
  Definition d = Only(src, "mm/x.c", "DELAY");
  ASSERT_TRUE(d.value);
  EXPECT_EQ(*d.value, 10);
  EXPECT_EQ(d.excluded, "");
}

TEST(Definitions, UapiFlagsAndNonIntegersAreExcluded) {
  EXPECT_EQ(Only("#define TCP_NODELAY 1\n", "include/uapi/linux/tcp.h", "TCP_NODELAY").excluded,
            "uapi");
  EXPECT_EQ(Only("#define FOO_MASK 0xff\n", "a.h", "FOO_MASK").excluded, "flag or mask");
  EXPECT_EQ(Only("#define F_X BIT(3)\n", "a.h", "F_X").excluded, "flag or mask");
  EXPECT_EQ(Only("#define NAME \"x\"\n", "a.h", "NAME").excluded, "not an integer constant");
  EXPECT_EQ(Only("#define FN(x) (x)\n", "a.h", "FN").name, "");  // function-like: no candidate
}

TEST(Definitions, StaticConst) {
  Definition d = Only("static const int fifo_batch = 16;\n", "block/mq-deadline.c", "fifo_batch");
  EXPECT_EQ(d.kind, DefKind::kStaticConst);
  ASSERT_TRUE(d.value);
  EXPECT_EQ(*d.value, 16);
  EXPECT_EQ(d.decl, "static const int fifo_batch = 16;");
  EXPECT_EQ(Only("static const char name[] = \"x\";\n", "a.c", "name").name, "");
}

TEST(Preprocess, DashDDAndCommand) {
  auto defs = ParseDashDD(
      "# 1 \"./include/net/tcp.h\" 1\n#define A 1\n\n#define B(x) ((x)+1)\n#undef A\n"
      "# 7 \"/t/net/ipv4/x.c\"\n#define A 3\n",
      "/t");
  ASSERT_EQ(defs.size(), 2u);
  EXPECT_EQ(defs[0].name, "A");
  EXPECT_EQ(defs[0].body, "3");
  EXPECT_EQ(defs[0].file, "net/ipv4/x.c");
  EXPECT_EQ(defs[0].line, 7);
  EXPECT_TRUE(defs[1].function_like);
  EXPECT_EQ(defs[1].line, 3);
  std::string cmd = PreprocessCommand(
      "gcc -Wp,-MMD,a/.b.o.d -nostdinc -DMODULE -DKBUILD_MODNAME='\"b\"' -O2 -c -o a/b.o a/b.c",
      "net/x.c");
  EXPECT_EQ(cmd, "gcc -nostdinc -O2 -I./net -E -dD net/x.c");
}

Candidate Ranked(const std::string& src, const std::string& name) {
  Candidate c;
  c.def = Only(src, "net/ipv4/x.c", name);
  for (Use u : UsesOf(src, name)) {
    if (u.line == c.def.line) continue;
    u.file = "net/ipv4/x.c";
    c.uses.push_back(u);
  }
  c.objects.push_back({"net/ipv4/x.o", true, false, "vmlinux"});
  Rank(&c);
  ChooseValues(&c);
  return c;
}

TEST(Rank, VerdictsAndValues) {
  Candidate loop =
      Ranked("#define TRIES 8\nvoid f(void) { for (int i = 0; i < TRIES; i++) g(); }\n", "TRIES");
  EXPECT_TRUE(loop.ok()) << loop.verdict;
  EXPECT_EQ(loop.values, (std::vector<int64_t>{8, 4, 16}));
  EXPECT_EQ(loop.range_min, 1);
  EXPECT_EQ(loop.range_max, 32);
  Candidate arr =
      Ranked("#define NR 8\nstatic int t[NR];\nint f(int x) { return x < NR; }\n", "NR");
  EXPECT_EQ(arr.verdict, "used as array-size");
  Candidate shift = Ranked("#define S_SHIFT 3\nint f(int x) { return x >> S_SHIFT; }\n", "S_SHIFT");
  EXPECT_EQ(shift.values, (std::vector<int64_t>{3, 2, 4}));
  Candidate u8 = Ranked("static const u8 lim = 200;\nint f(int x) { return x > lim; }\n", "lim");
  EXPECT_EQ(u8.values, (std::vector<int64_t>{200, 100, 199}));
  EXPECT_EQ(u8.range_max, 255);
}

TEST(SpecOut, ParsedBackBySynth) {
  DiscoverReport r;
  r.path = "net/ipv4/x.c";
  r.candidates.push_back(
      Ranked("#define TRIES 8\nvoid f(void) { for (int i = 0; i < TRIES; i++) g(); }\n", "TRIES"));
  r.candidates.push_back(
      Ranked("static const int fifo_batch = 16;\nint f(int x) { return x > fifo_batch; }\n",
             "fifo_batch"));
  auto spec = ParseSpecText(SpecYaml(r, 0), "discovered.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status() << "\n" << SpecYaml(r, 0);
  ASSERT_EQ(spec->tunables.size(), 2u);
  EXPECT_EQ(spec->tunables[0].macro, "TRIES");
  EXPECT_EQ(spec->tunables[0].objects, std::vector<std::string>{"net/ipv4/x.o"});
  EXPECT_EQ(spec->tunables[0].values, (std::vector<int64_t>{8, 4, 16}));
  EXPECT_EQ(spec->tunables[1].name, "FIFO_BATCH");
  EXPECT_EQ(spec->tunables[1].match, "static const int fifo_batch = 16;");
  EXPECT_EQ(spec->tunables[1].replace, "static const int fifo_batch = {V};");
  EXPECT_EQ(spec->kind, TargetKind::kKernel);
}

}  // namespace
}  // namespace sie::synth::discover
