// Running child processes (compilers, qemu, make) with captured or streamed output, a timeout,
// and a guarantee that no child outlives its Process object.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie {

struct RunOptions {
  std::string cwd;                             // empty: inherit
  std::map<std::string, std::string> env_set;  // added to (or replacing in) the environment
  bool clear_env = false;                      // start from an empty environment
  std::optional<std::chrono::milliseconds> timeout;
  std::string stdin_data;  // fed to the child's stdin (else /dev/null)
  // Called with each chunk of stdout/stderr as it arrives (for streaming); output is also
  // captured unless capture is false.
  std::function<void(absl::string_view)> on_stdout;
  std::function<void(absl::string_view)> on_stderr;
  bool capture = true;
  bool new_process_group = true;  // so a timeout kills the whole tree
};

struct RunResult {
  int exit_code = -1;   // valid when !signaled
  int term_signal = 0;  // non-zero when killed by a signal
  bool timed_out = false;
  std::string out;
  std::string err;
  std::chrono::milliseconds elapsed{0};

  bool ok() const { return !timed_out && term_signal == 0 && exit_code == 0; }
  // "exit 3", "killed by signal 9", "timed out after 12.0 s".
  std::string Describe() const;
};

// Runs argv[0] (searched in PATH) to completion. Returns an error only when the process could
// not be started; a non-zero exit is reported in RunResult.
absl::StatusOr<RunResult> Run(const std::vector<std::string>& argv, const RunOptions& opts = {});

// Runs and requires exit 0; the error message carries the command and its stderr tail.
absl::StatusOr<RunResult> RunChecked(const std::vector<std::string>& argv,
                                     const RunOptions& opts = {});

// Absolute path of an executable found in PATH, or NotFound.
absl::StatusOr<std::string> FindInPath(const std::string& name);

// The shell-quoted command line, for messages and -v output.
std::string ShellJoin(const std::vector<std::string>& argv);

}  // namespace sie
