// The runtime subcommands: `sie set`, `sie status`, `sie unload`, `sie consts`, `sie log`.
// Thin wrappers over runtime/loader (the logic) that parse options and print.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "bpf/include/sie/abi.h"
#include "common/artifact/consts_dir.h"
#include "common/base/args.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/hash.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "common/stubgen/stub_build.h"
#include "common/stubgen/stubgen.h"
#include "nlohmann/json.hpp"
#include "runtime/apply/apply.h"
#include "runtime/cli/commands.h"
#include "runtime/loader/checks.h"
#include "runtime/loader/journal.h"
#include "runtime/loader/loader.h"
#include "runtime/loader/transaction.h"
#include "runtime/policy/metrics.h"

namespace sie::cli {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kConstsHelp =
    "directory written by 'sie synth --out' (default $SIE_CONSTS, else "
    "/var/lib/sie/consts/<release> when it exists, else /etc/sie/consts)";
// Commands on loaded constants find them by their state; a directory only narrows an id.
const char* kIdConstsHelp =
    "with an id: only constants loaded from this directory (ids are per directory)";

std::string Flags(const loader::ProbeInfo& p) {
  // Placed for jump optimization, which the kernel's delayed optimizer has not done yet.
  if (p.kprobe_flags.empty() && p.jump_placed) return "[int3, optimizing]";
  return p.kprobe_flags.empty() ? "[int3]" : p.kprobe_flags;
}

}  // namespace

constexpr char kReasonHelp[] =
    "why: recorded with the change in the journal (sie log) and the system log";

// The journal context of this command: its --reason, and the policy objects it links (name
// and content hash, so the journal tells which exact code decided).
void JournalWhy(const std::string& reason, const std::vector<std::string>& policies) {
  json ctx = json::object();
  if (!reason.empty()) ctx["reason"] = reason;
  std::vector<std::string> names, hashes;
  for (const std::string& p : policies) {
    names.push_back(std::filesystem::path(p).filename().string());
    auto bytes = ReadFile(p);
    hashes.push_back(bytes.ok() ? ContentHash(*bytes) : "unreadable");
  }
  if (!names.empty()) {
    ctx["policy"] = absl::StrJoin(names, ",");
    ctx["policy_hash"] = absl::StrJoin(hashes, ",");
  }
  loader::SetJournalContext(ctx);
}

namespace {

// A value as `sie set` takes it, with errors that say what is wrong.
absl::Status ParseValue(const std::string& text, int64_t* v) {
  if (absl::SimpleAtoi(text, v)) return absl::OkStatus();
  // Digits that overflow are a number, just too large: say so, not "not an integer".
  const std::string digits(absl::StripPrefix(text, "-"));
  if (!digits.empty() && std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit))
    return InvalidWithHint(absl::StrCat("'", text, "' does not fit a 64-bit integer"),
                           "'sie consts' shows each constant's range");
  return InvalidWithHint(absl::StrCat("'", text, "' is not an integer"),
                         "values are decimal integers (e.g. 4096, -1)");
}

// The constants and values of `sie set`: "<const> <value>", or "NAME=VALUE..." for several.
absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> ParseAssignments(
    const std::vector<std::string>& pos) {
  std::vector<std::pair<std::string, int64_t>> out;
  const bool pairs = std::all_of(pos.begin(), pos.end(),
                                 [](const std::string& a) { return absl::StrContains(a, '='); });
  if (!pairs) {
    if (pos.size() != 2)
      return InvalidWithHint("give a constant and its value, or NAME=VALUE for each constant",
                             "sie set SHRINK_BATCH 256, or sie set SHRINK_BATCH=256 "
                             "BLK_MAX_REQUEST_COUNT=16");
    int64_t v = 0;
    RETURN_IF_ERROR(ParseValue(pos[1], &v));
    out.emplace_back(pos[0], v);
    return out;
  }
  for (const std::string& a : pos) {
    const size_t eq = a.find('=');
    int64_t v = 0;
    if (auto st = ParseValue(a.substr(eq + 1), &v); !st.ok())
      return WithContext(st, a.substr(0, eq));
    for (const auto& [n, _] : out)
      if (absl::EqualsIgnoreCase(n, a.substr(0, eq)))
        return InvalidWithHint(absl::StrCat(n, " is given twice"), "give each constant once");
    out.emplace_back(a.substr(0, eq), v);
  }
  return out;
}

