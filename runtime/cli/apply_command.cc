// `sie apply FILE|DIR` and `sie apply --restore`: the declarative front (runtime/apply).
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/base/args.h"
#include "common/base/diag.h"
#include "nlohmann/json.hpp"
#include "runtime/apply/apply.h"
#include "runtime/cli/commands.h"
#include "runtime/loader/journal.h"
#include "runtime/loader/loader.h"

namespace sie::cli {
using nlohmann::json;

namespace {

int Report(const apply::ApplyResult& r, bool dry_run, bool as_json, bool detailed) {
  const bool changed = r.plan.changes();
  if (as_json) {
    json actions = json::array();
    for (const auto& a : r.plan.actions) actions.push_back(apply::ToJson(a));
    json out{{"changed", changed && !dry_run},
             {"dry_run", dry_run},
             {"would_change", changed},
             {"actions", actions}};
    std::printf("%s\n", out.dump(2).c_str());
  } else if (!changed) {
    std::printf("sie apply: nothing to change: the kernel matches the desired state\n");
  } else if (dry_run) {
    std::printf("sie apply: plan (--dry-run, nothing changed):\n");
    for (const auto& a : r.plan.actions) std::printf("  %s\n", apply::Describe(a).c_str());
  } else {
    std::printf("sie apply: %d change(s) applied\n", r.done);
  }
  return detailed && changed ? 2 : 0;
}

}  // namespace

int ApplyCommand(const std::vector<std::string>& args) {
  std::string consts = loader::DefaultConstsDir().string(), timeout = "5", reason;
  std::vector<std::string> pos;
  bool dry_run = false, as_json = false, restore = false, detailed = false;
  ArgParser p(
      "sie apply FILE|DIR [--dry-run] [--json] [--reason TEXT]\n       sie apply --restore "
      "[--dry-run] [--json]",
      "Makes the running kernel match a desired state: YAML files of constants (value, mode,\n"
      "engine) and at most one policy (file, constants, mode, knobs); a directory is every\n"
      "*.yaml in it, in name order. Changes only what differs (load, value update, reload for\n"
      "another mode or engine, unload of loaded constants the files do not name, policy\n"
      "restart), all or nothing: a failing step undoes the earlier ones. Everything that needs\n"
      "no kernel change (names, ranges, kernel release, policy file) is checked first.\n"
      "--restore returns every constant and the pinned policy to the shipped values.\n"
      "Format: docs/operations.md. Exit status: 0 (with --detailed-exitcode: 0 nothing to\n"
      "change, 2 changed or, with --dry-run, would change), 1 error.");
  p.Positionals("FILE|DIR", &pos, 0, 1);
  p.Flag("--dry-run", &dry_run, "print the plan, change nothing");
  p.Flag("--restore", &restore, "unload everything: every constant back to its shipped value");
  p.Flag("--json", &as_json, "one JSON object: changed, dry_run, would_change, actions");
  p.Flag("--detailed-exitcode", &detailed, "exit 2 when something changed (or would change)");
  p.String("--consts", "DIR", &consts,
           "constants directory when the files name none (default $SIE_CONSTS, else "
           "/var/lib/sie/consts/<release> when it exists, else /etc/sie/consts)");
  p.String("--timeout", "S", &timeout, "reverse transitions and global switches, seconds (5)");
  p.String("--reason", "TEXT", &reason,
           "why: recorded with every change in the journal (sie log) and the system log");
  if (auto s = p.Parse(args); !s.ok()) return ReportError("sie apply", s);
  if (p.help_requested()) return 0;
  if (restore == !pos.empty())
    return ReportError("sie apply", InvalidWithHint(restore ? "--restore takes no FILE|DIR"
                                                            : "no desired state given",
                                                    "sie apply /etc/sie, or sie apply --restore"));
  apply::DesiredState desired;
  if (!restore) {
    auto d = apply::ReadDesired(pos[0]);
    if (!d.ok()) return ReportError("sie apply", d.status());
    desired = std::move(*d);
  }
  json ctx{{"apply", restore ? "--restore" : pos[0]}};
  if (!reason.empty()) ctx["reason"] = reason;
  loader::SetJournalContext(ctx);
  apply::ApplyOptions o;
  o.consts_dir = consts;
  o.timeout_s = atof(timeout.c_str());
  o.dry_run = dry_run;
  o.progress = [&](const apply::Action& a, const char* what, double ms) {
    std::fprintf(as_json ? stderr : stdout, "  %s%s (%.0f ms)\n",
                 std::string(what) == "undone" ? "undone: " : "", apply::Describe(a).c_str(), ms);
  };
  auto r = apply::Apply(desired, o);
  if (!r.ok()) return ReportError("sie apply", r.status());
  return Report(*r, dry_run, as_json, detailed);
}

}  // namespace sie::cli
