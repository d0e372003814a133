#include "synth/spec/spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/diag.h"
#include "common/base/files.h"

namespace sie::synth {
namespace fs = std::filesystem;

const char* TargetKindName(TargetKind k) {
  switch (k) {
    case TargetKind::kKernel:
      return "kernel";
    case TargetKind::kModule:
      return "module";
    case TargetKind::kGeneric:
      return "generic";
  }
  return "?";
}

bool TunableSpec::is_header() const { return absl::EndsWith(file, ".h"); }

std::string Spec::Where(int line) const {
  return line > 0 ? absl::StrCat(path.string(), ":", line) : path.string();
}

namespace {

bool IsIdentifier(absl::string_view s) {
  if (s.empty() || !(absl::ascii_isalpha(s[0]) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isalnum(c) || c == '_'; });
}

// The parser state: the spec being filled and the file name for messages.
class Parser {
 public:
  explicit Parser(Spec* spec) : spec_(spec) {}

  absl::Status Error(const YAML::Node& at, absl::string_view what, absl::string_view hint) {
    return InvalidWithHint(absl::StrCat(spec_->Where(Line(at)), ": ", what), hint);
  }
  static int Line(const YAML::Node& n) {
    return n.IsDefined() && n.Mark().line >= 0 ? n.Mark().line + 1 : 0;
  }

  // Rejects keys outside `known`, suggesting the closest known one.
  absl::Status CheckKeys(const YAML::Node& map, const std::vector<std::string>& known,
                         absl::string_view what) {
    for (auto it = map.begin(); it != map.end(); ++it) {
      std::string key;
      if (!YAML::convert<std::string>::decode(it->first, key) || !it->first.IsScalar())
        return Error(it->first, absl::StrCat("a key of ", what, " is not a plain name"),
                     "write keys as plain words, e.g. 'name:'");
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      std::string near = DidYouMean(key, known);
      std::string hint =
          near.empty() ? absl::StrCat("known keys of ", what, ": ", absl::StrJoin(known, ", "))
                       : absl::StrCat("did you mean '", near, "'?");
      return Error(it->first, absl::StrCat("unknown key '", key, "' in ", what), hint);
    }
    return absl::OkStatus();
  }

  absl::Status GetString(const YAML::Node& map, const std::string& key, std::string* out,
                         bool required, absl::string_view what, absl::string_view example) {
    const YAML::Node n = map[key];
    if (!n.IsDefined() || n.IsNull()) {
      if (!required) return absl::OkStatus();
      return Error(map, absl::StrCat(what, " has no '", key, "'"),
                   absl::StrCat("add '", key, ": ", example, "'"));
    }
    if (!n.IsScalar() || !YAML::convert<std::string>::decode(n, *out))
      return Error(n, absl::StrCat("'", key, "' must be a string"),
                   absl::StrCat("write e.g. '", key, ": ", example, "'"));
    if (required && out->empty())
      return Error(n, absl::StrCat("'", key, "' is empty"),
                   absl::StrCat("write e.g. '", key, ": ", example, "'"));
    return absl::OkStatus();
  }

  absl::Status GetInt(const YAML::Node& n, int64_t* out, absl::string_view what) {
    if (!n.IsScalar() || !YAML::convert<int64_t>::decode(n, *out))
      return Error(n, absl::StrCat(what, " is not an integer"),
                   "write a whole number, e.g. 32 or 0x20");
    return absl::OkStatus();
  }

  absl::Status GetStringList(const YAML::Node& map, const std::string& key,
                             std::vector<std::string>* out, absl::string_view example) {
    const YAML::Node n = map[key];
    if (!n.IsDefined() || n.IsNull()) return absl::OkStatus();
    std::vector<YAML::Node> items;
    if (n.IsScalar()) {
      items.push_back(n);  // a single item without brackets
    } else if (n.IsSequence()) {
      for (const auto& item : n) items.push_back(item);
    } else {
      return Error(n, absl::StrCat("'", key, "' must be a list"),
                   absl::StrCat("write e.g. '", key, ": [", example, "]'"));
    }
    for (const auto& item : items) {
      std::string s;
      if (!item.IsScalar() || !YAML::convert<std::string>::decode(item, s) || s.empty())
        return Error(item, absl::StrCat("an item of '", key, "' is not a string"),
                     absl::StrCat("write e.g. '", key, ": [", example, "]'"));
      out->push_back(s);
    }
    return absl::OkStatus();
  }