json SetJson(const loader::SetResult& r) {
  int optimized = 0, applies = 0, placed = 0;
  for (const auto& pr : r.probes)
    if (pr.role == "apply") {
      ++applies;
      optimized += pr.optimized;
      placed += pr.jump_placed;
    }
  json j{{"const", r.name},
         {"value", r.value},
         {"mode", r.mode},
         {"updated_only", r.updated_only},
         {"compiled", r.compiled},
         {"latency_ms", r.latency_ms},
         {"verify_ms", r.verify_ms},
         {"build_ms", r.build_ms},
         {"load_ms", r.load_ms},
         {"attach_ms", r.attach_ms},
         {"optimize_ms", r.optimize_ms},
         {"transition_ms", r.transition_ms},
         {"transition_result", r.transition_result},
         {"apply_probes", applies},
         {"optimized_probes", optimized},
         {"jump_placed_probes", placed},
         {"notes", r.notes},
         {"warnings", r.warnings},
         {"engine", r.engine},
         {"engine_reason", r.engine_reason}};
  j["old_value"] = r.old_value ? json(*r.old_value) : json(nullptr);
  return j;
}

void PrintSet(const loader::SetResult& r, bool verbose) {
  for (const auto& n : r.notes) std::fprintf(stderr, "sie set: note: %s\n", n.c_str());
  for (const auto& w : r.warnings) std::fprintf(stderr, "sie set: warning: %s\n", w.c_str());
  if (verbose && !r.engine.empty())
    std::fprintf(stderr, "sie set: engine %s%s%s\n", r.engine.c_str(),
                 r.engine_reason.empty() ? "" : ": ", r.engine_reason.c_str());
  const std::string old = r.old_value ? absl::StrCat(*r.old_value) : "?";
  if (r.updated_only) {
    if (r.mode == 2 && !r.transition_result.empty())
      std::printf(
          "%s: %s -> %lld (global transitions back and forth, %.1f ms; the last took "
          "%.1f ms in the kernel, %s)\n",
          r.name.c_str(), old.c_str(), static_cast<long long>(r.value), r.latency_ms,
          r.transition_ms, r.transition_result.c_str());
    else
      std::printf("%s: %s -> %lld (%s updated in %.1f ms)\n", r.name.c_str(), old.c_str(),
                  static_cast<long long>(r.value),
                  r.engine == "native" ? "native probes" : "value map", r.latency_ms);
    return;
  }
  int optimized = 0, applies = 0;
  for (const auto& pr : r.probes)
    if (pr.role == "apply") {
      ++applies;
      optimized += pr.optimized || pr.jump_placed;
    }
  // Placed by prediction, the kernel optimizes them after the set returns.
  const bool placed =
      std::any_of(r.probes.begin(), r.probes.end(), [](const auto& pr) { return pr.jump_placed; });
  std::printf(
      "%s = %lld (mode %d, engine %s): %d probe(s), %d/%d apply probes %s, "
      "active in %.0f ms%s\n",
      r.name.c_str(), static_cast<long long>(r.value), r.mode, r.engine.c_str(),
      static_cast<int>(r.probes.size()), optimized, applies,
      placed ? "jump-optimized (in the background)" : "jump-optimized", r.latency_ms,
      r.compiled ? " (stub compiled)" : "");
  if (r.mode == 2)
    std::printf("  global transition: %s, %.1f ms from request to switch (kernel time)\n",
                r.transition_result.c_str(), r.transition_ms);
}

// `s` with what became of the other constants added to its hint.
absl::Status AddToHint(const absl::Status& s, const std::string& more) {
  const std::string h = Hint(s);
  return WithHint(s, h.empty() ? more : absl::StrCat(h, "; ", more));
}

