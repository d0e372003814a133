// Test helper: runs synth's output stage (stubgen::EmitArtifacts) on DIR/<id>/const.json, so the
// build can compile a C++ program against the generated <lname>.hpp + skeleton.
//   sie_test_emit_artifacts CONST_DIR [EXTRA_CFLAGS]
#include <cstdio>

#include "common/base/diag.h"
#include "common/stubgen/stub_build.h"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s CONST_DIR [EXTRA_CFLAGS]\n", argv[0]);
    return 2;
  }
  sie::stubgen::ArtifactOptions o;
  if (argc == 3) o.extra_cflags = argv[2];
  o.progress = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
  if (auto st = sie::stubgen::EmitArtifacts(argv[1], o); !st.ok())
    return sie::ReportError("sie_test_emit_artifacts", st);
  return 0;
}
