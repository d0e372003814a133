// Per-hit cost of a SIE update, side by side in one run (runs IN THE GUEST through `sie vm`).
//
// The probed path is sie_target's division by DIVISOR (debugfs .../sie_target/div): the probe
// sits right after `movabs $magic, %rax` and replaces the magic by the one for 2 * DIVISOR, so
// the path divides by 20 instead of 10. One write(2) of an input to the (kept open) debugfs file
// runs the path once, so one benchmark iteration is one trigger and exactly one probe hit.
// sie_target has no in-kernel "repeat N" trigger, so the syscall is part of every iteration;
// the per-hit cost of a probe is its iteration time minus the no-probe iteration time.
//
// Cases (one probe address for all of them; only the probe kind changes):
//   none         no probe
//   bpf/int3     BPF kprobe program calling sie_set_reg, kprobes-optimization = 0
//   bpf/opt      the same, optimized (the run FAILS unless kprobes/list says [OPTIMIZED])
//   native/int3  sie_native reg-set (no BPF per hit), kprobes-optimization = 0
//   native/opt   the same, optimized (must be [OPTIMIZED])
//   modbpf/opt   the BPF program of bpf/opt run by sie_native's own kprobe handler (module
//                dispatch: `probe ... bpf FD`), optimized: no perf-event layer per hit
//   stub/int3    what `sie set SIE_TARGET_DIVISOR 20 --engine bpf` loads: the runtime's
//                generated stub for the constant's span (save X before the multiply, apply
//                X / V after the shift: two probes per path run, the gate, per-CPU counters),
//                through runtime/loader in this process, kprobes-optimization = 0
//   stub/opt     the same with the loader's jump-optimization search (reported as found)
// The stub cases need --sie_consts=DIR (synthesized or fixture constants with SIE_TARGET_DIVISOR);
// without it they are not run, and the table says so.
// After each case the result is read back and checked (x / 20 with a probe, x / 10 without),
// and the probe's hit counter must equal the iteration count with no kfunc errors.
//
// Before the benchmarks, a self-check exercises every sie_native update kind on sie_target
// (reg-set, reg-add, reg-shl, mem-cell, live value change, remove, bad commands); a failure
// there fails the run.
//
// Extra flags: --sie_markdown=PATH writes the result table (markdown) to PATH; --sie_consts=DIR
// enables the stub cases.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/files.h"
#include "common/base/status_macros.h"
#include "common/base/unique_fd.h"
#include "runtime/loader/loader.h"
#include "sie/kfuncs.h"
#include "sie_bench_probe.skel.h"
#include "sie_target_consts.h"
#include "tests/support/guest_code.h"
#include "tests/support/guest_files.h"
#include "tests/support/guest_modules.h"

