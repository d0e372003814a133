// Stage: the verdict on a candidate from how it is used, and its rank (how much executed code
// it reaches: use sites, the functions they are in, the objects that compile them).
#include <set>

#include "absl/strings/str_cat.h"
#include "synth/discover/discover.h"

namespace sie::synth::discover {

void Rank(Candidate* c) {
  c->kinds.clear();
  std::set<std::string> functions;
  c->sites = 0;
  for (const Use& u : c->uses) {
    ++c->kinds[u.kind];
    if (!IsExecuted(u.kind)) continue;
    ++c->sites;
    functions.insert(u.function);
  }
  c->functions = static_cast<int>(functions.size());
  const int bitwise = c->kinds.count(UseKind::kBitwise) ? c->kinds[UseKind::kBitwise] : 0;
  c->verdict = c->def.excluded;
  for (const auto& [k, n] : c->kinds)
    if (c->verdict.empty() && IsDisqualifying(k))
      c->verdict = absl::StrCat("used as ", UseKindName(k));
  if (c->verdict.empty() && c->sites == 0)
    c->verdict = bitwise ? "flag or mask (bitwise use)" : "no executed use";
  if (c->verdict.empty() && bitwise >= c->sites) c->verdict = "flag or mask (bitwise use)";
  int built = 0;
  for (const ObjectBinary& o : c->objects) built += o.built;
  c->score = c->sites + c->functions + 2.0 * built;
}

}  // namespace sie::synth::discover
