// Host unit tests of the runtime's pure parts: formula validation and code generation, the
// const.json reader's errors, deterministic stub generation, the kernel-bytes comparison, and
// (with the host kernel, which can LOAD kprobe programs but never attaches them here) the weak
// decision hook replaced by a strong policy definition through libbpf's static linker.
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "common/artifact/consts_dir.h"
#include "common/artifact/formula.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/process.h"
#include "common/elf/elf_file.h"
#include "common/stubgen/stub_build.h"
#include "common/stubgen/stubgen.h"
#include "gtest/gtest.h"
#include "runtime/loader/global_spans.h"
#include "runtime/loader/kernel.h"

namespace sie {
namespace {
namespace fs = std::filesystem;
using artifact::Formula;

const fs::path kFixtures = fs::path(SIE_SOURCE_DIR) / "tests/runtime/fixtures/sie_target";

TEST(Formula, AcceptsArithmeticAndEvaluatesLikeU64) {
  auto f = Formula::Parse("(V << 3) + X * 2 - ~0 ^ 0x10 | V % 7 & 255");
  ASSERT_TRUE(f.ok()) << f.status();
  uint64_t v = 5, x = 9;
  EXPECT_EQ(*f->Eval(v, x), ((v << 3) + x * 2 - ~0ULL ^ 0x10 | v % 7 & 255));
  EXPECT_EQ(*Formula::Parse("-V")->Eval(1), UINT64_MAX);
  EXPECT_EQ(*Formula::Parse("16ULL*V")->Eval(2), 32u);
}

TEST(Formula, GuardsDivisionAndShifts) {
  auto f = Formula::Parse("X / V");
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->Eval(0, 10).has_value());
  EXPECT_EQ(*f->Eval(3, 10), 3u);
  EXPECT_FALSE(Formula::Parse("X << V")->Eval(64, 1).has_value());
  EXPECT_FALSE(Formula::Parse("X % V")->Eval(0, 1).has_value());
  std::string c = f->EmitC();
  EXPECT_EQ(c, "sie_div(X, V, &bad)");
  EXPECT_EQ(Formula::Parse("V >> 2")->EmitC(), "sie_shr(V, 2ULL, &bad)");
}

TEST(Formula, RefusesAnythingElse) {
  for (const char* bad : {"V; bpf_probe_write_user()",
                          "foo(V)",
                          "V && X",
                          "V || 1",
                          "(V",
                          "V +",
                          "Y",
                          "V = 3",
                          "V <== 3",
                          "V <<= 2",
                          "(int)V",
                          "V ? 1",
                          "V ? : 2",
                          "V < < 3",
                          "V =< 3",
                          "!V",
                          "0x",
                          "99999999999999999999",
                          "1.5",
                          "\"s\"",
                          "V[0]",
                          "X->y",
                          ""}) {
    auto f = Formula::Parse(bad);
    EXPECT_FALSE(f.ok()) << bad;
    if (!f.ok()) EXPECT_TRUE(absl::StrContains(MessageWithHint(f.status()), "hint:")) << bad;
  }
  EXPECT_FALSE(Formula::Parse("X + V", "V").ok());  // X not allowed where it is not defined
  EXPECT_TRUE(Formula::Parse("R - 3", "R").ok());
}

// Comparisons (unsigned, 1 or 0) and the conditional: what min/max/clamp code (cmov, setcc)
// becomes; only the branch taken is evaluated, so the other may be undefined.
TEST(Formula, ComparisonsAndConditional) {
  struct Case {
    const char* f;
    uint64_t v, x, want;
  };
  for (const Case& c :
       {Case{"X < V ? X : V", 10, 3, 3}, Case{"X < V ? X : V", 10, 30, 10},
        Case{"V <= 10", 10, 0, 1}, Case{"V > 10", 10, 0, 0}, Case{"V >= 11 | X == 2", 10, 2, 1},
        Case{"V != 10", 10, 0, 0}, Case{"V ? X / V : 7", 0, 5, 7}, Case{"V ? X / V : 7", 2, 5, 2},
        Case{"1 ? 2 : 3 ? 4 : 5", 0, 0, 2}, Case{"0 ? 2 : 0 ? 4 : 5", 0, 0, 5},
        Case{"(V << 1 < 16) + 1", 7, 0, 2}, Case{"~0 > 1", 0, 0, 1}}) {
    auto f = Formula::Parse(c.f);
    ASSERT_TRUE(f.ok()) << c.f << ": " << f.status();
    auto got = f->Eval(c.v, c.x);
    ASSERT_TRUE(got.has_value()) << c.f;
    EXPECT_EQ(*got, c.want) << c.f;
  }
  auto f = Formula::Parse("X < V ? X : V");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->EmitC(), "(((__u64)(X < V)) ? X : V)");
  EXPECT_TRUE(f->Uses('X'));
  auto g = Formula::Parse("V ? 1 : X");
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->Uses('X'));  // the else branch counts
  EXPECT_FALSE(Formula::Parse("V ? X / 0 : 1")->Eval(1).has_value());
}

