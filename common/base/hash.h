// Hashes. Content hashes name cached files (compiled stubs, policy objects, initramfs images):
// XXH3-128, so two different inputs never share a cache entry in practice. FNV-1a stays only
// where its exact values are part of a format (ConstIDs of existing index.json files).
#pragma once
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace sie {

// XXH3-128 of `data` as 32 lower-case hex digits.
std::string ContentHash(absl::string_view data);

uint64_t Fnv1a64(absl::string_view data, uint64_t seed = 14695981039346656037ULL);
std::string Hex64(uint64_t v);  // 16 lower-case hex digits

}  // namespace sie
