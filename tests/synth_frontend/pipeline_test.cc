// Synthesize() on a plain-object spec (source_dir + build:, compiled with gcc): every tunable
// is attempted, one failing never stops the others, each refusal has its class, and the
// written const.json (no shipped binary: empty expect_bytes) reads back.
#include "synth/pipeline/pipeline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <set>

#include "common/artifact/const_json.h"
#include "common/artifact/consts_dir.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "synth/artifact_types.h"

namespace sie::synth {
namespace {

namespace fs = std::filesystem;
using artifact::ConstToJson;
using artifact::JsonText;
using artifact::ReadIdIndex;
using ::testing::HasSubstr;

constexpr char kSource[] =
    "#define LIMIT 16\n"
    "#define TWICE 3\n"
    "#define TWICE 3\n"
    "#define SIZE 8\n"
    "int a(int x) { return x * LIMIT; }\n"
    "int t(int x) { return x + TWICE; }\n"
    "char buf[SIZE];\n";

// LIMIT is good; the others fail in the spec check, the edit and the build.
constexpr char kSpec[] = R"(source_dir: src
build:
  command: "gcc -O2 -c {src} -o {obj}"
tunables:
  - name: MISSING
    file: a.c
    macro: NOT_THERE
    objects: [a.o]
    values: [1, 2, 3]
    range: [1, 100]
  - name: TWICE
    file: a.c
    macro: TWICE
    objects: [a.o]
    values: [3, 2, 1]
    range: [1, 100]
  - name: LIMIT
    file: a.c
    macro: LIMIT
    objects: [a.o]
    values: [16, 8, 32]
    range: [1, 100]
  - name: SIZE
    file: a.c
    macro: SIZE
    objects: [a.o]
    values: [8, 4, -1]
    range: [-1, 100]
)";

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::Create(fs::temp_directory_path(), "sie-pipeline-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(*d));
    fs::create_directories(dir_->path() / "src");
    ASSERT_TRUE(WriteFileAtomic(dir_->path() / "src/a.c", kSource).ok());
    ASSERT_TRUE(WriteFileAtomic(dir_->path() / "spec.yaml", kSpec).ok());
    // Work dirs go below the cache root: keep them in the test's directory.
    ::setenv("SIE_CACHE", (dir_->path() / "cache").c_str(), 1);
  }
  std::optional<TempDir> dir_;
};

TEST_F(PipelineTest, EveryTunableIsAttemptedAndTheGoodOneWritten) {
  SynthOptions o;
  o.spec = dir_->path() / "spec.yaml";
  o.out = dir_->path() / "out";
  o.compile_stubs = false;  // no clang/bpftool needed
  std::vector<std::string> lines;
  auto rep = Synthesize(o, [&](const std::string& l) { lines.push_back(l); });
  ASSERT_TRUE(rep.ok()) << rep.status();
  ASSERT_EQ(rep->tunables.size(), 4u);
  EXPECT_EQ(rep->failed(), 3u);
  std::map<std::string, const TunableReport*> by_name;
  for (const auto& t : rep->tunables) by_name[t.name] = &t;
  EXPECT_EQ(rep->tunables[0].name, "MISSING");  // spec order
  EXPECT_EQ(by_name["MISSING"]->reason, Refusal::kMacroNotFound);
  EXPECT_EQ(by_name["TWICE"]->reason, Refusal::kMacroAmbiguous);
  EXPECT_EQ(by_name["SIZE"]->reason, Refusal::kBuild);
  EXPECT_THAT(std::string(by_name["SIZE"]->status.message()), HasSubstr("V3=-1 failed"));

  const TunableReport& limit = *by_name["LIMIT"];
  ASSERT_TRUE(limit.ok()) << limit.status;
  EXPECT_EQ(limit.spans, 1u);
  EXPECT_EQ(limit.kinds, std::vector<std::string>{"reg"});
  EXPECT_EQ(limit.formulas, std::vector<std::string>{"X * V"});
  // A plain object has no shipped binary: no bytes to check, and the file is still valid.
  auto c = artifact::ReadConstFile(limit.const_json);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->spans.size(), 1u);
  EXPECT_EQ(c->spans[0].expect_bytes, "");
  EXPECT_TRUE(c->target.kernel_release.empty());
  EXPECT_TRUE(fs::exists(limit.const_json.parent_path() / "stub.bpf.c"));
  // The index names every tunable, failed ones too (their ids stay reserved).
  auto index = ReadIdIndex(o.out);
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(index->ids.size(), 4u);
  // ConstIDs a person can type: 1, 2, 3, ... in spec order, LIMIT's directory is its id.
  EXPECT_EQ(index->ids,
            (std::map<std::string, int>{{"MISSING", 1}, {"TWICE", 2}, {"LIMIT", 3}, {"SIZE", 4}}));
  EXPECT_EQ(limit.id, 3);
  EXPECT_EQ(limit.const_json, o.out / "3" / "const.json");
  EXPECT_THAT(lines, ::testing::Contains(HasSubstr("[1/1")));
}

