// The output stage's per-constant artifacts (EmitRuntimeArtifacts): stub sources, the compiled
// object under the runtime's hash name, the libbpf skeleton and the typed C++ view. Real clang and
// bpftool runs on the hand-written sie_target fixtures; no kernel access.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <map>

#include "common/artifact/consts_dir.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/stubgen/stub_build.h"
#include "common/stubgen/stubgen.h"

namespace sie::synth {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const fs::path kFixtures = fs::path(SIE_SOURCE_DIR) / "tests/runtime/fixtures/sie_target";

// Copies fixture <id> into <root>/<id>/const.json and returns that directory.
fs::path CopyFixture(const fs::path& root, const std::string& id) {
  fs::path dir = root / id;
  fs::create_directories(dir);
  fs::copy_file(kFixtures / id / "const.json", dir / "const.json");
  return dir;
}

// Every file of `dir` (name -> bytes).
std::map<std::string, std::string> Files(const fs::path& dir) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) m[e.path().filename().string()] = *ReadFile(e.path());
  return m;
}

std::string ObjectName(const std::map<std::string, std::string>& files) {
  for (const auto& [n, text] : files)
    if (n.rfind("stub-", 0) == 0 && n.size() > 6 && n.substr(n.size() - 6) == ".bpf.o") return n;
  return "";
}

class ArtifactsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Create(fs::temp_directory_path(), "sie-artifacts-");
    ASSERT_TRUE(t.ok());
    tmp_.emplace(std::move(*t));
  }
  // A fresh stub cache per call, so each run really compiles instead of copying a cached object.
  absl::Status Emit(const fs::path& dir, bool compile = true) {
    static int n = 0;
    fs::path cache = tmp_->path() / ("cache" + std::to_string(n++));
    setenv("SIE_CACHE_DIR", cache.c_str(), 1);
    stubgen::ArtifactOptions o;
    o.compile = compile;
    o.progress = [this](const std::string& s) { progress_.push_back(s); };
    return stubgen::EmitArtifacts(dir, o);
  }
  std::optional<TempDir> tmp_;
  std::vector<std::string> progress_;
};

TEST_F(ArtifactsTest, ObjectSkeletonAndViewAreWrittenAndDeterministic) {
  // SIE_TARGET_SCALE: a recompute span, so the stub has a save program too.
  fs::path a = CopyFixture(tmp_->path() / "a", "105");
  fs::path b = CopyFixture(tmp_->path() / "b", "105");
  ASSERT_TRUE(Emit(a).ok());
  EXPECT_THAT(progress_, ::testing::Contains("compiling stub of SIE_TARGET_SCALE"));
  auto fa = Files(a);
  const std::string obj = ObjectName(fa);
  ASSERT_FALSE(obj.empty()) << "no stub-<hash>.bpf.o in " << a;
  for (const char* f : {"const.json", "stub.bpf.c", "sie_target_scale.h", "sie_target_scale.skel.h",
                        "sie_target_scale.hpp"})
    EXPECT_TRUE(fa.count(f)) << f;
  EXPECT_EQ(fa.size(), 6u);
  // An ELF BPF object, its skeleton (struct sie_target_scale_stub) and the view over it.
  EXPECT_EQ(fa[obj].substr(0, 4),
            "\x7f"
            "ELF");
  EXPECT_THAT(fa["sie_target_scale.skel.h"], HasSubstr("struct sie_target_scale_stub {"));
  EXPECT_THAT(fa["sie_target_scale.skel.h"], HasSubstr("sie_apply_0"));
  EXPECT_THAT(fa["sie_target_scale.skel.h"], HasSubstr("sie_save_0"));
  for (const char* f : {"stub.bpf.c", "sie_target_scale.h", "sie_target_scale.hpp"})
    EXPECT_THAT(fa[f], HasSubstr(stubgen::kStubBanner)) << f;
  const std::string& view = fa["sie_target_scale.hpp"];
  EXPECT_THAT(view, HasSubstr("class SieTargetScale {"));
  EXPECT_THAT(view, HasSubstr("#include \"sie_target_scale.skel.h\""));
  EXPECT_THAT(view, HasSubstr("case 0: return skel_->progs.sie_apply_0;"));
  EXPECT_THAT(view, HasSubstr("case 0: return skel_->progs.sie_save_0;"));
  EXPECT_THAT(view, ::testing::Not(HasSubstr(tmp_->path().string())));  // no paths

  // A second run elsewhere (new cache: compiled again) gives the same bytes, file by file.
  ASSERT_TRUE(Emit(b).ok());
  auto fb = Files(b);
  EXPECT_EQ(fa, fb);

  // Again in place: nothing changes, and the runtime's BuildStub finds the object there.
  ASSERT_TRUE(Emit(a).ok());
  EXPECT_EQ(Files(a), fa);
  auto c = artifact::ReadConstFile(a / "const.json");
  ASSERT_TRUE(c.ok()) << c.status();
  auto so = stubgen::BuildStub({a / "const.json", *c});
  ASSERT_TRUE(so.ok()) << so.status();
  EXPECT_EQ(so->object, a / obj);
  EXPECT_FALSE(so->compiled_now);
}

