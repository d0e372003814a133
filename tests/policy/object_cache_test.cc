// The policy-object cache (runtime/policy/object_cache.h): a second compile of the same inputs is
// served from the cache (clang does not run), and a change in any input (the policy, an SDK
// header, vmlinux.h, a constant's const.json, clang's flags, the compiler) is a miss.
#include "runtime/policy/object_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/base/files.h"
#include "runtime/policy/policy.h"

namespace sie::policy {
namespace {
namespace fs = std::filesystem;
using ::testing::ElementsAre;

const fs::path kSrc = SIE_SOURCE_DIR;

TEST(ParseDepfileTest, JoinsContinuationsAndKeepsEscapedSpaces) {
  EXPECT_THAT(ParseDepfile("out.o: /a/p.bpf.c /sdk/x.h \\\n  /usr/include/b\\ c.h\n"),
              ElementsAre("/a/p.bpf.c", "/sdk/x.h", "/usr/include/b c.h"));
  EXPECT_TRUE(ParseDepfile("").empty());
}

class ObjectCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Create(fs::temp_directory_path(), "sie-policy-cache-test-");
    ASSERT_TRUE(t.ok());
    tmp_.emplace(std::move(*t));
    // Private copies of every input the tests change.
    tc_ = Toolchain::FromBuild();
    fs::copy(tc_.sdk_include, dir() / "sdk", fs::copy_options::recursive);
    tc_.sdk_include = dir() / "sdk";
    fs::create_directories(dir() / "vmlinux");
    fs::copy(Toolchain::FromBuild().vmlinux_dir / "vmlinux.h", dir() / "vmlinux/vmlinux.h");
    tc_.vmlinux_dir = dir() / "vmlinux";
    fs::copy(kSrc / "tests/policy/fixtures/tcp_cubic", dir() / "consts",
             fs::copy_options::recursive);
    fs::copy(kSrc / "policies/tcp_cubic_rtt/tcp_cubic_rtt.bpf.c", source());
    cache_.lookup = {dir() / "cache-ro", dir() / "cache"};  // the first does not exist
    cache_.store = dir() / "cache";
  }
  const fs::path& dir() const { return tmp_->path(); }
  fs::path source() const { return dir() / "p.bpf.c"; }
  // One sie-run compile in a fresh work folder (as sie-run does per run).
  CompileResult Compile(const fs::path& src = {}) {
    auto cs = ResolveConsts(dir() / "consts", {"HYSTART_DELAY_SHIFT", "HYSTART_DELAY_MAX"});
    EXPECT_TRUE(cs.ok()) << cs.status();
    fs::path work = dir() / ("run" + std::to_string(runs_++));
    fs::create_directories(work);
    auto r = CompilePolicy(tc_, src.empty() ? source() : src,
                           cs.ok() ? *cs : std::vector<artifact::ConstEntry>{}, work / "include",
                           work / "policy.bpf.o", &cache_);
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) EXPECT_TRUE(fs::file_size(r->object) > 0) << r->cache_note;
    return r.ok() ? *r : CompileResult{};
  }
  void Append(const fs::path& f, const std::string& text) {
    auto t = ReadFile(f);
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(WriteFileAtomic(f, *t + text).ok());
  }
  // A first compile, then the same inputs hit; `change` then makes the next compile miss, and
  // the one after it hit again (the fresh object was cached).
  void ExpectMissAfter(const std::function<void()>& change) {
    CompileResult first = Compile();
    CompileResult again = Compile();
    EXPECT_TRUE(again.cache_hit) << again.cache_note;
    change();
    CompileResult changed = Compile();
    EXPECT_FALSE(changed.cache_hit) << changed.cache_note;
    CompileResult changed_again = Compile();
    EXPECT_TRUE(changed_again.cache_hit) << changed_again.cache_note;
  }
  std::optional<TempDir> tmp_;
  Toolchain tc_;
  CacheOptions cache_;
  int runs_ = 0;
};

TEST_F(ObjectCacheTest, SameInputsHitWithTheSameObject) {
  CompileResult first = Compile();
  EXPECT_FALSE(first.cache_hit);
  EXPECT_THAT(first.cache_note, ::testing::HasSubstr("cached as"));
  CompileResult second = Compile();
  EXPECT_TRUE(second.cache_hit) << second.cache_note;
  auto a = ReadFile(first.object), b = ReadFile(second.object);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(first.object, second.object);  // a copy in the run's folder, not the entry
}

// The guest runs a policy by another spelling of the path --compile-only used on the host.
TEST_F(ObjectCacheTest, AnotherSpellingOfTheSourcePathHits) {
  CompileResult first = Compile();
  EXPECT_FALSE(first.cache_hit);
  fs::create_directories(dir() / "sub");
  CompileResult dotdot = Compile(dir() / "sub" / ".." / "p.bpf.c");
  EXPECT_TRUE(dotdot.cache_hit) << dotdot.cache_note;
}

TEST_F(ObjectCacheTest, PolicySourceChangeMisses) {
  ExpectMissAfter([&] { Append(source(), "\n/* changed */\n"); });
}

TEST_F(ObjectCacheTest, SdkHeaderChangeMisses) {
  ExpectMissAfter([&] { Append(tc_.sdk_include / "sie/policy.bpf.h", "\n/* changed */\n"); });
}

TEST_F(ObjectCacheTest, VmlinuxHeaderChangeMisses) {
  ExpectMissAfter([&] { Append(tc_.vmlinux_dir / "vmlinux.h", "\n/* changed */\n"); });
}

TEST_F(ObjectCacheTest, ConstantChangeMisses) {
  // The range of HYSTART_DELAY_MAX is in its generated header.
  ExpectMissAfter([&] {
    fs::path j = dir() / "consts/2/const.json";
    auto t = ReadFile(j);
    ASSERT_TRUE(t.ok());
    std::string s = *t;
    size_t p = s.find("1000000");
    ASSERT_NE(p, std::string::npos);
    s.replace(p, 7, "999999");
    ASSERT_TRUE(WriteFileAtomic(j, s).ok());
  });
}

TEST_F(ObjectCacheTest, ClangFlagChangeMisses) {
  ExpectMissAfter([&] { tc_.sys_includes.push_back("-DSIE_CACHE_TEST_FLAG=1"); });
}

TEST_F(ObjectCacheTest, OtherCompilerMisses) {
  ExpectMissAfter([&] {
    fs::create_symlink(
        fs::absolute(tc_.clang.find('/') == std::string::npos ? fs::path("/usr/bin") / tc_.clang
                                                              : fs::path(tc_.clang)),
        dir() / "clang");
    tc_.clang = (dir() / "clang").string();
  });
}

TEST_F(ObjectCacheTest, ReadOnlyCacheFoundFirstAndStaleEntryIgnored) {
  Compile();
  // Move the entry to the first lookup folder (a precompiled cache the run cannot write).
  fs::rename(dir() / "cache", dir() / "cache-ro");
  CompileResult hit = Compile();
  EXPECT_TRUE(hit.cache_hit);
  EXPECT_THAT(hit.cache_note, ::testing::HasSubstr("cache-ro"));
  // A dependency changed behind the entry's back: the entry is stale, never used.
  Append(tc_.sdk_include / "sie/policy.bpf.h", "\n/* changed */\n");
  CompileResult miss = Compile();
  EXPECT_FALSE(miss.cache_hit) << miss.cache_note;
}

}  // namespace
}  // namespace sie::policy