namespace sie {
namespace {

using guest::kKfuncsControl;
using guest::kKprobeList;
using guest::kOptimization;
using guest::ReadU64;
using guest::TargetFile;
using guest::WriteOnce;
constexpr char kNativeControl[] = "/sys/kernel/debug/sie_native/control";

static_assert(SIE_TARGET_DIVISOR == 10, "the magic numbers below are for /10 -> /20, /40");
constexpr char kDivFunc[] = "sie_target_div";
constexpr uint64_t kMagic20 = 0x6666666666666667ULL;  // ceil(2^67 / 20): x/20 = mulhi >> 3
constexpr uint64_t kMagic40 = 0x3333333333333334ULL;  // ceil(2^67 / 40): exact for x < 2^62
constexpr uint64_t kBenchInput = 123456789;
// Path runs per trigger (sie_target's debugfs `repeat`): the probe fires this many times per
// write(2), so the syscall's cost and noise are spread over many hits.
constexpr uint64_t kRepeat = 1000;

absl::Status Check(bool ok, absl::string_view what) {
  return ok ? absl::OkStatus() : absl::InternalError(what);
}

absl::StatusOr<uint64_t> RunPath(absl::string_view path, uint64_t x) {
  RETURN_IF_ERROR(WriteOnce(TargetFile(path), absl::StrCat(x)));
  return ReadU64(TargetFile(path));
}

// ---- modules ----

using guest::KmodDir;
using guest::LoadModule;
using guest::UnloadModule;

// ---- probe offsets, found in the .ko by disassembly ----

// The offset of the instruction right after the one whose text is `text`: where a SIE probe
// goes (the constant has just entered its register or memory).
absl::StatusOr<uint64_t> OffsetAfter(const std::string& func, const std::string& text) {
  return guest::FindOffset(KmodDir() / "sie_target.ko", func, text, /*after=*/true);
}

using guest::KallsymsAddress;

// ---- sie_native ----

// The hit counter of one sie_native probe, from its control listing.
absl::StatusOr<uint64_t> NativeHits(const std::string& func, uint64_t off) {
  ASSIGN_OR_RETURN(list, ReadFile(kNativeControl));
  const std::string prefix = absl::StrFormat("%s+0x%x ", func, off);
  for (absl::string_view line : absl::StrSplit(list, '\n')) {
    if (!absl::StartsWith(line, prefix)) continue;
    size_t at = line.find("hits=");
    uint64_t hits;
    if (at == absl::string_view::npos) break;
    absl::string_view rest = line.substr(at + 5);
    if (absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &hits)) return hits;
  }
  return absl::NotFoundError(absl::StrCat(prefix, "not listed in ", kNativeControl, ":\n", list));
}

absl::Status NativeCommand(absl::string_view cmd) { return WriteOnce(kNativeControl, cmd); }

// Every update kind of sie_native on the sie_target paths, checked through the results.
absl::Status SelfCheckNative() {
  RETURN_IF_ERROR(NativeCommand("clear"));

  // reg-set, and a live value change, at the division (x/10 -> x/20 -> x/40).
  ASSIGN_OR_RETURN(div_off, OffsetAfter(kDivFunc, "movabs rax, 0xcccccccccccccccd"));
  RETURN_IF_ERROR(NativeCommand(
      absl::StrFormat("probe %s 0x%x reg-set ax 8 0x%x", kDivFunc, div_off, kMagic20)));
  for (uint64_t x : {0ULL, 19ULL, 20ULL, 12345ULL, 999999999ULL}) {
    ASSIGN_OR_RETURN(got, RunPath("div", x));
    RETURN_IF_ERROR(Check(got == x / 20, absl::StrCat("native reg-set: div ", x, " = ", got)));
  }
  RETURN_IF_ERROR(
      NativeCommand(absl::StrFormat("value %s 0x%x 0x%x", kDivFunc, div_off, kMagic40)));
  ASSIGN_OR_RETURN(div40, RunPath("div", 12345));
  RETURN_IF_ERROR(Check(div40 == 12345 / 40, absl::StrCat("native value change: ", div40)));
  ASSIGN_OR_RETURN(div_hits, NativeHits(kDivFunc, div_off));
  RETURN_IF_ERROR(Check(div_hits == 6, absl::StrCat("native hits: ", div_hits, ", want 6")));
  // Refused: a duplicate probe, sp as a target, a bad width, a shift past the width.
  for (const std::string& bad :
       {absl::StrFormat("probe %s 0x%x reg-set ax 8 1", kDivFunc, div_off),
        absl::StrFormat("probe %s 0x%x reg-set sp 8 1", kDivFunc, div_off + 3),
        absl::StrFormat("probe %s 0x%x reg-set ax 3 1", kDivFunc, div_off + 3),
        absl::StrFormat("probe %s 0x%x reg-shl ax 4 32", kDivFunc, div_off + 3),
        absl::StrFormat("probe %s 0x%x reg-set ax 8", kDivFunc, div_off + 3),
        std::string("poke 0x1 0x2")}) {
    RETURN_IF_ERROR(Check(!NativeCommand(bad).ok(), absl::StrCat("accepted: ", bad)));
  }
  RETURN_IF_ERROR(NativeCommand(absl::StrFormat("remove %s 0x%x", kDivFunc, div_off)));
  ASSIGN_OR_RETURN(div10, RunPath("div", 12345));
  RETURN_IF_ERROR(Check(div10 == 12345 / 10, absl::StrCat("after remove: ", div10)));
  // Registered disarmed: listed so, never hit, until `arm` enables it.
  RETURN_IF_ERROR(NativeCommand(
      absl::StrFormat("probe %s 0x%x reg-set ax 8 0x%x disarmed", kDivFunc, div_off, kMagic20)));
  ASSIGN_OR_RETURN(disarmed_listing, ReadFile(kNativeControl));
  ASSIGN_OR_RETURN(while_disarmed, RunPath("div", 12345));
  RETURN_IF_ERROR(NativeCommand("arm"));
  ASSIGN_OR_RETURN(armed, RunPath("div", 12345));
  ASSIGN_OR_RETURN(armed_listing, ReadFile(kNativeControl));
  RETURN_IF_ERROR(NativeCommand(absl::StrFormat("remove %s 0x%x", kDivFunc, div_off)));
  RETURN_IF_ERROR(Check(absl::StrContains(disarmed_listing, " disarmed"),
                        "a disarmed probe is not listed so: " + disarmed_listing));
  RETURN_IF_ERROR(Check(while_disarmed == 12345 / 10,
                        absl::StrCat("a disarmed probe applied: div = ", while_disarmed)));
  RETURN_IF_ERROR(Check(armed == 12345 / 20, absl::StrCat("after arm: div = ", armed)));
  RETURN_IF_ERROR(Check(!absl::StrContains(armed_listing, "disarmed"),
                        "still disarmed after arm: " + armed_listing));

  // reg-add on the call argument (%esi = CALL_ARG, 32-bit): callee sees CALL_ARG + 0x10.
  ASSIGN_OR_RETURN(arg_off, OffsetAfter("sie_target_call_arg",
                                        absl::StrFormat("mov esi, 0x%x", SIE_TARGET_CALL_ARG)));
  RETURN_IF_ERROR(
      NativeCommand(absl::StrFormat("probe sie_target_call_arg 0x%x reg-add si 4 0x10", arg_off)));
  ASSIGN_OR_RETURN(arg, RunPath("call_arg", 5));
  RETURN_IF_ERROR(Check(arg == 5 + SIE_TARGET_CALL_ARG + 0x10, absl::StrCat("reg-add: ", arg)));

  // reg-shl after the strength-reduced multiply (x << log2 SCALE): one more bit = 2 * SCALE.
  const int shift = __builtin_ctz(SIE_TARGET_SCALE);
  ASSIGN_OR_RETURN(mul_off, OffsetAfter("sie_target_mul", absl::StrFormat("shl rax, %d", shift)));
  RETURN_IF_ERROR(
      NativeCommand(absl::StrFormat("probe sie_target_mul 0x%x reg-shl ax 8 1", mul_off)));
  ASSIGN_OR_RETURN(mul, RunPath("mul", 100));
  RETURN_IF_ERROR(Check(mul == 100 * 2 * SIE_TARGET_SCALE, absl::StrCat("reg-shl: ", mul)));

  // mem-cell after `movl $FIELD_INIT, 0x8(%rdi)`: the field holds the new value (4 bytes only).
  ASSIGN_OR_RETURN(
      field_off, OffsetAfter("sie_target_init_req", absl::StrFormat("mov dword ptr [rdi + 8], 0x%x",
                                                                    SIE_TARGET_FIELD_INIT)));
  RETURN_IF_ERROR(NativeCommand(absl::StrFormat(
      "probe sie_target_init_req 0x%x mem-cell di 8 4 0xffffffff00001111", field_off)));
  ASSIGN_OR_RETURN(field, RunPath("field", 1));
  RETURN_IF_ERROR(Check(field == 0x1111, absl::StrCat("mem-cell: ", field)));

  RETURN_IF_ERROR(NativeCommand("clear"));
  ASSIGN_OR_RETURN(listing, ReadFile(kNativeControl));
  RETURN_IF_ERROR(Check(listing.empty(), "probes left after clear: " + listing));
  for (auto [path, x, want] :
       {std::tuple{"call_arg", 5ULL, 5ULL + SIE_TARGET_CALL_ARG},
        std::tuple{"mul", 100ULL, 100ULL * SIE_TARGET_SCALE},
        std::tuple{"field", 1ULL, static_cast<unsigned long long>(SIE_TARGET_FIELD_INIT)}}) {
    ASSIGN_OR_RETURN(got, RunPath(path, x));
    RETURN_IF_ERROR(Check(got == want, absl::StrCat("after clear: ", path, " = ", got)));
  }
  std::printf(
      "self-check: sie_native reg-set/reg-add/reg-shl/mem-cell/value/remove/disarmed/arm/clear "
      "ok\n");
  return absl::OkStatus();
}

// ---- the benchmark cases ----

enum class Case {
  kNone,
  kBpfInt3,
  kBpfOpt,
  kModBpfOpt,
  kNopBpfOpt,
  kNopModOpt,
  kNativeInt3,
  kNativeOpt,
  kStubInt3,
  kStubOpt
};
constexpr char kStubConst[] = "SIE_TARGET_DIVISOR";

struct CaseInfo {
  const char* name;
  const char* description;
};

CaseInfo Info(Case c) {
  switch (c) {
    case Case::kNone:
      return {"none", "no probe"};
    case Case::kBpfInt3:
      return {"bpf_int3", "int3 kprobe + BPF program calling sie_set_reg"};
    case Case::kBpfOpt:
      return {"bpf_opt", "optimized kprobe + BPF program calling sie_set_reg"};
    case Case::kModBpfOpt:
      return {"modbpf_opt",
              "optimized kprobe of sie_native running that BPF program (module dispatch)"};
    case Case::kNopBpfOpt:
      return {"nop_bpf_opt", "optimized kprobe + BPF program that only counts (perf floor)"};
    case Case::kNopModOpt:
      return {"nop_mod_opt", "that program run by sie_native's kprobe (module dispatch floor)"};
    case Case::kNativeInt3:
      return {"native_int3", "int3 kprobe, sie_native reg-set (no BPF)"};
    case Case::kNativeOpt:
      return {"native_opt", "optimized kprobe, sie_native reg-set (no BPF)"};
    case Case::kStubInt3:
      return {"stub_int3", "int3 kprobes, sie set's generated stub (save + apply X / V)"};
    case Case::kStubOpt:
      return {"stub_opt", "sie set's generated stub after its jump-optimization search"};
  }
  return {"?", "?"};
}

bool Probed(Case c) { return c != Case::kNone; }
bool Optimized(Case c) {
  return c == Case::kBpfOpt || c == Case::kModBpfOpt || c == Case::kNopBpfOpt ||
         c == Case::kNopModOpt || c == Case::kNativeOpt || c == Case::kStubOpt;
}
bool Native(Case c) { return c == Case::kNativeInt3 || c == Case::kNativeOpt; }
bool Nop(Case c) { return c == Case::kNopBpfOpt || c == Case::kNopModOpt; }
bool Stub(Case c) { return c == Case::kStubInt3 || c == Case::kStubOpt; }

// A case's probe hits and failed updates so far (BPF: kfunc errors; stub: rejected, failed and
// missing saved inputs).
struct Counts {
  uint64_t hits = 0, errors = 0;
};

struct SkelDeleter {
  void operator()(sie_bench_probe* s) const { sie_bench_probe__destroy(s); }
};
struct LinkDeleter {
  void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};

// Everything one run needs, and the one case whose probe is attached at any time. Google
// Benchmark calls a case's function several times (to size the iteration count), so attaching
// happens once per case, on its first call, and the previous case's probe is removed then.
class Bench {
 public:
  absl::Status Init(std::filesystem::path consts) {
    consts_ = std::move(consts);
    ASSIGN_OR_RETURN(off, OffsetAfter(kDivFunc, "movabs rax, 0xcccccccccccccccd"));
    ASSIGN_OR_RETURN(base, KallsymsAddress(kDivFunc, "sie_target"));
    off_ = off;
    site_ = base + off;
    RETURN_IF_ERROR(WriteOnce(kKfuncsControl, "clear"));
    RETURN_IF_ERROR(AddSite());
    skel_.reset(sie_bench_probe__open());
    if (!skel_) return absl::ErrnoToStatus(errno, "sie_bench_probe__open");
    if (sie_bench_probe__load(skel_.get()) != 0)
      return absl::ErrnoToStatus(errno, "sie_bench_probe__load (sie_kfuncs loaded?)");
    skel_->bss->reg_idx = SIE_REG_AX;
    skel_->bss->reg_val = kMagic20;
    skel_->bss->reg_width = 8;
    div_fd_.reset(open(TargetFile("div").c_str(), O_RDWR | O_CLOEXEC));
    if (!div_fd_.valid()) return absl::ErrnoToStatus(errno, "open " + TargetFile("div"));
    return SelfCheckModuleDispatch();
  }

