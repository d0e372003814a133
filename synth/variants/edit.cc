#include "synth/variants/edit.h"

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/diag.h"
#include "synth/refusal.h"

namespace sie::synth {
namespace {

bool IsIdent(char c) { return absl::ascii_isalnum(c) || c == '_'; }

// Where a macro's value sits in the text.
struct MacroSite {
  size_t value_begin = 0;  // byte offsets of the value text (comments/whitespace excluded)
  size_t value_end = 0;
  int line = 0;
};

// Of several definitions, those `config` may compile. One known-active definition is the
// one; when an #if above some of them depends on more than CONFIG_ options (`#if HZ >= 100`),
// every definition that may be compiled is returned: the branches are exclusive, so editing
// all of them alike gives V to whichever one the compiler takes (the V1 build's mapping onto
// the shipped binary then checks that V1 is its value). An error when none is compiled.
absl::StatusOr<std::vector<MacroSite>> SelectByConfig(absl::string_view text,
                                                      absl::string_view macro,
                                                      absl::string_view file,
                                                      const std::vector<MacroSite>& sites,
                                                      const KernelConfig& config) {
  std::vector<LineState> state = ActiveLines(text, config);
  std::vector<MacroSite> possible;
  int active = 0;
  for (const MacroSite& s : sites) {
    LineState st = state[s.line - 1];
    if (st == LineState::kInactive) continue;
    possible.push_back(s);
    active += st == LineState::kActive;
  }
  if (!possible.empty() && (active <= 1 || possible.size() == 1)) {
    if (active == 1 && possible.size() > 1)
      std::erase_if(possible,
                    [&](const MacroSite& s) { return state[s.line - 1] != LineState::kActive; });
    return possible;
  }
  return Classified(
      InvalidWithHint(
          absl::StrCat("macro ", macro, " is defined ", sites.size(), " times in ", file,
                       possible.empty() ? " and the kernel's configuration compiles none of them"
                                        : " and the kernel's configuration compiles several"),
          "pick one definition with 'match:' (its exact text) and 'replace:' "
          "('...{V}...')"),
      Refusal::kMacroAmbiguous);
}

// What one source line says about `macro`.
enum class DefineKind { kNone, kObjectLike, kFunctionLike, kMultiLine };

// For kObjectLike, the value's [*begin, *end) in `l` (comments and outer spaces excluded).
DefineKind ParseDefine(absl::string_view l, absl::string_view macro, size_t* begin, size_t* end) {
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < l.size() && (l[i] == ' ' || l[i] == '\t')) ++i;
  };
  skip_ws();
  if (i >= l.size() || l[i] != '#') return DefineKind::kNone;
  ++i;
  skip_ws();
  if (!(l.substr(i, 6) == "define" && i + 6 < l.size() && !IsIdent(l[i + 6])))
    return DefineKind::kNone;
  i += 6;
  skip_ws();
  if (!(l.substr(i, macro.size()) == macro &&
        (i + macro.size() == l.size() || !IsIdent(l[i + macro.size()]))))
    return DefineKind::kNone;
  i += macro.size();
  if (i < l.size() && l[i] == '(') return DefineKind::kFunctionLike;
  if (!l.empty() && l.back() == '\\') return DefineKind::kMultiLine;
  skip_ws();
  size_t e = l.size();
  for (absl::string_view c : {"/*", "//"})
    if (size_t k = l.find(c, i); k != absl::string_view::npos && k < e) e = k;
  while (e > i && absl::ascii_isspace(l[e - 1])) --e;
  *begin = i;
  *end = e;
  return DefineKind::kObjectLike;
}

