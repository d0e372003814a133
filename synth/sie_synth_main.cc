// `sie-synth`: the synthesizer as its own program (what `sie synth` runs).
#include <string>
#include <vector>

#include "synth/discover/discover_command.h"
#include "synth/synth_command.h"

// `sie-synth discover ...` is `sie discover`; anything else is `sie synth`.
int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "discover")
    return sie::synth::discover::DiscoverCommand(std::vector<std::string>(argv + 2, argv + argc));
  return sie::synth::SynthCommand(std::vector<std::string>(argv + 1, argv + argc));
}
