#include "common/stubgen/cpp_view.h"

#include <climits>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "bpf/include/sie/abi.h"

namespace sie::stubgen {
namespace {

// A C++ string literal for arbitrary text.
std::string Lit(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch < 0x20 || ch >= 0x7f) {
      // Octal, always three digits, so a following digit is never taken in.
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03o", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out + "\"";
}

std::string I64(int64_t v) {
  if (v == INT64_MIN) return "(-9223372036854775807LL - 1)";
  return absl::StrCat(v, "LL");
}

// One line of text without line breaks (for comments).
std::string OneLine(const std::string& s) {
  return absl::StrReplaceAll(s, {{"\n", " "}, {"*/", "* /"}});
}

// The view. $-words are replaced; everything else is emitted as is. Kept dependency-light:
// libbpf, the skeleton and absl::Status only, so tools outside sie can include it.
constexpr char kTemplate[] = R"sie(// $BANNER.
// Typed C++ view of the BPF stub of constant $NAME (id $ID): $DESCRIPTION
// Over the libbpf skeleton $SKEL ($LNAME.skel.h, `bpftool gen skeleton`) of the stub object
// in this directory. Include this directory, link libbpf and absl::status.
//
//   auto c = sie::consts::$CLASS::OpenAndLoad();  // load needs root
//   if (c.ok()) c->SetValue(42);                   // range-checked against const.json
//
// Attaching is the runtime's job (`sie set`, which checks the live kernel bytes first).
#pragma once
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "$LNAME.skel.h"

namespace sie::consts {

class $CLASS {
 public:
  static constexpr const char* kName = $QNAME;
  static constexpr int kId = $ID;
  static constexpr int64_t kMin = $MIN;  // the range a value must be in (const.json "range")
  static constexpr int64_t kMax = $MAX;
  static constexpr int64_t kShipped = $SHIPPED;  // the value the kernel was built with
  static constexpr uint32_t kNumSpans = $NSPANS;

  struct Span {
    const char* function;   // symbol in the shipped binary
    uint64_t probe_offset;  // function-relative
    const char* kind;       // reg, mem, flags or recompute
    const char* formula;    // the new value as f(V, X)
    const char* source;     // file:line in the kernel tree / the spec's source_dir
  };
  static constexpr Span kSpans[kNumSpans] = {
$SPANS  };

  // sie_ctl word "mode" (bpf/include/sie/stub.bpf.h).
  enum class Mode : uint64_t { kImmediate = 0, kPerTask = 1, kGlobal = 2 };

  // sie_stats of one span (or all), summed over CPUs.
  struct Counters {
    uint64_t hits = 0;      // probe hits
    uint64_t applied = 0;   // new value written
    uint64_t rejected = 0;  // decision out of range, or the formula failed
    uint64_t failed = 0;    // the kfunc refused
    uint64_t gated = 0;     // hit while inactive / task not transitioned
    uint64_t nosave = 0;    // recompute without a saved input
  };

  // Opens the embedded object (no kernel access: works without privileges).
  static absl::StatusOr<$CLASS> Open() {
    errno = 0;
    $SKEL* s = $SKEL__open();
    if (!s)
      return Error(absl::StatusCode::kInternal, "opening the stub object", errno ? errno : EINVAL,
                   "regenerate the skeleton with `sie synth`");
    return $CLASS(s);
  }

  // Loads (verifies) every program and creates the maps.
  absl::Status Load() {
    if (loaded_) return absl::OkStatus();
    if (int err = $SKEL__load(skel_); err)
      return Error(absl::StatusCode::kFailedPrecondition, "loading the stub", -err,
                   "loading BPF needs root; a stub calling sie kfuncs needs the sie_kfuncs "
                   "module (an object built with -DSIE_NO_KFUNCS loads without it)");
    loaded_ = true;
    return absl::OkStatus();
  }

  static absl::StatusOr<$CLASS> OpenAndLoad() {
    auto v = Open();
    if (!v.ok()) return v.status();
    if (absl::Status st = v->Load(); !st.ok()) return st;
    return v;
  }

  $CLASS($CLASS&& o) noexcept : skel_(o.skel_), loaded_(o.loaded_) { o.skel_ = nullptr; }
  $CLASS& operator=($CLASS&& o) noexcept {
    if (this != &o) {
      Reset();
      skel_ = o.skel_;
      loaded_ = o.loaded_;
      o.skel_ = nullptr;
    }
    return *this;
  }
  $CLASS(const $CLASS&) = delete;
  $CLASS& operator=(const $CLASS&) = delete;
  ~$CLASS() { Reset(); }

