// Per-subcommand argument parsing. absl flags are process-global, which does not fit a CLI whose
// subcommands take different options (`sie vm --add`, `sie synth --out`); this parser keeps each
// subcommand's options local, generates its --help, and rejects unknown options with a hint.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace sie {

class ArgParser {
 public:
  // usage: "sie vm [--add DIR] [-v] -- CMD ARGS..."; summary: one paragraph for --help.
  ArgParser(std::string usage, std::string summary);

  // Options. `names` is "--out" or "-v,--verbose". `metavar` empty means a boolean flag.
  void Flag(const std::string& names, bool* out, const std::string& help);
  void String(const std::string& names, const std::string& metavar, std::string* out,
              const std::string& help);
  void Int(const std::string& names, const std::string& metavar, long* out,
           const std::string& help);
  // Repeatable string option.
  void StringList(const std::string& names, const std::string& metavar,
                  std::vector<std::string>* out, const std::string& help);
  // Positional arguments: named for --help; min/max counts (max -1: unlimited).
  void Positionals(const std::string& names, std::vector<std::string>* out, int min, int max);
  // Everything after "--" goes here (and not to positionals).
  void Rest(std::vector<std::string>* out) { rest_ = out; }

  // Parses args (without the program/subcommand name). Returns OkStatus, or an error with a
  // hint. If --help/-h was given, prints help to stdout and sets help_requested().
  absl::Status Parse(const std::vector<std::string>& args);
  bool help_requested() const { return help_requested_; }
  std::string Help() const;

 private:
  struct Option {
    std::vector<std::string> names;
    std::string metavar;
    std::string help;
    std::function<absl::Status(const std::string&)> set;  // value setter (bool: "")
  };
  Option* Find(const std::string& name);

  std::string usage_, summary_;
  std::vector<Option> options_;
  std::vector<std::string>* positionals_ = nullptr;
  std::string positional_names_;
  int pos_min_ = 0, pos_max_ = 0;
  std::vector<std::string>* rest_ = nullptr;
  bool help_requested_ = false;
};

}  // namespace sie
