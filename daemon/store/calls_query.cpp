// CallsRepo::list: the filtered, paged calls list of GET /v1/calls.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <variant>

#include "osvi/store/calls.hpp"
#include "osvi/store/database.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {

namespace calls_detail {  // calls.cpp: the one definition of the call columns
const std::string& summary_column_list();
CallRecord read_summary(const sql::Stmt& stmt);
}  // namespace calls_detail

namespace {

using sql::wrap;

// The WHERE clause is assembled from fixed fragments and "?" placeholders only; every value is bound.
struct Where {
  std::string sql;
  std::vector<std::variant<int64_t, std::string>> args;

  void add(std::string_view fragment) { sql += (sql.empty() ? " WHERE " : " AND ") + std::string(fragment); }
  template <class T>
  void add(std::string_view fragment, T value) {
    add(fragment);
    args.emplace_back(std::move(value));
  }
  void add_in(std::string_view column, const std::vector<std::string>& values) {
    std::string fragment = std::string(column) + " IN (";
    for (size_t i = 0; i < values.size(); ++i) {
      fragment += i == 0 ? "?" : ", ?";
      args.emplace_back(values[i]);
    }
    add(fragment + ")");
  }
  void bind(sql::Stmt& stmt, int first) const {
    int index = first;
    for (const auto& a : args) std::visit([&](const auto& v) { stmt.bind(index++, v); }, a);
  }
};

// matches: for a needle of three characters or more, the rowids calls_phone matched, as a JSON array.
Where where_of(const CallFilter& f, const std::string& matches) {
  Where w;
  // A phone_number substring can only be matched by a scan; the scan of calls_created reads no row (it
  // covers every filtered column), while a walk of, say, calls_status would read each matching call's row to
  // see its number. A unary "+" keeps the planner off the equality filters' indexes then. The date range
  // keeps its index: a range of days is narrower than any scan.
  // Three characters or more are looked up in calls_phone (trigrams, migration 3); a shorter needle scans.
  const bool trigram = f.phone_contains && f.phone_contains->size() >= 3;
  const char* plain = f.phone_contains && !trigram ? "+" : "";
  if (!f.statuses.empty()) w.add_in(std::string(plain) + "status", f.statuses);
  if (f.agent_uuid) w.add(std::string(plain) + "agent_uuid = ?", *f.agent_uuid);
  if (!f.agent_uuids.empty()) w.add_in(std::string(plain) + "agent_uuid", f.agent_uuids);
  if (f.campaign_id) w.add(std::string(plain) + "campaign_id = ?", *f.campaign_id);
  if (f.campaign_upload_id) w.add(std::string(plain) + "campaign_upload_id = ?", *f.campaign_upload_id);
  // instr() rather than LIKE: '%' and '_' in the client's text are then plain characters.
  if (trigram) {
    w.add("rowid IN (SELECT value FROM json_each(?))", matches);
  } else if (f.phone_contains) {
    w.add("instr(phone_number, ?) > 0", *f.phone_contains);
  }
  if (f.call_type) w.add(std::string(plain) + "call_type = ?", *f.call_type);
  if (f.picked_from_ms) w.add("call_picked_at >= ?", *f.picked_from_ms);
  if (f.picked_to_ms) w.add("call_picked_at <= ?", *f.picked_to_ms);
  return w;
}

}  // namespace

Result<CallPage> CallsRepo::list(const CallFilter& filter) {
  const int64_t per_page = std::clamp<int64_t>(filter.per_page, 1, 1000);
  const int64_t page = std::max<int64_t>(filter.page, 1);
  // The trigram lookup merges the doclists of every trigram of the needle (for five digits, three lists of
  // about a tenth of the calls each): it runs once here, and the count and the page read its rowids.
  std::string matches;
  if (filter.phone_contains && filter.phone_contains->size() >= 3) {
    auto fts = db_.sql().cached_shape("SELECT rowid FROM calls_phone WHERE calls_phone MATCH ?");
    if (!fts.ok()) return wrap("searching phone numbers", fts.error());
    // An FTS5 phrase: the needle quoted, its own quotes doubled, so no character is read as query syntax.
    std::string phrase = "\"";
    for (char c : *filter.phone_contains) phrase += c == '"' ? std::string("\"\"") : std::string(1, c);
    (*fts)->bind(1, phrase + "\"");
    matches.push_back('[');
    for (;;) {
      auto row = (*fts)->step();
      if (!row.ok()) return wrap("searching phone numbers", row.error());
      if (!*row) break;
      if (matches.size() > 1) matches += ',';
      matches += std::to_string((*fts)->int64(0));
    }
    matches += ']';
  }
  const Where w = where_of(filter, matches);

  CallPage out;
  // The equality filters are columns of call_counts (migration 3, kept by triggers): the total sums a few
  // groups. A substring or a date range is counted on the calls' indexes.
  const bool grouped = !filter.phone_contains && !filter.picked_from_ms && !filter.picked_to_ms;
  // Both statements come from the connection's bounded cache of per-request shapes (sqlite.hpp): a repeated
  // filter skips the parse and plan, which cost about as much as the lookup itself.
  auto count = db_.sql().cached_shape(grouped ? "SELECT ifnull(sum(n), 0) FROM call_counts" + w.sql
                                              : "SELECT COUNT(*) FROM calls" + w.sql);
  if (!count.ok()) return wrap("counting calls", count.error());
  w.bind(**count, 1);
  auto counted = (*count)->step();
  if (!counted.ok()) return wrap("counting calls", counted.error());
  out.total_count = *counted ? (*count)->int64(0) : 0;

  // The page is chosen from an index alone (the inner select reads no row), then only its calls are read,
  // and of them only the summary columns (calls.cpp): megabyte prompts on a row cost nothing here.
  auto rows = db_.sql().cached_shape("SELECT " + calls_detail::summary_column_list() +
                                     " FROM calls WHERE rowid IN (SELECT rowid FROM calls" + w.sql +
                                     " ORDER BY created_at DESC, call_id LIMIT ? OFFSET ?)"
                                     " ORDER BY created_at DESC, call_id");
  if (!rows.ok()) return wrap("listing calls", rows.error());
  w.bind(**rows, 1);
  const int next = static_cast<int>(w.args.size()) + 1;
  (*rows)->bind(next, per_page);
  // Pages past any sensible end would overflow the multiplication; they are empty anyway.
  const int64_t offset = page > INT64_MAX / per_page ? INT64_MAX : (page - 1) * per_page;
  (*rows)->bind(next + 1, offset);
  // A CallRecord is large: growing the vector row by row would move every record already read.
  out.calls.reserve(static_cast<size_t>(
      std::clamp<int64_t>(out.total_count - std::min(offset, out.total_count), 0, per_page)));
  for (;;) {
    auto row = (*rows)->step();
    if (!row.ok()) return wrap("listing calls", row.error());
    if (!*row) break;
    out.calls.push_back(calls_detail::read_summary(**rows));
  }
  return out;
}

}  // namespace osvi::daemon
