#include "common/base/log.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "absl/strings/ascii.h"

namespace sie {
namespace {

struct Logger {
  std::mutex mu;
  LogLevel level;
  LogSink sink;
};

LogLevel LevelFromEnv() {
  if (const char* t = std::getenv("SIE_TRACE"); t && *t && std::string(t) != "0")
    return LogLevel::kTrace;
  const char* e = std::getenv("SIE_LOG");
  const std::string v = absl::AsciiStrToLower(e ? e : "");
  for (LogLevel l :
       {LogLevel::kError, LogLevel::kWarn, LogLevel::kInfo, LogLevel::kDebug, LogLevel::kTrace})
    if (v == LogLevelName(l)) return l;
  return LogLevel::kInfo;
}

Logger& L() {
  static auto* l = new Logger{{}, LevelFromEnv(), {}};
  return *l;
}

}  // namespace

const char* LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kTrace:
      return "trace";
  }
  return "?";
}

LogLevel GetLogLevel() {
  std::lock_guard<std::mutex> g(L().mu);
  return L().level;
}

void SetLogLevel(LogLevel level) {
  std::lock_guard<std::mutex> g(L().mu);
  L().level = level;
}

void RaiseLogLevel(LogLevel level) {
  std::lock_guard<std::mutex> g(L().mu);
  if (level > L().level) L().level = level;
}

LogSink SetLogSink(LogSink sink) {
  std::lock_guard<std::mutex> g(L().mu);
  std::swap(L().sink, sink);
  return sink;
}

void Log(LogLevel level, absl::string_view message) {
  LogSink sink;
  {
    std::lock_guard<std::mutex> g(L().mu);
    if (level > L().level) return;
    sink = L().sink;
  }
  if (sink) return sink(level, message);
  std::fprintf(stderr, "sie: %s: %.*s\n", LogLevelName(level), static_cast<int>(message.size()),
               message.data());
}

}  // namespace sie
