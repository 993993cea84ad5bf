// A deterministic stand-in text embedding (hashed words + character trigrams), shared by osvi-model-server
// and the tests that check what it serves. Not a semantic model: texts are close when they share words.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace osvi::tools {

inline constexpr unsigned kStandInDimensions = 256;
// The longest vector osvi-model-server makes (a request or the scenario asking for more is refused).
inline constexpr int kMaxStandInDimensions = 4096;

// Lower-cased words: runs of ASCII letters and digits, bytes of UTF-8 sequences kept as word characters (so
// non-English text still gets words), everything else separating.
inline std::vector<std::string> stand_in_words(std::string_view text) {
  std::vector<std::string> words;
  std::string w;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80) {
      w.push_back(static_cast<char>(c));
    } else if (c >= 'A' && c <= 'Z') {
      w.push_back(static_cast<char>(c - 'A' + 'a'));
    } else if (!w.empty()) {
      words.push_back(std::move(w));
      w.clear();
    }
  }
  if (!w.empty()) words.push_back(std::move(w));
  return words;
}

// A light English suffix stripping, so "refunds", "refunded" and "refunding" count as one word. Short words
// are left alone ("is", "was", "bus").
inline std::string stand_in_stem(std::string w) {
  auto ends = [&](std::string_view s) { return w.size() >= s.size() + 3 && w.ends_with(s); };
  if (ends("ies")) {
    w.replace(w.size() - 3, 3, "y");
  } else if (ends("ing")) {
    w.resize(w.size() - 3);
  } else if (ends("ed")) {
    w.resize(w.size() - 2);
  } else if (ends("es") &&
             (w.ends_with("ches") || w.ends_with("shes") || w.ends_with("sses") || w.ends_with("xes"))) {
    w.resize(w.size() - 2);
  } else if (ends("s") && !w.ends_with("ss") && !w.ends_with("us")) {
    w.resize(w.size() - 1);
  }
  return w;
}

// 64-bit FNV-1a with a seed byte mixed in first: one hash for the bucket, another for the sign.
inline uint64_t stand_in_hash(std::string_view s, uint8_t seed) {
  uint64_t h = 14695981039346656037ull;
  h = (h ^ seed) * 1099511628211ull;
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

// The vector for `text`: every stemmed word adds ±1 and every character trigram of " word " ±0.5 to a hashed
// dimension (the sign hashed too, so unrelated features tend to cancel rather than pile up), then the whole
// is scaled to length 1. A text without words is the first unit vector. dimensions 0 = kStandInDimensions.
inline std::vector<float> stand_in_embedding(std::string_view text,
                                             unsigned dimensions = kStandInDimensions) {
  if (dimensions == 0) dimensions = kStandInDimensions;
  std::vector<double> acc(dimensions, 0.0);
  auto add = [&](std::string_view feature, uint8_t seed, double weight) {
    const uint64_t h = stand_in_hash(feature, seed);
    const double sign = (stand_in_hash(feature, static_cast<uint8_t>(seed + 1)) & 1) ? 1.0 : -1.0;
    acc[h % dimensions] += sign * weight;
  };
  for (const std::string& word : stand_in_words(text)) {
    const std::string stem = stand_in_stem(word);
    add(stem, 'w', 1.0);
    const std::string padded = " " + stem + " ";
    for (size_t i = 0; i + 3 <= padded.size(); ++i) add(std::string_view(padded).substr(i, 3), 't', 0.5);
  }
  double norm = 0;
  for (const double x : acc) norm += x * x;
  std::vector<float> out(dimensions, 0.0f);
  if (norm == 0) {
    out[0] = 1.0f;
    return out;
  }
  norm = std::sqrt(norm);
  for (size_t i = 0; i < dimensions; ++i) out[i] = static_cast<float>(acc[i] / norm);
  return out;
}

// What the stand-in reports as "prompt_tokens": one token a word (at least one a text).
inline size_t stand_in_tokens(std::string_view text) {
  const size_t n = stand_in_words(text).size();
  return n == 0 ? 1 : n;
}

// Cosine similarity of two vectors of one length (the stand-in's are unit length: a dot product).
inline double stand_in_cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
  }
  return na == 0 || nb == 0 ? 0 : dot / std::sqrt(na * nb);
}

}  // namespace osvi::tools