  absl::Status ParseTop(const YAML::Node& root) {
    if (!root.IsDefined() || root.IsNull())
      return Error(root, "the spec is empty",
                   "write a 'tunables:' list (see synth/specs/ for examples)");
    if (!root.IsMap())
      return Error(root, "the spec must be a mapping with a 'tunables:' list",
                   "start the file with 'tunables:' (see synth/specs/ for examples)");
    if (auto s =
            CheckKeys(root, {"source_dir", "build", "module", "module_ko", "tunables"}, "the spec");
        !s.ok())
      return s;

    std::string source_dir;
    if (auto s = GetString(root, "source_dir", &source_dir, false, "the spec", "."); !s.ok())
      return s;
    spec_->has_source_dir = root["source_dir"].IsDefined() && !source_dir.empty();
    fs::path sd = spec_->has_source_dir ? fs::path(source_dir) : fs::path(".");
    if (sd.is_relative()) sd = spec_->spec_dir / sd;
    spec_->source_dir = sd.lexically_normal();

    if (auto s = ParseTarget(root); !s.ok()) return s;
    return ParseTunables(root);
  }

  // 'build:' (a plain C project) or 'module:' / 'module_ko:' (an out-of-tree module); neither:
  // the guest kernel.
  absl::Status ParseTarget(const YAML::Node& root) {
    if (YAML::Node b = root["build"]; b.IsDefined() && !b.IsNull()) {
      if (!b.IsMap())
        return Error(b, "'build' must be a mapping with a 'command'",
                     "write 'build: {command: \"gcc -O2 -c {src} -o {obj}\"}'");
      if (auto s = CheckKeys(b, {"command"}, "'build'"); !s.ok()) return s;
      if (auto s = GetString(b, "command", &spec_->build_command, true, "'build'",
                             "\"gcc -O2 -c {src} -o {obj}\"");
          !s.ok())
        return s;
      if (!absl::StrContains(spec_->build_command, "{src}") ||
          !absl::StrContains(spec_->build_command, "{obj}"))
        return Error(b["command"], "the build command lacks {src} or {obj}",
                     "write both placeholders, e.g. \"gcc -O2 -c {src} -o {obj}\"");
      spec_->kind = TargetKind::kGeneric;
    }
    if (auto s =
            GetString(root, "module", &spec_->module_dir, false, "the spec", "kmod/sie_target");
        !s.ok())
      return s;
    if (!spec_->module_dir.empty()) {
      if (spec_->kind == TargetKind::kGeneric)
        return Error(root["module"], "both 'module' and 'build' are given",
                     "a module is built with kbuild; drop 'build' (or 'module' for a plain C "
                     "project)");
      spec_->kind = TargetKind::kModule;
    }
    std::string ko;
    if (auto s = GetString(root, "module_ko", &ko, false, "the spec", "../../build/kmod/NAME.ko");
        !s.ok())
      return s;
    if (!ko.empty()) {
      if (spec_->kind != TargetKind::kModule)
        return Error(root["module_ko"], "'module_ko' is given without 'module'",
                     "'module_ko' names the built module the spans are mapped onto; add "
                     "'module: DIR' (the module's source directory) or drop it");
      fs::path kp(ko);
      if (kp.is_relative()) kp = spec_->spec_dir / kp;
      spec_->module_ko = kp.lexically_normal();
    }
    return absl::OkStatus();
  }

  absl::Status ParseTunables(const YAML::Node& root) {
    YAML::Node t = root["tunables"];
    if (!t.IsDefined() || t.IsNull())
      return Error(root, "the spec has no 'tunables'",
                   "add 'tunables:' with at least one entry (name, file, macro or match, values, "
                   "range)");
    if (!t.IsSequence() || t.size() == 0)
      return Error(t, "'tunables' must be a non-empty list",
                   "write each tunable as a list item starting with '- name: ...'");
    std::set<std::string> names;
    for (const auto& item : t) {
      TunableSpec tun;
      if (auto s = ParseTunable(item, &tun); !s.ok()) return s;
      if (!names.insert(tun.name).second)
        return Error(item["name"], absl::StrCat("tunable '", tun.name, "' is listed twice"),
                     "give each tunable a unique name");
      spec_->tunables.push_back(std::move(tun));
    }
    return absl::OkStatus();
  }

