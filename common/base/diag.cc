#include "common/base/diag.h"

#include <cstdio>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace sie {
namespace {
constexpr char kHintUrl[] = "sie.dev/hint";
}  // namespace

absl::Status ErrorWithHint(absl::StatusCode code, absl::string_view what, absl::string_view hint) {
  return WithHint(absl::Status(code, what), hint);
}

std::string Hint(const absl::Status& s) {
  auto p = s.GetPayload(kHintUrl);
  return p ? std::string(*p) : "";
}

absl::Status WithHint(absl::Status s, absl::string_view hint) {
  if (s.ok()) return s;
  if (hint.empty())
    s.ErasePayload(kHintUrl);
  else
    s.SetPayload(kHintUrl, absl::Cord(hint));
  return s;
}

absl::Status WithContext(const absl::Status& s, absl::string_view context) {
  if (s.ok()) return s;
  absl::Status out(s.code(), absl::StrCat(context, ": ", s.message()));
  s.ForEachPayload(
      [&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

std::string MessageWithHint(const absl::Status& s) {
  std::string hint = Hint(s);
  return hint.empty() ? std::string(s.message()) : absl::StrCat(s.message(), "\nhint: ", hint);
}

int ReportError(absl::string_view tool, const absl::Status& s) {
  // Indent continuation lines so the error reads as one block.
  std::string msg = absl::StrReplaceAll(MessageWithHint(s), {{"\n", "\n  "}});
  std::fprintf(stderr, "%.*s: error: %s\n", static_cast<int>(tool.size()), tool.data(),
               msg.c_str());
  return 1;
}

}  // namespace sie