  // sie_native's `bpf` probes take only a kprobe program's fd, and no live value.
  absl::Status SelfCheckModuleDispatch() {
    for (int fd : {div_fd_.get(), 1 << 20}) {
      const std::string bad = absl::StrFormat("probe %s 0x%x bpf %d", kDivFunc, off_, fd);
      RETURN_IF_ERROR(Check(!NativeCommand(bad).ok(), absl::StrCat("accepted: ", bad)));
    }
    const int prog = bpf_program__fd(skel_->progs.sie_bench_setreg);
    RETURN_IF_ERROR(NativeCommand(absl::StrFormat("probe %s 0x%x bpf %d", kDivFunc, off_, prog)));
    const bool value_refused =
        !NativeCommand(absl::StrFormat("value %s 0x%x 1", kDivFunc, off_)).ok();
    ASSIGN_OR_RETURN(got, RunPath("div", 12345));
    RETURN_IF_ERROR(NativeCommand(absl::StrFormat("remove %s 0x%x", kDivFunc, off_)));
    RETURN_IF_ERROR(Check(value_refused, "a live value was accepted for a bpf probe"));
    RETURN_IF_ERROR(Check(got == 12345 / 20, absl::StrCat("module dispatch: div = ", got)));
    std::printf("self-check: sie_native bpf (module dispatch) ok\n");
    return absl::OkStatus();
  }

