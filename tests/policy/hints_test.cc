// libsie-hint (sdk/include/sie/hint.h) against a hint map of the policy's layout, pinned in a
// scratch bpffs: what an application writes is the key the policy looks up (sie_hint() in
// sdk/include/sie/policy.bpf.h), and errors say what is missing.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "common/base/files.h"
#include "common/base/unique_fd.h"
#include "sie/hint.h"

namespace sie {
namespace {
namespace fs = std::filesystem;

class Hints : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "a bpffs and a BPF map need root";
    auto t = TempDir::Create(fs::temp_directory_path(), "sie-hints-");
    ASSERT_TRUE(t.ok());
    dir_.emplace(std::move(*t));
    ASSERT_EQ(mount("bpf", dir_->path().c_str(), "bpf", 0, nullptr), 0) << strerror(errno);
    mounted_ = true;
    pin_ = (dir_->path() / SIE_HINT_MAP).string();
    setenv("SIE_HINTS_PIN", pin_.c_str(), 1);
  }
  void TearDown() override {
    unsetenv("SIE_HINTS_PIN");
    if (mounted_) umount(dir_->path().c_str());
  }
  void CreateMap() {
    map_.reset(bpf_map_create(BPF_MAP_TYPE_LRU_HASH, SIE_HINT_MAP, sizeof(sie_hint_key),
                              sizeof(uint64_t), SIE_HINT_MAX_ENTRIES, nullptr));
    ASSERT_TRUE(map_.valid()) << strerror(errno);
    ASSERT_EQ(bpf_obj_pin(map_.get(), pin_.c_str()), 0) << strerror(errno);
  }
  uint64_t Lookup(uint32_t scope, uint64_t id) {
    sie_hint_key k{scope, 0, id};
    uint64_t v = ~0ull;
    return bpf_map_lookup_elem(map_.get(), &k, &v) == 0 ? v : ~0ull;
  }
  std::optional<TempDir> dir_;
  bool mounted_ = false;
  std::string pin_;
  UniqueFd map_;
};

TEST_F(Hints, NoPolicyIsENOENT) {
  EXPECT_EQ(sie_hint_set(SIE_HINT_PROCESS, 0, 1), -ENOENT);
  EXPECT_EQ(sie_hint_clear(SIE_HINT_PROCESS, 0), -ENOENT);
  EXPECT_STREQ(sie_hint_map_path(), pin_.c_str());
}

TEST_F(Hints, KeysAreWhatThePolicyLooksUp) {
  CreateMap();
  ASSERT_EQ(sie_hint_set(SIE_HINT_THREAD, 0, 7), 0);   // this thread
  ASSERT_EQ(sie_hint_set(SIE_HINT_PROCESS, 0, 5), 0);  // this process
  ASSERT_EQ(sie_hint_set(SIE_HINT_PROCESS, 4242, 2), 0);
  EXPECT_EQ(Lookup(SIE_HINT_THREAD, gettid()), 7u);
  EXPECT_EQ(Lookup(SIE_HINT_PROCESS, getpid()), 5u);
  EXPECT_EQ(Lookup(SIE_HINT_PROCESS, 4242), 2u);
  uint64_t v = 0;
  ASSERT_EQ(sie_hint_get(SIE_HINT_PROCESS, 4242, &v), 0);
  EXPECT_EQ(v, 2u);
  ASSERT_EQ(sie_hint_clear(SIE_HINT_PROCESS, 4242), 0);
  EXPECT_EQ(sie_hint_get(SIE_HINT_PROCESS, 4242, &v), -ENOENT);
  EXPECT_EQ(sie_hint_clear(SIE_HINT_PROCESS, 4242), 0);  // nothing to clear: no error
  EXPECT_EQ(sie_hint_set(static_cast<sie_hint_scope>(9), 1, 1), -EINVAL);
}

TEST_F(Hints, CgroupIdIsTheDirectorysHandle) {
  CreateMap();
  // A cgroup v2 directory's file handle is the id the kernel reports (the guest test checks a
  // task in it gets the hint); the host's cgroup2 mount, wherever it is.
  std::string cg;
  for (const char* d : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    struct statfs sf;
    if (statfs(d, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC) cg = d;
  }
  if (cg.empty()) GTEST_SKIP() << "no cgroup v2 mount on this host";
  const uint64_t id = sie_hint_cgroup_id(cg.c_str());
  EXPECT_NE(id, 0u) << cg << ": " << strerror(errno);
  EXPECT_EQ(sie_hint_cgroup_id("/nonexistent"), 0u);
  ASSERT_EQ(sie_hint_set(SIE_HINT_CGROUP, id, 3), 0);
  EXPECT_EQ(Lookup(SIE_HINT_CGROUP, id), 3u);
}

}  // namespace
}  // namespace sie