// Every constant or none. All checks that need no kernel (names, ranges) come first; then each
// set records its undo before the next starts (a newly loaded constant is unloaded, a loaded
// one gets its old value back), and a failure undoes the earlier ones, newest first.
absl::StatusOr<std::vector<loader::SetResult>> SetAll(
    const loader::SetOptions& base, const std::vector<std::pair<std::string, int64_t>>& want) {
  // One constant: SetConst's own checks, before it changes anything, say the same.
  for (size_t i = 0; want.size() > 1 && i < want.size(); ++i) {
    auto e = artifact::FindConst(base.consts_dir, want[i].first);
    if (!e.ok()) return AddToHint(e.status(), "nothing was changed");
    loader::SetOptions o = base;
    o.value = want[i].second;
    if (auto st = loader::ValidateRequest(e->c, o); !st.ok())
      return AddToHint(WithContext(st, e->c.name), "nothing was changed");
  }
  loader::Transaction txn;
  std::vector<loader::SetResult> done;
  for (const auto& [name, value] : want) {
    loader::SetOptions o = base;
    o.name = name;
    o.value = value;
    auto r = loader::SetConst(o);
    if (!r.ok())
      return want.size() == 1
                 ? r.status()
                 : AddToHint(WithContext(r.status(), name),
                             done.empty() ? "nothing was changed"
                                          : absl::StrCat("nothing was changed: the ", done.size(),
                                                         " constant(s) set before it are back"));
    if (r->updated_only && r->old_value)
      txn.OnRollback([o, old = *r->old_value]() mutable {
        o.value = old;
        (void)loader::SetConst(o);
      });
    else
      txn.OnRollback([n = r->name, t = base.timeout_s] { (void)loader::Unload(n, false, t); });
    done.push_back(std::move(*r));
  }
  txn.Commit();
  return done;
}

}  // namespace

int SetCommand(const std::vector<std::string>& args) {
  std::string consts = loader::DefaultConstsDir().string(), mode_s = "0", timeout_s = "5",
              engine = "auto", reason;
  std::vector<std::string> pos, policies;
  bool as_json = false, no_opt = false, verbose = false;
  ArgParser p(
      "sie set <const> <value> | NAME=VALUE... [--consts DIR] [--mode 0|1|2] "
      "[--timeout S] [--json]",
      "Gives a kernel constant a new value, live. <const> is a name (any case) or the id\n"
      "'sie consts' shows. The first set of a constant verifies the kernel (release,\n"
      "symbols, code bytes), attaches every probe or none, and pins the state under\n"
      "/sys/fs/bpf/sie; later sets only change the value.\n"
      "Several constants (NAME=VALUE each) are set all or none: every value is checked\n"
      "first, and a failure puts back the constants set before it.\n"
      "Modes: 0 immediate, 1 per-task (a task switches when it enters a safe span with\n"
      "none on its stack), 2 global (every task at once, at an instant with no task\n"
      "inside a safe span; sie_consistency.ko; fails after --timeout, nothing applied).\n"
      "Engines: native (sie_native.ko kprobe handlers, no BPF per hit: faster) where it\n"
      "covers every span as safely as BPF (mode 0, fixed value, reg/mem kinds), else\n"
      "bpf; -v says which and why.");
  p.Positionals("const value | NAME=VALUE...", &pos, 1, 64);
  p.String("--consts", "DIR", &consts, kConstsHelp);
  p.String("--mode", "M", &mode_s, "consistency mode: 0, 1 or 2 (default 0)");
  p.String("--timeout", "S", &timeout_s,
           "mode 2: limit of the global transition, seconds (default 5)");
  p.StringList("--policy", "OBJ", &policies,
               "BPF object defining sie_decide_<name>, linked over the default decision");
  p.Flag("--no-optimize", &no_opt,
         "keep the synthesized offsets (skip the jump-optimization search)");
  p.String("--engine", "E", &engine,
           "auto (default), bpf or native: what applies the value in the kernel");
  p.Flag("-v,--verbose", &verbose,
         "say which engine applies the value, and why (and show libbpf's messages)");
  p.Flag("--json", &as_json, "machine-readable output (an array for NAME=VALUE...)");
  p.String("--reason", "TEXT", &reason, kReasonHelp);
  if (auto s = p.Parse(args); !s.ok()) return ReportError("sie set", s);
  if (p.help_requested()) return 0;
  JournalWhy(reason, policies);
  if (verbose) RaiseLogLevel(LogLevel::kDebug);
  auto want = ParseAssignments(pos);
  if (!want.ok()) return ReportError("sie set", want.status());
  loader::SetOptions o;
  o.consts_dir = consts;
  int mode = 0;
  double timeout = 0;
  if (!absl::SimpleAtoi(mode_s, &mode))
    return ReportError("sie set",
                       InvalidWithHint("--mode takes 0, 1 or 2",
                                       "0 immediate, 1 per-task, 2 global (sie set --help)"));
  if (!absl::SimpleAtod(timeout_s, &timeout) || timeout < 0)
    return ReportError("sie set", InvalidWithHint("--timeout takes seconds (e.g. 5, 0.5)",
                                                  "a number of seconds >= 0, e.g. --timeout 30"));
  o.mode = mode;
  o.timeout_s = timeout;
  o.optimize = !no_opt;
  for (const auto& pol : policies) o.policy_objects.push_back(pol);
  o.engine = engine;
  auto rs = SetAll(o, *want);
  if (!rs.ok()) return ReportError("sie set", rs.status());
  const bool several = absl::StrContains(pos[0], '=');
  if (as_json) {
    json out = json::array();
    for (const auto& r : *rs) out.push_back(SetJson(r));
    std::printf("%s\n", (several ? out : out[0]).dump(2).c_str());
    return 0;
  }
  for (const auto& r : *rs) PrintSet(r, verbose);
  return 0;
}

