// synth's output stage: where artifacts go is common/artifact (const.json, index.json) and
// common/stubgen (stub, object, skeleton, C++ view); what only synth knows is how a span's
// source line, taken from a variant build in synth's work directory, becomes a path a reader can
// open.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace sie::synth {

// Where a span's `source` (file:line from the V1 build's DWARF) may point, and how it is made
// relative: variant builds under `work_dir` (<work>/<tunable>/vN/overlay/<stem>/PATH for kernel
// objects, .../module/PATH for a module copy, .../src-K/PATH for a copy of source_dir) become
// PATH (module: module_dir/PATH, i.e. relative to source_dir); paths below one of `roots` (the
// kernel tree, the headers) become relative to it. Anything else is kept as is.
struct SourceRoots {
  std::filesystem::path work_dir;
  std::string module_dir;  // kModule: the module directory relative to source_dir
  std::vector<std::filesystem::path> roots;
};
std::string RelativeSource(const std::string& source, const SourceRoots& r);

}  // namespace sie::synth
