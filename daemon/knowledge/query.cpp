// Query words for FTS5 MATCH (quoted, OR-ed), and the stand-in hashed embedding.
#include "osvi/knowledge/query.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

namespace osvi::daemon::knowledge {
namespace {

// Words that occur in nearly every question and every chunk: OR-ed in, they would match the whole base
// (slow, and noise in the ranking). "not" and "no" are kept: they change what is asked.
constexpr std::array<std::string_view, 64> kStopWords = {
    "a",     "an",    "the", "is",   "are",    "was",   "were",  "be",    "been",  "to",     "of",
    "and",   "or",    "in",  "on",   "at",     "for",   "with",  "by",    "from",  "do",     "does",
    "did",   "i",     "you", "we",   "my",     "your",  "our",   "it",    "its",   "this",   "that",
    "what",  "which", "who", "how",  "when",   "where", "can",   "could", "would", "should", "will",
    "there", "any",   "me",  "us",   "please", "tell",  "about", "have",  "has",   "if",     "am",
    "so",    "as",    "but", "they", "them",   "their", "he",    "she",   "get"};

bool stop_word(std::string_view w) {
  return std::find(kStopWords.begin(), kStopWords.end(), w) != kStopWords.end();
}

bool word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

// Every word of the text, lower-cased, cut to kMaxTermBytes at a character boundary.
std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && !word_byte(static_cast<unsigned char>(text[i]))) ++i;
    size_t j = i;
    while (j < text.size() && word_byte(static_cast<unsigned char>(text[j]))) ++j;
    if (j > i) {
      std::string w(text.substr(i, j - i));
      if (w.size() > kMaxTermBytes) {
        size_t cut = kMaxTermBytes;
        while (cut > 0 && (static_cast<unsigned char>(w[cut]) & 0xC0) == 0x80) --cut;
        w.resize(cut);
      }
      for (char& c : w) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
      if (!w.empty()) out.push_back(std::move(w));
    }
    i = j;
  }
  return out;
}

uint64_t fnv1a(std::string_view s, uint64_t seed) {
  uint64_t h = 1469598103934665603ULL ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

// "fees" → "fee", "opening" → "open": enough for the stand-in to match simple inflections.
std::string stem(std::string w) {
  auto strip = [&](std::string_view suffix, size_t min_len) {
    if (w.size() >= min_len && w.ends_with(suffix)) {
      w.resize(w.size() - suffix.size());
      return true;
    }
    return false;
  };
  if (strip("ing", 6) || strip("ed", 5)) return w;
  if (!w.ends_with("ss")) strip("s", 4);
  return w;
}

}  // namespace

std::vector<std::string> query_terms(std::string_view query) {
  std::vector<std::string> all = words(query);
  std::vector<std::string> out;
  for (int pass = 0; pass < 2 && out.empty(); ++pass) {
    for (const std::string& w : all) {
      // A question of stop words only ("what is it") still searches with them rather than with nothing.
      if (pass == 0 && stop_word(w)) continue;
      if (std::find(out.begin(), out.end(), w) != out.end()) continue;
      out.push_back(w);
      if (out.size() == kMaxQueryTerms) break;
    }
  }
  return out;
}

std::string quote_term(std::string_view term) {
  std::string out = "\"";
  out += term;
  out += '"';
  return out;
}

std::string fts_match(std::string_view query) {
  std::string out;
  for (const std::string& t : query_terms(query)) {
    if (!out.empty()) out += " OR ";
    // A term has no '"' (words() splits there), so quoting it makes a plain string: no operator, column
    // filter, prefix or NEAR can come from the query.
    out += '"';
    out += t;
    out += '"';
  }
  return out;
}

std::vector<float> stand_in_embedding(std::string_view text, size_t dims) {
  std::vector<float> v(dims == 0 ? 1 : dims, 0.0f);
  auto add = [&](std::string_view feature, uint64_t seed, float weight) {
    const uint64_t h = fnv1a(feature, seed);
    v[h % v.size()] += (h >> 63) != 0 ? -weight : weight;
  };
  for (const std::string& raw : words(text)) {
    if (stop_word(raw)) continue;
    const std::string w = stem(raw);
    add(w, 1, 1.0f);
    const std::string padded = "^" + w + "$";
    for (size_t i = 0; i + 3 <= padded.size(); ++i) add(std::string_view(padded).substr(i, 3), 2, 0.35f);
  }
  double norm = 0;
  for (float x : v) norm += static_cast<double>(x) * x;
  if (norm > 0) {
    const float inv = static_cast<float>(1.0 / std::sqrt(norm));
    for (float& x : v) x *= inv;
  }
  return v;
}

}  // namespace osvi::daemon::knowledge
