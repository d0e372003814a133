#include "runtime/loader/native.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/artifact/formula.h"
#include "common/base/diag.h"
#include "common/base/unique_fd.h"

namespace sie::loader {

using artifact::SpanKind;

namespace {

absl::StatusOr<artifact::Formula> FixedFormula(const artifact::CriticalSpan& s) {
  auto f = artifact::Formula::Parse(s.formula, absl::StrCat("VXR", artifact::kExtraInputs));
  if (!f.ok()) return f.status();
  bool inputs = f->Uses('X') || f->Uses('R');
  for (char in : artifact::kExtraInputs) inputs |= f->Uses(in);
  if (inputs)
    return absl::FailedPreconditionError(
        absl::StrCat("its formula '", s.formula, "' reads the instruction's input per hit"));
  return f;
}

}  // namespace

std::string NativeUnsupported(const artifact::SynthesizedConst& c, int mode, bool has_policy) {
  if (has_policy) return "a policy decides per event (native probes write a fixed value)";
  if (mode != 0)
    return absl::StrCat("mode ", mode, " needs ",
                        mode == 1 ? "per-task guards" : "sie_consistency's gate",
                        ", which only the BPF stub has");
  if (c.spans.empty()) return "the constant has no spans";
  for (size_t i = 0; i < c.spans.size(); ++i) {
    const artifact::CriticalSpan& s = c.spans[i];
    for (size_t j = 0; j < i; ++j)
      if (c.spans[j].function == s.function && c.spans[j].probe_offset == s.probe_offset)
        return absl::StrCat("spans ", j, " and ", i,
                            " probe the same place (sie_native keeps "
                            "one probe per place)");
    const std::string sp =
        absl::StrCat("span ", i, " (", s.function, "+0x", absl::Hex(s.probe_offset), "): ");
    switch (s.kind) {
      case SpanKind::kReg:
        if (s.target_reg.empty() || s.target_reg == "sp")
          return sp + "kind reg without a writable target register";
        break;
      case SpanKind::kMem:
        if (!s.target_mem) return sp + "kind mem without its memory operand";
        if (s.target_mem->base.empty() || s.target_mem->base == "ip")
          return sp + "the cell has no base register (absolute or RIP-relative address)";
        if (!s.target_mem->index.empty()) return sp + "the cell has an index register";
        break;
      case SpanKind::kFlags:
        // `cmp reg, imm` / `test reg, imm`: the flags of the register and the new immediate.
        if (!artifact::NativeFlagsSpan(s))
          return sp + "kind flags of an operation other than `cmp REG, IMM` or `test REG, IMM` (" +
                 (s.flags_op.empty() ? "cmp" : s.flags_op) +
                 (s.target_reg.empty() ? " with a memory operand" : "") + ")";
        break;
      case SpanKind::kRecompute:
        return sp + "kind recompute saves the input per task";
    }
    if (auto f = FixedFormula(s); !f.ok()) return sp + std::string(f.status().message());
  }
  return "";
}

absl::StatusOr<uint64_t> NativeValue(const artifact::CriticalSpan& s, int64_t v) {
  auto f = FixedFormula(s);
  if (!f.ok()) return f.status();
  auto r = f->Eval(static_cast<uint64_t>(v));
  if (!r)
    return InvalidWithHint(
        absl::StrCat("the formula '", s.formula, "' of ", s.function, " has no value at V=", v,
                     " (division by zero or an "
                     "oversized shift)"),
        "pick another value");
  return *r;
}

absl::StatusOr<std::vector<NativeProbe>> NativeProbes(const artifact::SynthesizedConst& c,
                                                      const std::string& binary) {
  std::vector<NativeProbe> out;
  for (size_t i = 0; i < c.spans.size(); ++i) {
    const artifact::CriticalSpan& s = c.spans[i];
    NativeProbe p;
    p.span = static_cast<int>(i);
    p.symbol = binary == "vmlinux" || binary.empty() ? s.function : binary + ":" + s.function;
    p.offset = s.probe_offset;
    p.mark = s.mark_offset;
    p.cs = &s;
    if (s.kind == SpanKind::kReg)
      p.add = absl::StrCat("reg-set ", s.target_reg, " ", s.width);
    else if (s.kind == SpanKind::kMem && s.target_mem)
      p.add = absl::StrCat("mem-cell ", s.target_mem->base, " ", s.target_mem->disp, " ", s.width);
    else if (s.kind == SpanKind::kFlags)
      p.add = absl::StrCat(s.flags_op == "test" ? "flags-test " : "flags-cmp ", s.target_reg, " ",
                           s.width);
    else
      return absl::InternalError(absl::StrCat("span ", i, " is not a native kind"));
    out.push_back(std::move(p));
  }
  return out;
}

std::string NativeAddCommand(const NativeProbe& p, uint64_t value, bool disarmed) {
  return absl::StrCat("probe ", p.symbol, " 0x", absl::Hex(p.offset), " ", p.add, " 0x",
                      absl::Hex(value),
                      p.mark ? absl::StrCat(" mark 0x", absl::Hex(*p.mark)) : std::string(),
                      disarmed ? " disarmed" : "");
}
std::string NativeValueCommand(const NativeProbe& p, uint64_t value) {
  return absl::StrCat("value ", p.symbol, " 0x", absl::Hex(p.offset), " 0x", absl::Hex(value));
}
std::string NativeRemoveCommand(const std::string& symbol, uint64_t offset) {
  return absl::StrCat("remove ", symbol, " 0x", absl::Hex(offset));
}
std::string NativeKey(const std::string& symbol, uint64_t offset) {
  return absl::StrCat(symbol, "+0x", absl::Hex(offset));
}

std::map<std::string, NativeCounters> ParseNativeListing(absl::string_view text) {
  std::map<std::string, NativeCounters> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 7) continue;
    NativeCounters c;
    bool ok = true;
    size_t hits_at = 0;
    for (size_t i = 0; i < f.size(); ++i) {
      absl::string_view w = f[i];
      if (absl::ConsumePrefix(&w, "hits="))
        ok &= absl::SimpleAtoi(w, &c.hits), hits_at = i;
      else if (absl::ConsumePrefix(&w, "faults="))
        ok &= absl::SimpleAtoi(w, &c.faults);
      else if (absl::ConsumePrefix(&w, "bypass="))
        ok &= absl::SimpleAtoi(w, &c.bypass);
    }
    // The value precedes the counters (a path-token probe adds mark= and bypass= after them).
    ok &= hits_at > 0 && absl::SimpleHexAtoi(f[hits_at - 1], &c.value);
    if (ok) out[std::string(f[0])] = c;
  }
  return out;
}

int NativeConflict(const std::vector<NativeProbe>& probes,
                   const std::map<std::string, NativeCounters>& listing) {
  for (size_t i = 0; i < probes.size(); ++i)
    if (listing.count(NativeKey(probes[i].symbol, probes[i].offset))) return static_cast<int>(i);
  return -1;
}

absl::Status NativeCommand(const std::string& cmd, int* err) {
  if (err) *err = 0;
  UniqueFd fd(open(kNativeControl, O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (err) *err = errno;
    return FailedWithHint(absl::StrCat("cannot open ", kNativeControl, ": ", strerror(errno)),
                          "sie_native.ko must be loaded, and sie must run as root");
  }
  if (write(fd.get(), cmd.data(), cmd.size()) != static_cast<ssize_t>(cmd.size())) {
    const int e = errno;
    if (err) *err = e;
    return FailedWithHint(absl::StrCat("sie_native refused '", cmd, "': ", strerror(e)),
                          e == EEXIST ? "another constant probes the same place natively: "
                                        "sie status; or use --engine bpf"
                                      : "see dmesg; --engine bpf avoids sie_native");
  }
  return absl::OkStatus();
}

}  // namespace sie::loader
