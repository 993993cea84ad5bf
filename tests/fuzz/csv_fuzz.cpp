// libFuzzer target for CsvReader: any bytes in any chunking give the same records as one piece, every record
// within the limits, good fields clean UTF-8 that read back the same once written out again.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_promise.hpp"
#include "osvi/net/csv.hpp"

namespace {

struct Row {
  size_t line = 0;
  std::vector<std::string> fields;
  std::string error;
  bool operator==(const Row&) const = default;
};

// Small limits so that they are reached often; the first byte picks one of two shapes.
constexpr osvi::net::CsvLimits kNarrow{.max_field_bytes = 16, .max_fields = 4, .max_record_bytes = 48};
constexpr osvi::net::CsvLimits kWide{.max_field_bytes = 200, .max_fields = 16, .max_record_bytes = 120};

std::vector<Row> read(const std::vector<std::string_view>& chunks, osvi::net::CsvLimits limits) {
  std::vector<Row> rows;
  auto keep = [&](const osvi::net::CsvRecord& r) {
    Row row{r.line, {}, std::string(r.error)};
    for (auto f : r.fields) row.fields.emplace_back(f);
    rows.push_back(std::move(row));
  };
  osvi::net::CsvReader reader(limits);
  for (auto c : chunks) reader.feed(c, keep);
  reader.finish(keep);
  return rows;
}

void check_rows(const std::vector<Row>& rows, std::string_view in, osvi::net::CsvLimits limits) {
  // Physical lines of the input: a record starts on one, and never two records on the same one.
  size_t lines = 1;
  for (size_t i = 0; i < in.size(); ++i)
    if (in[i] == '\n' || (in[i] == '\r' && (i + 1 == in.size() || in[i + 1] != '\n'))) ++lines;
  size_t last = 0;
  for (const auto& r : rows) {
    require(r.line > last && r.line <= lines);
    last = r.line;
    if (!r.error.empty()) {
      require(r.fields.empty());
      check_message(r.error);
      continue;
    }
    require(!r.fields.empty() && r.fields.size() <= limits.max_fields);
    size_t total = 0;
    for (const auto& f : r.fields) {
      require(f.size() <= limits.max_field_bytes);
      require(osvi::net::clean_text(f));
      total += f.size();
    }
    require(total <= limits.max_record_bytes);
  }
}

// The good records written out as CSV (every field quoted) read back as the same fields.
void check_round_trip(const std::vector<Row>& rows) {
  std::string out;
  std::vector<std::vector<std::string>> expected;
  for (const auto& r : rows) {
    if (!r.error.empty()) continue;
    for (size_t k = 0; k < r.fields.size(); ++k) {
      if (k > 0) out += ',';
      out += '"';
      for (char c : r.fields[k]) out += c == '"' ? std::string("\"\"") : std::string(1, c);
      out += '"';
    }
    out += "\r\n";
    expected.push_back(r.fields);
  }
  const osvi::net::CsvLimits roomy{
      .max_field_bytes = 1 << 16, .max_fields = 1 << 10, .max_record_bytes = 1 << 20};
  const auto again = read({out}, roomy);
  require(again.size() == expected.size());
  for (size_t i = 0; i < again.size(); ++i) require(again[i].error.empty() && again[i].fields == expected[i]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the limits (bit 7) and how many of the next bytes are chunk sizes, cycled (low 4
  // bits; none = byte by byte); the rest is the file.
  const osvi::net::CsvLimits limits = data[0] & 0x80 ? kWide : kNarrow;
  const size_t n = std::min<size_t>(data[0] % 16, size - 1);
  const uint8_t* sizes = data + 1;
  const std::string_view in(reinterpret_cast<const char*>(data + 1 + n), size - 1 - n);

  const auto whole = read({in}, limits);
  check_rows(whole, in, limits);

  std::vector<std::string_view> chunks;
  std::string_view rest = in;
  for (size_t i = 0; !rest.empty(); ++i) {
    const size_t len = std::min<size_t>(rest.size(), n == 0 ? 1 : sizes[i % n] % 64);
    chunks.push_back(rest.substr(0, len));  // an empty chunk now and then is a feed of nothing
    rest.remove_prefix(len);
    if (len == 0) {
      chunks.push_back(rest.substr(0, 1));
      rest.remove_prefix(1);
    }
  }
  require(read(chunks, limits) == whole);

  check_round_trip(whole);
  return 0;
}
