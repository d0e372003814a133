// User-facing errors: one line saying what went wrong, then an optional "hint:" line saying what
// to do about it (bpftrace's style). Carried in absl::Status messages so every layer can add
// context without exceptions.
#pragma once
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace sie {

// "what\nhint: hint"
absl::Status ErrorWithHint(absl::StatusCode code, absl::string_view what, absl::string_view hint);
inline absl::Status InvalidWithHint(absl::string_view what, absl::string_view hint) {
  return ErrorWithHint(absl::StatusCode::kInvalidArgument, what, hint);
}
inline absl::Status FailedWithHint(absl::string_view what, absl::string_view hint) {
  return ErrorWithHint(absl::StatusCode::kFailedPrecondition, what, hint);
}

// Prefixes the message with context ("loading foo: <original>"), keeping the code.
absl::Status WithContext(const absl::Status& s, absl::string_view context);

// Prints "<tool>: error: what\n  hint: ..." to stderr. Returns the exit code to use (1).
int ReportError(absl::string_view tool, const absl::Status& s);

}  // namespace sie
