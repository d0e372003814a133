// The subcommands of `sie`. Each takes the arguments after its name and returns the exit code.
#pragma once
#include <string>
#include <vector>

namespace sie::cli {

int VmCommand(const std::vector<std::string>& args);
// Runs the host-side synthesizer, sie-synth, installed next to sie (synth/sie_synth_main.cc).
int SynthCommand(const std::vector<std::string>& args);
// `sie discover`: sie-synth's candidate-constant finder (synth/discover/).
int DiscoverCommand(const std::vector<std::string>& args);
int InfoCommand(const std::vector<std::string>& args);
// runtime/cli/const_commands.cc: the runtime (runtime/loader).
int SetCommand(const std::vector<std::string>& args);
int StatusCommand(const std::vector<std::string>& args);
int UnloadCommand(const std::vector<std::string>& args);
int ConstsCommand(const std::vector<std::string>& args);
int LogCommand(const std::vector<std::string>& args);
// runtime/cli/knob_command.cc: the running policy's live knobs (runtime/policy/knobs.h).
int KnobCommand(const std::vector<std::string>& args);
// runtime/cli/metrics_command.cc: Prometheus metrics (runtime/policy/metrics.h).
int MetricsCommand(const std::vector<std::string>& args);
// runtime/cli/apply_command.cc: the desired state, all or nothing (runtime/apply).
int ApplyCommand(const std::vector<std::string>& args);
// runtime/cli/hint_command.cc: hints for the running policy (libsie-hint, sdk/include/sie/hint.h).
int HintCommand(const std::vector<std::string>& args);

}  // namespace sie::cli
