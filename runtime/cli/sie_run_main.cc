// sie-run: run an eBPF policy that decides, per event, the value of one or more kernel
// constants. One command compiles, links, verifies, attaches (all constants of the file
// together), streams the policy's log, and on Ctrl-C restores every default and detaches.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/base/args.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/hash.h"
#include "runtime/loader/journal.h"
#include "runtime/loader/loader.h"
#include "runtime/policy/consts_header.h"
#include "runtime/policy/policy.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

}  // namespace

int main(int argc, char** argv) {
  using namespace sie;
  std::vector<std::string> args(argv + 1, argv + argc), positional, const_args, sets;
  std::string consts = loader::DefaultConstsDir().string(), mode = "0", timeout = "5",
              duration = "0", emit, reason, cgroup;
  bool pin = false, json = false, verbose = false, stop = false, no_optimize = false,
       compile_only = false, no_cache = false, describe = false, shadow = false;
  ArgParser p(
      "sie-run POLICY.bpf.c --const <id|name>[,...] [--consts DIR] [--mode 0|1|2] [--timeout S] "
      "[--duration S] [--set NAME=VALUE]... [--shadow] [--cgroup DIR] [--pin] [--json] [-v]\n      "
      " sie-run POLICY.bpf.c "
      "--const ... [--consts DIR] --compile-only\n       sie-run --describe POLICY.bpf.c "
      "[--const ...] [--json]\n       sie-run --stop",
      "Compiles POLICY.bpf.c (#include <sie/policy.bpf.h>, one SIE_POLICY per constant), links "
      "it with every constant's stub into one BPF object, attaches them all (or none) and "
      "switches them together (--mode 2: at an instant with no task inside their spans). "
      "Runs until SIGINT/SIGTERM (or --duration), then restores every default and detaches.\n"
      "A compiled policy is cached by content (source, SDK and constants' headers, flags, "
      "clang); sie-run looks in $SIE_POLICY_CACHE, DIR/policy-cache and its own cache before "
      "running clang. --compile-only fills $SIE_POLICY_CACHE (else DIR/policy-cache) ahead, "
      "e.g. on the build host for a guest.\n"
      "Knobs: a `const volatile` global of the policy is a start setting and an SIE_KNOB a live "
      "knob (changed while it runs with 'sie knob NAME VALUE'); --set gives either a start value, "
      "checked against the policy's BTF. --describe lists them with types and defaults.\n"
      "Trying a policy: --shadow runs it on every hit and counts its decisions by value while "
      "the shipped values keep applying (the summary at exit says what it would have changed); "
      "--cgroup DIR applies its decisions only to tasks in that cgroup, the others keep the "
      "defaults. 'sie metrics' shows the decisions while it runs.");
  p.StringList("--const", "ID|NAME[,...]", &const_args, "constants the policy decides");
  p.String("--consts", "DIR", &consts,
           "directory written by 'sie synth --out' (default $SIE_CONSTS, else "
           "/var/lib/sie/consts/<release> when it exists, else /etc/sie/consts)");
  p.String("--mode", "0|1|2", &mode, "consistency: 0 immediate, 1 per-task, 2 global");
  p.String("--timeout", "S", &timeout,
           "modes 1 and 2: limit of the transitions (mode 2: also the start), seconds (5)");
  p.String("--duration", "S", &duration, "stop by itself after S seconds (0: run until a signal)");
  p.StringList("--set", "NAME=VALUE", &sets,
               "start value of a knob (repeatable; sie-run --describe lists the knobs)");
  p.Flag("--describe", &describe,
         "list the policy's constants, start settings and live knobs (types, defaults) and exit");
  p.Flag("--shadow", &shadow,
         "decide and count every hit, but keep the shipped values (what would change?)");
  p.String("--cgroup", "DIR", &cgroup,
           "canary: decisions apply only to tasks in this cgroup v2 directory and below");
  p.Flag("--pin", &pin, "leave the policy loaded and exit (undo with sie-run --stop)");
  p.Flag("--stop", &stop, "restore the defaults of a policy left loaded with --pin");
  p.Flag("--json", &json, "one JSON object per event on stdout");
  p.String("--reason", "TEXT", &reason,
           "why: recorded with every change in the journal (sie log) and the system log");
  p.Flag("--no-optimize", &no_optimize, "do not look for jump-optimizable probe offsets");
  p.Flag("--compile-only", &compile_only,
         "compile into the policy cache and exit (no root needed, nothing attached)");
  p.Flag("--no-cache", &no_cache, "always run clang (the cache is neither read nor written)");
  p.Flag("-v,--verbose", &verbose, "per-phase timings, verifier logs");
  p.String("--emit-headers", "DIR", &emit,
           "only write the generated per-constant headers into DIR (for editors and CI)");
  p.Positionals("POLICY.bpf.c", &positional, 0, 1);
  if (auto st = p.Parse(args); !st.ok()) return ReportError("sie-run", st) + 1;
  if (p.help_requested()) return 0;

  policy::RunOptions o;
  for (const auto& c : const_args)
    for (absl::string_view n : absl::StrSplit(c, ',', absl::SkipEmpty())) o.consts.emplace_back(n);
  o.consts_dir = consts;
  o.sets = sets;
  char* end = nullptr;
  o.mode = static_cast<int>(strtol(mode.c_str(), &end, 10));
  if (*end || o.mode < 0 || o.mode > 2)
    return ReportError("sie-run", InvalidWithHint("--mode " + mode + " is not 0, 1 or 2",
                                                  "0 immediate, 1 per-task, 2 global")) +
           1;
  o.reverse_timeout_s = atof(timeout.c_str());
  o.duration_s = atof(duration.c_str());
  o.pin = pin;
  o.json = json;
  o.verbose = verbose;
  o.optimize = !no_optimize;
  o.shadow = shadow;
  o.cgroup = cgroup;
  o.use_cache = !no_cache;

  if (!reason.empty()) loader::SetJournalContext({{"reason", reason}});
  if (stop) {
    auto st = policy::StopPinned(o.reverse_timeout_s);
    return st.ok() ? 0 : ReportError("sie-run", st);
  }
  if (!emit.empty()) {
    auto cs = policy::ResolveConsts(o.consts_dir, o.consts);
    if (!cs.ok()) return ReportError("sie-run", cs.status());
    auto st = policy::WritePolicyHeaders(
        *cs, policy::Toolchain::FromBuild().vmlinux_dir / "vmlinux.h", emit);
    return st.ok() ? 0 : ReportError("sie-run", st);
  }
  if (positional.empty())
    return ReportError("sie-run",
                       InvalidWithHint("no policy given", "sie-run POLICY.bpf.c --const NAME")) +
           1;
  o.source = positional[0];
  if (describe) {
    auto st = policy::Describe(o);
    return st.ok() ? 0 : ReportError("sie-run", st);
  }
  if (compile_only) {
    if (no_cache)
      return ReportError("sie-run",
                         InvalidWithHint("--compile-only fills the cache", "drop --no-cache")) +
             1;
    auto st = policy::CompileOnly(o);
    return st.ok() ? 0 : ReportError("sie-run", st);
  }

  // Every change this run journals names the policy and its exact source.
  if (auto text = ReadFile(o.source); text.ok())
    loader::SetJournalContext({{"policy", std::filesystem::path(o.source).filename().string()},
                               {"policy_hash", ContentHash(*text)}});
  struct sigaction sa {};
  sa.sa_handler = OnSignal;  // no SA_RESTART: the poll returns and the loop sees the flag
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  absl::Status st = policy::RunPolicy(o, g_stop);
  return st.ok() ? 0 : ReportError("sie-run", st);
}