// sie set compares the artifact's build id with the running kernel's (/sys/kernel/notes) or
// module's (/sys/module/<m>/notes/.note.gnu.build-id): raw notes, parsed here.
TEST(BuildId, FromRawNotes) {
  auto note = [](uint32_t type, std::string name, std::string desc) {
    uint32_t h[3] = {static_cast<uint32_t>(name.size()), static_cast<uint32_t>(desc.size()), type};
    std::string out(reinterpret_cast<const char*>(h), sizeof h);
    name.resize((name.size() + 3) & ~size_t{3}, '\0');
    desc.resize((desc.size() + 3) & ~size_t{3}, '\0');
    return out + name + desc;
  };
  const std::string xen = note(1, std::string("Xen\0", 4), "abcd");
  const std::string gnu = note(3, std::string("GNU\0", 4), std::string("\x01\x23\xab\xff\x00", 5));
  auto id = elf::BuildIdInNotes(xen + gnu);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, "0123abff00");
  EXPECT_EQ(*elf::BuildIdInNotes(xen), "");
  EXPECT_FALSE(elf::BuildIdInNotes((xen + gnu).substr(0, xen.size() + 14)).ok());
  // The same id as libelf reads from a file's note section (sie's own binary).
  const std::string self = "/proc/self/exe";
  auto raw = elf::ReadElfSection(self, ".note.gnu.build-id");
  ASSERT_TRUE(raw.ok()) << raw.status();
  auto want = elf::ReadBuildId(self);
  ASSERT_TRUE(want.ok());
  ASSERT_FALSE(want->empty());
  EXPECT_EQ(*elf::BuildIdInNotes(*raw), *want);
}

TEST(ConstReader, ReadsEveryFixture) {
  auto all = artifact::ListConsts(kFixtures);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 9u);  // 101..109
  auto e = artifact::FindConst(kFixtures, "sie_target_call_arg");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->c.id, 102);
  EXPECT_EQ(e->c.spans[0].target_reg, "si");
  EXPECT_EQ(e->c.spans[0].width, 4);
  // `sie set` and `sie-run --const` take the id as well (the fixtures are hand-numbered).
  auto by_id = artifact::FindConst(kFixtures, "105");
  ASSERT_TRUE(by_id.ok()) << by_id.status();
  EXPECT_EQ(by_id->c.name, "SIE_TARGET_SCALE");
  EXPECT_FALSE(artifact::FindConst(kFixtures, "110").ok());
  auto missing = artifact::FindConst(kFixtures, "NOPE");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::StrContains(MessageWithHint(missing.status()), "SIE_TARGET_CALL_ARG"));
}

TEST(ConstReader, NamesTheBadField) {
  auto text = ReadFile(kFixtures / "102/const.json");
  ASSERT_TRUE(text.ok());
  struct Case {
    std::string from, to, field;
  } cases[] = {
      {"\"width\": 4", "\"width\": 3", "spans[0].width"},
      {"\"width\": 4", "\"width\": \"4\"", "spans[0].width"},
      {"\"kind\": \"reg\"", "\"kind\": \"regs\"", "spans[0].kind"},
      {"\"target\": \"si\"", "\"target\": \"xmm0\"", "spans[0].target"},
      {"\"expect_bytes\": \"ebd0\"", "\"expect_bytes\": \"ebd\"", "spans[0].expect_bytes"},
      {"\"format_version\": 1", "\"format_version\": 7", "format_version"},
      {"\"name\": \"SIE_TARGET_CALL_ARG\"", "\"name\": \"A-B\"", "name"},
  };
  for (const auto& c : cases) {
    std::string t = absl::StrReplaceAll(*text, {{c.from, c.to}});
    ASSERT_NE(t, *text) << c.from;
    auto r = artifact::ParseConstJson(t, "x.json");
    ASSERT_FALSE(r.ok()) << c.to;
    EXPECT_TRUE(absl::StrContains(r.status().message(), c.field)) << r.status();
  }
  EXPECT_FALSE(artifact::ParseConstJson("{not json", "x.json").ok());
  EXPECT_EQ(artifact::NormalizeReg("%R8D"), "r8");
  EXPECT_EQ(artifact::NormalizeReg("sil"), "si");
  EXPECT_EQ(artifact::NormalizeReg("xmm1"), "");
}

