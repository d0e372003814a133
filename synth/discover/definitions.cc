#include "synth/discover/definitions.h"

#include <regex>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sie::synth::discover {
namespace {

bool IntegerType(const std::vector<std::string>& words) {
  static const std::set<std::string> k = {"int",  "long",  "short", "char",  "unsigned", "signed",
                                          "u8",   "u16",   "u32",   "u64",   "s8",       "s16",
                                          "s32",  "s64",   "__u8",  "__u16", "__u32",    "__u64",
                                          "__s8", "__s16", "__s32", "__s64", "size_t",   "ssize_t"};
  for (const auto& w : words)
    if (k.count(w)) return true;
  return false;
}

// "#define NAME body" tokens from i (the `define` token): appends a definition.
void MacroAt(const std::vector<Token>& toks, size_t i, absl::string_view text,
             const std::string& file, std::vector<Definition>* out) {
  if (i + 1 >= toks.size() || toks[i + 1].kind != TokKind::kIdent) return;
  const Token& name = toks[i + 1];
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (name.line - 1 >= static_cast<int>(lines.size())) return;
  // Function-like when '(' follows the name without a space.
  absl::string_view l = lines[name.line - 1];
  size_t at = l.find(name.text);
  if (at != absl::string_view::npos && l.substr(at + name.text.size(), 1) == "(") return;
  std::vector<std::string> body;
  for (size_t j = i + 2; j < toks.size() && !toks[j].directive.empty() && !toks[j].directive_start;
       ++j)
    body.push_back(toks[j].text);
  Definition d;
  d.name = name.text;
  d.file = file;
  d.line = name.line;
  d.body = absl::StrJoin(body, " ");
  out->push_back(std::move(d));
}

// "static const TYPE name = expr;" at file scope, starting at token i.
void StaticConstAt(const std::vector<const Token*>& code, size_t i, absl::string_view text,
                   const std::string& file, std::vector<Definition>* out) {
  std::vector<std::string> words;
  size_t j = i;
  while (j < code.size() && code[j]->kind == TokKind::kIdent) words.push_back(code[j++]->text);
  if (words.size() < 3 || j >= code.size() || code[j]->text != "=") return;
  std::set<std::string> w(words.begin(), words.end() - 1);
  if (!w.count("static") || !w.count("const") || !IntegerType({w.begin(), w.end()})) return;
  std::vector<std::string> expr;
  for (++j; j < code.size() && code[j]->text != ";" && code[j]->text != ","; ++j)
    expr.push_back(code[j]->text);
  if (j >= code.size() || code[j]->text != ";") return;  // several declarators: skip
  Definition d;
  d.kind = DefKind::kStaticConst;
  d.name = words.back();
  d.file = file;
  d.line = code[i]->line;
  d.body = absl::StrJoin(expr, " ");
  std::vector<std::string> type;
  for (size_t k = 0; k + 1 < words.size(); ++k)
    if (words[k] != "static" && words[k] != "const") type.push_back(words[k]);
  d.type = absl::StrJoin(type, " ");
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (code[j]->line == d.line && d.line - 1 < static_cast<int>(lines.size()))
    d.decl = std::string(absl::StripAsciiWhitespace(lines[d.line - 1]));
  out->push_back(std::move(d));
}

}  // namespace

std::vector<Definition> DefinitionsInText(const std::vector<Token>& toks, absl::string_view text,
                                          const std::string& file, const KernelConfig& config) {
  std::vector<Definition> out;
  std::vector<LineState> active = ActiveLines(text, config);
  auto inactive = [&](int line) {
    return line - 1 < static_cast<int>(active.size()) && active[line - 1] == LineState::kInactive;
  };
  std::vector<const Token*> code;
  for (size_t i = 0; i < toks.size(); ++i) {
    if (toks[i].directive_start && toks[i].directive == "define") {
      if (!inactive(toks[i].line)) MacroAt(toks, i, text, file, &out);
    } else if (toks[i].directive.empty()) {
      code.push_back(&toks[i]);
    }
  }
  int depth = 0;
  for (size_t i = 0; i < code.size(); ++i) {
    const std::string& s = code[i]->text;
    if (s == "{" || s == "(") ++depth;
    if (s == "}" || s == ")") --depth;
    bool stmt_start = i == 0 || code[i - 1]->text == ";" || code[i - 1]->text == "}";
    if (depth == 0 && stmt_start && (s == "static" || s == "const") && !inactive(code[i]->line))
      StaticConstAt(code, i, text, file, &out);
  }
  // One definition per name: the first active one.
  std::set<std::string> seen;
  std::erase_if(out, [&](const Definition& d) { return !seen.insert(d.name).second; });
  return out;
}

}  // namespace sie::synth::discover
