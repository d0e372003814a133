// libbpf's messages, for sie-set and sie-run alike: kept (bounded) so errors can quote the
// verifier's log, and passed to sie's logger (libbpf warnings and info at debug level: -v;
// libbpf's own debug lines at trace level, SIE_LOG=trace).
#pragma once
#include <cstddef>
#include <string>

namespace sie::loader {

void RouteLibbpfLog();  // installs the print callback (again after a library replaced it)
void ClearLibbpfLog();
std::string LibbpfLogText();                   // everything kept since the last clear
std::string LibbpfLogTail(size_t max = 3000);  // its end

}  // namespace sie::loader