TEST(StubGen, DeterministicWithBannerAndWeakHook) {
  auto all = artifact::ListConsts(kFixtures);
  ASSERT_TRUE(all.ok());
  for (const auto& e : *all) {
    auto a = stubgen::GenerateStub(e.c);
    auto b = stubgen::GenerateStub(e.c);
    ASSERT_TRUE(a.ok()) << e.c.name << ": " << a.status();
    EXPECT_EQ(a->source, b->source);
    EXPECT_EQ(a->header, b->header);
    EXPECT_TRUE(absl::StrContains(a->source, "generated by sie, do not edit"));
    EXPECT_TRUE(absl::StrContains(a->source, "__attribute__((weak)) __noinline __s64 " +
                                                 a->decide_fn + "(struct pt_regs *ctx"));
    EXPECT_TRUE(absl::StrContains(a->source, "int SIE_PROG(sie_apply_0)(struct pt_regs *ctx)"));
  }
  // A bad formula never reaches the generated C.
  auto e = artifact::FindConst(kFixtures, "SIE_TARGET_CALL_ARG");
  e->c.spans[0].formula = "V); bpf_override_return(ctx, 0";
  EXPECT_FALSE(stubgen::GenerateStub(e->c).ok());
}

// Flags spans of add/sub/test: the stub recomputes that instruction with the new immediate
// (sie_set_flags_op); add/sub also rewrite their register, from X recovered at the probe.
TEST(StubGen, FlagsSpansOfArithmeticInstructions) {
  auto e = artifact::FindConst(kFixtures, "SIE_TARGET_THRESHOLD");
  ASSERT_TRUE(e.ok()) << e.status();
  artifact::SynthesizedConst c = e->c;
  ASSERT_EQ(c.spans[0].kind, artifact::SpanKind::kFlags);
  ASSERT_EQ(c.spans[0].target_reg, "di");
  auto cmp = stubgen::GenerateStub(c);
  ASSERT_TRUE(cmp.ok()) << cmp.status();
  EXPECT_TRUE(absl::StrContains(cmp->source, "\tX = ctx->di;\n"));
  EXPECT_TRUE(absl::StrContains(cmp->source, "sie_set_flags(ctx, X, nv,"));

  c.spans[0].flags_op = "add";
  c.spans[0].x_from_probe = "R - 10";
  auto add = stubgen::GenerateStub(c);
  ASSERT_TRUE(add.ok()) << add.status();
  EXPECT_TRUE(absl::StrContains(add->source, "\tR = ctx->di;\n\tX = (R - 10ULL);\n"))
      << add->source;
  const std::string w = absl::StrCat(c.spans[0].width);
  EXPECT_TRUE(absl::StrContains(add->source,
                                absl::StrCat("sie_set_flags_op(ctx, SIE_FLAGS_OP_ADD, X, nv, ", w)))
      << add->source;
  EXPECT_TRUE(
      absl::StrContains(add->source, absl::StrCat("sie_set_reg(ctx, SIE_REG_DI, X + nv, ", w)))
      << add->source;

  c.spans[0].flags_op = "sub";
  c.spans[0].x_from_probe = "";
  auto sub = stubgen::GenerateStub(c);
  ASSERT_FALSE(sub.ok());
  EXPECT_TRUE(absl::StrContains(sub.status().message(), "x_from_probe")) << sub.status();

  c.spans[0].flags_op = "test";
  auto test = stubgen::GenerateStub(c);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_TRUE(absl::StrContains(test->source, "sie_set_flags_op(ctx, SIE_FLAGS_OP_AND, X, nv,"));
  EXPECT_FALSE(absl::StrContains(test->source, "sie_set_reg("));

  // A predicate: the formula is the jump's decision, the flags set through fixed operands.
  c.spans[0].flags_op = "pred";
  c.spans[0].flags_cc = "jbe";
  c.spans[0].formula = "(X & 0xff) < 36";
  auto pred = stubgen::GenerateStub(c);
  ASSERT_TRUE(pred.ok()) << pred.status();
  EXPECT_TRUE(absl::StrContains(
      pred->source, "sie_set_flags_op(ctx, SIE_FLAGS_OP_SUB, nv ? 0 : 1, nv ? 0 : 0, 1)"))
      << pred->source;
  c.spans[0].flags_cc = "jo";
  auto jo = stubgen::GenerateStub(c);
  ASSERT_FALSE(jo.ok());
  EXPECT_TRUE(absl::StrContains(jo.status().message(), "`jo`")) << jo.status();

  c.spans[0].flags_op = "imul";
  auto imul = stubgen::GenerateStub(c);
  ASSERT_FALSE(imul.ok());
  EXPECT_TRUE(absl::StrContains(imul.status().message(), "'imul' cannot be recomputed"))
      << imul.status();
}

