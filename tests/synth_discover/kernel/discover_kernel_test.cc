// sie discover on the prepared guest kernel tree: real files, real kbuild data.
#include <gtest/gtest.h>

#include "synth/discover/discover.h"
#include "synth/spec/spec.h"

namespace sie::synth::discover {
namespace {

const Candidate* Find(const DiscoverReport& r, const std::string& name) {
  for (const Candidate& c : r.candidates)
    if (c.def.name == name) return &c;
  return nullptr;
}

absl::StatusOr<DiscoverReport> DiscoverPath(const std::string& path) {
  DiscoverOptions o;
  o.path = path;
  return Discover(o);
}

TEST(DiscoverKernel, TcpBbrModuleSpecParsesBack) {
  auto r = DiscoverPath("net/ipv4/tcp_bbr.c");
  ASSERT_TRUE(r.ok()) << r.status();
  const Candidate* c = Find(*r, "CYCLE_LEN");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->ok()) << c->verdict;
  ASSERT_FALSE(c->objects.empty());
  EXPECT_TRUE(c->objects[0].module);
  EXPECT_EQ(c->objects[0].binary, "kernel/net/ipv4/tcp_bbr.ko");
  auto spec = ParseSpecText(SpecYaml(*r, 10), "bbr.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->tunables.size(), 10u);
}

TEST(DiscoverKernel, CubicLoopBoundAndActiveDefinition) {
  auto r = DiscoverPath("net/ipv4/tcp_cubic.c");
  ASSERT_TRUE(r.ok()) << r.status();
  const Candidate* c = Find(*r, "HYSTART_MIN_SAMPLES");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->ok());
  EXPECT_EQ(c->objects.at(0).binary, "vmlinux");
  EXPECT_EQ(c->values, (std::vector<int64_t>{8, 4, 16}));
}

TEST(DiscoverKernel, DelackMinTakesTheHzBranch) {
  auto r = DiscoverPath("include/net/tcp.h");
  ASSERT_TRUE(r.ok()) << r.status();
  const Candidate* c = Find(*r, "TCP_DELACK_MIN");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->def.from_cpp);
  ASSERT_TRUE(c->def.value);
  EXPECT_EQ(*c->def.value, 10);  // HZ/25 at HZ=250, not the #else branch's 4
}

TEST(DiscoverKernel, UapiValuesAreExcluded) {
  auto r = DiscoverPath("include/uapi/linux/tcp.h");
  ASSERT_TRUE(r.ok()) << r.status();
  const Candidate* c = Find(*r, "TCP_MAXSEG");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->verdict, "uapi");
}

TEST(DiscoverKernel, PathNotInTreeHasAHint) {
  auto r = DiscoverPath("net/ipv4/no_such_file.c");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("not in the kernel tree"), std::string::npos);
}

}  // namespace
}  // namespace sie::synth::discover
