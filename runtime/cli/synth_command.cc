// `sie synth ...` runs sie-synth, the host-side synthesizer installed next to sie: the runtime
// (what the guest and production hosts run) links no Z3, Capstone or libdw.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/base/diag.h"
#include "runtime/cli/commands.h"

namespace sie::cli {

namespace {

// Replaces this process with sie-synth, `prefix` before the arguments.
int ExecSynth(const char* tool, const std::vector<std::string>& prefix,
              const std::vector<std::string>& args) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const auto synth = self.parent_path() / "sie-synth";
  std::vector<std::string> argv_s{synth.string()};
  argv_s.insert(argv_s.end(), prefix.begin(), prefix.end());
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(synth.c_str(), argv.data());
  return ReportError(
      tool, FailedWithHint(absl::StrCat("cannot run ", synth.string(), ": ", std::strerror(errno)),
                           "sie synth and sie discover run on a build host: build it with 'ninja "
                           "-C build sie-synth' "
                           "(or install the package that ships sie-synth)"));
}

}  // namespace

int SynthCommand(const std::vector<std::string>& args) { return ExecSynth("sie synth", {}, args); }

int DiscoverCommand(const std::vector<std::string>& args) {
  return ExecSynth("sie discover", {"discover"}, args);
}

}  // namespace sie::cli
