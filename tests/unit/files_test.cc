#include "common/base/files.h"

#include <gtest/gtest.h>

#include "common/base/hash.h"

namespace sie {
namespace {
namespace fs = std::filesystem;

TEST(FilesTest, WriteAtomicThenRead) {
  auto d = TempDir::Create(fs::temp_directory_path(), "sie-files-test-");
  ASSERT_TRUE(d.ok());
  fs::path f = d->path() / "sub/x.txt";
  ASSERT_TRUE(WriteFileAtomic(f, "abc").ok());
  auto r = ReadFile(f);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "abc");
  EXPECT_FALSE(ReadFile(d->path() / "missing").ok());
}

TEST(FilesTest, TempDirIsRemovedUnlessKept) {
  fs::path kept, gone;
  {
    auto a = TempDir::Create(fs::temp_directory_path(), "sie-a-");
    auto b = TempDir::Create(fs::temp_directory_path(), "sie-b-");
    ASSERT_TRUE(a.ok() && b.ok());
    gone = a->path();
    kept = b->path();
    b->Keep();
  }
  EXPECT_FALSE(fs::exists(gone));
  EXPECT_TRUE(fs::exists(kept));
  fs::remove_all(kept);
}

TEST(HashTest, HashIsStable) {
  EXPECT_EQ(Hex64(Fnv1a64("")), "cbf29ce484222325");
  EXPECT_EQ(Hex64(Fnv1a64("a")), "af63dc4c8601ec8c");
  // XXH3-128 reference values (xxhash 0.8 test vectors: empty input, seed 0).
  EXPECT_EQ(ContentHash(""), "99aa06d3014798d86001c324468d497f");
  EXPECT_EQ(ContentHash("a").size(), 32u);
  EXPECT_NE(ContentHash("a"), ContentHash("b"));
}

}  // namespace
}  // namespace sie
