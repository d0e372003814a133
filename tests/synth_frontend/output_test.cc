// ConstIDs are stable and const.json is deterministic.
#include "synth/output/output.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>

#include "common/artifact/consts_dir.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "synth/artifact_types.h"

namespace sie::synth {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using namespace artifact;  // the const.json / index.json model under test

// New names take 1, 2, 3, ... in spec order; a second run keeps every id.
TEST(ConstIdTest, SequentialInSpecOrderAndStable) {
  auto a = AssignConstIds({"SHRINK_BATCH", "BLK_MAX_REQUEST_COUNT", "MAX_SOFTIRQ_RESTART"}, {});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->ids,
            (std::map<std::string, int>{
                {"SHRINK_BATCH", 1}, {"BLK_MAX_REQUEST_COUNT", 2}, {"MAX_SOFTIRQ_RESTART", 3}}));
  EXPECT_EQ(a->next_id, 4);
  EXPECT_EQ(a->scheme, kIdScheme);
  // Another order, a new name in the middle: the known ids stay, the new name takes 4.
  auto b =
      AssignConstIds({"MAX_SOFTIRQ_RESTART", "NEW", "SHRINK_BATCH", "BLK_MAX_REQUEST_COUNT"}, *a);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->ids.at("MAX_SOFTIRQ_RESTART"), 3);
  EXPECT_EQ(b->ids.at("SHRINK_BATCH"), 1);
  EXPECT_EQ(b->ids.at("NEW"), 4);
  EXPECT_EQ(b->next_id, 5);
}

// A retired name keeps its id reserved; it gets it back when it returns; a new name never
// takes it, not even once the retired entry was deleted from the index (next_id).
TEST(ConstIdTest, NeverReusedEvenAfterRetiredEntriesAreRemoved) {
  auto a = AssignConstIds({"A", "B", "C"}, {});
  ASSERT_TRUE(a.ok());
  auto b = AssignConstIds({"A", "B"}, *a);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->retired, (std::map<std::string, int>{{"C", 3}}));
  auto back = AssignConstIds({"C", "A", "B"}, *b);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ids.at("C"), 3);
  EXPECT_TRUE(back->retired.empty());

  // Someone deletes the retired entry from index.json: next_id still says 3 was given out.
  auto d = TempDir::Create(fs::temp_directory_path(), "sie-idx-");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(WriteIndex(d->path(), *b).ok());
  auto j = nlohmann::json::parse(*ReadFile(d->path() / "index.json"));
  EXPECT_EQ(j["next_id"], 4);
  EXPECT_EQ(j["id_scheme"], kIdScheme);
  j["retired"] = nlohmann::json::array();
  ASSERT_TRUE(WriteFileAtomic(d->path() / "index.json", j.dump()).ok());
  auto read = ReadIdIndex(d->path());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->retired.empty());
  auto c = AssignConstIds({"A", "B", "D"}, *read);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ids.at("D"), 4);
  // Even with next_id edited away too, no id below one in use is handed out again.
  j.erase("next_id");
  ASSERT_TRUE(WriteFileAtomic(d->path() / "index.json", j.dump()).ok());
  read = ReadIdIndex(d->path());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->next_id, 3);
  auto e = AssignConstIds({"A", "B", "E"}, *read);
  EXPECT_EQ(e->ids.at("E"), 3);  // the best an index without C or next_id can know
}

TEST(ConstIdTest, ExhaustedSpaceSaysWhatToDo) {
  IdIndex full;
  full.next_id = kMaxConstId + 1;
  auto r = AssignConstIds({"ONE_TOO_MANY"}, full);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("never reused"));
  EXPECT_THAT(Hint(r.status()), HasSubstr("--out NEWDIR"));
}

