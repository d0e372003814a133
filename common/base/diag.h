// User-facing errors: one line saying what went wrong, then an optional hint saying what to do
// about it (bpftrace's style). The hint travels as a payload of the absl::Status, so every
// layer can add context to the message (WithContext) without touching the hint, and a caller
// can take the message and the hint apart (Hint) without parsing text.
#pragma once
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace sie {

// "what", with `hint` attached (none when empty).
absl::Status ErrorWithHint(absl::StatusCode code, absl::string_view what, absl::string_view hint);
inline absl::Status InvalidWithHint(absl::string_view what, absl::string_view hint) {
  return ErrorWithHint(absl::StatusCode::kInvalidArgument, what, hint);
}
inline absl::Status FailedWithHint(absl::string_view what, absl::string_view hint) {
  return ErrorWithHint(absl::StatusCode::kFailedPrecondition, what, hint);
}

// The hint attached to `s` ("" when none).
std::string Hint(const absl::Status& s);
// `s` with `hint` attached (replacing one it had); OK stays OK.
absl::Status WithHint(absl::Status s, absl::string_view hint);

// Prefixes the message with context ("loading foo: <original>"), keeping the code and the hint.
absl::Status WithContext(const absl::Status& s, absl::string_view context);

// "what" and, when there is one, "\nhint: ..." (for logs and JSON that keep one string).
std::string MessageWithHint(const absl::Status& s);

// The closest of `candidates` to `word` within a small edit distance (case-insensitive), or
// "": for "did you mean ...?" hints.
std::string DidYouMean(absl::string_view word, const std::vector<std::string>& candidates);

// Prints "<tool>: error: what\n  hint: ..." to stderr. Returns the exit code to use (1).
int ReportError(absl::string_view tool, const absl::Status& s);

}  // namespace sie