  // The floor of any `sie set`: libbpf opening, loading (verifier included) and attaching one
  // kprobe program at the probed place, then detaching it; milliseconds of each of n cycles.
  absl::StatusOr<std::vector<double>> LoadAttachFloor(int n) const {
    std::vector<double> ms;
    for (int i = 0; i < n; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      std::unique_ptr<sie_bench_probe, SkelDeleter> skel(sie_bench_probe__open());
      if (!skel) return absl::ErrnoToStatus(errno, "sie_bench_probe__open");
      if (sie_bench_probe__load(skel.get()) != 0)
        return absl::ErrnoToStatus(errno, "sie_bench_probe__load");
      LIBBPF_OPTS(bpf_kprobe_opts, opts, .offset = off_);
      bpf_link* link =
          bpf_program__attach_kprobe_opts(skel->progs.sie_bench_setreg, kDivFunc, &opts);
      if (!link) return absl::ErrnoToStatus(errno, absl::StrCat("attach BPF kprobe ", Where()));
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      bpf_link__destroy(link);
    }
    return ms;
  }

  absl::Status Enter(Case c) {
    if (current_ == c) return absl::OkStatus();
    RETURN_IF_ERROR(Detach());
    RETURN_IF_ERROR(WriteOnce(kOptimization, Optimized(c) ? "1" : "0"));
    bpf_program* prog = Nop(c) ? skel_->progs.sie_bench_nop : skel_->progs.sie_bench_setreg;
    if (c == Case::kBpfInt3 || c == Case::kBpfOpt || c == Case::kNopBpfOpt) {
      LIBBPF_OPTS(bpf_kprobe_opts, opts, .offset = off_);
      link_.reset(bpf_program__attach_kprobe_opts(prog, kDivFunc, &opts));
      if (!link_) return absl::ErrnoToStatus(errno, absl::StrCat("attach BPF kprobe ", Where()));
    } else if (Native(c)) {
      RETURN_IF_ERROR(NativeCommand(
          absl::StrFormat("probe %s 0x%x reg-set ax 8 0x%x", kDivFunc, off_, kMagic20)));
      native_attached_ = true;
    } else if (c == Case::kModBpfOpt || c == Case::kNopModOpt) {
      RETURN_IF_ERROR(NativeCommand(
          absl::StrFormat("probe %s 0x%x bpf %d", kDivFunc, off_, bpf_program__fd(prog))));
      native_attached_ = true;
    } else if (Stub(c)) {
      loader::SetOptions o;
      o.consts_dir = consts_;
      o.name = kStubConst;
      o.value = 20;
      o.engine = "bpf";
      o.optimize = Optimized(c);
      stub_loaded_ = true;  // Detach unloads whatever part a failed set left
      ASSIGN_OR_RETURN(r, loader::SetConst(o));
      int optimized = 0;
      std::vector<std::string> where;
      for (const loader::ProbeInfo& p : r.probes) {
        optimized += p.optimized;
        where.push_back(absl::StrFormat("%s %s+0x%x%s", p.role, p.function, p.offset,
                                        p.optimized ? " [OPTIMIZED]" : ""));
      }
      probe_states_[c] = absl::StrFormat("%d/%d [OPTIMIZED]", optimized, r.probes.size());
      list_lines_[c] = absl::StrCat(probe_states_[c], ": ", absl::StrJoin(where, ", "));
      std::printf("%s: %s\n", Info(c).name, list_lines_[c].c_str());
      std::fflush(stdout);
    }
    current_ = c;
    if (Probed(c) && !Stub(c)) {
      ASSIGN_OR_RETURN(line, guest::WaitKprobeListLine(kDivFunc, off_, Optimized(c)));
      const bool optimized = absl::StrContains(line, "[OPTIMIZED]");
      list_lines_[c] = line;
      probe_states_[c] = optimized ? "[OPTIMIZED]" : "int3";
      std::printf("%s: kprobes/list: %s\n", Info(c).name, line.c_str());
      std::fflush(stdout);
      if (optimized != Optimized(c))
        return absl::FailedPreconditionError(absl::StrCat(
            Info(c).name, ": expected ", Optimized(c) ? "an [OPTIMIZED]" : "an int3 (unoptimized)",
            " probe, kprobes/list says: ", line));
    }
    // Untimed warm-up; also proves the update applies before any timing.
    ASSIGN_OR_RETURN(got, RunPath("div", kBenchInput));
    RETURN_IF_ERROR(Check(got == Expected(c), absl::StrCat(Info(c).name, ": warm-up result ", got,
                                                           ", want ", Expected(c))));
    return absl::OkStatus();
  }