  absl::Status ParseTunable(const YAML::Node& n, TunableSpec* t) {
    if (!n.IsMap())
      return Error(n, "a tunable must be a mapping",
                   "write '- name: X' followed by file, macro/match, values and range");
    t->line = Line(n);
    if (auto s = CheckKeys(n,
                           {"name", "description", "file", "macro", "match", "replace", "objects",
                            "functions", "values", "range", "safe_spans"},
                           "a tunable");
        !s.ok())
      return s;
    if (auto s = GetString(n, "name", &t->name, true, "a tunable", "BLK_MAX_REQUEST_COUNT");
        !s.ok())
      return s;
    if (!IsIdentifier(t->name))
      return Error(n["name"], absl::StrCat("tunable name '", t->name, "' is not an identifier"),
                   "use letters, digits and '_' (it names output files and policy symbols)");
    std::string what = absl::StrCat("tunable '", t->name, "'");
    if (auto s = GetString(n, "description", &t->description, false, what, "\"...\""); !s.ok())
      return s;
    if (auto s = GetString(n, "file", &t->file, true, what, "block/blk.h"); !s.ok()) return s;
    t->file_line = Line(n["file"]);
    if (fs::path(t->file).is_absolute() || absl::StrContains(t->file, ".."))
      return Error(n["file"],
                   absl::StrCat("'file' of ", what,
                                " must be a relative path inside "
                                "the source tree"),
                   "write it relative to the tree, e.g. 'file: block/blk.h'");
    if (auto s = GetString(n, "macro", &t->macro, false, what, t->name); !s.ok()) return s;
    if (auto s = GetString(n, "match", &t->match, false, what, "\"x >> 3\""); !s.ok()) return s;
    if (auto s = GetString(n, "replace", &t->replace, false, what, "\"x >> {V}\""); !s.ok())
      return s;
    if (auto s = ParseEdit(n, what, t); !s.ok()) return s;
    if (auto s = GetStringList(n, "objects", &t->objects, "block/blk-mq.o"); !s.ok()) return s;
    for (size_t i = 0; i < t->objects.size(); ++i)
      if (!absl::EndsWith(t->objects[i], ".o"))
        return Error(n["objects"], absl::StrCat("object '", t->objects[i], "' does not end in .o"),
                     "list object files, e.g. 'objects: [block/blk-mq.o]'");
    if (auto s = GetStringList(n, "functions", &t->functions, "blk_add_rq_to_plug"); !s.ok())
      return s;
    if (auto s = ParseValues(n, what, t); !s.ok()) return s;
    if (auto s = ParseRange(n, what, t); !s.ok()) return s;
    if (auto s = ParseSafeSpans(n, what, t); !s.ok()) return s;
    return absl::OkStatus();
  }

  // Exactly one of 'macro:' / 'match:' + 'replace:'.
  absl::Status ParseEdit(const YAML::Node& n, const std::string& what, TunableSpec* t) {
    bool has_macro = n["macro"].IsDefined(), has_match = n["match"].IsDefined();
    if (has_macro && has_match)
      return Error(n["match"], absl::StrCat(what, " has both 'macro' and 'match'"),
                   "keep one: 'macro: NAME' rewrites a #define, 'match:'/'replace:' rewrites text");
    if (!has_macro && !has_match)
      return Error(
          n, absl::StrCat(what, " has neither 'macro' nor 'match'"),
          absl::StrCat("add 'macro: ", t->name,
                       "' (a #define) or 'match: \"TEXT\"' with 'replace: \"...{V}...\"'"));
    if (has_macro) {
      if (t->macro.empty() || !IsIdentifier(t->macro))
        return Error(n["macro"], absl::StrCat("'macro' of ", what, " is not a macro name"),
                     absl::StrCat("write e.g. 'macro: ", t->name, "'"));
      if (n["replace"].IsDefined())
        return Error(n["replace"], "'replace' goes with 'match', not with 'macro'",
                     "drop 'replace' (a macro's value is rewritten directly)");
    } else {
      if (t->match.empty())
        return Error(n["match"], "'match' is empty", "write the exact source text to replace");
      if (!n["replace"].IsDefined())
        return Error(n["match"], absl::StrCat(what, " has 'match' but no 'replace'"),
                     "add 'replace:' with the new text, using {V} for the value");
      if (!absl::StrContains(t->replace, "{V}"))
        return Error(n["replace"], "'replace' does not contain {V}",
                     absl::StrCat("write where the value goes, e.g. 'replace: \"", t->match,
                                  "\"' with the number replaced by {V}"));
    }
    return absl::OkStatus();
  }

  // 'values': three distinct integers, the shipped one first.
  absl::Status ParseValues(const YAML::Node& n, const std::string& what, TunableSpec* t) {
    YAML::Node v = n["values"];
    if (!v.IsDefined() || v.IsNull())
      return Error(n, absl::StrCat(what, " has no 'values'"),
                   "add 'values: [V1, V2, V3]' with the shipped value first, e.g. [32, 16, 64]");
    if (!v.IsSequence()) return Error(v, "'values' must be a list", "write 'values: [32, 16, 64]'");
    for (const auto& x : v) {
      int64_t val;
      if (auto s = GetInt(x, &val, "a value"); !s.ok()) return s;
      t->values.push_back(val);
    }
    if (t->values.size() != 3)
      return Error(v, absl::StrCat("'values' has ", t->values.size(), " value(s), needs exactly 3"),
                   "give the shipped value first, then two other values, e.g. [32, 16, 64]");
    if (t->values[0] == t->values[1] || t->values[0] == t->values[2] ||
        t->values[1] == t->values[2])
      return Error(v, "'values' are not all distinct",
                   "three different values are needed to tell the constant's effect apart");
    return absl::OkStatus();
  }

