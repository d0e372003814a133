// `sie knob`: the running policy's live knobs (SIE_KNOB globals), listed with their current
// values or changed while it runs. The knobs come from the pinned map's BTF, so values are
// parsed and shown for their C types: no raw bytes.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/base/args.h"
#include "common/base/diag.h"
#include "runtime/cli/commands.h"
#include "runtime/policy/knobs.h"

namespace sie::cli {

namespace {

int List(bool as_json) {
  auto knobs = policy::LiveKnobs();
  if (!knobs.ok()) return ReportError("sie knob", knobs.status());
  if (as_json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& k : *knobs)
      j.push_back({{"name", k.name}, {"type", k.type}, {"value", k.value}});
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  if (knobs->empty()) std::printf("the running policy has no live knobs\n");
  for (const auto& k : *knobs)
    std::printf("%-24s %-12s %s\n", k.name.c_str(), k.type.c_str(), k.value.c_str());
  return 0;
}

}  // namespace

int KnobCommand(const std::vector<std::string>& args) {
  std::vector<std::string> pos;
  bool as_json = false;
  ArgParser p("sie knob [NAME VALUE] [--json]",
              "Lists the live knobs of the policy sie-run is running (SIE_KNOB globals, see\n"
              "sie-run --describe) with their current values, or sets one: every constant of\n"
              "the policy sees the new value at its next decision. VALUE is parsed for the\n"
              "knob's type (decimal or 0x hex integers, true/false, enum names).");
  p.Positionals("NAME VALUE", &pos, 0, 2);
  p.Flag("--json", &as_json, "machine-readable output");
  // A negative VALUE ("-5") is a value, not an option.
  std::vector<std::string> opts, negative;
  for (const auto& a : args)
    (a.size() > 1 && a[0] == '-' && absl::ascii_isdigit(a[1]) ? negative : opts).push_back(a);
  if (auto s = p.Parse(opts); !s.ok()) return ReportError("sie knob", s);
  if (p.help_requested()) return 0;
  pos.insert(pos.end(), negative.begin(), negative.end());
  if (pos.empty()) return List(as_json);
  if (pos.size() != 2)
    return ReportError("sie knob", InvalidWithHint(absl::StrCat("no value for ", pos[0]),
                                                   "sie knob NAME VALUE (sie knob lists them)"));
  auto old = policy::SetLiveKnob(pos[0], pos[1]);
  if (!old.ok()) return ReportError("sie knob", old.status());
  auto now = policy::LiveKnobs();
  std::string value = pos[1];
  if (now.ok())
    for (const auto& k : *now)
      if (k.name == old->name) value = k.value;
  if (as_json)
    std::printf(
        "%s\n",
        nlohmann::json{{"name", old->name}, {"old", old->value}, {"value", value}}.dump().c_str());
  else
    std::printf("%s: %s -> %s\n", old->name.c_str(), old->value.c_str(), value.c_str());
  return 0;
}

}  // namespace sie::cli