// `functions:` keeps the spans of the functions it names, intact (the first one kept stays at
// its index: it was once emptied by a self-move).
TEST_F(PipelineTest, FunctionsFilterKeepsTheSpansItNames) {
  ASSERT_TRUE(WriteFileAtomic(dir_->path() / "src/f.c",
                              "#define LIM 16\n"
                              "int f(int x) { return x * LIM; }\n"
                              "int g(int x) { return x + LIM; }\n")
                  .ok());
  ASSERT_TRUE(WriteFileAtomic(dir_->path() / "f.yaml", R"(source_dir: src
build:
  command: "gcc -O2 -c {src} -o {obj}"
tunables:
  - name: LIM
    file: f.c
    macro: LIM
    objects: [f.o]
    functions: [f]
    values: [16, 8, 32]
    range: [1, 100]
)")
                  .ok());
  SynthOptions o;
  o.spec = dir_->path() / "f.yaml";
  o.out = dir_->path() / "fout";
  o.compile_stubs = false;
  auto rep = Synthesize(o, [](const std::string&) {});
  ASSERT_TRUE(rep.ok()) << rep.status();
  ASSERT_EQ(rep->tunables.size(), 1u);
  ASSERT_TRUE(rep->tunables[0].ok()) << rep->tunables[0].status;
  auto c = artifact::ReadConstFile(rep->tunables[0].const_json);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->spans.size(), 1u);
  EXPECT_EQ(c->spans[0].function, "f");
  EXPECT_EQ(c->spans[0].formula, "X * V");
}

TEST_F(PipelineTest, OnlySelectsAndUnknownNamesAreErrors) {
  SynthOptions o;
  o.spec = dir_->path() / "spec.yaml";
  o.out = dir_->path() / "out";
  o.compile_stubs = false;
  o.only = {"MISSING"};
  auto rep = Synthesize(o, nullptr);
  ASSERT_TRUE(rep.ok()) << rep.status();
  ASSERT_EQ(rep->tunables.size(), 1u);
  EXPECT_EQ(rep->tunables[0].reason, Refusal::kMacroNotFound);
  o.only = {"NOPE"};
  rep = Synthesize(o, nullptr);
  ASSERT_FALSE(rep.ok());
  EXPECT_THAT(std::string(rep.status().message()), HasSubstr("--only NOPE"));
  // By ConstID (LIMIT is 3, the spec's third) and by name in any case.
  for (const char* arg : {"3", "limit"}) {
    o.only = {arg};
    rep = Synthesize(o, nullptr);
    ASSERT_TRUE(rep.ok()) << arg << ": " << rep.status();
    ASSERT_EQ(rep->tunables.size(), 1u) << arg;
    EXPECT_EQ(rep->tunables[0].name, "LIMIT") << arg;
    EXPECT_EQ(rep->tunables[0].id, 3) << arg;
  }
}

