// `sie hint`: hints for the running policy from the command line (libsie-hint, the same C
// library applications link: sdk/include/sie/hint.h). An operator hints a process, thread or
// cgroup; `sie hint run` starts a command under a process hint and takes it back when the
// command exits.
#include <bpf/bpf.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/args.h"
#include "common/base/diag.h"
#include "common/base/unique_fd.h"
#include "runtime/cli/commands.h"
#include "sie/hint.h"

namespace sie::cli {

namespace {

constexpr char kUsage[] =
    "sie hint set VALUE (--pid P | --tid T | --cgroup DIR)\n"
    "       sie hint get|clear (--pid P | --tid T | --cgroup DIR)\n"
    "       sie hint list [--json]\n"
    "       sie hint run VALUE -- CMD [ARGS...]";

struct Target {
  sie_hint_scope scope = SIE_HINT_PROCESS;
  uint64_t id = 0;
  std::string what;  // "process 42", for messages
};

absl::Status HintError(int err, const std::string& what) {
  if (err == -ENOENT)
    return FailedWithHint(
        absl::StrCat("no running policy reads hints (", sie_hint_map_path(), " does not exist)"),
        "start one with sie-run POLICY.bpf.c --const ... (every policy has "
        "the hint map; sie_hint() reads it)");
  if (err == -EPERM || err == -EACCES)
    return FailedWithHint(
        absl::StrCat("cannot write the hint of ", what, ": ", strerror(-err)),
        absl::StrCat("run as root, or ask the operator for access to ", sie_hint_map_path()));
  return absl::InternalError(absl::StrCat("the hint of ", what, ": ", strerror(-err)));
}

absl::StatusOr<Target> ParseTarget(const std::string& pid, const std::string& tid,
                                   const std::string& cgroup) {
  const int given = !pid.empty() + !tid.empty() + !cgroup.empty();
  if (given != 1)
    return InvalidWithHint("name exactly one of --pid, --tid or --cgroup",
                           "sie hint set 2 --pid 1234 (a process), --tid (a thread), --cgroup "
                           "/sys/fs/cgroup/batch (every task in it)");
  Target t;
  if (!cgroup.empty()) {
    t.scope = SIE_HINT_CGROUP;
    t.id = sie_hint_cgroup_id(cgroup.c_str());
    if (!t.id)
      return FailedWithHint(
          absl::StrCat("cannot read the cgroup id of ", cgroup, ": ", strerror(errno)),
          "give a cgroup v2 directory, e.g. /sys/fs/cgroup/system.slice");
    t.what = absl::StrCat("cgroup ", cgroup);
    return t;
  }
  const std::string& n = pid.empty() ? tid : pid;
  t.scope = pid.empty() ? SIE_HINT_THREAD : SIE_HINT_PROCESS;
  if (!absl::SimpleAtoi(n, &t.id) || t.id == 0)
    return InvalidWithHint(absl::StrCat("'", n, "' is not a process or thread id"),
                           "ids are positive integers (see ps -eLf)");
  t.what = absl::StrCat(pid.empty() ? "thread " : "process ", n);
  return t;
}

absl::StatusOr<uint64_t> ParseValue(const std::string& v) {
  uint64_t x = 0;
  if (absl::SimpleAtoi(v, &x) || absl::SimpleHexAtoi(v, &x)) return x;
  return InvalidWithHint(absl::StrCat("hint '", v, "' is not a number"),
                         "hints are unsigned integers the policy defines (its README says which)");
}

const char* ScopeName(uint32_t s) {
  return s == SIE_HINT_THREAD ? "thread" : s == SIE_HINT_PROCESS ? "process" : "cgroup";
}

int List(bool as_json) {
  UniqueFd fd(bpf_obj_get(sie_hint_map_path()));
  if (!fd.valid()) return ReportError("sie hint", HintError(-errno, "the map"));
  nlohmann::json a = nlohmann::json::array();
  sie_hint_key k{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd.get(), prev, &next) == 0) {
    uint64_t v = 0;
    if (bpf_map_lookup_elem(fd.get(), &next, &v) == 0)
      a.push_back({{"scope", ScopeName(next.scope)}, {"id", next.id}, {"hint", v}});
    k = next;
    prev = &k;
  }
  if (as_json) {
    std::printf("%s\n", a.dump().c_str());
    return 0;
  }
  if (a.empty()) std::printf("no hints\n");
  for (const auto& e : a)
    std::printf("%-8s %-20s %s\n", e["scope"].get<std::string>().c_str(), e["id"].dump().c_str(),
                e["hint"].dump().c_str());
  return 0;
}

// CMD runs as a child that hints its own process, then execs: the hint holds from its first
// instruction, for every thread it starts, until it exits; then it is cleared.
int RunUnder(uint64_t value, const std::vector<std::string>& cmd) {
  if (cmd.empty())
    return ReportError("sie hint",
                       InvalidWithHint("no command to run", "sie hint run 2 -- fio job.fio"));
  UniqueFd probe(bpf_obj_get(sie_hint_map_path()));
  if (!probe.valid()) return ReportError("sie hint", HintError(-errno, "the command"));
  pid_t child = fork();
  if (child < 0) return ReportError("sie hint", absl::InternalError(strerror(errno)));
  if (child == 0) {
    if (int err = sie_hint_set(SIE_HINT_PROCESS, 0, value); err) {
      std::fprintf(stderr, "sie hint: %s\n", strerror(-err));
      _exit(127);
    }
    std::vector<char*> argv;
    for (const auto& a : cmd) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    std::fprintf(stderr, "sie hint: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  sie_hint_clear(SIE_HINT_PROCESS, static_cast<uint64_t>(child));
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

int HintCommand(const std::vector<std::string>& args) {
  std::vector<std::string> pos, rest;
  std::string pid, tid, cgroup;
  bool as_json = false;
  ArgParser p(kUsage,
              "Tells the running policy a hint about a process, thread or cgroup (a number the\n"
              "policy defines, e.g. 1 random reads, 2 a sequential scan); the policy reads the\n"
              "task's hint at each decision with sie_hint(): thread, else process, else cgroup.\n"
              "Applications do the same with libsie-hint (sdk/include/sie/hint.h). `run` starts\n"
              "a command under a process hint and clears it when the command exits.");
  p.Positionals("set|get|clear|list|run [VALUE]", &pos, 1, 2);
  p.String("--pid", "P", &pid, "a process (every thread of it)");
  p.String("--tid", "T", &tid, "one thread");
  p.String("--cgroup", "DIR", &cgroup, "every task of a cgroup v2 directory");
  p.Flag("--json", &as_json, "list: machine-readable output");
  p.Rest(&rest);
  if (auto s = p.Parse(args); !s.ok()) return ReportError("sie hint", s);
  if (p.help_requested()) return 0;
  const std::string& verb = pos[0];
  const bool takes_value = verb == "set" || verb == "run";
  if (takes_value != (pos.size() == 2))
    return ReportError(
        "sie hint",
        InvalidWithHint(absl::StrCat("'", verb, "' takes ", takes_value ? "a value" : "no value"),
                        kUsage));
  if (verb == "list") return List(as_json);
  absl::StatusOr<uint64_t> value = uint64_t{0};
  if (takes_value) value = ParseValue(pos[1]);
  if (!value.ok()) return ReportError("sie hint", value.status());
  if (verb == "run") return RunUnder(*value, rest);
  if (verb != "set" && verb != "get" && verb != "clear")
    return ReportError("sie hint",
                       InvalidWithHint(absl::StrCat("unknown action '", verb, "'"), kUsage));
  auto t = ParseTarget(pid, tid, cgroup);
  if (!t.ok()) return ReportError("sie hint", t.status());
  if (verb == "get") {
    uint64_t v = 0;
    int err = sie_hint_get(t->scope, t->id, &v);
    if (err == -ENOENT && access(sie_hint_map_path(), F_OK) == 0) {
      std::printf("%s: no hint\n", t->what.c_str());
      return 1;
    }
    if (err) return ReportError("sie hint", HintError(err, t->what));
    std::printf("%llu\n", static_cast<unsigned long long>(v));
    return 0;
  }
  int err = verb == "set" ? sie_hint_set(t->scope, t->id, *value) : sie_hint_clear(t->scope, t->id);
  if (err) return ReportError("sie hint", HintError(err, t->what));
  return 0;
}

}  // namespace sie::cli
