// `sie-synth`: the synthesizer as its own program (what `sie synth` runs).
#include <string>
#include <vector>

#include "synth/synth_command.h"

int main(int argc, char** argv) {
  return sie::synth::SynthCommand(std::vector<std::string>(argv + 1, argv + argc));
}