TEST(ConstIdTest, IndexRoundTrip) {
  auto d = TempDir::Create(fs::temp_directory_path(), "sie-idx-");
  ASSERT_TRUE(d.ok());
  auto empty = ReadIdIndex(d->path());
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->ids.empty());
  EXPECT_EQ(empty->next_id, 1);
  auto a = AssignConstIds({"A", "B"}, {});
  ASSERT_TRUE(WriteIndex(d->path(), *a).ok());
  auto back = ReadIdIndex(d->path());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ids, a->ids);
  EXPECT_EQ(back->next_id, 3);
  EXPECT_EQ(back->scheme, kIdScheme);
  std::string text = *ReadFile(d->path() / "index.json");
  EXPECT_THAT(text, HasSubstr(kGeneratedBanner));
  ASSERT_TRUE(WriteFileAtomic(d->path() / "index.json", "{not json").ok());
  auto bad = ReadIdIndex(d->path());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("not a valid sie index"));
  // One id for two names would address two constants.
  ASSERT_TRUE(WriteFileAtomic(d->path() / "index.json",
                              R"({"id_scheme": 2, "constants": [{"name": "A", "id": 1}],
                                  "retired": [{"name": "B", "id": 1}]})")
                  .ok());
  bad = ReadIdIndex(d->path());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("id 1 is given to both A and B"));
  ASSERT_TRUE(WriteFileAtomic(d->path() / "index.json", R"({"id_scheme": 3})").ok());
  bad = ReadIdIndex(d->path());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("id scheme 3"));
}

// A directory as an older sie left it: hash ids, an index without id_scheme, generated files
// that embed the old id.
class LegacyDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::Create(fs::temp_directory_path(), "sie-legacy-");
    ASSERT_TRUE(d.ok());
    dir_.emplace(std::move(*d));
    // SHRINK_BATCH at 2 and SIE_X at 15: new ids 1 and 2 overlap the old ones.
    Const("SIE_X", 15);
    Const("SHRINK_BATCH", 2);
    Const("GONE", 312);  // retired, its directory still there
    ASSERT_TRUE(WriteFileAtomic(dir() / "index.json", R"({
      "format_version": 1,
      "constants": [{"id": 15, "name": "SIE_X", "dir": "15"},
                    {"id": 2, "name": "SHRINK_BATCH", "dir": "2"}],
      "retired": [{"id": 312, "name": "GONE", "dir": "312"}, {"id": 40, "name": "NO_DIR"}]})")
                    .ok());
  }
  void Const(const std::string& name, int id) {
    const fs::path d = dir() / std::to_string(id);
    fs::create_directories(d);
    ASSERT_TRUE(
        WriteFileAtomic(
            d / "const.json",
            nlohmann::json{{"name", name}, {"id", id}, {"format_version", 1}}.dump(2) + "\n")
            .ok());
    ASSERT_TRUE(WriteFileAtomic(d / "stub.bpf.c", "/* id " + std::to_string(id) + " */").ok());
    ASSERT_TRUE(WriteFileAtomic(d / "stub-0123.bpf.o", "obj").ok());
  }
  int IdIn(int dir_id) {
    auto j = nlohmann::json::parse(*ReadFile(dir() / std::to_string(dir_id) / "const.json"));
    return j["id"].get<int>();
  }
  std::string NameIn(int dir_id) {
    auto j = nlohmann::json::parse(*ReadFile(dir() / std::to_string(dir_id) / "const.json"));
    return j["name"].get<std::string>();
  }
  const fs::path& dir() { return dir_->path(); }
  std::optional<TempDir> dir_;
};

