// `sie discover`: candidate performance constants of a kernel file or directory, ranked by how
// much executed code they reach, with the objects (built in or module) that use them.
//
// Stages, one file each: scope.cc (files to read), preprocess.cc (gcc -E -dD: active macro
// definitions), definitions.cc / evaluate.cc (candidates and their shipped values), uses.cc
// (how each occurrence is used), binaries.cc (object -> vmlinux or .ko), rank.cc (verdict and
// score), spec_out.cc (values, range and the spec `sie synth` reads).
#pragma once
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "synth/discover/binaries.h"
#include "synth/discover/definitions.h"
#include "synth/discover/uses.h"

namespace sie::synth::discover {

struct DiscoverOptions {
  std::string path;        // relative to the kernel tree
  std::string kernel_src;  // a prepared tree; "" = sie's cached guest tree (never prepared here)
  bool use_cpp = true;     // run gcc -E -dD for exact macro definitions
  std::function<void(const std::string&)> progress = [](const std::string&) {};
};

struct Candidate {
  Definition def;
  std::vector<Use> uses;              // executed and other uses, direct and through macros
  std::map<UseKind, int> kinds;       // count per kind
  int sites = 0;                      // executed use sites
  int functions = 0;                  // distinct functions with an executed use
  std::vector<ObjectBinary> objects;  // objects with an executed use
  std::string verdict;                // "" = candidate; else why it is ruled out
  double score = 0;
  std::vector<int64_t> values;  // V1 (shipped), V2, V3
  int64_t range_min = 0, range_max = 0;
  bool ok() const { return verdict.empty(); }
};

struct DiscoverReport {
  std::filesystem::path root;
  std::string path;
  std::vector<std::string> files;     // target files read
  std::vector<Candidate> candidates;  // ranked first, then the ruled-out ones
  int preprocessed = 0;               // sources run through gcc -E -dD
};

absl::StatusOr<DiscoverReport> Discover(const DiscoverOptions& o);

// Verdict and score of one candidate from its uses (rank.cc).
void Rank(Candidate* c);

// V2, V3 and the range (spec_out.cc): half and double, +-1 for a shift, within the type.
void ChooseValues(Candidate* c);

// The YAML spec of the ranked candidates (those with built objects), top `limit` (0 = all).
std::string SpecYaml(const DiscoverReport& r, size_t limit);

}  // namespace sie::synth::discover
