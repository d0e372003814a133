#include "common/base/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/base/unique_fd.h"

extern char** environ;

namespace sie {
namespace {

using Clock = std::chrono::steady_clock;

absl::Status ErrnoStatus(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

std::vector<std::string> BuildEnv(const RunOptions& opts) {
  std::map<std::string, std::string> env;
  if (!opts.clear_env) {
    for (char** e = environ; *e; ++e) {
      absl::string_view kv(*e);
      auto eq = kv.find('=');
      if (eq != absl::string_view::npos)
        env[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
    }
  }
  for (const auto& [k, v] : opts.env_set) env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(absl::StrCat(k, "=", v));
  return out;
}

std::string Tail(absl::string_view s, size_t max_lines) {
  std::vector<absl::string_view> lines = absl::StrSplit(s, '\n', absl::SkipEmpty());
  if (lines.size() > max_lines) lines.erase(lines.begin(), lines.end() - max_lines);
  return absl::StrJoin(lines, "\n");
}

}  // namespace

std::string RunResult::Describe() const {
  if (timed_out) return absl::StrFormat("timed out after %.1f s", elapsed.count() / 1000.0);
  if (term_signal) return absl::StrCat("killed by signal ", term_signal);
  return absl::StrCat("exit ", exit_code);
}

std::string ShellJoin(const std::vector<std::string>& argv) {
  std::vector<std::string> q;
  for (const auto& a : argv) {
    bool plain = !a.empty() && a.find_first_not_of(
                                   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789_-./=:,+@%") == std::string::npos;
    if (plain) {
      q.push_back(a);
    } else {
      std::string s = "'";
      for (char c : a) s += (c == '\'') ? std::string("'\\''") : std::string(1, c);
      q.push_back(s + "'");
    }
  }
  return absl::StrJoin(q, " ");
}

absl::StatusOr<std::string> FindInPath(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (access(name.c_str(), X_OK) == 0) return name;
    return absl::NotFoundError(absl::StrCat(name, " is not an executable file"));
  }
  const char* path = getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
    std::string cand = absl::StrCat(dir, "/", name);
    struct stat st;
    if (stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(cand.c_str(), X_OK) == 0)
      return cand;
  }
  return absl::NotFoundError(absl::StrCat("'", name, "' was not found in PATH"));
}

absl::StatusOr<RunResult> Run(const std::vector<std::string>& argv, const RunOptions& opts) {
  if (argv.empty()) return absl::InvalidArgumentError("Run: empty command");
  auto exe = FindInPath(argv[0]);
  if (!exe.ok()) return exe.status();

  int out_pipe[2], err_pipe[2], in_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC) || pipe2(in_pipe, O_CLOEXEC))
    return ErrnoStatus("pipe");
  UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]), err_r(err_pipe[0]), err_w(err_pipe[1]),
      in_r(in_pipe[0]), in_w(in_pipe[1]);

  std::vector<std::string> env = BuildEnv(opts);
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  auto start = Clock::now();
  pid_t pid = fork();
  if (pid < 0) return ErrnoStatus("fork");
  if (pid == 0) {
    // Child: only async-signal-safe calls from here on.
    if (opts.new_process_group) setpgid(0, 0);
    // Its own group escapes a signal to ours: die with the caller (a killed `sie vm` must not
    // leave QEMU running). Run() waits in the forking thread, so that thread outlives the child.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(in_r.get(), 0);
    dup2(out_w.get(), 1);
    dup2(err_w.get(), 2);
    if (!opts.cwd.empty() && chdir(opts.cwd.c_str()) != 0) _exit(127);
    execve(exe->c_str(), cargv.data(), cenv.data());
    _exit(127);
  }
  if (opts.new_process_group) setpgid(pid, pid);
  out_w.reset();
  err_w.reset();
  in_r.reset();

  // Feed stdin (small inputs only: written before reading output).
  if (!opts.stdin_data.empty()) {
    signal(SIGPIPE, SIG_IGN);
    size_t off = 0;
    while (off < opts.stdin_data.size()) {
      ssize_t n = write(in_w.get(), opts.stdin_data.data() + off, opts.stdin_data.size() - off);
      if (n <= 0) break;
      off += n;
    }
  }
  in_w.reset();

  RunResult res;
  char buf[65536];
  struct pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    int wait_ms = -1;
    if (opts.timeout) {
      auto left = *opts.timeout -
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
      if (left.count() <= 0) {
        res.timed_out = true;
        kill(opts.new_process_group ? -pid : pid, SIGKILL);
        break;
      }
      wait_ms = static_cast<int>(left.count());
    }
    int n = poll(fds, 2, wait_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = read(fds[i].fd, buf, sizeof buf);
      if (r <= 0) {
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      absl::string_view chunk(buf, r);
      auto& cb = i == 0 ? opts.on_stdout : opts.on_stderr;
      if (cb) cb(chunk);
      if (opts.capture) (i == 0 ? res.out : res.err).append(chunk.data(), chunk.size());
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // A timed-out child's group is already killed; also reap stragglers of a finished group.
  if (opts.new_process_group) kill(-pid, SIGKILL);
  res.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  if (WIFEXITED(status)) res.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) res.term_signal = WTERMSIG(status);
  return res;
}

absl::StatusOr<RunResult> RunChecked(const std::vector<std::string>& argv, const RunOptions& opts) {
  auto r = Run(argv, opts);
  if (!r.ok()) return r.status();
  if (!r->ok()) {
    std::string tail = Tail(r->err.empty() ? r->out : r->err, 20);
    return absl::InternalError(absl::StrCat(
        "command failed (", r->Describe(), "): ", ShellJoin(argv), tail.empty() ? "" : "\n", tail));
  }
  return r;
}

}  // namespace sie