  // 'range': [MIN, MAX] holding every value.
  absl::Status ParseRange(const YAML::Node& n, const std::string& what, TunableSpec* t) {
    YAML::Node r = n["range"];
    if (!r.IsDefined() || r.IsNull())
      return Error(n, absl::StrCat(what, " has no 'range'"),
                   "add 'range: [MIN, MAX]': the values a policy may set");
    if (!r.IsSequence() || r.size() != 2)
      return Error(r, "'range' must be [MIN, MAX]", "write e.g. 'range: [1, 1024]'");
    if (auto s = GetInt(r[0], &t->range_min, "range MIN"); !s.ok()) return s;
    if (auto s = GetInt(r[1], &t->range_max, "range MAX"); !s.ok()) return s;
    if (t->range_min > t->range_max)
      return Error(r, "range MIN is greater than MAX", "write 'range: [MIN, MAX]' with MIN <= MAX");
    for (int64_t val : t->values)
      if (val < t->range_min || val > t->range_max)
        return Error(r,
                     absl::StrCat("range [", t->range_min, ", ", t->range_max,
                                  "] does not contain value ", val),
                     "widen the range or pick values inside it");
    return absl::OkStatus();
  }

  // 'safe_spans' (optional): manual {function, start, end} overrides.
  absl::Status ParseSafeSpans(const YAML::Node& n, const std::string& what, TunableSpec* t) {
    if (YAML::Node ss = n["safe_spans"]; ss.IsDefined() && !ss.IsNull()) {
      if (!ss.IsSequence())
        return Error(ss, "'safe_spans' must be a list",
                     "write 'safe_spans: [{function: f, start: 0x10, end: 0x90}]'");
      for (const auto& item : ss) {
        if (!item.IsMap())
          return Error(item, "a safe span must be a mapping",
                       "write '{function: f, start: 0x10, end: 0x90}'");
        if (auto s = CheckKeys(item, {"function", "start", "end"}, "a safe span"); !s.ok())
          return s;
        SafeSpanSpec sp;
        sp.line = Line(item);
        if (auto s = GetString(item, "function", &sp.function, true, "a safe span", "f"); !s.ok())
          return s;
        for (const char* k : {"start", "end"})
          if (!item[k].IsDefined())
            return Error(item, absl::StrCat("a safe span has no '", k, "'"),
                         "write '{function: f, start: 0x10, end: 0x90}'");
        int64_t a, b;
        if (auto s = GetInt(item["start"], &a, "'start'"); !s.ok()) return s;
        if (auto s = GetInt(item["end"], &b, "'end'"); !s.ok()) return s;
        if (a < 0 || b <= a)
          return Error(item, "a safe span needs 0 <= start < end",
                       "offsets are function-relative bytes, end exclusive");
        sp.start = static_cast<uint64_t>(a);
        sp.end = static_cast<uint64_t>(b);
        t->safe_spans.push_back(sp);
      }
    }
    return absl::OkStatus();
  }

 private:
  Spec* spec_;
};

}  // namespace

absl::StatusOr<Spec> ParseSpecText(absl::string_view text, const fs::path& display_path) {
  Spec spec;
  spec.path = display_path;
  spec.spec_dir = fs::absolute(display_path).parent_path();
  Parser p(&spec);
  try {
    YAML::Node root = YAML::Load(std::string(text));
    if (auto s = p.ParseTop(root); !s.ok()) return s;
  } catch (const YAML::Exception& e) {
    // yaml-cpp's marks are 0-based; its message repeats the position, so use e.msg.
    int line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
    return InvalidWithHint(absl::StrCat(spec.Where(line), ": malformed YAML: ", e.msg),
                           "check indentation, quoting (quote text with ':' or '#') and "
                           "brackets around this line");
  }
  return spec;
}

absl::StatusOr<Spec> ParseSpecFile(const fs::path& path) {
  auto text = ReadFile(path);
  if (!text.ok())
    return WithContext(InvalidWithHint(text.status().message(), "check the spec path"),
                       "reading the spec");
  return ParseSpecText(*text, path);
}

}  // namespace sie::synth
