// Turning a verifier log into one plain sentence that points at the policy's source line.
//
// With clang -g the kernel annotates the log with the BTF line info of each instruction:
// "; <source text> @ file.bpf.c:LINE". The failing instruction is the last one printed before
// the error text, so the last annotation before it names the policy line at fault. The error
// text itself is matched against the common rejections (NULL check missing, raw pointer
// dereference, unbounded index or loop, GPL-only helper, stack size...).
#pragma once
#include <string>

#include "absl/strings/string_view.h"

namespace sie::policy {

struct VerifierError {
  std::string message;  // plain explanation ("... may be NULL here")
  std::string hint;     // what to change
  std::string file;     // from the line annotation ("" when the log has none)
  int line = 0;
  std::string source;      // the annotated source text of that line
  std::string raw_error;   // the verifier's own words (the error line)
  bool truncated = false;  // no "processed N insns" line: the log buffer was too small
};

VerifierError TranslateVerifierLog(absl::string_view log);

}  // namespace sie::policy
