#include "runtime/loader/journal.h"

#include <fcntl.h>
#include <pwd.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <filesystem>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/unique_fd.h"
#include "runtime/loader/loader.h"

namespace sie::loader {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json& Context() {
  static json* c = new json(json::object());
  return *c;
}

std::string UserName() {
  struct passwd* pw = getpwuid(getuid());
  const char* sudo = getenv("SUDO_USER");
  return absl::StrCat(pw ? pw->pw_name : std::to_string(getuid()),
                      sudo ? absl::StrCat(" (sudo by ", sudo, ")") : "");
}

std::string ValueText(const json& e, const char* key) {
  if (!e.contains(key) || e[key].is_null()) return "-";
  return e[key].dump();
}

// "1733400000", "@1733400000": seconds since the epoch.
std::optional<int64_t> EpochSeconds(absl::string_view t) {
  if (!t.empty() && t[0] == '@') t.remove_prefix(1);
  int64_t v = 0;
  if (t.size() >= 9 && absl::SimpleAtoi(t, &v)) return v;
  return std::nullopt;
}

// "90s", "10m", "2h", "3d" before now.
std::optional<int64_t> Age(absl::string_view t, int64_t now) {
  if (t.size() < 2) return std::nullopt;
  int64_t n = 0;
  if (!absl::SimpleAtoi(t.substr(0, t.size() - 1), &n) || n < 0) return std::nullopt;
  switch (t.back()) {
    case 's':
      return now - n;
    case 'm':
      return now - n * 60;
    case 'h':
      return now - n * 3600;
    case 'd':
      return now - n * 86400;
    default:
      return std::nullopt;
  }
}

// A local date with an optional time: "2026-12-05", "2026-12-05 14:30", "2026-12-05T14:30:05".
std::optional<int64_t> LocalTime(absl::string_view t) {
  for (const char* f :
       {"%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"}) {
    struct tm tm = {};
    const std::string s(t);
    const char* end = strptime(s.c_str(), f, &tm);
    if (!end || *end) continue;
    tm.tm_isdst = -1;
    const time_t v = mktime(&tm);
    if (v != -1) return static_cast<int64_t>(v);
  }
  return std::nullopt;
}

}  // namespace

fs::path JournalPath() {
  if (const char* d = getenv("SIE_JOURNAL"); d && *d) return d;
  std::error_code ec;
  fs::create_directories("/var/log/sie", ec);
  if (!ec && access("/var/log/sie", W_OK) == 0) return "/var/log/sie/journal.jsonl";
  return RunDir() / "journal.jsonl";
}

void SetJournalContext(const json& fields) {
  for (const auto& [k, v] : fields.items()) Context()[k] = v;
}

std::string JournalLine(const json& e) {
  const std::string outcome = e.value("outcome", "?");
  std::string verb = outcome == "unloaded" ? "unload" : "set";
  std::string line =
      absl::StrCat(verb, " ", e.value("const", "?"), " ", ValueText(e, "old_value"), " -> ",
                   ValueText(e, "new_value"), " (mode ", ValueText(e, "mode"));
  if (e.contains("engine")) absl::StrAppend(&line, ", ", e["engine"].get<std::string>());
  absl::StrAppend(&line, "): ", outcome);
  if (e.contains("error")) absl::StrAppend(&line, ": ", e["error"].get<std::string>());
  if (e.contains("policy"))
    absl::StrAppend(&line, "; policy ", e["policy"].get<std::string>(), " ",
                    e.value("policy_hash", "").substr(0, 12));
  if (e.contains("reason")) absl::StrAppend(&line, "; reason: ", e["reason"].get<std::string>());
  absl::StrAppend(&line, "; by ", e.value("user", "?"));
  return line;
}

void Journal(const json& entry) {
  json e = Context();
  for (const auto& [k, v] : entry.items()) e[k] = v;
  e["time"] = static_cast<int64_t>(time(nullptr));
  e["pid"] = getpid();
  e["user"] = UserName();
  // The system log too (journald, rsyslog): where operators already look.
  openlog("sie", LOG_PID, LOG_USER);
  syslog(e.contains("error") ? LOG_WARNING : LOG_NOTICE, "%s", JournalLine(e).c_str());
  closelog();
  fs::path p = JournalPath();
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  UniqueFd fd(open(p.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
  if (!fd.valid()) return;  // the journal never blocks a change; status shows the state
  std::string line = e.dump() + "\n";
  // O_APPEND + one write: concurrent writers never interleave within a line.
  (void)!write(fd.get(), line.data(), line.size());
}

absl::Status JournalRefusal(json journal, absl::Status st) {
  journal["outcome"] = "refused";
  journal["error"] = std::string(st.message().substr(0, st.message().find('\n')));
  Journal(journal);
  return st;
}

absl::StatusOr<std::vector<json>> ReadJournal() {
  std::vector<json> out;
  std::vector<fs::path> paths;
  if (const char* d = getenv("SIE_JOURNAL"); d && *d)
    paths.push_back(d);
  else
    paths = {"/var/log/sie/journal.jsonl", RunDir() / "journal.jsonl"};
  for (const fs::path& p : paths) {
    auto t = ReadFile(p);
    if (!t.ok()) continue;
    size_t pos = 0;
    while (pos < t->size()) {
      size_t nl = t->find('\n', pos);
      if (nl == std::string::npos) nl = t->size();
      json j = json::parse(t->substr(pos, nl - pos), nullptr, false);
      if (!j.is_discarded()) out.push_back(j);
      pos = nl + 1;
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return a.value("time", int64_t{0}) < b.value("time", int64_t{0});
  });
  return out;
}

bool JournalMatches(const json& e, const JournalFilter& f) {
  if (!f.name.empty() && e.value("const", "") != f.name) return false;
  const int64_t t = e.value("time", int64_t{0});
  return t >= f.since && t <= f.until;
}

absl::StatusOr<int64_t> ParseJournalTime(absl::string_view text, int64_t now) {
  if (auto v = EpochSeconds(text)) return *v;
  if (auto v = Age(text, now)) return *v;
  if (auto v = LocalTime(text)) return *v;
  return InvalidWithHint(absl::StrCat("cannot read '", text, "' as a time"),
                         "give seconds since the epoch (@1733400000), a local date and time "
                         "(2026-12-05 or \"2026-12-05 14:30\"), or an age (90s, 10m, 2h, 3d)");
}

}  // namespace sie::loader