namespace {

// The running policy (sie-run, in the foreground or pinned), from its shared maps: how its
// decisions apply and what it decided so far, per constant.
void PrintPolicyStatus(const std::vector<loader::LoadedConst>& consts) {
  auto pol = policy::ReadPolicyMetrics();
  if (!pol.ok() || !pol->running) return;
  std::string how = pol->active ? "active" : "held at the defaults (not committed)";
  if (pol->flags & SIE_RUN_SHADOW) how += ", shadow (counted only, the defaults apply)";
  if (pol->flags & SIE_RUN_CANARY) how += ", canary (one cgroup's tasks only)";
  std::string file = "sie-run";
  if (auto pinned = apply::ReadPinned())
    file = absl::StrCat(pinned->file.filename().string(), " (pinned",
                        pinned->cgroup.empty() ? "" : ", cgroup " + pinned->cgroup.string(), ")");
  std::printf("policy %s: %s\n", file.c_str(), how.c_str());
  for (const auto& lc : consts) {
    if (!lc.state.value("policy", false)) continue;
    const json& sv = lc.state.contains("shipped_value") ? lc.state["shipped_value"] : json();
    const int64_t shipped = sv.is_number_integer() ? sv.get<int64_t>() : 0;
    const policy::DecisionSummary d =
        policy::Summarize(pol->decisions, lc.state.value("id", 0u), shipped);
    std::printf(
        "  %s: %llu decision(s), %llu differ from the shipped %lld, %llu outside the "
        "canary\n",
        lc.state.value("name", "?").c_str(), (unsigned long long)(d.total - d.outside),
        (unsigned long long)d.differ, (long long)shipped, (unsigned long long)d.outside);
  }
}

}  // namespace