// Every object-like definition of `macro` in `text` (and the lines of function-like ones).
absl::Status ScanDefines(absl::string_view text, absl::string_view macro, absl::string_view file,
                         std::vector<MacroSite>* sites, std::vector<int>* function_like) {
  size_t pos = 0;
  int line = 0;
  while (pos <= text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == absl::string_view::npos) eol = text.size();
    ++line;
    size_t b = 0, e = 0;
    switch (ParseDefine(text.substr(pos, eol - pos), macro, &b, &e)) {
      case DefineKind::kNone:
        break;
      case DefineKind::kFunctionLike:
        function_like->push_back(line);
        break;
      case DefineKind::kMultiLine:
        return InvalidWithHint(
            absl::StrCat(file, ":", line, ": macro ", macro, " spans several lines"),
            "use 'match:'/'replace:' on the exact text of the value instead of 'macro:'");
      case DefineKind::kObjectLike:
        sites->push_back({pos + b, pos + e, line});
        break;
    }
    pos = eol + 1;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<MacroSite>> FindMacro(absl::string_view text, absl::string_view macro,
                                                 absl::string_view file,
                                                 const KernelConfig* config) {
  std::vector<MacroSite> sites;
  std::vector<int> function_like;
  if (auto s = ScanDefines(text, macro, file, &sites, &function_like); !s.ok()) return s;
  if (sites.empty()) {
    if (!function_like.empty())
      return InvalidWithHint(
          absl::StrCat("macro ", macro, " in ", file, ":", function_like[0], " takes arguments"),
          "only object-like macros can be rewritten; use 'match:'/'replace:'");
    return Classified(absl::NotFoundError(absl::StrCat("macro ", macro, " not defined in ", file)),
                      Refusal::kMacroNotFound);
  }
  if (sites.size() > 1 && config) {
    auto some = SelectByConfig(text, macro, file, sites, *config);
    if (!some.ok()) return some.status();
    sites = std::move(*some);
  }
  if (sites.size() > 1 && !config)
    return Classified(
        InvalidWithHint(
            absl::StrCat("macro ", macro, " is defined ", sites.size(), " times in ", file,
                         " (lines ", sites[0].line, " and ", sites[1].line, ")"),
            "pick one definition with 'match:' (its exact text) and 'replace:' ('...{V}...')"),
        Refusal::kMacroAmbiguous);
  for (const MacroSite& s : sites)
    if (s.value_begin == s.value_end)
      return InvalidWithHint(absl::StrCat(file, ":", s.line, ": macro ", macro, " has no value"),
                             "only macros defined as a value can be tuned");
  return sites;
}

// A plain integer literal, possibly parenthesized and suffixed: "(16000U)", "0x20", "-1".
struct Literal {
  size_t num_begin = 0, num_end = 0;  // the digits (after any '-' and radix prefix)
  bool negative = false;
  bool hex = false;
  int64_t value = 0;
};

bool ParseLiteral(absl::string_view v, Literal* lit) {
  size_t b = 0, e = v.size();
  while (b < e && (v[b] == '(' || absl::ascii_isspace(v[b]))) ++b;
  size_t opens = 0;
  for (size_t k = 0; k < b; ++k) opens += v[k] == '(';
  while (e > b && (v[e - 1] == ')' || absl::ascii_isspace(v[e - 1]))) --e;
  size_t closes = 0;
  for (size_t k = e; k < v.size(); ++k) closes += v[k] == ')';
  if (opens != closes || b >= e) return false;
  while (e > b && (v[e - 1] == 'u' || v[e - 1] == 'U' || v[e - 1] == 'l' || v[e - 1] == 'L')) --e;
  if (b < e && v[b] == '-') lit->negative = true, ++b;
  if (e - b > 2 && v[b] == '0' && (v[b + 1] == 'x' || v[b + 1] == 'X')) lit->hex = true, b += 2;
  if (b >= e) return false;
  absl::string_view digits = v.substr(b, e - b);
  uint64_t u = 0;
  bool ok = lit->hex ? absl::SimpleHexAtoi(digits, &u) : absl::SimpleAtoi(digits, &u);
  if (!ok) return false;
  // An octal literal (leading 0) would be misread as decimal: refuse to guess.
  if (!lit->hex && digits.size() > 1 && digits[0] == '0') return false;
  lit->num_begin = b;
  lit->num_end = e;
  lit->value = lit->negative ? -static_cast<int64_t>(u) : static_cast<int64_t>(u);
  return true;
}

// The value text of one definition rewritten to `value`, keeping its literal's form. A body
// that is an expression (`((unsigned)(HZ/25))`) keeps its type through __typeof__: a bare
// `(10)` is an int, and a signed compare (jg) then stands where the shipped code has ja.
// A macro the preprocessor evaluates (#if) cannot hold __typeof__ and gets a plain `(value)`.
std::string NewMacroValue(absl::string_view v, int64_t value, bool in_pp_condition) {
  Literal lit;
  if (!ParseLiteral(v, &lit) && in_pp_condition) return absl::StrCat("(", value, ")");
  if (!ParseLiteral(v, &lit))
    return absl::StrCat("((__typeof__(", absl::StripAsciiWhitespace(v), "))(", value, "))");
  if (value < 0 && lit.hex) return absl::StrCat("(", value, ")");
  uint64_t mag = value < 0 ? -static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
  std::string digits = lit.hex ? absl::StrFormat("%x", mag) : absl::StrCat(mag);
  // The sign lives just before the (optional) radix prefix.
  size_t sign_pos = lit.num_begin - (lit.hex ? 2 : 0) - (lit.negative ? 1 : 0);
  std::string prefix(v.substr(0, sign_pos));
  std::string radix = lit.hex ? std::string(v.substr(lit.num_begin - 2, 2)) : "";
  return absl::StrCat(prefix, value < 0 ? "-" : "", radix, digits, v.substr(lit.num_end));
}

// Whether an #if/#elif line of `text` names `macro` as a whole word.
bool UsedInPreprocessorCondition(absl::string_view text, absl::string_view macro) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::string_view l = absl::StripLeadingAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&l, "#")) continue;
    l = absl::StripLeadingAsciiWhitespace(l);
    if (!absl::StartsWith(l, "if") && !absl::StartsWith(l, "elif")) continue;
    for (size_t at = l.find(macro); at != absl::string_view::npos; at = l.find(macro, at + 1)) {
      bool left = at == 0 || !IsIdent(l[at - 1]);
      bool right = at + macro.size() >= l.size() || !IsIdent(l[at + macro.size()]);
      if (left && right) return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::string> MacroValueText(absl::string_view text, absl::string_view macro,
                                           absl::string_view file, const KernelConfig* config) {
  auto sites = FindMacro(text, macro, file, config);
  if (!sites.ok()) return sites.status();
  auto value_of = [&](const MacroSite& s) {
    return std::string(text.substr(s.value_begin, s.value_end - s.value_begin));
  };
  for (const MacroSite& s : *sites)
    if (value_of(s) != value_of(sites->front()))
      return Classified(absl::FailedPreconditionError(absl::StrCat(
                            "macro ", macro, " has ", sites->size(), " definitions in ", file,
                            " under #if conditions sie cannot evaluate (lines ",
                            sites->front().line, " and ", s.line, "): each is edited alike")),
                        Refusal::kMacroAmbiguous);
  return value_of(sites->front());
}

absl::StatusOr<int64_t> MacroLiteralValue(absl::string_view value_text) {
  Literal lit;
  if (!ParseLiteral(value_text, &lit))
    return absl::InvalidArgumentError(absl::StrCat("'", value_text, "' is not a plain literal"));
  return lit.value;
}

absl::StatusOr<std::string> ApplyMacroEdit(absl::string_view text, absl::string_view macro,
                                           int64_t value, absl::string_view file,
                                           const KernelConfig* config) {
  auto sites = FindMacro(text, macro, file, config);
  if (!sites.ok()) {
    if (absl::IsNotFound(sites.status()))
      return Classified(InvalidWithHint(sites.status().message(),
                                        "check 'macro:' and 'file:' in the spec (the file must "
                                        "contain '#define NAME VALUE')"),
                        Refusal::kMacroNotFound);
    return sites.status();
  }
  // From the last definition back, so earlier offsets stay valid.
  const bool in_pp = UsedInPreprocessorCondition(text, macro);
  std::string out(text);
  for (auto it = sites->rbegin(); it != sites->rend(); ++it)
    out.replace(
        it->value_begin, it->value_end - it->value_begin,
        NewMacroValue(text.substr(it->value_begin, it->value_end - it->value_begin), value, in_pp));
  return out;
}

absl::StatusOr<std::string> ApplyMatchEdit(absl::string_view text, absl::string_view match,
                                           absl::string_view replace, int64_t value,
                                           absl::string_view file) {
  size_t first = text.find(match);
  if (first == absl::string_view::npos)
    return InvalidWithHint(absl::StrCat("text not found in ", file, ": \"", match, "\""),
                           "copy 'match:' exactly from the source (spaces and all)");
  if (size_t second = text.find(match, first + 1); second != absl::string_view::npos) {
    auto line_of = [&](size_t off) {
      return 1 + std::count(text.begin(), text.begin() + off, '\n');
    };
    return InvalidWithHint(absl::StrCat("text \"", match, "\" occurs more than once in ", file,
                                        " (lines ", line_of(first), " and ", line_of(second), ")"),
                           "make 'match:' longer so that it names exactly one place");
  }
  std::string repl = absl::StrReplaceAll(replace, {{"{V}", absl::StrCat(value)}});
  std::string out(text.substr(0, first));
  absl::StrAppend(&out, repl, text.substr(first + match.size()));
  return out;
}

absl::StatusOr<std::string> ApplyTunableEdit(absl::string_view text, const TunableSpec& t,
                                             int64_t value, absl::string_view file,
                                             const KernelConfig* config) {
  if (!t.macro.empty()) return ApplyMacroEdit(text, t.macro, value, file, config);
  return ApplyMatchEdit(text, t.match, t.replace, value, file);
}

}  // namespace sie::synth
