// `sie synth SPEC.yaml [--out DIR] [--kernel-src DIR] [--json] [-v]`: builds three variants of
// the objects each tunable affects, runs the analysis on them, maps the Critical Spans onto the
// shipped binary and writes DIR/index.json and DIR/<id>/: const.json, the BPF stub, its compiled
// object, libbpf skeleton and typed C++ view (docs/synth.md, "Output").
#pragma once
#include <string>
#include <vector>

namespace sie::synth {

// The main of `sie synth`: args exclude the program and subcommand names. Progress goes to
// stderr, the --json summary to stdout. Returns the process exit code (0 on success).
int SynthCommand(const std::vector<std::string>& args);

}  // namespace sie::synth