TEST(KernelBytes, ExactWildcardAndRelocated) {
  using loader::BytesMatch;
  EXPECT_TRUE(BytesMatch("ebd0", "\xeb\xd0", false));
  EXPECT_FALSE(BytesMatch("ebd0", "\xcc\xd0", false));  // an int3 of someone else's kprobe
  EXPECT_TRUE(BytesMatch("eb??", "\xeb\x11", false));
  // A module's relocated call/jmp written as '??', and its return thunk patched to ret; int3.
  EXPECT_TRUE(BytesMatch("e9????????", std::string("\xc3\xcc\xcc\xcc\xcc", 5), true));
  EXPECT_TRUE(BytesMatch("e8????????", std::string("\xe8\x12\x34\x56\x78", 5), true));
  // `lock` rewritten to `ds` by the kernel on one CPU; only as the first (prefix) byte.
  EXPECT_TRUE(BytesMatch("f00fb115", "\x3e\x0f\xb1\x15", false));
  EXPECT_FALSE(BytesMatch("b8f0000000", std::string("\xb8\x3e\x00\x00\x00", 5), false));
  EXPECT_TRUE(BytesMatch("e900000000", std::string("\xe9\x12\x34\x56\x78", 5), true));
  EXPECT_TRUE(BytesMatch("e900000000", std::string("\xc3\xcc\xcc\xcc\xcc", 5), true));
  EXPECT_FALSE(BytesMatch("e900000000", std::string("\xe9\x12\x34\x56\x78", 5), false));
}

// An armed int3 kprobe changes only the first byte: the rest must still match.
TEST(KernelBytes, UnderAnotherKprobesInt3OnlyTheFirstByteMayDiffer) {
  using loader::BytesMatchUnderInt3;
  EXPECT_TRUE(BytesMatchUnderInt3("ebd0", "\xcc\xd0", false));
  EXPECT_FALSE(BytesMatchUnderInt3("ebd0", "\xcc\xd1", false));  // a second byte differs
  EXPECT_FALSE(BytesMatchUnderInt3("ebd0", "\xeb\xd0", false));  // no int3: use BytesMatch
  EXPECT_FALSE(BytesMatchUnderInt3("ebd0", "", false));
  // A jump-optimized probe's jmp rel32 covers 5 bytes: not accepted.
  EXPECT_FALSE(BytesMatchUnderInt3("4889c7e800000000",
                                   std::string("\xe9\x01\x02\x03\x04\x00\x00\x00", 8), true));
  // The relocated call after the int3 still matches as module code.
  EXPECT_TRUE(BytesMatchUnderInt3("e800000000", std::string("\xcc\x12\x34\x56\x78", 5), true));
}

