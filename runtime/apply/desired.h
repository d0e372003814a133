// The desired state `sie apply` reads: YAML files naming constants with their value, mode and
// engine, and at most one policy with its knobs and consistency mode. A directory is every
// *.yaml / *.yml in it, in name order (as sysctl.d reads its files); a constant named twice
// with different settings is an error naming both places.
//
//   consts: /var/lib/sie/consts/6.12.117+deb12-amd64   # optional: the constants directory
//   constants:
//     SHRINK_BATCH: 256                          # value only: mode 0, engine auto
//     TCP_INIT_CWND: {value: 20, mode: 1, engine: bpf}
//   policy:
//     file: /etc/sie/policies/hystart.bpf.c       # relative paths: from the YAML file
//     consts: [HYSTART_DELAY_MIN]                 # optional: default its SIE_POLICY lines
//     mode: 0
//     knobs: {min_delay_us: 4000}                 # start settings and live knobs (--set)
//     shadow: false                               # optional: decide and count only (--shadow)
//     cgroup: /sys/fs/cgroup/canary               # optional: decide only there (--cgroup)
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sie::apply {

struct DesiredConst {
  std::string name;  // as written (matched case-insensitively)
  int64_t value = 0;
  int mode = 0;
  std::string engine = "auto";
  std::string where;  // file:line, for messages
};

struct DesiredPolicy {
  std::filesystem::path file;  // absolute
  std::vector<std::string> consts;
  int mode = 0;
  std::map<std::string, std::string> knobs;  // name -> value, as `sie-run --set` takes them
  std::string where;
  bool shadow = false;
  std::filesystem::path cgroup;  // "" for every task
};

struct DesiredState {
  std::filesystem::path consts_dir;  // "" when no file names one
  std::vector<DesiredConst> constants;
  std::optional<DesiredPolicy> policy;
  std::vector<std::filesystem::path> files;  // read, in order
};

// Parses one file's text; `path` names it in messages and anchors relative policy paths.
absl::StatusOr<DesiredState> ParseDesiredText(absl::string_view text,
                                              const std::filesystem::path& path);

// Reads a file, or every *.yaml / *.yml of a directory in name order, merged.
absl::StatusOr<DesiredState> ReadDesired(const std::filesystem::path& file_or_dir);

// Adds `more` to `into`: the same constant with other settings, two policies or two constants
// directories are errors naming both places.
absl::Status Merge(DesiredState& into, DesiredState more);

}  // namespace sie::apply
