#include "common/base/diag.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace sie {
namespace {
constexpr char kHintUrl[] = "sie.dev/hint";

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub =
          prev[j - 1] + (absl::ascii_tolower(a[i - 1]) == absl::ascii_tolower(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}
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

std::string DidYouMean(absl::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    size_t d = EditDistance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

}  // namespace sie
