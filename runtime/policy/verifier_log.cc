#include "runtime/policy/verifier_log.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sie::policy {

namespace {

struct Rule {
  const char* needle;
  const char* message;
  const char* hint;
};

// Ordered: the first rule whose needle occurs in the error text wins.
const Rule kRules[] = {
    {"_or_null'", "a pointer that may be NULL is used without a check",
     "check the result of bpf_map_lookup_elem() (or the helper that returned it) for NULL "
     "before using it"},
    {"invalid mem access 'scalar'", "a kernel pointer is dereferenced directly",
     "read kernel memory with BPF_CORE_READ(ptr, field) (or bpf_probe_read_kernel)"},
    {"unbounded memory access", "an index or offset is not bounded before the access",
     "compare the index with the array size first (if (i >= N) return ...)"},
    {"min value is negative", "an index may be negative",
     "use an unsigned index, or check that it is >= 0"},
    {"invalid access to map value", "an access goes beyond the map value's size",
     "check the offset and size against the value type"},
    {"invalid access to memory", "an access goes beyond a buffer's end",
     "bound the offset and length before the access"},
    {"BPF program is too large", "a loop the verifier cannot prove to terminate",
     "give the loop a constant bound (for (i = 0; i < 64 && i < n; i++)) or use bpf_loop()"},
    {"infinite loop detected", "an infinite loop", "give the loop a constant bound"},
    {"back-edge", "a loop the verifier cannot prove to terminate",
     "give the loop a constant bound"},
    {"GPL-restricted", "a GPL-only helper is called from a non-GPL program",
     "do not define LICENSE in the policy (the SDK declares it GPL)"},
    {"combined stack size", "the policy uses too much stack (512 bytes in all)",
     "move large local variables into a per-CPU array map"},
    {"stack size", "the policy uses too much stack (512 bytes in all)",
     "move large local variables into a per-CPU array map"},
    {"invalid bpf_context access", "the probe's registers are accessed in an unsupported way",
     "read variables with sie_arg(ctx, name) instead of touching pt_regs"},
    {"!read_ok", "a register is read before it was set (a path returns no value?)",
     "make every path of the policy return sie_value(...) or sie_default(ctx)"},
    {"unknown func", "the helper does not exist for kprobe programs on this kernel",
     "see `bpftool feature probe` for the helpers kprobe programs may call"},
    {"program of this type cannot use helper", "the helper is not allowed in kprobe programs",
     "see `bpftool feature probe` for the helpers kprobe programs may call"},
    {"unreleased reference", "a reference (ring buffer record, socket...) is not released",
     "submit or discard every bpf_ringbuf_reserve()d record on every path"},
    {"R0 invalid mem access", "a helper's result is used as memory without a check",
     "check the helper's result before using it"},
    {"invalid mem access", "an invalid memory access", "check pointers before dereferencing"},
};

}  // namespace

VerifierError TranslateVerifierLog(absl::string_view log) {
  VerifierError e;
  std::vector<absl::string_view> lines = absl::StrSplit(log, '\n', absl::SkipEmpty());
  // The end of the log: "processed N insns ..." (absent when truncated), then maybe timing.
  int end = static_cast<int>(lines.size());
  e.truncated = true;
  for (int i = end - 1; i >= 0; --i)
    if (absl::StartsWith(lines[i], "processed ")) {
      end = i;
      e.truncated = false;
      break;
    }
  // The error: the last non-instruction, non-annotation line(s) before `end`.
  int err = end - 1;
  auto is_insn = [](absl::string_view l) {
    size_t colon = l.find(':');
    int n;
    return colon != absl::string_view::npos && colon > 0 &&
           absl::SimpleAtoi(l.substr(0, colon), &n);
  };
  while (err >= 0 && (is_insn(lines[err]) || absl::StartsWith(lines[err], ";"))) --err;
  if (err >= 0) e.raw_error = std::string(absl::StripAsciiWhitespace(lines[err]));
  // The source line: the last "; ... @ file:line" annotation above the error, skipping the
  // compiler's line-0 entries.
  for (int i = err >= 0 ? err : end - 1; i >= 0; --i) {
    absl::string_view l = lines[i];
    if (!absl::StartsWith(l, ";")) continue;
    size_t at = l.rfind(" @ ");
    if (at == absl::string_view::npos) continue;
    absl::string_view loc = l.substr(at + 3);
    size_t colon = loc.rfind(':');
    int line = 0;
    if (colon == absl::string_view::npos || !absl::SimpleAtoi(loc.substr(colon + 1), &line) ||
        line == 0)
      continue;
    e.file = std::string(loc.substr(0, colon));
    e.line = line;
    e.source = std::string(absl::StripAsciiWhitespace(l.substr(1, at - 1)));
    break;
  }
  for (const Rule& r : kRules)
    if (absl::StrContains(e.raw_error, r.needle)) {
      e.message = r.message;
      e.hint = r.hint;
      break;
    }
  if (e.message.empty()) {
    e.message = e.raw_error.empty() ? "the verifier rejected the program" : e.raw_error;
    e.hint = "run with -v for the verifier's full log";
  }
  return e;
}

}  // namespace sie::policy
