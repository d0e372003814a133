// The CLI of `sie discover` (run as `sie-synth discover ...`).
#pragma once
#include <string>
#include <vector>

namespace sie::synth::discover {

int DiscoverCommand(const std::vector<std::string>& args);

}  // namespace sie::synth::discover
