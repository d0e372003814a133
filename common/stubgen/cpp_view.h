// The typed C++ view over a constant's stub skeleton: DIR/<id>/<lname>.hpp, next to the
// skeleton `bpftool gen skeleton` wrote (<lname>.skel.h, struct <lname>_stub). It gives a C++
// program RAII ownership of the skeleton (open / load / destroy) and typed access to what the
// stub exposes: the value (range-checked against const.json), the activation words, per-span
// counters (summed over CPUs) and the program of each span. Errors are absl::Status, never
// exceptions. Attaching stays with the runtime (`sie set`), which checks the live kernel bytes
// first; the view is for tools and tests that drive or inspect a stub object.
//
// The text is deterministic (banner, no time, no paths), so an unchanged const.json gives
// byte-identical files.
#pragma once
#include <string>

#include "absl/status/statusor.h"
#include "common/artifact/model.h"
#include "common/stubgen/stubgen.h"

namespace sie::stubgen {

// "SIE_TARGET_DIVISOR" -> "SieTargetDivisor" (the view's class name).
std::string CamelIdent(const std::string& name);

// The skeleton's name: struct <lname>_stub, functions <lname>_stub__open() etc.
std::string SkeletonName(const artifact::SynthesizedConst& c);

// <lname>.hpp for `c`, whose stub is `stub` (GenerateStub(c)).
std::string GenerateCppView(const artifact::SynthesizedConst& c, const StubFiles& stub);

}  // namespace sie::stubgen
