#include "common/base/args.h"

#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/diag.h"

namespace sie {

ArgParser::ArgParser(std::string usage, std::string summary)
    : usage_(std::move(usage)), summary_(std::move(summary)) {}

void ArgParser::Flag(const std::string& names, bool* out, const std::string& help) {
  options_.push_back({absl::StrSplit(names, ','), "", help, [out](const std::string&) {
                        *out = true;
                        return absl::OkStatus();
                      }});
}

void ArgParser::String(const std::string& names, const std::string& metavar, std::string* out,
                       const std::string& help) {
  options_.push_back({absl::StrSplit(names, ','), metavar, help, [out](const std::string& v) {
                        *out = v;
                        return absl::OkStatus();
                      }});
}

void ArgParser::Int(const std::string& names, const std::string& metavar, long* out,
                    const std::string& help) {
  options_.push_back(
      {absl::StrSplit(names, ','), metavar, help, [out, names](const std::string& v) {
         int64_t x;
         if (!absl::SimpleAtoi(v, &x))
           return InvalidWithHint(absl::StrCat(names, ": '", v, "' is not a whole number"),
                                  "pass an integer, e.g. 10");
         *out = static_cast<long>(x);
         return absl::OkStatus();
       }});
}

void ArgParser::StringList(const std::string& names, const std::string& metavar,
                           std::vector<std::string>* out, const std::string& help) {
  options_.push_back({absl::StrSplit(names, ','), metavar, help, [out](const std::string& v) {
                        out->push_back(v);
                        return absl::OkStatus();
                      }});
}

void ArgParser::Positionals(const std::string& names, std::vector<std::string>* out, int min,
                            int max) {
  positionals_ = out;
  positional_names_ = names;
  pos_min_ = min;
  pos_max_ = max;
}

ArgParser::Option* ArgParser::Find(const std::string& name) {
  for (auto& o : options_)
    for (const auto& n : o.names)
      if (n == name) return &o;
  return nullptr;
}

absl::Status ArgParser::Parse(const std::vector<std::string>& args) {
  std::vector<std::string> pos;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      if (!rest_) return InvalidWithHint("unexpected '--'", absl::StrCat("usage: ", usage_));
      rest_->assign(args.begin() + i + 1, args.end());
      break;
    }
    if (a == "-h" || a == "--help") {
      help_requested_ = true;
      std::fputs(Help().c_str(), stdout);
      return absl::OkStatus();
    }
    // "-1" is a value, not an option: no option name starts with a digit (sie set NAME -1).
    if (a.size() > 1 && a[0] == '-' && !absl::ascii_isdigit(static_cast<unsigned char>(a[1]))) {
      std::string name = a, value;
      bool has_value = false;
      if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        has_value = true;
      }
      Option* o = Find(name);
      if (!o)
        return InvalidWithHint(absl::StrCat("unknown option '", name, "'"),
                               absl::StrCat("usage: ", usage_, " (see --help)"));
      if (!o->metavar.empty() && !has_value) {
        if (i + 1 >= args.size())
          return InvalidWithHint(absl::StrCat("option ", name, " needs a value"),
                                 absl::StrCat("write ", name, " ", o->metavar));
        value = args[++i];
      } else if (o->metavar.empty() && has_value) {
        return InvalidWithHint(absl::StrCat("option ", name, " takes no value"),
                               absl::StrCat("write just ", name));
      }
      if (auto s = o->set(value); !s.ok()) return s;
      continue;
    }
    pos.push_back(a);
  }
  if (!positionals_ && !pos.empty())
    return InvalidWithHint(absl::StrCat("unexpected argument '", pos[0], "'"),
                           absl::StrCat("usage: ", usage_));
  if (positionals_) {
    if (static_cast<int>(pos.size()) < pos_min_)
      return InvalidWithHint(absl::StrCat("missing ", positional_names_),
                             absl::StrCat("usage: ", usage_));
    if (pos_max_ >= 0 && static_cast<int>(pos.size()) > pos_max_)
      return InvalidWithHint(absl::StrCat("too many arguments (", absl::StrJoin(pos, " "), ")"),
                             absl::StrCat("usage: ", usage_));
    *positionals_ = pos;
  }
  return absl::OkStatus();
}

std::string ArgParser::Help() const {
  std::string h = absl::StrCat("usage: ", usage_, "\n\n", summary_, "\n");
  if (!options_.empty()) h += "\noptions:\n";
  for (const auto& o : options_) {
    std::string left = absl::StrJoin(o.names, ", ");
    if (!o.metavar.empty()) absl::StrAppend(&left, " ", o.metavar);
    absl::StrAppend(&h, "  ", left, std::string(left.size() < 24 ? 24 - left.size() : 1, ' '),
                    o.help, "\n");
  }
  absl::StrAppend(&h, "  -h, --help", std::string(14, ' '), "show this help\n");
  return h;
}

}  // namespace sie
