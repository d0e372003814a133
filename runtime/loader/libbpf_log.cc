#include "runtime/loader/libbpf_log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/base/log.h"

namespace sie::loader {
namespace {

constexpr size_t kKeep = 256 * 1024;

struct Buffer {
  std::mutex mu;
  std::string text;
};

Buffer& B() {
  static auto* b = new Buffer;
  return *b;
}

int Print(enum libbpf_print_level level, const char* fmt, va_list ap) {
  const LogLevel ll = level == LIBBPF_DEBUG ? LogLevel::kTrace : LogLevel::kDebug;
  if (level == LIBBPF_DEBUG && !LogEnabled(ll)) return 0;
  char buf[4096];
  const int n = vsnprintf(buf, sizeof(buf), fmt, ap);
  absl::string_view line = absl::StripTrailingAsciiWhitespace(buf);
  if (LogEnabled(ll)) Log(ll, absl::StrCat("libbpf: ", line));
  if (level == LIBBPF_DEBUG) return n;
  std::lock_guard<std::mutex> g(B().mu);
  B().text += buf;
  if (B().text.size() > kKeep) B().text.erase(0, B().text.size() - kKeep / 2);
  return n;
}

}  // namespace

void RouteLibbpfLog() { libbpf_set_print(Print); }

void ClearLibbpfLog() {
  std::lock_guard<std::mutex> g(B().mu);
  B().text.clear();
}

std::string LibbpfLogText() {
  std::lock_guard<std::mutex> g(B().mu);
  return B().text;
}

std::string LibbpfLogTail(size_t max) {
  const std::string l = LibbpfLogText();
  return l.size() > max ? "..." + l.substr(l.size() - max) : l;
}

}  // namespace sie::loader