TEST_F(ArtifactsTest, MultiSpanViewAndStaleObjectsAreRemoved) {
  fs::path d = CopyFixture(tmp_->path(), "107");  // SIE_TARGET_BATCH: two mem spans
  ASSERT_TRUE(Emit(d).ok());
  auto f = Files(d);
  const std::string view = f["sie_target_batch.hpp"];
  EXPECT_THAT(view, HasSubstr("static constexpr uint32_t kNumSpans = 2;"));
  EXPECT_THAT(view, HasSubstr("case 1: return skel_->progs.sie_apply_1;"));
  EXPECT_THAT(view, ::testing::Not(HasSubstr("progs.sie_save_")));  // no recompute span
  const std::string old_obj = ObjectName(f);

  // A changed const.json (another range): another hash, and the old object goes away.
  std::string json = f["const.json"];
  auto pos = json.find("\"range\"");
  ASSERT_NE(pos, std::string::npos);
  auto c = artifact::ReadConstFile(d / "const.json");
  ASSERT_TRUE(c.ok());
  c->range_max -= 1;
  ASSERT_TRUE(WriteFileAtomic(d / "const.json", artifact::JsonText(ConstToJson(*c))).ok());
  ASSERT_TRUE(Emit(d).ok());
  auto g = Files(d);
  const std::string new_obj = ObjectName(g);
  EXPECT_NE(new_obj, old_obj);
  EXPECT_FALSE(g.count(old_obj));
  EXPECT_THAT(g["sie_target_batch.hpp"],
              HasSubstr("kMax = " + std::to_string(c->range_max) + "LL"));
}

TEST_F(ArtifactsTest, NoCompileWritesSourcesOnly) {
  fs::path d = CopyFixture(tmp_->path(), "102");
  ASSERT_TRUE(Emit(d, /*compile=*/false).ok());
  auto f = Files(d);
  EXPECT_EQ(f.size(), 3u);  // const.json, stub.bpf.c, sie_target_call_arg.h
  EXPECT_TRUE(f.count("stub.bpf.c"));
  EXPECT_TRUE(f.count("sie_target_call_arg.h"));
  EXPECT_TRUE(progress_.empty());
}

TEST_F(ArtifactsTest, CompileFailureCarriesClangOutputAndHint) {
  // A flag that breaks the generated source (LICENSE becomes no identifier): the error must
  // carry clang's own diagnostic and a hint, and leave no object behind.
  fs::path d = CopyFixture(tmp_->path(), "102");
  setenv("SIE_CACHE_DIR", (tmp_->path() / "cache-fail").c_str(), 1);
  stubgen::ArtifactOptions o;
  o.extra_cflags = "-DLICENSE=@";
  auto c = artifact::ReadConstFile(d / "const.json");
  ASSERT_TRUE(c.ok());
  auto a = stubgen::WriteArtifacts({d / "const.json", *c}, o);
  ASSERT_FALSE(a.ok());
  const std::string msg = MessageWithHint(a.status());
  EXPECT_THAT(msg, HasSubstr("compiling the stub of SIE_TARGET_CALL_ARG"));
  EXPECT_THAT(msg, HasSubstr("stub.bpf.c"));  // clang's diagnostic names the line
  EXPECT_THAT(msg, HasSubstr("error:"));
  EXPECT_THAT(msg, HasSubstr("hint:"));
  EXPECT_TRUE(ObjectName(Files(d)).empty());
}

}  // namespace
}  // namespace sie::synth
