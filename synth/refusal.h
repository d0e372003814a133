// Why a tunable could not be synthesized, as a small closed set of classes. The class is set by
// the code that refuses (as an absl::Status payload next to the message) and read by the
// pipeline's report, so the summary table and --json never parse message text.
#pragma once
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace sie::synth {

enum class Refusal {
  kUnclassified,           // an error no refusing site classified (I/O, internal)
  kSpec,                   // the spec entry itself is wrong (file, values, objects)
  kMacroNotFound,          // `macro:` is not defined in `file:`
  kMacroAmbiguous,         // `macro:` has several definitions and none is selected
  kBuild,                  // a variant did not compile
  kNoSpan,                 // no instruction differs between the builds
  kObjectNotMapped,        // the function is not in the shipped binary
  kModuleNotFound,         // the object is built into a module whose shipped file is not found
  kSeveralBinaries,        // spans in two binaries (vmlinux and a module, or two modules)
  kShippedMismatch,        // the shipped function differs from the V1 rebuild
  kFormulaFamily,          // the transformation is outside the formula family
  kUnmodelledInstruction,  // the symbolic executor cannot model an instruction of the span
  kTwoInputs,              // the span combines two live inputs with the constant
  kInputInSpan,            // X is loaded inside the span, not live at its start
  kJoinBypass,             // the span ends at a jump target and no path token can mark it
  kShapeChange,            // a comparison changes shape with the value
  kControlFlow,            // control flow or the stack frame depends on the value
  kLayout,                 // a memory offset, store set or data layout depends on the value
  kUnsafe,                 // tuning would be unsafe (allocation size, no probe location)
  kRange,                  // no value of the requested range is valid for every span
  kStub,                   // the stub generator refused the spans (e.g. flags it cannot emit)
  kInitOnly,               // only boot/module-init (or exit) code uses the value
  kNotrace,                // a span needs BPF in a function kprobe events refuse (notrace)
};
inline constexpr Refusal kLastRefusal = Refusal::kNotrace;  // update when adding a class

// The name used in the summary table and in --json ("formula-family"): part of the output.
constexpr const char* RefusalName(Refusal r) {
  switch (r) {
    case Refusal::kUnclassified:
      return "other";
    case Refusal::kSpec:
      return "spec";
    case Refusal::kMacroNotFound:
      return "macro-not-found";
    case Refusal::kMacroAmbiguous:
      return "macro-ambiguous";
    case Refusal::kBuild:
      return "build";
    case Refusal::kNoSpan:
      return "no-span";
    case Refusal::kObjectNotMapped:
      return "object-not-mapped";
    case Refusal::kModuleNotFound:
      return "module-not-found";
    case Refusal::kSeveralBinaries:
      return "several-binaries";
    case Refusal::kShippedMismatch:
      return "shipped-mismatch";
    case Refusal::kFormulaFamily:
      return "formula-family";
    case Refusal::kUnmodelledInstruction:
      return "unmodelled-instruction";
    case Refusal::kTwoInputs:
      return "two-inputs";
    case Refusal::kInputInSpan:
      return "input-in-span";
    case Refusal::kJoinBypass:
      return "join-bypass";
    case Refusal::kShapeChange:
      return "shape-change";
    case Refusal::kControlFlow:
      return "control-flow";
    case Refusal::kLayout:
      return "layout";
    case Refusal::kUnsafe:
      return "unsafe";
    case Refusal::kRange:
      return "range";
    case Refusal::kStub:
      return "stub";
    case Refusal::kInitOnly:
      return "init-only";
    case Refusal::kNotrace:
      return "notrace";
  }
  return "other";
}

inline constexpr char kRefusalPayload[] = "type.sie/synth.refusal";

// `s` with its class set (an OK status stays OK). The first class set wins: the innermost
// refusing site knows best, and wrappers only add one when none is there yet.
inline absl::Status Classified(absl::Status s, Refusal r) {
  if (s.ok() || s.GetPayload(kRefusalPayload)) return s;
  s.SetPayload(kRefusalPayload, absl::Cord(RefusalName(r)));
  return s;
}

// The class set on `s`, kUnclassified when none was.
inline Refusal RefusalOf(const absl::Status& s) {
  auto p = s.GetPayload(kRefusalPayload);
  if (!p) return Refusal::kUnclassified;
  for (int i = 0; i <= static_cast<int>(kLastRefusal); ++i)
    if (*p == RefusalName(static_cast<Refusal>(i))) return static_cast<Refusal>(i);
  return Refusal::kUnclassified;
}

// A new status of `code` and `message` keeping the class of `from` (statuses rebuilt from
// another's message would otherwise lose it).
inline absl::Status KeepClass(absl::StatusCode code, absl::string_view message,
                              const absl::Status& from) {
  absl::Status s(code, message);
  if (auto p = from.GetPayload(kRefusalPayload)) s.SetPayload(kRefusalPayload, *p);
  return s;
}

}  // namespace sie::synth