  absl::Status Detach() {
    link_.reset();
    if (native_attached_) {
      RETURN_IF_ERROR(NativeCommand(absl::StrFormat("remove %s 0x%x", kDivFunc, off_)));
      native_attached_ = false;
    }
    if (stub_loaded_) {
      stub_loaded_ = false;
      RETURN_IF_ERROR(loader::Unload(kStubConst, false));
      // With nothing loaded the loader forgets every sie_kfuncs site, this benchmark's too.
      RETURN_IF_ERROR(AddSite());
    }
    current_.reset();
    return absl::OkStatus();
  }

  absl::StatusOr<Counts> Count(Case c) {
    if (!Probed(c)) return Counts{};
    if (Native(c)) {
      ASSIGN_OR_RETURN(hits, NativeHits(kDivFunc, off_));
      return Counts{hits, 0};
    }
    if (Stub(c)) {
      ASSIGN_OR_RETURN(loaded, loader::Status());
      for (const loader::LoadedConst& lc : loaded) {
        if (lc.state.value("name", "") != kStubConst || lc.spans.empty()) continue;
        const loader::SpanCounters& s = lc.spans[0];
        return Counts{s.hits, s.rejected + s.failed + s.nosave};
      }
      return absl::NotFoundError(absl::StrCat(kStubConst, " is not loaded (sie status)"));
    }
    if (Nop(c)) return Counts{skel_->bss->nop_hits, 0};
    return Counts{skel_->bss->hits, skel_->bss->errors};
  }