// An --out an older sie wrote (hash ids, no id_scheme in index.json) is renumbered the first
// time synth writes into it: a constant this run does not select moves to its new id with its
// stub generated again, and the index is of the new scheme.
TEST_F(PipelineTest, LegacyOutIsRenumberedAndItsArtifactsGeneratedAgain) {
  SynthOptions o;
  o.spec = dir_->path() / "spec.yaml";
  o.out = dir_->path() / "out";
  o.compile_stubs = false;
  o.only = {"LIMIT"};
  ASSERT_TRUE(Synthesize(o, nullptr).ok());
  // Make it what an older sie left: LIMIT at its hash id 757, the stub embedding it.
  fs::rename(o.out / "3", o.out / "757");
  auto j = nlohmann::json::parse(*ReadFile(o.out / "757/const.json"));
  j["id"] = 757;
  ASSERT_TRUE(WriteFileAtomic(o.out / "757/const.json", JsonText(j)).ok());
  ASSERT_TRUE(
      WriteFileAtomic(o.out / "757/stub.bpf.c", "/* Stub of constant LIMIT (id 757) */").ok());
  ASSERT_TRUE(WriteFileAtomic(o.out / "index.json", R"({"format_version": 1, "constants": [
      {"id": 15, "name": "MISSING"}, {"id": 312, "name": "TWICE"},
      {"id": 757, "name": "LIMIT", "dir": "757"}, {"id": 943, "name": "SIZE"}], "retired": []})")
                  .ok());

  o.only = {"TWICE"};  // fails in its edit: LIMIT is not written by this run
  std::vector<std::string> lines;
  auto rep = Synthesize(o, [&](const std::string& l) { lines.push_back(l); });
  ASSERT_TRUE(rep.ok()) << rep.status();
  EXPECT_EQ(rep->tunables[0].id, 2);
  EXPECT_THAT(lines, ::testing::Contains(HasSubstr("757 -> 3")));
  EXPECT_FALSE(fs::exists(o.out / "757"));
  auto c = artifact::ReadConstFile(o.out / "3/const.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->name, "LIMIT");
  EXPECT_EQ(c->id, 3);
  auto stub = ReadFile(o.out / "3/stub.bpf.c");
  ASSERT_TRUE(stub.ok());
  EXPECT_THAT(*stub, HasSubstr("(id 3)"));
  EXPECT_THAT(*stub, ::testing::Not(HasSubstr("757")));
  auto index = ReadIdIndex(o.out);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->scheme, artifact::kIdScheme);
  EXPECT_EQ(index->ids,
            (std::map<std::string, int>{{"MISSING", 1}, {"TWICE", 2}, {"LIMIT", 3}, {"SIZE", 4}}));
  EXPECT_EQ(index->next_id, 5);
}

TEST(RefusalTest, ClassesRoundTripAndSurviveContext) {
  std::set<std::string> names;
  for (int i = 0; i <= static_cast<int>(kLastRefusal); ++i) {
    Refusal r = static_cast<Refusal>(i);
    names.insert(RefusalName(r));
    absl::Status s = WithContext(Classified(absl::InternalError("x"), r), "while testing");
    EXPECT_EQ(RefusalOf(s), r) << RefusalName(r);
    EXPECT_EQ(s.message(), "while testing: x");
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(kLastRefusal) + 1);  // distinct names
  // The innermost class wins; an unclassified status reads as kUnclassified.
  absl::Status inner = Classified(absl::InternalError("x"), Refusal::kTwoInputs);
  EXPECT_EQ(RefusalOf(Classified(inner, Refusal::kSpec)), Refusal::kTwoInputs);
  EXPECT_EQ(RefusalOf(absl::InternalError("x")), Refusal::kUnclassified);
  EXPECT_TRUE(Classified(absl::OkStatus(), Refusal::kSpec).ok());
}

TEST(ConstReaderTest, EmptyExpectBytesOnlyForPlainObjects) {
  SynthesizedConst c;
  c.id = 7;
  c.name = "X";
  c.values = {1, 2, 3};
  c.range_min = 0;
  c.range_max = 9;
  c.target.binary = "a.o";
  CriticalSpan s;
  s.function = "f";
  s.kind = SpanKind::kReg;
  s.target_reg = "ax";
  s.formula = "V";
  c.spans.push_back(s);
  auto plain = artifact::ParseConstJson(JsonText(ConstToJson(c)), "const.json");
  EXPECT_TRUE(plain.ok()) << plain.status();
  c.target.binary = "vmlinux";
  c.target.kernel_release = "6.12.117+deb12-amd64";
  auto kernel = artifact::ParseConstJson(JsonText(ConstToJson(c)), "const.json");
  ASSERT_FALSE(kernel.ok());
  EXPECT_THAT(std::string(kernel.status().message()), HasSubstr("spans[0].expect_bytes"));
}

}  // namespace
}  // namespace sie::synth
