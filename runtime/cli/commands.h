// The subcommands of `sie`. Each takes the arguments after its name and returns the exit code.
#pragma once
#include <string>
#include <vector>

namespace sie::cli {

int VmCommand(const std::vector<std::string>& args);
int InfoCommand(const std::vector<std::string>& args);

}  // namespace sie::cli