  // One trigger: write the input (the path runs in the write), nothing else. debugfs attribute
  // files are not seekable (no pwrite), and their write ignores the file position.
  bool Trigger(const char* buf, size_t len) {
    return write(div_fd_.get(), buf, len) == static_cast<ssize_t>(len);
  }
  absl::StatusOr<uint64_t> LastResult() { return ReadU64(TargetFile("div")); }

  static uint64_t Expected(Case c) {
    return Probed(c) && !Nop(c) ? kBenchInput / 20 : kBenchInput / SIE_TARGET_DIVISOR;
  }
  std::string Where() const { return absl::StrFormat("%s+0x%x", kDivFunc, off_); }
  const std::map<Case, std::string>& list_lines() const { return list_lines_; }
  // Per case: "int3", "[OPTIMIZED]", or for the stub "k/n [OPTIMIZED]".
  const std::map<Case, std::string>& probe_states() const { return probe_states_; }
  bool has_consts() const { return !consts_.empty(); }

 private:
  // The BPF cases' kfunc may write registers only at a registered site (sie_kfuncs).
  absl::Status AddSite() { return WriteOnce(kKfuncsControl, absl::StrFormat("site 0x%x", site_)); }

  std::filesystem::path consts_;
  bool stub_loaded_ = false;
  uint64_t site_ = 0;
  uint64_t off_ = 0;
  std::unique_ptr<sie_bench_probe, SkelDeleter> skel_;
  std::unique_ptr<bpf_link, LinkDeleter> link_;
  bool native_attached_ = false;
  std::optional<Case> current_;
  UniqueFd div_fd_;
  std::map<Case, std::string> list_lines_;
  std::map<Case, std::string> probe_states_;
};

Bench* g_bench = nullptr;
bool g_failed = false;

void Fail(benchmark::State& state, const absl::Status& st) {
  g_failed = true;
  std::fprintf(stderr, "probe_cost_bench: %s\n", st.ToString().c_str());
  state.SkipWithError(st.ToString().c_str());
}

void BM_DivPath(benchmark::State& state, Case c) {
  if (absl::Status st = g_bench->Enter(c); !st.ok()) return Fail(state, st);
  absl::StatusOr<Counts> counts0 = g_bench->Count(c);
  if (!counts0.ok()) return Fail(state, counts0.status());
  const std::string input = absl::StrCat(kBenchInput);
  if (absl::Status st = WriteOnce(TargetFile("repeat"), absl::StrCat(kRepeat)); !st.ok())
    return Fail(state, st);
  bool write_failed = false;
  for (auto _ : state) {
    if (!g_bench->Trigger(input.data(), input.size())) {
      write_failed = true;
      break;
    }
  }
  const int write_errno = errno;
  if (absl::Status st = WriteOnce(TargetFile("repeat"), "1"); !st.ok()) return Fail(state, st);
  if (write_failed) return Fail(state, absl::ErrnoToStatus(write_errno, "write sie_target/div"));

  // Verify: the update took effect, on every timed hit.
  absl::StatusOr<uint64_t> result = g_bench->LastResult();
  if (!result.ok()) return Fail(state, result.status());
  if (*result != Bench::Expected(c))
    return Fail(state, absl::InternalError(absl::StrCat(Info(c).name, ": result ", *result,
                                                        ", want ", Bench::Expected(c))));
  absl::StatusOr<Counts> counts1 = g_bench->Count(c);
  if (!counts1.ok()) return Fail(state, counts1.status());
  const uint64_t hits = counts1->hits - counts0->hits;
  const uint64_t want_hits = Probed(c) ? state.iterations() * kRepeat : 0;
  if (hits != want_hits)
    return Fail(state,
                absl::InternalError(absl::StrCat(Info(c).name, ": ", hits, " probe hits for ",
                                                 state.iterations(), " iterations")));
  if (counts1->errors != counts0->errors)
    return Fail(state, absl::InternalError(absl::StrCat(Info(c).name, ": ",
                                                        counts1->errors - counts0->errors,
                                                        " updates failed or were rejected")));
  state.counters["hits_per_iter"] =
      static_cast<double>(hits) / static_cast<double>(std::max<int64_t>(1, state.iterations()));
}

// Records the reported time of each case: the median over repetitions when there are several
// (run.sh interleaves repetitions so that drift of a busy host hits every case alike), with the
// standard deviation; otherwise the single run's time.
class TableReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      Row& row = rows_[r.run_name.function_name];
      const double ns = r.GetAdjustedRealTime();  // the unit is ns (set on every case)
      if (r.run_type == Run::RT_Iteration) {
        row.iterations += r.iterations;
        row.runs++;
        if (!row.median) row.ns = ns;
      } else if (r.aggregate_name == "median") {
        row.ns = ns;
        row.median = true;
      } else if (r.aggregate_name == "stddev") {
        row.stddev = ns;
      }
    }
  }

  struct Row {
    double ns = 0;
    std::optional<double> stddev;
    bool median = false;
    int64_t iterations = 0;  // summed over repetitions
    int runs = 0;
  };
  const Row* Find(const std::string& name) const {
    auto it = rows_.find(name);
    return it == rows_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::string, Row> rows_;
};