int StatusCommand(const std::vector<std::string>& args) {
  bool as_json = false;
  std::string consts;
  std::vector<std::string> pos;
  ArgParser p("sie status [<const>] [--consts DIR] [--json]",
              "Lists the constants loaded in the running kernel (or only <const>, a name or an\n"
              "id): id, mode, value, every probe with\n"
              "its address and [OPTIMIZED] state, and per-span hit/applied/rejected counters.\n"
              "Mode 1: how many tasks moved since the last request and how long they took, and\n"
              "the tasks holding the transition up. Mode 2: the last global transition. Probes\n"
              "whose function a livepatch replaced since 'sie set' are flagged as bypassed.");
  p.Positionals("const", &pos, 0, 1);
  p.String("--consts", "DIR", &consts, kIdConstsHelp);
  p.Flag("--json", &as_json, "machine-readable output");
  if (auto s = p.Parse(args); !s.ok()) return ReportError("sie status", s);
  if (p.help_requested()) return 0;
  auto st = loader::Status();
  if (!st.ok()) return ReportError("sie status", st.status());
  if (!pos.empty()) {
    auto name = loader::LoadedName(pos[0], consts);
    if (!name.ok()) return ReportError("sie status", name.status());
    std::erase_if(
        *st, [&](const loader::LoadedConst& lc) { return lc.state.value("name", "") != *name; });
  }
  if (as_json) {
    json a = json::array();
    for (const auto& lc : *st) {
      json j = lc.state;
      j["pins_present"] = lc.pins_present;
      j["engine"] = lc.engine;
      j["transitions"] = lc.transitions;
      j["unsafe_checks"] = lc.unsafe;
      // Mode 1: the tasks that moved since the last request and their latency (kernel clock).
      j["epoch"] = {
          {"tasks", lc.epoch.tasks}, {"mean_ms", lc.epoch.mean_ms}, {"max_ms", lc.epoch.max_ms}};
      // Mode 1: the tasks holding the current transition up (unsafe stack at their last guard).
      j["blocking"] = json::array();
      for (const auto& b : lc.blocked)
        j["blocking"].push_back(
            {{"tid", b.tid}, {"comm", b.comm}, {"last_guard_ms_ago", b.last_ms}});
      json probes = json::array();
      for (const auto& pr : lc.probes)
        probes.push_back({{"role", pr.role},
                          {"span", pr.span},
                          {"function", pr.function},
                          {"offset", pr.offset},
                          {"address", pr.address},
                          {"optimized", pr.optimized},
                          {"jump_placed", pr.jump_placed},
                          {"flags", pr.kprobe_flags},
                          {"other_kprobes", pr.others_count},
                          {"kprobes_here", pr.others},
                          {"livepatched_by",
                           pr.livepatched_by.empty() ? json(nullptr) : json(pr.livepatched_by)},
                          {"livepatch_transition", pr.livepatch_transition}});
      j["probes"] = probes;
      json warnings = json::array();
      for (const auto& w : lc.warnings)
        warnings.push_back({{"message", w.message}, {"hint", w.hint}});
      j["warnings"] = warnings;
      json spans = json::array();
      for (const auto& c : lc.spans)
        spans.push_back({{"hits", c.hits},
                         {"applied", c.applied},
                         {"rejected", c.rejected},
                         {"failed", c.failed},
                         {"gated", c.gated},
                         {"nosave", c.nosave},
                         {"bypass", c.bypass},
                         {"markfail", c.markfail}});
      j["spans"] = spans;
      if (!lc.global.empty()) j["global"] = lc.global;
      a.push_back(j);
    }
    std::printf("%s\n", a.dump(2).c_str());
    return 0;
  }
  if (st->empty()) {
    std::printf("no constants loaded\n");
    return 0;
  }
  for (const auto& lc : *st) {
    const json& s = lc.state;
    std::printf("%s (id %s): value %s, mode %d, %s, engine %s%s\n", s.value("name", "?").c_str(),
                s.contains("id") ? s["id"].dump().c_str() : "?",
                s.contains("value") ? s["value"].dump().c_str() : "?", s.value("mode", 0),
                s.value("state", "?").c_str(), lc.engine.c_str(),
                lc.pins_present         ? ""
                : lc.engine == "native" ? " (native probes missing)"
                                        : " (pins missing)");
    for (const auto& pr : lc.probes) {
      std::printf("  %-6s span %-2d %s+0x%llx  0x%llx  %s", pr.role.c_str(), pr.span,
                  pr.function.c_str(), static_cast<unsigned long long>(pr.offset),
                  static_cast<unsigned long long>(pr.address), Flags(pr).c_str());
      if (pr.role == "apply" && pr.span < static_cast<int>(lc.spans.size())) {
        const auto& c = lc.spans[pr.span];
        std::printf("  hits %llu applied %llu rejected %llu failed %llu gated %llu",
                    (unsigned long long)c.hits, (unsigned long long)c.applied,
                    (unsigned long long)c.rejected, (unsigned long long)c.failed,
                    (unsigned long long)c.gated);
        bool saves = false;  // hits that found no saved input were not applied
        for (const auto& o : lc.probes) saves |= o.role == "save" && o.span == pr.span;
        if (saves || c.nosave) std::printf(" nosave %llu", (unsigned long long)c.nosave);
        if (c.bypass || c.markfail)  // path token: hits of the bypass path, marks lost
          std::printf(" bypass %llu markfail %llu", (unsigned long long)c.bypass,
                      (unsigned long long)c.markfail);
      }
      std::printf("\n");
      if (pr.others_count > 0)
        std::printf("         warning: %d other kprobe(s) at this address (all here: %s)\n",
                    pr.others_count, absl::StrJoin(pr.others, "; ").c_str());
      if (!pr.livepatched_by.empty())
        std::printf("         bypassed: function replaced by livepatch '%s'%s\n",
                    pr.livepatched_by.c_str(), pr.livepatch_transition ? " (in transition)" : "");
    }
    for (const auto& w : lc.warnings)
      std::printf("  warning: %s\n  hint: %s\n", w.message.c_str(), w.hint.c_str());
    if (s.value("mode", 0) == 1)
      std::printf(
          "  per-task: %llu transitions, %llu unsafe stack checks; since the last request %llu "
          "task(s) moved, %.1f ms mean, %.1f ms max\n",
          (unsigned long long)lc.transitions, (unsigned long long)lc.unsafe,
          (unsigned long long)lc.epoch.tasks, lc.epoch.mean_ms, lc.epoch.max_ms);
    if (!lc.blocked.empty()) {
      std::vector<std::string> who;
      for (const auto& b : lc.blocked)
        who.push_back(absl::StrFormat("%u (%s, %.0f ms ago)", b.tid, b.comm, b.last_ms));
      std::printf(
          "  blocking: %zu task(s) had a safe-span frame on the stack at their last guard: %s\n",
          lc.blocked.size(), absl::StrJoin(who, ", ").c_str());
    }
    if (s.value("mode", 0) == 2) {
      auto g = [&](const char* k) {
        auto it = lc.global.find(k);
        return it == lc.global.end() ? std::string("?") : it->second;
      };
      if (lc.global.empty()) {
        std::printf("  global: no sie_consistency instance (the gate is closed)\n");
      } else {
        uint64_t ns = 0;
        (void)absl::SimpleAtoi(g("elapsed_ns"), &ns);
        std::printf(
            "  global: state %s, last %s transition %s in %.1f ms (%s scan(s), %s "
            "frame(s) found), blocking %s, %s span(s)\n",
            g("state").c_str(), g("direction").c_str(), g("result").c_str(), ns / 1e6,
            g("scans").c_str(), g("frames").c_str(), g("blocking").c_str(), g("spans").c_str());
      }
    }
  }
  if (pos.empty()) PrintPolicyStatus(*st);
  return 0;
}

