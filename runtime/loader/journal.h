// The journal: every change sie makes to the running kernel, one json object per line in
// JournalPath() (loader.h), each also summarised in the system log (syslog, tag "sie"). An
// entry says who (user, pid), when, what (constant, old -> new value, mode, engine, outcome)
// and why: the command's --reason and, for sie-run, the policy's name and content hash
// (SetJournalContext).
#pragma once
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::loader {

// Fields every later entry of this process carries ("reason", "policy", "policy_hash"), set
// once by the CLI before it changes anything; an entry's own fields win.
void SetJournalContext(const nlohmann::json& fields);

// Appends one entry (with time, pid, user and the context) to the journal and the system log.
// Never fails: the journal never blocks a change, and status shows the state.
void Journal(const nlohmann::json& entry);
// Journals `journal` as a refusal (its first line as "error") and returns `st`.
absl::Status JournalRefusal(nlohmann::json journal, absl::Status st);

// The one line the system log gets for an entry: "set FOO 10 -> 20 (mode 0, bpf): loaded;
// reason: ...".
std::string JournalLine(const nlohmann::json& entry);

// `sie log`'s selection: one constant (name; "" for all) and a time window (seconds since
// the epoch, both ends included).
struct JournalFilter {
  std::string name;
  int64_t since = std::numeric_limits<int64_t>::min();
  int64_t until = std::numeric_limits<int64_t>::max();
};
bool JournalMatches(const nlohmann::json& entry, const JournalFilter& filter);

// A time for --since/--until: seconds since the epoch ("@1733400000" or a plain number), a
// local date and time ("2026-12-05", "2026-12-05 14:30", "2026-12-05T14:30:05"), or an age
// before `now` ("90s", "10m", "2h", "3d"). InvalidArgument with a hint otherwise.
absl::StatusOr<int64_t> ParseJournalTime(absl::string_view text, int64_t now);

}  // namespace sie::loader