constexpr Case kCases[] = {Case::kNone,      Case::kBpfInt3,   Case::kBpfOpt,     Case::kModBpfOpt,
                           Case::kNopBpfOpt, Case::kNopModOpt, Case::kNativeInt3, Case::kNativeOpt,
                           Case::kStubInt3,  Case::kStubOpt};

std::string BenchName(Case c) { return absl::StrCat("div/", Info(c).name); }

std::string Markdown(const TableReporter& rep, const Bench& bench) {
  std::string md;
  absl::StrAppend(&md,
                  "| case | probe (kprobes/list) | ns per path run | added ns per hit | "
                  "ratio to no probe | runs x triggers |\n"
                  "|---|---|---:|---:|---:|---:|\n");
  const TableReporter::Row* base = rep.Find(BenchName(Case::kNone));
  for (Case c : kCases) {
    const TableReporter::Row* row = rep.Find(BenchName(c));
    std::string state = "-";
    if (auto it = bench.probe_states().find(c); it != bench.probe_states().end())
      state = it->second;
    if (!row) {
      absl::StrAppend(&md, "| ", Info(c).description, " | ", state,
                      Stub(c) && !bench.has_consts() ? " | not run (no --sie_consts) | | | |\n"
                                                     : " | FAILED | | | |\n");
      continue;
    }
    // One trigger runs the path kRepeat times (one probe hit each).
    std::string time = absl::StrFormat("%.1f", row->ns / kRepeat);
    if (row->stddev) absl::StrAppendFormat(&time, " ± %.1f", *row->stddev / kRepeat);
    std::string added = "-", ratio = "-";
    if (base && Probed(c)) added = absl::StrFormat("%.1f", (row->ns - base->ns) / kRepeat);
    if (base) ratio = absl::StrFormat("%.2f", row->ns / base->ns);
    absl::StrAppendFormat(&md, "| %s | %s | %s | %s | %s | %d x %d |\n", Info(c).description, state,
                          time, added, ratio, row->runs, row->iterations / std::max(1, row->runs));
  }
  return md;
}

// ---- guest set-up ----

bool Exists(const char* path) {
  struct stat st;
  return stat(path, &st) == 0;
}

absl::Status SetUpGuest() {
  // Never load modules into, or probe, anything but the guest kernel this was built for.
  struct utsname uts;
  if (uname(&uts) != 0) return absl::ErrnoToStatus(errno, "uname");
  if (std::string(uts.release) != SIE_GUEST_KERNEL_RELEASE)
    return absl::FailedPreconditionError(absl::StrCat(
        "running on kernel ", uts.release, ", not the guest kernel ", SIE_GUEST_KERNEL_RELEASE,
        ": run me through `sie vm -- ", SelfDir().string(), "/sie_probe_cost_bench`"));
  RETURN_IF_ERROR(Check(geteuid() == 0, "must run as root (in the guest)"));
  RETURN_IF_ERROR(Check(Exists(kKprobeList), "no kprobes, or debugfs not mounted"));
  RETURN_IF_ERROR(Check(Exists(kOptimization), "no optprobes (kprobes-optimization sysctl)"));
  RETURN_IF_ERROR(LoadModule("sie_kfuncs"));
  RETURN_IF_ERROR(LoadModule("sie_target"));
  RETURN_IF_ERROR(LoadModule("sie_native"));
  RETURN_IF_ERROR(Check(Exists(kKfuncsControl), "sie_kfuncs has no control file"));
  RETURN_IF_ERROR(Check(Exists(kNativeControl), "sie_native has no control file"));
  return absl::OkStatus();
}

