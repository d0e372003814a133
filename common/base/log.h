// One small leveled logger for every sie tool and library: progress, verbose details, traces.
// Errors meant for the user go through absl::Status and ReportError (diag.h), not here.
// The level comes from SIE_LOG (error|warn|info|debug|trace; SIE_TRACE=1 means trace) unless a
// tool sets it (-v: debug). Messages go to stderr as "sie: <level>: <text>" unless a sink is set
// (tests, or a tool that prints progress in its own format).
#pragma once
#include <functional>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace sie {

enum class LogLevel { kError = 0, kWarn, kInfo, kDebug, kTrace };

LogLevel GetLogLevel();
void SetLogLevel(LogLevel level);
// Raises the level to at least `level` (a -v flag must not lower SIE_LOG=trace).
void RaiseLogLevel(LogLevel level);
inline bool LogEnabled(LogLevel level) { return level <= GetLogLevel(); }

using LogSink = std::function<void(LogLevel, absl::string_view)>;
// Replaces the sink (an empty function restores stderr); returns the previous one.
LogSink SetLogSink(LogSink sink);

void Log(LogLevel level, absl::string_view message);

template <typename... Args>
void Logf(LogLevel level, const absl::FormatSpec<Args...>& format, const Args&... args) {
  if (LogEnabled(level)) Log(level, absl::StrFormat(format, args...));
}

const char* LogLevelName(LogLevel level);

}  // namespace sie
