// Where the stub reads each input of a span's output at the probe (right after the span): a
// register that holds it there (the register it came in, untouched, or one it was copied or
// loaded into), memory at the address it was loaded from (address registers intact, no store
// of the span may alias it, no other live result of the span computed from it), or saved
// before the probe by a save probe: a register the span overwrites, at the span's start; a
// value the span loads into a register (`mov`, `movzx`, `movsx`), from that register right
// after the load (the exact value the code used). Anything else is a refusal that names the
// input and why it is not available.
#pragma once
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "synth/analysis/disasm.h"
#include "synth/analysis/semantics.h"

namespace sie::synth::analysis {

struct ProbeInput {
  std::string sym;             // the Z3 input ("in:si", "mem:...:4")
  std::string reg;             // read from this register (pt_regs family) at the probe, or
  std::optional<Operand> mem;  // from this memory operand at the probe
  int width = 8;               // bytes (memory, saved values: the low bytes kept)
  bool saved = false;          // `reg` is saved at `save_index` (not read at the probe)
  int save_index = 0;          // instruction index (in `fn`) the save probe is placed at
};

// `st`: the baseline's state after the span [begin, end) of `fn`; `outs`: the output in each
// build (its inputs are located);
// `target`: the register the span's output is written to (empty for a store); `live_uses`:
// the other outputs live after the span (a re-read memory input must feed none of them).
absl::StatusOr<std::vector<ProbeInput>> LocateInputs(const Function& fn, int begin, int end,
                                                     SymState& st,
                                                     const std::vector<z3::expr>& outs,
                                                     const std::string& target,
                                                     const std::vector<z3::expr>& live_uses);

}  // namespace sie::synth::analysis