// One line per unloaded constant, as bpftune prints on exit: what it did while loaded.
std::string UnloadSummaryLine(const json& j) {
  if (!j.is_object()) return "";
  std::string line = absl::StrCat(j.value("const", "?"), ": ", j.value("outcome", "?"));
  if (j.contains("old_value") && j["old_value"].is_number_integer())
    absl::StrAppend(&line, " from value ", j["old_value"].get<int64_t>());
  if (j.contains("loaded_s")) absl::StrAppend(&line, " after ", j["loaded_s"].get<int64_t>(), " s");
  absl::StrAppend(&line, " (mode ", j.value("mode", 0), ", engine ", j.value("engine", "?"), ")");
  if (j.contains("hits"))
    absl::StrAppend(&line, ": ", j.value("probes", 0), " probe(s), ", j.value("hits", uint64_t{0}),
                    " hits, ", j.value("applied", uint64_t{0}), " applied, ",
                    j.value("rejected", uint64_t{0}), " rejected, ", j.value("failed", uint64_t{0}),
                    " failed");
  if (j.contains("reverse_transition")) {
    absl::StrAppend(&line, "; reverse transition ", j.value("reverse_transition", ""));
    if (j.contains("reverse_tasks"))
      absl::StrAppend(&line, ", ", j.value("reverse_tasks", uint64_t{0}),
                      " task(s) moved back, the last after ",
                      absl::StrFormat("%.1f", j.value("reverse_max_ms", 0.0)), " ms");
    if (j.value("reverse_idle_holders", uint64_t{0}) > 0)
      absl::StrAppend(&line, "; ", j.value("reverse_idle_holders", uint64_t{0}),
                      " idle task(s) outside every safe span switched at once");
    else if (j.contains("transition_ms"))
      absl::StrAppend(&line, " in ", absl::StrFormat("%.1f", j.value("transition_ms", 0.0)), " ms");
  }
  if (j.contains("error")) absl::StrAppend(&line, ": ", j.value("error", ""));
  return line;
}