  // OK when `v` is a value the stub may apply (kMin <= v <= kMax).
  static absl::Status CheckValue(int64_t v) {
    if (v >= kMin && v <= kMax) return absl::OkStatus();
    return absl::InvalidArgumentError(std::string(kName) + ": value " + std::to_string(v) +
                                      " is outside [" + std::to_string(kMin) + ", " +
                                      std::to_string(kMax) +
                                      "]\nhint: the range comes from const.json (synth narrows "
                                      "it where the formulas stop being exact)");
  }

  // The value the default (fixed-value) decision returns: one map update, no reload.
  absl::Status SetValue(int64_t v) {
    if (absl::Status st = CheckValue(v); !st.ok()) return st;
    return SetCtl(kCtlValue, static_cast<uint64_t>(v));
  }
  absl::StatusOr<int64_t> Value() const {
    auto w = Ctl(kCtlValue);
    if (!w.ok()) return w.status();
    return static_cast<int64_t>(*w);
  }
  // The kill switch: nothing is applied while inactive.
  absl::Status SetActive(bool on) { return SetCtl(kCtlActive, on ? 1 : 0); }
  absl::StatusOr<bool> Active() const {
    auto w = Ctl(kCtlActive);
    if (!w.ok()) return w.status();
    return *w != 0;
  }
  absl::Status SetMode(Mode m) { return SetCtl(kCtlMode, static_cast<uint64_t>(m)); }

  absl::StatusOr<Counters> SpanCounters(uint32_t span) const {
    if (span >= kNumSpans)
      return absl::OutOfRangeError(std::string(kName) + ": no span " + std::to_string(span) +
                                   " (the stub has " + std::to_string(kNumSpans) + ")");
    if (absl::Status st = NeedLoaded("reading counters"); !st.ok()) return st;
    Counters c;
    uint64_t* fields[] = {&c.hits, &c.applied, &c.rejected, &c.failed, &c.gated, &c.nosave};
    static_assert($STAT_NOSAVE == 5, "Counters lists the first six stats in abi.h's order");
    for (uint32_t stat = 0; stat < 6; ++stat) {
      auto v = Stat(span * kStatNr + stat);
      if (!v.ok()) return v.status();
      *fields[stat] = *v;
    }
    return c;
  }
  absl::StatusOr<Counters> TotalCounters() const {
    Counters t;
    for (uint32_t i = 0; i < kNumSpans; ++i) {
      auto c = SpanCounters(i);
      if (!c.ok()) return c.status();
      t.hits += c->hits;
      t.applied += c->applied;
      t.rejected += c->rejected;
      t.failed += c->failed;
      t.gated += c->gated;
      t.nosave += c->nosave;
    }
    return t;
  }

  // sie_apply_<span>: the kprobe program at kSpans[span] (nullptr when out of range).
  bpf_program* ApplyProgram(uint32_t span) const {
    switch (span) {
$APPLY_CASES    }
    return nullptr;
  }
  // sie_save_<span>[_<point>]: save point `point` of a span (its recompute's X, inputs saved
  // inside it); nullptr when the span has no such point.
  bpf_program* SaveProgram(uint32_t span, uint32_t point = 0) const {
    switch (span * 256 + point) {
$SAVE_CASES      default: break;
    }
    return nullptr;
  }
  // sie_guard: the mode-1 guard attached at every safe-span entry.
  bpf_program* GuardProgram() const { return skel_->progs.sie_guard; }

  bool loaded() const { return loaded_; }
  $SKEL* skeleton() const { return skel_; }
  bpf_object* object() const { return skel_->obj; }

 private:
  // bpf/include/sie/abi.h, as this sie generated the view.
  static constexpr uint32_t kCtlValue = $CTL_VALUE, kCtlActive = $CTL_ACTIVE, kCtlMode = $CTL_MODE;
  static constexpr uint32_t kStatNr = $STAT_NR;

