#include "runtime/vm/initramfs.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/process.h"

namespace sie::vm {
namespace {
namespace fs = std::filesystem;

TEST(InitramfsTest, BuiltOnceThenCachedWithInitAndOrderedModules) {
  auto cache = TempDir::Create(fs::temp_directory_path(), "sie-initramfs-test-");
  ASSERT_TRUE(cache.ok());
  auto first = EnsureInitramfs(SIE_KERNEL_RELEASE, cache->path());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->rebuilt);
  auto second = EnsureInitramfs(SIE_KERNEL_RELEASE, cache->path());
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->rebuilt);
  EXPECT_EQ(first->path, second->path);

  RunOptions o;
  o.cwd = cache->path().string();
  auto list = RunChecked({"sh", "-c", "cpio --quiet -t < '" + first->path.string() + "'"}, o);
  ASSERT_TRUE(list.ok()) << list.status();
  for (const char* f : {"init", "bin/busybox", "lib/modules/load.list", "lib/modules/9p.ko"})
    EXPECT_TRUE(absl::StrContains(list->out, f)) << f;

  auto extract = RunChecked(
      {"sh", "-c",
       "cpio --quiet -i --to-stdout lib/modules/load.list < '" + first->path.string() + "'"},
      o);
  ASSERT_TRUE(extract.ok());
  std::vector<std::string> mods = absl::StrSplit(extract->out, '\n', absl::SkipEmpty());
  // Each module once, dependencies before users: 9p last.
  ASSERT_FALSE(mods.empty());
  EXPECT_EQ(mods.back(), "9p.ko");
  std::sort(mods.begin(), mods.end());
  EXPECT_EQ(std::adjacent_find(mods.begin(), mods.end()), mods.end());
}

TEST(InitramfsTest, UnknownKernelIsAClearError) {
  auto cache = TempDir::Create(fs::temp_directory_path(), "sie-initramfs-test-");
  ASSERT_TRUE(cache.ok());
  auto r = EnsureInitramfs("0.0.0-nonexistent", cache->path());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(MessageWithHint(r.status()), "scripts/setup"));
}

}  // namespace
}  // namespace sie::vm