int UnloadCommand(const std::vector<std::string>& args) {
  bool all = false, as_json = false, force = false;
  std::string timeout_s = "5", consts, reason;
  std::vector<std::string> pos;
  ArgParser p("sie unload <const>|--all [--consts DIR] [--timeout S] [--force] [--json]",
              "Takes a constant back to its compiled value: reverse transition (per-task mode:\n"
              "each task at its next safe point, until no task with the new value may be inside\n"
              "a safe span; global mode: all at once; either refused after the timeout, naming\n"
              "the tasks, the constant kept loaded), then detaches its probes and removes its\n"
              "pins.\n"
              "--all also removes leftovers of an interrupted 'sie set'. Prints what each\n"
              "constant did while loaded (time, hits, applied, rejected, the reverse transition).\n"
              "<const> is a name (any case) or an id ('sie status' shows both).");
  p.Positionals("const", &pos, 0, 1);
  p.Flag("--all", &all, "unload every constant");
  p.String("--consts", "DIR", &consts, kIdConstsHelp);
  p.String("--timeout", "S", &timeout_s, "reverse transition limit, seconds (default 5)");
  p.Flag("--force", &force,
         "per-task mode: end the reverse transition at the timeout even with tasks inside a "
         "safe span (they may see the old and new value mixed)");
  p.Flag("--json", &as_json, "print each constant's summary (the journal entry) as JSON");
  p.String("--reason", "TEXT", &reason, kReasonHelp);
  if (auto s = p.Parse(args); !s.ok()) return ReportError("sie unload", s);
  if (p.help_requested()) return 0;
  JournalWhy(reason, {});
  if (all == !pos.empty())
    return ReportError("sie unload",
                       InvalidWithHint("name one constant, or give --all", "see 'sie status'"));
  double timeout = 5;
  if (!absl::SimpleAtod(timeout_s, &timeout))
    return ReportError(
        "sie unload",
        InvalidWithHint("--timeout takes seconds", "a number of seconds >= 0, e.g. --timeout 30"));
  std::vector<json> summaries;
  absl::Status s = loader::Unload(all ? "" : pos[0], all, timeout, &summaries, consts, force);
  if (as_json)
    std::printf("%s\n", json(summaries).dump(2).c_str());
  else
    for (const json& j : summaries)
      // A refused unload is told by the error below.
      if (j.is_object() && j.value("outcome", "") != "refused")
        std::printf("%s\n", UnloadSummaryLine(j).c_str());
  if (!s.ok()) return ReportError("sie unload", s);
  return 0;
}

int ConstsCommand(const std::vector<std::string>& args) {
  std::string consts = loader::DefaultConstsDir().string();
  bool as_json = false, build = false;
  ArgParser p(
      "sie consts [--consts DIR] [--json] [--build]",
      "Lists the synthesized constants of a directory: id, name, range, spans per kind.\n"
      "--build writes each constant's artifacts next to const.json, as sie synth does: the\n"
      "stub (stub.bpf.c, <name>.h), its object (so 'sie set' needs no compiler), the\n"
      "libbpf skeleton <name>.skel.h and the typed C++ view <name>.hpp.");
  p.String("--consts", "DIR", &consts, kConstsHelp);
  p.Flag("--json", &as_json, "machine-readable output");
  p.Flag("--build", &build, "write and compile each constant's stub artifacts into DIR");
  if (auto s = p.Parse(args); !s.ok()) return ReportError("sie consts", s);
  if (p.help_requested()) return 0;
  auto list = artifact::ListConsts(consts);
  if (!list.ok()) return ReportError("sie consts", list.status());
  if (auto idx = artifact::ReadIdIndex(consts);
      idx.ok() && idx->scheme < artifact::kIdScheme && fs::exists(fs::path(consts) / "index.json"))
    std::fprintf(stderr,
                 "sie consts: note: %s has ids of an older sie (hashes of the names); the next "
                 "'sie synth SPEC --out %s' renumbers them 1, 2, 3, ...\n",
                 consts.c_str(), consts.c_str());
  json a = json::array();
  for (const auto& e : *list) {
    std::map<std::string, int> kinds;
    for (const auto& s : e.c.spans) kinds[artifact::SpanKindName(s.kind)]++;
    if (build) {  // the same artifacts as `sie synth` writes
      stubgen::ArtifactOptions ao;
      ao.progress = [](const std::string& line) {
        std::fprintf(stderr, "sie consts: %s\n", line.c_str());
      };
      if (auto a = stubgen::WriteArtifacts(e, ao); !a.ok())
        return ReportError("sie consts", a.status());
    }
    a.push_back({{"id", e.c.id},
                 {"name", e.c.name},
                 {"description", e.c.description},
                 {"range", {e.c.range_min, e.c.range_max}},
                 {"pow2_only", e.c.pow2_only},
                 {"values", e.c.values},
                 {"binary", e.c.target.binary},
                 {"kernel_release", e.c.target.kernel_release},
                 {"spans", kinds},
                 {"safe_spans", e.c.safe_spans.size()},
                 {"path", e.path.string()}});
  }
  if (as_json) {
    std::printf("%s\n", a.dump(2).c_str());
    return 0;
  }
  std::printf("%-4s %-28s %-22s %-12s %s\n", "ID", "NAME", "RANGE", "BINARY", "SPANS");
  for (const auto& j : a) {
    std::string spans;
    for (auto& [k, v] : j["spans"].items())
      absl::StrAppend(&spans, spans.empty() ? "" : " ", k, "=", v.dump());
    std::printf("%-4d %-28s %-22s %-12s %s\n", j["id"].get<int>(),
                j["name"].get<std::string>().c_str(),
                absl::StrCat("[", j["range"][0].dump(), ", ", j["range"][1].dump(), "]",
                             j["pow2_only"].get<bool>() ? " 2^k" : "")
                    .c_str(),
                j["binary"].get<std::string>().c_str(), spans.c_str());
  }
  return 0;
}

