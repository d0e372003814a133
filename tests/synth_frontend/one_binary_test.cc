// A constant has one target binary: spans from objects built into vmlinux and a module (or two
// modules) are refused with the objects and binaries named and a way out.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/base/diag.h"
#include "synth/pipeline/stages.h"

namespace sie::synth::pipeline {
namespace {

using ::testing::HasSubstr;

Shipped In(const std::string& binary) {
  Shipped s;
  s.target.binary = binary;
  return s;
}

TEST(CheckOneBinary, SpansOfOneBinaryPass) {
  std::vector<ObjectVariants> objects(2);
  objects[0].object = "fs/ext4/super.o";
  objects[1].object = "fs/ext4/mballoc.o";
  std::vector<Shipped> shipped = {In("ext4"), In("ext4")};
  EXPECT_TRUE(CheckOneBinary({0, 0, 1}, objects, shipped).ok());
  EXPECT_TRUE(CheckOneBinary({}, objects, shipped).ok());
}

TEST(CheckOneBinary, VmlinuxAndAModuleAreRefused) {
  std::vector<ObjectVariants> objects(3);
  objects[0].object = "block/blk-core.o";
  objects[1].object = "block/bfq-iosched.o";
  objects[2].object = "block/kyber-iosched.o";
  std::vector<Shipped> shipped = {In("vmlinux"), In("bfq"), In("kyber_iosched")};
  // An object without spans does not count.
  EXPECT_TRUE(CheckOneBinary({1, 1}, objects, shipped).ok());
  absl::Status s = CheckOneBinary({0, 1}, objects, shipped);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(RefusalOf(s), Refusal::kSeveralBinaries);
  EXPECT_THAT(s.message(), HasSubstr("block/blk-core.o is built into vmlinux, "
                                     "block/bfq-iosched.o into bfq"));
  EXPECT_THAT(Hint(s), HasSubstr("objects:"));
  s = CheckOneBinary({1, 2}, objects, shipped);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("into kyber_iosched"));
}

}  // namespace
}  // namespace sie::synth::pipeline
