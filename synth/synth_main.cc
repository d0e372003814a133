// `sie-synth ARGS` == `sie synth ARGS`, until the sie CLI dispatches to SynthCommand itself.
#include <string>
#include <vector>

#include "synth/synth_command.h"

int main(int argc, char** argv) {
  return sie::synth::SynthCommand(std::vector<std::string>(argv + 1, argv + argc));
}
