// Shipped values of candidate constants and what rules a definition out on its own.
#include <regex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "synth/discover/definitions.h"

namespace sie::synth::discover {
namespace {

bool CastWord(const Token& t) {
  return t.text == "*" ||
         (t.kind == TokKind::kIdent && (IsTypeWord(t.text) || absl::EndsWith(t.text, "_t")));
}

// Expands object-like macros (each at most once on a path) and the kernel's constant wrappers
// (UL(x), _AC(x, T)) into `out`.
bool Expand(const std::vector<Token>& toks, const MacroTable& macros, std::set<std::string>* busy,
            int depth, std::vector<Token>* out) {
  if (depth > 16) return false;
  for (size_t i = 0; i < toks.size(); ++i) {
    const Token& t = toks[i];
    if (t.kind == TokKind::kString || t.kind == TokKind::kChar) return false;
    bool wrapper = t.kind == TokKind::kIdent &&
                   (t.text == "UL" || t.text == "ULL" || t.text == "_UL" || t.text == "_ULL" ||
                    t.text == "_AC" || t.text == "_BITUL") &&
                   i + 1 < toks.size() && toks[i + 1].text == "(";
    if (wrapper) {  // keep "(x", drop ", T" of _AC
      if (t.text == "_BITUL")
        out->push_back({TokKind::kNumber, "1", 0, ""}),
            out->push_back({TokKind::kPunct, "<<", 0, ""});
      size_t j = i + 1;
      out->push_back(toks[j]);
      for (++j; j < toks.size() && toks[j].text != ")" && toks[j].text != ","; ++j)
        out->push_back(toks[j]);
      while (j < toks.size() && toks[j].text != ")") ++j;
      out->push_back({TokKind::kPunct, ")", 0, ""});
      i = j;
      continue;
    }
    auto it = t.kind == TokKind::kIdent ? macros.find(t.text) : macros.end();
    if (it == macros.end() || busy->count(t.text)) {
      out->push_back(t);
      continue;
    }
    busy->insert(t.text);
    out->push_back({TokKind::kPunct, "(", 0, ""});
    bool ok = Expand(Tokenize(it->second), macros, busy, depth + 1, out);
    out->push_back({TokKind::kPunct, ")", 0, ""});
    busy->erase(t.text);
    if (!ok) return false;
  }
  return true;
}

// Drops casts "(unsigned long)" and "(u32)".
std::vector<Token> DropCasts(const std::vector<Token>& toks) {
  std::vector<Token> out;
  for (size_t i = 0; i < toks.size(); ++i) {
    if (toks[i].text == "(") {
      size_t j = i + 1;
      while (j < toks.size() && CastWord(toks[j])) ++j;
      if (j > i + 1 && j < toks.size() && toks[j].text == ")" && j + 1 < toks.size() &&
          toks[j + 1].text != ")" && toks[j + 1].kind != TokKind::kPunct) {
        i = j;
        continue;
      }
      if (j > i + 1 && j < toks.size() && toks[j].text == ")" && j + 1 < toks.size() &&
          toks[j + 1].text == "(") {
        i = j;
        continue;
      }
    }
    out.push_back(toks[i]);
  }
  return out;
}

}  // namespace

std::optional<int64_t> EvaluateExpr(absl::string_view expr, const MacroTable& macros,
                                    const KernelConfig& config) {
  std::vector<Token> toks = Tokenize(expr);
  if (toks.empty()) return std::nullopt;
  std::set<std::string> busy;
  std::vector<Token> expanded;
  if (!Expand(toks, macros, &busy, 0, &expanded)) return std::nullopt;
  std::vector<std::string> words;
  for (const Token& t : DropCasts(expanded)) {
    if (t.text == "sizeof" || t.text == "defined") return std::nullopt;
    words.push_back(t.text);
  }
  return EvalCondition(absl::StrJoin(words, " "), config);
}

void Judge(Definition* d, const MacroTable& macros, const KernelConfig& config) {
  static const std::regex kFlagName("(^|_)(MASK|FLAGS?|BIT|BITMAP)(_|$)");
  static const std::regex kBitBody(R"(\b(BIT|BIT_ULL|GENMASK|GENMASK_ULL|_BITUL)\s*\()");
  d->value = EvaluateExpr(d->body, macros, config);
  if (absl::StrContains(d->file, "uapi/"))
    d->excluded = "uapi";
  else if (std::regex_search(d->name, kFlagName) || std::regex_search(d->body, kBitBody))
    d->excluded = "flag or mask";
  else if (!d->value)
    d->excluded = "not an integer constant";
  else if (*d->value <= 0)
    d->excluded = "zero or negative";
  else if (absl::StartsWith(d->name, "__") || absl::EndsWith(d->name, "_H"))
    d->excluded = "internal name";
}

}  // namespace sie::synth::discover
