#include "runtime/apply/desired.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/diag.h"
#include "common/base/files.h"
#include "common/base/status_macros.h"

namespace sie::apply {
namespace fs = std::filesystem;

namespace {

// One file's parse: its path for messages and relative paths.
class FileParser {
 public:
  explicit FileParser(fs::path path) : path_(std::move(path)) {}

  absl::StatusOr<DesiredState> Parse(absl::string_view text) {
    YAML::Node root;
    try {
      root = YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
      return InvalidWithHint(absl::StrCat(path_.string(), ":", e.mark.line + 1, ": ", e.msg),
                             "see docs/operations.md for the format of a desired-state file");
    }
    DesiredState d;
    d.files.push_back(path_);
    if (root.IsNull()) return d;  // an empty file (all commented out) asks for nothing
    if (!root.IsMap())
      return Error(root, "the file is not a mapping",
                   "start with 'constants:' (and optionally 'policy:', 'consts:')");
    RETURN_IF_ERROR(CheckKeys(root, {"consts", "constants", "policy"}, "the file"));
    if (YAML::Node c = root["consts"]; c.IsDefined() && !c.IsNull()) {
      std::string dir;
      RETURN_IF_ERROR(Scalar(c, "'consts'", &dir));
      d.consts_dir = Anchor(dir);
    }
    if (YAML::Node cs = root["constants"]; cs.IsDefined() && !cs.IsNull()) {
      if (!cs.IsMap())
        return Error(cs, "'constants' is not a mapping",
                     "write one 'NAME: VALUE' or 'NAME: {value: V, mode: M}' per line");
      for (auto it = cs.begin(); it != cs.end(); ++it) {
        auto c = ParseConst(it->first, it->second);
        if (!c.ok()) return c.status();
        d.constants.push_back(std::move(*c));
      }
    }
    if (YAML::Node p = root["policy"]; p.IsDefined() && !p.IsNull()) {
      auto pol = ParsePolicy(p);
      if (!pol.ok()) return pol.status();
      d.policy = std::move(*pol);
    }
    return d;
  }

 private:
  std::string Where(const YAML::Node& n) const {
    return n.Mark().line >= 0 ? absl::StrCat(path_.string(), ":", n.Mark().line + 1)
                              : path_.string();
  }
  absl::Status Error(const YAML::Node& at, absl::string_view what, absl::string_view hint) const {
    return InvalidWithHint(absl::StrCat(Where(at), ": ", what), hint);
  }
  fs::path Anchor(const std::string& p) const {
    fs::path q(p);
    return q.is_absolute() ? q : fs::absolute(path_).parent_path() / q;
  }

  absl::Status CheckKeys(const YAML::Node& map, const std::vector<std::string>& known,
                         absl::string_view what) const {
    for (auto it = map.begin(); it != map.end(); ++it) {
      std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      std::string near = DidYouMean(key, known);
      return Error(it->first, absl::StrCat("unknown key '", key, "' in ", what),
                   near.empty() ? absl::StrCat("known keys: ", absl::StrJoin(known, ", "))
                                : absl::StrCat("did you mean '", near, "'?"));
    }
    return absl::OkStatus();
  }
  absl::Status Scalar(const YAML::Node& n, absl::string_view what, std::string* out) const {
    if (!n.IsScalar() || n.Scalar().empty())
      return Error(n, absl::StrCat(what, " is not a plain value"), "write e.g. 'consts: DIR'");
    *out = n.Scalar();
    return absl::OkStatus();
  }
  absl::Status Int(const YAML::Node& n, absl::string_view what, int64_t* out) const {
    if (!n.IsScalar() || !YAML::convert<int64_t>::decode(n, *out))
      return Error(n, absl::StrCat(what, " is not an integer"),
                   "write a whole number, e.g. 32 or 0x20");
    return absl::OkStatus();
  }
  absl::Status Mode(const YAML::Node& n, absl::string_view what, int* out) const {
    int64_t m = 0;
    if (!n.IsDefined() || n.IsNull()) return absl::OkStatus();
    RETURN_IF_ERROR(Int(n, what, &m));
    if (m < 0 || m > 2)
      return Error(n, absl::StrCat(what, " ", m, " is not 0, 1 or 2"),
                   "0 immediate, 1 per-task, 2 global");
    *out = static_cast<int>(m);
    return absl::OkStatus();
  }

  absl::StatusOr<DesiredConst> ParseConst(const YAML::Node& key, const YAML::Node& v) const {
    DesiredConst c;
    c.where = Where(key);
    RETURN_IF_ERROR(Scalar(key, "a constant's name", &c.name));
    const std::string what = absl::StrCat("the value of ", c.name);
    if (v.IsScalar()) {
      RETURN_IF_ERROR(Int(v, what, &c.value));
      return c;
    }
    if (!v.IsMap())
      return Error(v, absl::StrCat(c.name, ": not a value or a mapping"),
                   absl::StrCat("write '", c.name, ": 64' or '", c.name,
                                ": {value: 64, mode: 1, engine: bpf}'"));
    RETURN_IF_ERROR(CheckKeys(v, {"value", "mode", "engine"}, c.name));
    if (!v["value"].IsDefined())
      return Error(v, absl::StrCat(c.name, " has no 'value'"),
                   absl::StrCat("write '", c.name, ": {value: 64}'"));
    RETURN_IF_ERROR(Int(v["value"], what, &c.value));
    RETURN_IF_ERROR(Mode(v["mode"], absl::StrCat("the mode of ", c.name), &c.mode));
    if (YAML::Node e = v["engine"]; e.IsDefined() && !e.IsNull()) {
      RETURN_IF_ERROR(Scalar(e, "'engine'", &c.engine));
      if (c.engine != "auto" && c.engine != "bpf" && c.engine != "native")
        return Error(e, absl::StrCat("engine '", c.engine, "' of ", c.name, " is unknown"),
                     "auto, bpf or native");
    }
    return c;
  }