// Compiles a BPF C file like the stubs are compiled (host kernel: no kfuncs).
absl::Status CompileBpf(const fs::path& src, const fs::path& out) {
  auto r = Run({SIE_BPF_CLANG, "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86",
                std::string("-I") + SIE_VMLINUX_H_DIR,
                std::string("-I") + SIE_SOURCE_DIR + "/bpf/include",
                std::string("-I") + SIE_SOURCE_DIR + "/kmod/include", "-idirafter",
                "/usr/include/x86_64-linux-gnu", "-c", src.string(), "-o", out.string()});
  if (!r.ok()) return r.status();
  if (!r->ok()) return absl::InternalError(r->err);
  return absl::OkStatus();
}

// The binding of `name` in an ELF object's symbol table (STB_*), or -1.
int SymbolBinding(const fs::path& obj, const std::string& name) {
  elf_version(EV_CURRENT);
  int fd = open(obj.c_str(), O_RDONLY);
  Elf* elf = elf_begin(fd, ELF_C_READ, nullptr);
  int bind = -1, count = 0;
  for (Elf_Scn* scn = nullptr; (scn = elf_nextscn(elf, scn));) {
    GElf_Shdr sh;
    gelf_getshdr(scn, &sh);
    if (sh.sh_type != SHT_SYMTAB) continue;
    Elf_Data* d = elf_getdata(scn, nullptr);
    for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; ++i) {
      GElf_Sym s;
      gelf_getsym(d, i, &s);
      const char* n = elf_strptr(elf, sh.sh_link, s.st_name);
      if (n && name == n && s.st_shndx != SHN_UNDEF) {
        bind = GELF_ST_BIND(s.st_info);
        ++count;
      }
    }
  }
  elf_end(elf);
  close(fd);
  return count == 1 ? bind : -1 - count;
}

// ---- mode 2: span exits from code bytes ----

std::string Unhex(absl::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  return out;
}

std::string Exits(const absl::StatusOr<loader::GlobalSpan>& g, uint64_t base) {
  if (!g.ok()) return g.status().ToString();
  std::string s;
  for (uint64_t e : g->exits) s += absl::StrCat(s.empty() ? "" : ",", e - base);
  return s;
}

TEST(GlobalSpans, BatchCycleLeavesThroughItsReturnThunkJump) {
  // sie_target_batch_cycle from sie_target.ko (gcc 12, unrelocated: the tail `jmp
  // __x86_return_thunk` at +0x50 points at +0x55, past the span) plus its alignment padding.
  const std::string code = Unhex(
      "e80000000053ba020000004889fbbec8000000c7470840000000bf64000000e800000000c7430c4000000"
      "08b53088b430c39c27408f048ff05000000008b430c48890500000000f048ff05000000005be900000000"
      "66662e0f1f840000000000");
  const uint64_t base = 0xffffffffc0001490;
  auto g = loader::AnalyzeGlobalSpan(code, base, base, base + 0x55, 8);
  EXPECT_EQ(Exits(g, base), "80");  // 0x50
  // The live code after the kernel patched the return thunk into `ret; int3`, over the whole
  // symbol (kallsyms size, padding included): the padding is never reached.
  std::string live = code;
  live[0x50] = '\xc3';
  live[0x51] = '\xcc';
  EXPECT_EQ(Exits(loader::AnalyzeGlobalSpan(live, base, base, base + 0x55, 8), base), "80");
  EXPECT_EQ(Exits(loader::AnalyzeGlobalSpan(live, base, base, base + live.size(), 8), base), "80");
}

TEST(GlobalSpans, ConditionalExitsAndFallThroughEnd) {
  // 0: push rbp; 1: test edi,edi; 3: je 0xb; 5: mov eax,edi; 7: add eax,eax; 9: pop rbp;
  // a: ret; b: xor eax,eax; d: pop rbp; e: ret
  const std::string code = Unhex("5585ff740689f801c05dc331c05dc3");
  const uint64_t b = 0x1000;
  EXPECT_EQ(Exits(loader::AnalyzeGlobalSpan(code, b, b + 1, b + 9, 8), b), "9,11");
  EXPECT_EQ(Exits(loader::AnalyzeGlobalSpan(code, b, b + 5, b + 9, 8), b), "9");
  EXPECT_EQ(Exits(loader::AnalyzeGlobalSpan(code, b, b, b + code.size(), 8), b), "10,14");
  // The je at +3 (outside) jumps past the entry of [9, 15).
  auto g = loader::AnalyzeGlobalSpan(code, b, b + 9, b + 15, 8);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(absl::StrContains(g.status().message(), "past its entry")) << g.status();
  EXPECT_TRUE(absl::StrContains(MessageWithHint(g.status()), "hint: use --mode 1")) << g.status();
  // An exit cap.
  EXPECT_FALSE(loader::AnalyzeGlobalSpan(code, b, b + 1, b + 9, 1).ok());
}