  explicit $CLASS($SKEL* s) : skel_(s) {}
  void Reset() {
    if (skel_) $SKEL__destroy(skel_);
    skel_ = nullptr;
    loaded_ = false;
  }
  static absl::Status Error(absl::StatusCode code, const std::string& what, int err,
                            const char* hint) {
    return absl::Status(code, std::string(kName) + ": " + what + " failed: " +
                                  std::strerror(err) + "\nhint: " + hint);
  }
  absl::Status NeedLoaded(const char* what) const {
    if (loaded_) return absl::OkStatus();
    return absl::FailedPreconditionError(std::string(kName) + ": " + what +
                                         " needs a loaded stub\nhint: call Load() first");
  }
  absl::Status SetCtl(uint32_t key, uint64_t v) {
    if (absl::Status st = NeedLoaded("writing sie_ctl"); !st.ok()) return st;
    if (int err = bpf_map__update_elem(skel_->maps.sie_ctl, &key, sizeof key, &v, sizeof v, 0))
      return Error(absl::StatusCode::kInternal, "updating sie_ctl", -err,
                   "the map belongs to this object; was it destroyed?");
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> Ctl(uint32_t key) const {
    if (absl::Status st = NeedLoaded("reading sie_ctl"); !st.ok()) return st;
    uint64_t v = 0;
    if (int err = bpf_map__lookup_elem(skel_->maps.sie_ctl, &key, sizeof key, &v, sizeof v, 0))
      return Error(absl::StatusCode::kInternal, "reading sie_ctl", -err, "");
    return v;
  }
  // One counter of the per-CPU array, summed.
  absl::StatusOr<uint64_t> Stat(uint32_t key) const {
    int ncpus = libbpf_num_possible_cpus();
    if (ncpus <= 0)
      return Error(absl::StatusCode::kInternal, "counting possible CPUs", -ncpus,
                   "/sys/devices/system/cpu/possible must be readable");
    std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpus));
    if (int err = bpf_map__lookup_elem(skel_->maps.sie_stats, &key, sizeof key, per_cpu.data(),
                                       per_cpu.size() * sizeof(uint64_t), 0))
      return Error(absl::StatusCode::kInternal, "reading sie_stats", -err, "");
    uint64_t sum = 0;
    for (uint64_t v : per_cpu) sum += v;
    return sum;
  }

  $SKEL* skel_ = nullptr;
  bool loaded_ = false;
};

}  // namespace sie::consts
)sie";

}  // namespace

std::string CamelIdent(const std::string& name) {
  std::string out;
  bool up = true;
  for (char ch : name) {
    if (!absl::ascii_isalnum(ch)) {
      up = true;
      continue;
    }
    out += up ? absl::ascii_toupper(ch) : absl::ascii_tolower(ch);
    up = false;
  }
  if (out.empty() || absl::ascii_isdigit(out[0])) out = "C" + out;
  return out;
}

std::string SkeletonName(const artifact::SynthesizedConst& c) {
  return LowerIdent(c.name) + "_stub";
}

std::string GenerateCppView(const artifact::SynthesizedConst& c, const StubFiles& stub) {
  std::string spans, apply, save;
  for (size_t i = 0; i < c.spans.size(); ++i) {
    const auto& s = c.spans[i];
    absl::StrAppend(&spans, "      {", Lit(s.function), ", ", s.probe_offset, ", ",
                    Lit(artifact::SpanKindName(s.kind)), ", ", Lit(s.formula), ", ", Lit(s.source),
                    "},\n");
    absl::StrAppend(&apply, "      case ", i, ": return skel_->progs.sie_apply_", i, ";\n");
  }
  for (const auto& [i, k] : stub.save_programs)
    absl::StrAppend(&save, "      case ", i * 256 + k, ": return skel_->progs.",
                    artifact::SaveProgramName(i, k), ";\n");
  return absl::StrReplaceAll(kTemplate, {{"$BANNER", kStubBanner},
                                         {"$QNAME", Lit(c.name)},
                                         {"$NAME", c.name},
                                         {"$DESCRIPTION", OneLine(c.description)},
                                         {"$ID", absl::StrCat(c.id)},
                                         {"$MIN", I64(c.range_min)},
                                         {"$MAX", I64(c.range_max)},
                                         {"$SHIPPED", I64(c.values.empty() ? 0 : c.values[0])},
                                         {"$NSPANS", absl::StrCat(c.spans.size())},
                                         {"$SPANS", spans},
                                         {"$APPLY_CASES", apply},
                                         {"$SAVE_CASES", save},
                                         {"$CLASS", CamelIdent(c.name)},
                                         {"$SKEL", SkeletonName(c)},
                                         {"$LNAME", LowerIdent(c.name)},
                                         {"$CTL_VALUE", absl::StrCat(SIE_CTL_VALUE)},
                                         {"$CTL_ACTIVE", absl::StrCat(SIE_CTL_ACTIVE)},
                                         {"$CTL_MODE", absl::StrCat(SIE_CTL_MODE)},
                                         {"$STAT_NR", absl::StrCat(SIE_STAT_NR)},
                                         {"$STAT_NOSAVE", absl::StrCat(SIE_STAT_NOSAVE)}});
}

}  // namespace sie::stubgen
