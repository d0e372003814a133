// The journal (runtime/loader/journal.h): every entry carries who, when and why (the command's
// --reason, the policy and its content hash), one line of it goes to the system log, and
// `sie log` selects entries by constant and time.
#include "runtime/loader/journal.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <ctime>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/process.h"
#include "runtime/loader/loader.h"

namespace sie {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = TempDir::Create(fs::temp_directory_path(), "sie-journal-");
    ASSERT_TRUE(t.ok());
    dir_.emplace(std::move(*t));
    path_ = dir_->path() / "journal.jsonl";
    setenv("SIE_JOURNAL", path_.c_str(), 1);
  }
  void TearDown() override { unsetenv("SIE_JOURNAL"); }
  std::optional<TempDir> dir_;
  fs::path path_;
};

TEST_F(JournalTest, EntriesCarryWhoWhenAndWhy) {
  const int64_t before = time(nullptr);
  loader::SetJournalContext({{"reason", "INC-42: pluggging for the batch job"},
                             {"policy", "blk_hint.bpf.c"},
                             {"policy_hash", "0123456789abcdef0123456789abcdef"}});
  loader::Journal({{"const", "SHRINK_BATCH"},
                   {"old_value", 128},
                   {"new_value", 512},
                   {"mode", 1},
                   {"engine", "bpf"},
                   {"outcome", "loaded"}});
  // An entry's own field wins over the context's.
  loader::Journal({{"const", "SHRINK_BATCH"},
                   {"new_value", nullptr},
                   {"outcome", "unloaded"},
                   {"reason", "rollback"}});
  auto j = loader::ReadJournal();
  ASSERT_TRUE(j.ok()) << j.status();
  ASSERT_EQ(j->size(), 2u);
  const json& e = (*j)[0];
  EXPECT_EQ(e["reason"], "INC-42: pluggging for the batch job");
  EXPECT_EQ(e["policy"], "blk_hint.bpf.c");
  EXPECT_EQ(e["policy_hash"], "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(e["old_value"], 128);
  EXPECT_EQ(e["new_value"], 512);
  EXPECT_EQ(e["pid"], getpid());
  EXPECT_FALSE(e["user"].get<std::string>().empty());
  EXPECT_GE(e["time"].get<int64_t>(), before);
  EXPECT_EQ((*j)[1]["reason"], "rollback");
  loader::SetJournalContext({{"reason", nullptr}, {"policy", nullptr}, {"policy_hash", nullptr}});
}

TEST(JournalLine, SaysWhatChangedAndWhy) {
  json e{{"const", "SHRINK_BATCH"},
         {"old_value", 128},
         {"new_value", 512},
         {"mode", 1},
         {"engine", "native"},
         {"outcome", "loaded"},
         {"reason", "more reclaim per call"},
         {"policy", "shrink.bpf.c"},
         {"policy_hash", "abcdef0123456789ffff"},
         {"user", "root"}};
  EXPECT_EQ(loader::JournalLine(e),
            "set SHRINK_BATCH 128 -> 512 (mode 1, native): loaded; policy shrink.bpf.c "
            "abcdef012345; reason: more reclaim per call; by root");
  json r{{"const", "X"},
         {"new_value", 7},
         {"mode", 0},
         {"outcome", "refused"},
         {"error", "7 is outside [8, 64]"},
         {"user", "op"}};
  EXPECT_EQ(loader::JournalLine(r), "set X - -> 7 (mode 0): refused: 7 is outside [8, 64]; by op");
  json u{{"const", "X"}, {"old_value", 9}, {"new_value", nullptr}, {"outcome", "unloaded"}};
  EXPECT_TRUE(absl::StartsWith(loader::JournalLine(u), "unload X 9 -> - "))
      << loader::JournalLine(u);
}

TEST(JournalTime, EpochDatesAndAges) {
  const int64_t now = 1765000000;
  EXPECT_EQ(*loader::ParseJournalTime("1764990000", now), 1764990000);
  EXPECT_EQ(*loader::ParseJournalTime("@1764990000", now), 1764990000);
  EXPECT_EQ(*loader::ParseJournalTime("90s", now), now - 90);
  EXPECT_EQ(*loader::ParseJournalTime("10m", now), now - 600);
  EXPECT_EQ(*loader::ParseJournalTime("2h", now), now - 7200);
  EXPECT_EQ(*loader::ParseJournalTime("3d", now), now - 3 * 86400);
  struct tm tm = {};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 11;
  tm.tm_mday = 5;
  tm.tm_hour = 14;
  tm.tm_min = 30;
  tm.tm_isdst = -1;
  const int64_t local = mktime(&tm);
  EXPECT_EQ(*loader::ParseJournalTime("2026-12-05 14:30", now), local);
  EXPECT_EQ(*loader::ParseJournalTime("2026-12-05T14:30:00", now), local);
  EXPECT_EQ(*loader::ParseJournalTime("2026-12-05", now), local - 14 * 3600 - 30 * 60);
  for (const char* bad : {"yesterday", "10x", "-5m", "2026-13-45", ""}) {
    auto t = loader::ParseJournalTime(bad, now);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_TRUE(absl::StrContains(MessageWithHint(t.status()), "hint:")) << bad;
  }
}

TEST(JournalFilter, ByConstantAndWindow) {
  json a{{"const", "A"}, {"time", 100}}, b{{"const", "B"}, {"time", 200}};
  loader::JournalFilter f;
  EXPECT_TRUE(loader::JournalMatches(a, f) && loader::JournalMatches(b, f));
  f.name = "A";
  EXPECT_TRUE(loader::JournalMatches(a, f));
  EXPECT_FALSE(loader::JournalMatches(b, f));
  f = {};
  f.since = 150;
  EXPECT_FALSE(loader::JournalMatches(a, f));
  EXPECT_TRUE(loader::JournalMatches(b, f));
  f.until = 199;
  EXPECT_FALSE(loader::JournalMatches(b, f));
}

// The command: --const (any case), --since/--until and --json over a journal file.
TEST_F(JournalTest, SieLogSelectsByConstantAndTime) {
  const int64_t now = time(nullptr);
  std::string lines;
  for (auto [name, age, reason] : {std::tuple{"FOO", 7200, "old"}, std::tuple{"FOO", 60, "new"},
                                   std::tuple{"BAR", 30, "other"}})
    lines += json{{"const", name}, {"time", now - age},   {"old_value", 1},   {"new_value", 2},
                  {"mode", 0},     {"outcome", "loaded"}, {"reason", reason}, {"user", "root"}}
                 .dump() +
             "\n";
  ASSERT_TRUE(WriteFileAtomic(path_, lines).ok());
  auto r = sie::Run({SIE_BIN, "log", "--const", "foo", "--since", "1h", "--json", "--consts",
                     dir_->path().string()});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->ok()) << r->err;
  std::vector<std::string> out = absl::StrSplit(r->out, '\n', absl::SkipEmpty());
  ASSERT_EQ(out.size(), 1u) << r->out;
  EXPECT_EQ(json::parse(out[0])["reason"], "new");
  r = sie::Run({SIE_BIN, "log", "--until", "1h", "--consts", dir_->path().string()});
  ASSERT_TRUE(r.ok() && r->ok()) << r->err;
  EXPECT_TRUE(absl::StrContains(r->out, "set FOO 1 -> 2 (mode 0): loaded; reason: old; by root"))
      << r->out;
  EXPECT_FALSE(absl::StrContains(r->out, "BAR")) << r->out;
  r = sie::Run({SIE_BIN, "log", "--since", "last tuesday"});
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r->err, "cannot read 'last tuesday' as a time")) << r->err;
  EXPECT_TRUE(absl::StrContains(r->err, "hint:")) << r->err;
}

}  // namespace
}  // namespace sie