TEST(GlobalSpans, RefusesWhatItCannotCount) {
  // 0: test edi,edi; 2: je 8; 4: mov eax,edi; 6: add eax,eax; 8: ret. The fall-through exit of
  // [4, 8) is also the je's target: a task that never entered would count down.
  const std::string shared = Unhex("85ff740489f801c0c3");
  const uint64_t b = 0x2000;
  auto g = loader::AnalyzeGlobalSpan(shared, b, b + 4, b + 8, 8);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(absl::StrContains(g.status().message(), "also reached from outside")) << g.status();
  EXPECT_EQ(Exits(loader::AnalyzeGlobalSpan(shared, b, b, b + 8, 8), b), "8");
  // A loop back to the entry: inc edi; jne 0; ret.
  g = loader::AnalyzeGlobalSpan(Unhex("ffc775fcc3"), b, b, b + 5, 8);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(absl::StrContains(g.status().message(), "target of a jump")) << g.status();
  // jmp rax.
  g = loader::AnalyzeGlobalSpan(Unhex("31c0ffe0"), b, b, b + 4, 8);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(absl::StrContains(g.status().message(), "indirect jump")) << g.status();
  // An end in the middle of an instruction (mov eax, 0x12345678 is 5 bytes).
  g = loader::AnalyzeGlobalSpan(Unhex("b878563412c3"), b, b, b + 3, 8);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(absl::StrContains(g.status().message(), "crosses")) << g.status();
}

TEST(WeakStrongLink, PolicyReplacesDefaultAndHostVerifierAccepts) {
  auto tmp = TempDir::Create(fs::temp_directory_path(), "sie-link-");
  ASSERT_TRUE(tmp.ok());
  setenv("SIE_CACHE_DIR", tmp->path().c_str(), 1);
  auto e = artifact::FindConst(kFixtures, "SIE_TARGET_CALL_ARG");
  ASSERT_TRUE(e.ok());
  e->path = tmp->path() / "102/const.json";  // compiled objects go to the cache, not the tree
  auto stub = stubgen::BuildStub(*e, false, "-DSIE_NO_KFUNCS");
  ASSERT_TRUE(stub.ok()) << stub.status();
  const std::string fn = "sie_decide_sie_target_call_arg";
  EXPECT_EQ(SymbolBinding(stub->object, fn), STB_WEAK);

  fs::path pol = tmp->path() / "policy.bpf.o";
  ASSERT_TRUE(
      CompileBpf(fs::path(SIE_SOURCE_DIR) / "tests/runtime/bpf/policy_double.bpf.c", pol).ok());
  fs::path linked = tmp->path() / "linked.bpf.o";
  auto st = stubgen::LinkObjects({stub->object, pol}, linked);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(SymbolBinding(linked, fn), STB_GLOBAL);  // one definition left: the strong one

  // Weak alone links too (no policy), and two strong definitions do not.
  EXPECT_TRUE(stubgen::LinkObjects({stub->object}, tmp->path() / "alone.bpf.o").ok());
  EXPECT_FALSE(stubgen::LinkObjects({stub->object, pol, pol}, tmp->path() / "dup.bpf.o").ok());

  // The host kernel loads (verifies) kprobe programs; attaching is never done here.
  if (geteuid() != 0) GTEST_SKIP() << "loading BPF needs root";
  for (const fs::path& p : {stub->object, linked}) {
    bpf_object* obj = bpf_object__open_file(p.c_str(), nullptr);
    ASSERT_NE(obj, nullptr) << p;
    int err = bpf_object__load(obj);
    EXPECT_EQ(err, 0) << "host verifier refused " << p;
    if (!err) {
      EXPECT_NE(bpf_object__find_program_by_name(obj, "sie_apply_0"), nullptr);
      EXPECT_NE(bpf_object__find_program_by_name(obj, "sie_guard"), nullptr);
    }
    bpf_object__close(obj);
  }
}

}  // namespace
}  // namespace sie
