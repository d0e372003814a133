#include "common/base/diag.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace sie {

absl::Status ErrorWithHint(absl::StatusCode code, absl::string_view what, absl::string_view hint) {
  if (hint.empty()) return absl::Status(code, what);
  return absl::Status(code, absl::StrCat(what, "\nhint: ", hint));
}

absl::Status WithContext(const absl::Status& s, absl::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(context, ": ", s.message()));
}

int ReportError(absl::string_view tool, const absl::Status& s) {
  std::string msg(s.message());
  // Indent continuation lines so the error reads as one block.
  msg = absl::StrReplaceAll(msg, {{"\n", "\n  "}});
  std::fprintf(stderr, "%.*s: error: %s\n", static_cast<int>(tool.size()), tool.data(),
               msg.c_str());
  return 1;
}

}  // namespace sie
