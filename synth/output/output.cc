#include "synth/output/output.h"

#include <algorithm>
#include <cctype>
#include <optional>

namespace sie::synth {
namespace fs = std::filesystem;

std::string RelativeSource(const std::string& source, const SourceRoots& r) {
  // "file:line": the line is whatever follows the last ':' when it is all digits.
  std::string file = source, line;
  if (size_t c = source.rfind(':'); c != std::string::npos && c + 1 < source.size() &&
                                    std::all_of(source.begin() + c + 1, source.end(), ::isdigit)) {
    file = source.substr(0, c);
    line = source.substr(c);
  }
  fs::path p = fs::path(file).lexically_normal();
  if (!p.is_absolute()) return p.string() + line;  // "./include/x.h" and "include/x.h" alike
  auto under = [&](const fs::path& root) -> std::optional<fs::path> {
    if (root.empty()) return std::nullopt;
    fs::path rel = p.lexically_relative(fs::path(root).lexically_normal());
    if (rel.empty() || *rel.begin() == "..") return std::nullopt;
    return rel;
  };
  if (auto rel = under(r.work_dir)) {
    // <tunable>/vN/<kind>/...
    std::vector<fs::path> parts(rel->begin(), rel->end());
    if (parts.size() >= 4) {
      const std::string kind = parts[2].string();
      size_t from = kind == "overlay"                                  ? 4
                    : (kind == "module" || kind.rfind("src-", 0) == 0) ? 3
                                                                       : 0;
      if (from && parts.size() > from) {
        fs::path out = kind == "module" ? fs::path(r.module_dir) : fs::path();
        for (size_t i = from; i < parts.size(); ++i) out /= parts[i];
        return out.lexically_normal().string() + line;
      }
    }
    return source;
  }
  for (const auto& root : r.roots)
    if (auto rel = under(root)) return rel->string() + line;
  return source;
}

}  // namespace sie::synth