void TearDownGuest() {
  (void)WriteOnce(kKfuncsControl, "clear");
  (void)NativeCommand("clear");
  for (const char* m : {"sie_native", "sie_target", "sie_kfuncs"}) {
    if (absl::Status st = UnloadModule(m); !st.ok()) {
      std::fprintf(stderr, "probe_cost_bench: teardown: %s\n", st.ToString().c_str());
      g_failed = true;
    }
  }
}

// Restores kprobes-optimization (the cases flip it) when the run ends, however it ends.
class OptimizationGuard {
 public:
  OptimizationGuard() {
    absl::StatusOr<std::string> v = ReadFile(kOptimization);
    if (v.ok()) saved_ = std::string(absl::StripAsciiWhitespace(*v));
  }
  ~OptimizationGuard() {
    if (!saved_.empty()) (void)WriteOnce(kOptimization, saved_);
  }

 private:
  std::string saved_;
};

int Main(int argc, char** argv) {
  std::string markdown_path, consts;
  std::vector<char*> args;
  for (int i = 0; i < argc; i++) {
    if (absl::StartsWith(argv[i], "--sie_markdown="))
      markdown_path = argv[i] + strlen("--sie_markdown=");
    else if (absl::StartsWith(argv[i], "--sie_consts="))
      consts = argv[i] + strlen("--sie_consts=");
    else
      args.push_back(argv[i]);
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 2;

  if (absl::Status st = SetUpGuest(); !st.ok()) {
    std::fprintf(stderr, "probe_cost_bench: FAILED before any benchmark: %s\n",
                 st.ToString().c_str());
    TearDownGuest();
    return 1;
  }
  // One CPU for the whole run: every case then sees the same vCPU (and its TCG thread).
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  if (sched_setaffinity(0, sizeof(one), &one) != 0) std::perror("sched_setaffinity");
  int rc = 0;
  {
    OptimizationGuard guard;
    Bench bench;
    g_bench = &bench;
    absl::Status st = SelfCheckNative();
    if (st.ok()) st = bench.Init(consts);
    if (!st.ok()) {
      std::fprintf(stderr, "probe_cost_bench: FAILED: %s\n", st.ToString().c_str());
      rc = 1;
    } else {
      for (Case c : kCases)
        if (!Stub(c) || !consts.empty())
          benchmark::RegisterBenchmark(BenchName(c).c_str(), BM_DivPath, c)
              ->Unit(benchmark::kNanosecond)
              ->UseRealTime();
      // The load floor first, while nothing else is attached (load latency compares with it).
      auto floor = bench.LoadAttachFloor(5);
      if (floor.ok()) {
        std::sort(floor->begin(), floor->end());
        std::printf("FLOOR load+attach of one trivial kprobe program (libbpf): median %.1f ms\n",
                    (*floor)[floor->size() / 2]);
      } else {
        std::fprintf(stderr, "probe_cost_bench: floor: %s\n", floor.status().ToString().c_str());
        g_failed = true;
      }
      TableReporter reporter;
      benchmark::RunSpecifiedBenchmarks(&reporter);
      if (absl::Status d = bench.Detach(); !d.ok()) g_failed = true;
      const std::string md = Markdown(reporter, bench);
      std::printf("\nprobe %s in sie_target (guest kernel %s)\n%s", bench.Where().c_str(),
                  SIE_GUEST_KERNEL_RELEASE, md.c_str());
      for (const auto& [c, line] : bench.list_lines())
        std::printf("kprobes/list (%s): %s\n", Info(c).name, line.c_str());
      if (!markdown_path.empty()) {
        if (absl::Status w = WriteFileAtomic(markdown_path, md); !w.ok()) {
          std::fprintf(stderr, "probe_cost_bench: %s\n", w.ToString().c_str());
          rc = 1;
        }
      }
    }
    g_bench = nullptr;
  }
  TearDownGuest();
  benchmark::Shutdown();
  if (g_failed) rc = 1;
  return rc;
}

}  // namespace
}  // namespace sie

int main(int argc, char** argv) { return sie::Main(argc, argv); }