TEST_F(LegacyDirTest, PlanRenumbersSpecNamesFirstThenTheRestByOldId) {
  auto plan = PlanConstIds(dir(), {"SHRINK_BATCH", "NEW", "SIE_X"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->migrate);
  // The spec's known names in spec order, then the others by old id, then the new name.
  EXPECT_EQ(plan->index.ids,
            (std::map<std::string, int>{{"SHRINK_BATCH", 1}, {"SIE_X", 2}, {"NEW", 5}}));
  EXPECT_EQ(plan->index.retired, (std::map<std::string, int>{{"NO_DIR", 3}, {"GONE", 4}}));
  EXPECT_EQ(plan->index.next_id, 6);
  EXPECT_EQ(plan->renumber, (std::map<int, int>{{2, 1}, {15, 2}, {312, 4}}));
  // Planning changes nothing.
  EXPECT_EQ(IdIn(15), 15);
  EXPECT_FALSE(fs::exists(dir() / "1"));
}

TEST_F(LegacyDirTest, MigrationMovesDirectoriesRewritesIdsAndDropsStaleArtifacts) {
  auto plan = PlanConstIds(dir(), {"SHRINK_BATCH", "SIE_X"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(ApplyIdMigration(dir(), *plan).ok());
  EXPECT_EQ(NameIn(1), "SHRINK_BATCH");
  EXPECT_EQ(IdIn(1), 1);
  EXPECT_EQ(NameIn(2), "SIE_X");
  EXPECT_EQ(IdIn(2), 2);
  EXPECT_EQ(NameIn(4), "GONE");
  EXPECT_EQ(IdIn(4), 4);
  EXPECT_FALSE(fs::exists(dir() / "15"));
  EXPECT_FALSE(fs::exists(dir() / "312"));
  EXPECT_FALSE(fs::exists(dir() / ".sie-renumber"));
  // What embedded the old id is gone, to be generated again.
  EXPECT_FALSE(fs::exists(dir() / "2" / "stub.bpf.c"));
  EXPECT_FALSE(fs::exists(dir() / "2" / "stub-0123.bpf.o"));
  // The index is of the new scheme now, and a second plan changes nothing.
  auto idx = ReadIdIndex(dir());
  ASSERT_TRUE(idx.ok()) << idx.status();
  EXPECT_EQ(idx->scheme, kIdScheme);
  EXPECT_EQ(idx->ids.at("SIE_X"), 2);
  auto again = PlanConstIds(dir(), {"SHRINK_BATCH", "SIE_X", "NEW"});
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->migrate);
  EXPECT_EQ(again->index.ids.at("NEW"), 5);  // 3 and 4 stay reserved (NO_DIR, GONE)
}

TEST_F(LegacyDirTest, InterruptedMigrationIsRefusedWithAHint) {
  fs::create_directories(dir() / ".sie-renumber");
  auto plan = PlanConstIds(dir(), {"SIE_X"});
  ASSERT_TRUE(plan.ok());
  absl::Status st = ApplyIdMigration(dir(), *plan);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.message()), HasSubstr("was interrupted"));
  EXPECT_THAT(Hint(st), HasSubstr("sie synth SPEC --out NEWDIR"));
  EXPECT_EQ(IdIn(15), 15);  // nothing moved
}