  absl::StatusOr<DesiredPolicy> ParsePolicy(const YAML::Node& p) const {
    DesiredPolicy pol;
    pol.where = Where(p);
    if (!p.IsMap())
      return Error(p, "'policy' is not a mapping", "write 'policy: {file: POLICY.bpf.c}'");
    RETURN_IF_ERROR(
        CheckKeys(p, {"file", "consts", "mode", "knobs", "shadow", "cgroup"}, "'policy'"));
    std::string file;
    if (!p["file"].IsDefined())
      return Error(p, "'policy' has no 'file'", "write 'file: /etc/sie/policies/NAME.bpf.c'");
    RETURN_IF_ERROR(Scalar(p["file"], "'file'", &file));
    pol.file = Anchor(file);
    if (YAML::Node cs = p["consts"]; cs.IsDefined() && !cs.IsNull()) {
      if (cs.IsScalar()) {
        pol.consts.push_back(cs.Scalar());
      } else if (cs.IsSequence()) {
        for (const auto& c : cs) {
          std::string name;
          RETURN_IF_ERROR(Scalar(c, "an item of 'consts'", &name));
          pol.consts.push_back(name);
        }
      } else {
        return Error(cs, "'consts' is not a list", "write 'consts: [NAME, ...]'");
      }
    }
    RETURN_IF_ERROR(Mode(p["mode"], "the policy's mode", &pol.mode));
    if (YAML::Node k = p["knobs"]; k.IsDefined() && !k.IsNull()) {
      if (!k.IsMap()) return Error(k, "'knobs' is not a mapping", "write 'knobs: {NAME: VALUE}'");
      for (auto it = k.begin(); it != k.end(); ++it) {
        std::string name, value;
        RETURN_IF_ERROR(Scalar(it->first, "a knob's name", &name));
        RETURN_IF_ERROR(Scalar(it->second, absl::StrCat("knob ", name), &value));
        pol.knobs[name] = value;
      }
    }
    if (YAML::Node sh = p["shadow"]; sh.IsDefined() && !sh.IsNull()) {
      if (!sh.IsScalar() || !YAML::convert<bool>::decode(sh, pol.shadow))
        return Error(sh, "'shadow' is not true or false", "write 'shadow: true'");
    }
    if (YAML::Node cg = p["cgroup"]; cg.IsDefined() && !cg.IsNull()) {
      std::string dir;
      RETURN_IF_ERROR(Scalar(cg, "'cgroup'", &dir));
      if (!fs::path(dir).is_absolute())
        return Error(cg, absl::StrCat("cgroup '", dir, "' is not an absolute path"),
                     "write 'cgroup: /sys/fs/cgroup/NAME'");
      pol.cgroup = dir;
    }
    return pol;
  }

  fs::path path_;
};

}  // namespace

absl::StatusOr<DesiredState> ParseDesiredText(absl::string_view text, const fs::path& path) {
  return FileParser(path).Parse(text);
}

absl::Status Merge(DesiredState& into, DesiredState more) {
  if (!more.consts_dir.empty()) {
    if (!into.consts_dir.empty() && into.consts_dir != more.consts_dir)
      return InvalidWithHint(absl::StrCat("two constants directories: ", into.consts_dir.string(),
                                          " and ", more.consts_dir.string()),
                             "name 'consts:' in one file only");
    into.consts_dir = more.consts_dir;
  }
  for (auto& c : more.constants) {
    auto it =
        std::find_if(into.constants.begin(), into.constants.end(),
                     [&](const DesiredConst& o) { return absl::EqualsIgnoreCase(o.name, c.name); });
    if (it == into.constants.end()) {
      into.constants.push_back(std::move(c));
      continue;
    }
    if (it->value != c.value || it->mode != c.mode || it->engine != c.engine)
      return InvalidWithHint(absl::StrCat(c.name, " is set twice with different settings: ",
                                          it->where, " and ", c.where),
                             "keep one of them");
  }
  if (more.policy) {
    if (into.policy)
      return InvalidWithHint(
          absl::StrCat("two policies: ", into.policy->where, " and ", more.policy->where),
          "sie runs one pinned policy; one SIE_POLICY file may decide many "
          "constants");
    into.policy = std::move(more.policy);
  }
  for (auto& f : more.files) into.files.push_back(std::move(f));
  return absl::OkStatus();
}

absl::StatusOr<DesiredState> ReadDesired(const fs::path& file_or_dir) {
  std::error_code ec;
  std::vector<fs::path> files;
  if (fs::is_directory(file_or_dir, ec)) {
    for (const auto& e : fs::directory_iterator(file_or_dir, ec)) {
      const std::string ext = e.path().extension().string();
      if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml")) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
  } else if (fs::exists(file_or_dir, ec)) {
    files.push_back(file_or_dir);
  } else {
    return ErrorWithHint(absl::StatusCode::kNotFound,
                         absl::StrCat(file_or_dir.string(), " does not exist"),
                         "give a YAML file or a directory of them, e.g. /etc/sie");
  }
  DesiredState all;
  for (const auto& f : files) {
    auto text = ReadFile(f);
    if (!text.ok()) return text.status();
    auto d = ParseDesiredText(*text, f);
    if (!d.ok()) return d.status();
    if (auto st = Merge(all, std::move(*d)); !st.ok()) return st;
  }
  return all;
}

}  // namespace sie::apply