int LogCommand(const std::vector<std::string>& args) {
  bool as_json = false;
  std::string name, since, until, consts;
  ArgParser p(
      "sie log [--const NAME|ID] [--since T] [--until T] [--json]",
      "Shows the journal of changes: when, constant, old -> new value, mode, outcome, who,\n"
      "and why (--reason, the policy and its content hash). Stored in\n"
      "/var/log/sie/journal.jsonl (or /run/sie/journal.jsonl where /var/log is read-only);\n"
      "each entry also went to the system log (tag 'sie').\n"
      "Times: seconds since the epoch (@1733400000), a local date and time (2026-12-05,\n"
      "\"2026-12-05 14:30\") or an age (90s, 10m, 2h, 3d).");
  p.String("--const", "NAME|ID", &name, "only this constant's entries");
  p.String("--consts", "DIR", &consts, kIdConstsHelp);
  p.String("--since", "T", &since, "only entries at or after T");
  p.String("--until", "T", &until, "only entries at or before T");
  p.Flag("--json", &as_json, "one JSON object per line, as stored");
  if (auto s = p.Parse(args); !s.ok()) return ReportError("sie log", s);
  if (p.help_requested()) return 0;
  loader::JournalFilter f;
  const int64_t now = static_cast<int64_t>(time(nullptr));
  for (auto [text, out] : {std::pair{&since, &f.since}, std::pair{&until, &f.until}}) {
    if (text->empty()) continue;
    auto t = loader::ParseJournalTime(*text, now);
    if (!t.ok()) return ReportError("sie log", t.status());
    *out = *t;
  }
  if (!name.empty()) {
    // An id or a name in any case, as elsewhere; a name no longer loaded nor synthesized
    // still selects its entries.
    auto loaded = loader::LoadedName(name, consts);
    auto synthesized =
        artifact::FindConst(consts.empty() ? loader::DefaultConstsDir().string() : consts, name);
    f.name = loaded.ok()        ? *loaded
             : synthesized.ok() ? synthesized->c.name
                                : absl::AsciiStrToUpper(name);
  }
  auto j = loader::ReadJournal();
  if (!j.ok()) return ReportError("sie log", j.status());
  for (const auto& e : *j) {
    if (!loader::JournalMatches(e, f)) continue;
    if (as_json) {
      std::printf("%s\n", e.dump().c_str());
      continue;
    }
    time_t t = e.value("time", int64_t{0});
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
    std::printf("%s  %s\n", when, loader::JournalLine(e).c_str());
  }
  return 0;
}

}  // namespace sie::cli