// No index.json but constant directories (hand-made, or an index deleted): renumbered too, the
// names read from their const.json.
TEST_F(LegacyDirTest, DirectoryWithoutIndexIsRenumberedFromItsConstJson) {
  fs::remove(dir() / "index.json");
  auto plan = PlanConstIds(dir(), {"SIE_X"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->migrate);
  EXPECT_EQ(plan->index.ids, (std::map<std::string, int>{{"SIE_X", 1}}));
  EXPECT_EQ(plan->index.retired, (std::map<std::string, int>{{"SHRINK_BATCH", 2}, {"GONE", 3}}));
  EXPECT_EQ(plan->renumber, (std::map<int, int>{{15, 1}, {312, 3}}));  // 2 stays 2
}

// A sequential-scheme directory with a constant directory copied in by hand: its number is
// never handed out, so it is not overwritten.
TEST(ConstIdTest, HandCopiedDirectoryIsNotOverwritten) {
  auto d = TempDir::Create(fs::temp_directory_path(), "sie-idx-");
  ASSERT_TRUE(d.ok());
  auto a = AssignConstIds({"A"}, {});
  ASSERT_TRUE(WriteIndex(d->path(), *a).ok());
  fs::create_directories(d->path() / "2");
  ASSERT_TRUE(WriteFileAtomic(d->path() / "2" / "const.json", R"({"name": "COPY", "id": 2})").ok());
  auto plan = PlanConstIds(d->path(), {"A", "B"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->migrate);
  EXPECT_EQ(plan->index.ids.at("A"), 1);
  EXPECT_EQ(plan->index.ids.at("B"), 3);
}

SynthesizedConst Sample(bool reversed) {
  SynthesizedConst c;
  c.id = 12;
  c.name = "BLK_MAX_REQUEST_COUNT";
  c.values = {32, 16, 64};
  c.range_min = 1;
  c.range_max = 1024;
  c.target = {"vmlinux", "6.12.117+deb12-amd64", "abcd"};
  CriticalSpan s1;
  s1.function = "blk_add_rq_to_plug";
  s1.cs_start = 0x40;
  s1.cs_end = 0x44;
  s1.probe_offset = 0x44;
  s1.kind = SpanKind::kFlags;
  s1.target_reg = "ax";
  s1.flags_cc = "jae";
  s1.flags_op = "cmp";
  s1.formula = "V";
  CriticalSpan s2 = s1;
  s2.function = "blk_mq_flush_plug_list";
  s2.kind = SpanKind::kMem;
  s2.target_reg.clear();
  s2.target_mem = MemOperand{"bx", "", 1, 0x18};
  c.spans = reversed ? std::vector{s2, s1} : std::vector{s1, s2};
  c.safe_spans = {{"blk_add_rq_to_plug", 0, 0x100, SafeSpanHow::kWholeFunction}};
  return c;
}

TEST(ConstJsonTest, DeterministicAndSorted) {
  std::string a = JsonText(ConstToJson(Sample(false)));
  std::string b = JsonText(ConstToJson(Sample(true)));
  EXPECT_EQ(a, b);
  EXPECT_THAT(a, HasSubstr("\"_generated\": \"generated by sie, do not edit\""));
  EXPECT_LT(a.find("blk_add_rq_to_plug"), a.find("blk_mq_flush_plug_list"));
  auto j = nlohmann::json::parse(a);
  EXPECT_EQ(j["spans"][0]["kind"], "flags");
  EXPECT_EQ(j["spans"][0]["target"], "ax");
  EXPECT_EQ(j["spans"][0]["flags_op"], "cmp");
  EXPECT_EQ(j["spans"][1]["target"]["base"], "bx");
  EXPECT_EQ(j["spans"][1]["target"]["disp"], 0x18);
  EXPECT_EQ(j["target"]["build_id"], "abcd");
  EXPECT_EQ(j["safe_spans"][0]["how"], "whole_function");
  EXPECT_EQ(j["range"], nlohmann::json({1, 1024}));

  auto d = TempDir::Create(fs::temp_directory_path(), "sie-const-");
  ASSERT_TRUE(WriteConst(d->path(), Sample(true)).ok());
  EXPECT_EQ(*ReadFile(d->path() / "12" / "const.json"), a);
}

// const.json's span source points into the user's tree, never into synth's work dir.
TEST(RelativeSourceTest, WorkDirAndTreePathsBecomeRelative) {
  SourceRoots r;
  r.work_dir = "/root/.cache/sie/work/7358";
  r.module_dir = "kmod/sie_target";
  r.roots = {"/root/.cache/sie/kernel-6.12/linux-source-6.12", "/work/repo",
             "/usr/src/linux-headers-6.12.117+deb12-amd64"};
  // Module copy: relative to source_dir (module_dir prefixed).
  EXPECT_EQ(
      RelativeSource("/root/.cache/sie/work/7358/SIE_TARGET_DIVISOR/v1/module/sie_target.c:126", r),
      "kmod/sie_target/sie_target.c:126");
  // Kernel overlay: <work>/<tunable>/vN/overlay/<stem>/PATH -> PATH, relative to the tree.
  EXPECT_EQ(RelativeSource("/root/.cache/sie/work/7358/HYSTART_DELAY_MAX/v1/overlay/tcp_cubic/net/"
                           "ipv4/tcp_cubic.c:470",
                           r),
            "net/ipv4/tcp_cubic.c:470");
  // Generic copy of source_dir.
  EXPECT_EQ(RelativeSource("/root/.cache/sie/work/7358/T/v2/src-0/lib/a.c:3", r), "lib/a.c:3");
  // Headers of the prepared tree or the guest headers; already relative paths stay.
  EXPECT_EQ(
      RelativeSource("/root/.cache/sie/kernel-6.12/linux-source-6.12/include/net/tcp.h:12", r),
      "include/net/tcp.h:12");
  EXPECT_EQ(RelativeSource("/usr/src/linux-headers-6.12.117+deb12-amd64/include/x.h:1", r),
            "include/x.h:1");
  EXPECT_EQ(RelativeSource("net/ipv4/tcp_cubic.c:438", r), "net/ipv4/tcp_cubic.c:438");
  EXPECT_EQ(RelativeSource("./include/net/codel_impl.h:57", r), "include/net/codel_impl.h:57");
  EXPECT_EQ(RelativeSource("/work/repo/./kmod/../kmod/sie_target/sie_target.c:5", r),
            "kmod/sie_target/sie_target.c:5");
  // Outside every root: unchanged (an absolute path is still a correct one).
  EXPECT_EQ(RelativeSource("/usr/include/stdio.h:10", r), "/usr/include/stdio.h:10");
  EXPECT_EQ(RelativeSource("", r), "");
  // No line number.
  EXPECT_EQ(RelativeSource("/root/.cache/sie/work/7358/X/v1/module/m.c", r), "kmod/sie_target/m.c");
}

}  // namespace
}  // namespace sie::synth
