// `sie metrics`: Prometheus text for node_exporter's textfile collector (runtime/policy/metrics.h).
// --textfile DIR writes DIR/sie.prom atomically (a temporary file renamed over it), as the
// collector requires: it never reads a half-written file.
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/artifact/const_json.h"
#include "common/base/args.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "runtime/cli/commands.h"
#include "runtime/loader/loader.h"
#include "runtime/policy/metrics.h"

namespace sie::cli {

namespace {

// The value each loaded constant's kernel was compiled with: recorded at `sie set`
// ("shipped_value"), or read from the const.json it was loaded from.
std::map<std::string, int64_t> ShippedValues(const std::vector<loader::LoadedConst>& consts) {
  std::map<std::string, int64_t> out;
  for (const auto& lc : consts) {
    const std::string name = lc.state.value("name", "");
    if (lc.state.contains("shipped_value") && lc.state["shipped_value"].is_number_integer()) {
      out[name] = lc.state["shipped_value"].get<int64_t>();
      continue;
    }
    auto text = ReadFile(lc.state.value("const_path", ""));
    if (!text.ok()) continue;
    auto c = artifact::ParseConstJson(*text, lc.state.value("const_path", ""));
    if (c.ok() && !c->values.empty()) out[name] = c->values[0];
  }
  return out;
}

}  // namespace

int MetricsCommand(const std::vector<std::string>& args) {
  std::string textfile;
  ArgParser p("sie metrics [--textfile DIR]",
              "Prints the loaded constants and the running policy as Prometheus metrics (text\n"
              "format): per constant value, shipped value, mode, engine, probes, optimized\n"
              "probes, hits, applied, rejected, failed, transition times; per policy whether it\n"
              "applies, dropped log records and its named counters. For node_exporter's textfile\n"
              "collector: --textfile /var/lib/prometheus/node-exporter (e.g. from a timer).");
  p.String("--textfile", "DIR", &textfile, "write DIR/sie.prom atomically instead of printing");
  if (auto s = p.Parse(args); !s.ok()) return ReportError("sie metrics", s);
  if (p.help_requested()) return 0;
  auto consts = loader::Status();
  if (!consts.ok()) return ReportError("sie metrics", consts.status());
  auto pol = policy::ReadPolicyMetrics();
  if (!pol.ok()) return ReportError("sie metrics", pol.status());
  const std::string text = policy::MetricsText(*consts, ShippedValues(*consts), *pol);
  if (textfile.empty()) {
    std::fputs(text.c_str(), stdout);
    return 0;
  }
  if (!std::filesystem::is_directory(textfile))
    return ReportError("sie metrics",
                       FailedWithHint(absl::StrCat(textfile, " is not a directory"),
                                      "give node_exporter's --collector.textfile.directory"));
  if (auto s = WriteFileAtomic(std::filesystem::path(textfile) / "sie.prom", text); !s.ok())
    return ReportError("sie metrics", s);
  return 0;
}

}  // namespace sie::cli
