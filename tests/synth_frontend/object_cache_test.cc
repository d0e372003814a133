// The pristine-object cache (synth/variants/object_cache.h): its key follows every input of the
// compile by content, and entries round-trip and stay bounded.
#include "synth/variants/object_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/base/files.h"

namespace sie::synth {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;

constexpr char kCmd[] =
    "savedcmd_block/x.o := gcc -c -o block/x.o block/x.c\n"
    "\n"
    "source_block/x.o := block/x.c\n"
    "\n"
    "deps_block/x.o := \\\n"
    "  include/linux/a.h \\\n"
    "    $(wildcard include/config/FOO) \\\n"
    "  block/x.h \\\n"
    "\n"
    "block/x.o: $(deps_block/x.o)\n";

class PristineObjectCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::Create(fs::temp_directory_path(), "sie-objcache-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(*d));
    tree_ = dir_->path() / "tree";
    Write("block/.x.o.cmd", kCmd);
    Write(".config", "CONFIG_FOO=y\n");
    Write("include/linux/a.h", "#define A 1\n");
    Write("block/x.h", "#define LIMIT 32\n");
    Write("objtool", "tool");
  }
  void Write(const std::string& rel, const std::string& text) {
    fs::create_directories((tree_ / rel).parent_path());
    ASSERT_TRUE(WriteFileAtomic(tree_ / rel, text).ok());
  }
  std::string Key() {
    auto k =
        PristineObjectKey(tree_, "block/x.o", "gcc -c -o block/x.o block/x.c", tree_ / "objtool");
    EXPECT_TRUE(k.ok()) << k.status();
    return k.ok() ? *k : "";
  }

  std::optional<TempDir> dir_;
  fs::path tree_;
};

TEST(KbuildDepsTest, ListsEveryDependencyButConfigMarkers) {
  EXPECT_THAT(KbuildDeps(kCmd), ElementsAre("include/linux/a.h", "block/x.h"));
  EXPECT_TRUE(KbuildDeps("savedcmd_x.o := gcc\n").empty());
}

TEST_F(PristineObjectCacheTest, KeyChangesWithAnyInputOfTheCompile) {
  const std::string k0 = Key();
  EXPECT_EQ(Key(), k0);  // deterministic
  Write("block/x.h", "#define LIMIT 64\n");
  const std::string k1 = Key();
  EXPECT_NE(k1, k0);  // a header the object includes
  Write(".config", "CONFIG_FOO=n\n");
  EXPECT_NE(Key(), k1);  // the configuration
  auto other =
      PristineObjectKey(tree_, "block/x.o", "gcc -O1 -c -o block/x.o block/x.c", tree_ / "objtool");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other, Key());  // the command
  fs::remove(tree_ / "include/linux/a.h");
  EXPECT_FALSE(PristineObjectKey(tree_, "block/x.o", "gcc", tree_ / "objtool").ok());
}

TEST_F(PristineObjectCacheTest, StoresFetchesAndStaysBounded) {
  const fs::path cache = dir_->path() / "cache", obj = dir_->path() / "x.o";
  ASSERT_TRUE(WriteFileAtomic(obj, "ELF...").ok());
  EXPECT_FALSE(FetchCachedObject(cache, "k", dir_->path() / "out/x.o"));
  ASSERT_TRUE(StoreCachedObject(cache, "k", obj).ok());
  ASSERT_TRUE(FetchCachedObject(cache, "k", dir_->path() / "out/x.o"));
  EXPECT_EQ(*ReadFile(dir_->path() / "out/x.o"), "ELF...");
  for (size_t i = 0; i < kObjectCacheMaxEntries + 5; ++i)
    ASSERT_TRUE(StoreCachedObject(cache, absl::StrCat("e", i), obj).ok());
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(cache)) n += e.path().extension() == ".o";
  EXPECT_EQ(n, kObjectCacheMaxEntries);
}

}  // namespace
}  // namespace sie::synth
