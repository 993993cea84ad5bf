// OutboxRepo: the durable queue of fleet deliveries (call records, events), its quota and its counters.
#include "osvi/store/outbox.hpp"

#include <cstdlib>
#include <string>

#include "osvi/store/database.hpp"
#include "osvi/store/meta.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

constexpr const char* kBytesKey = "outbox.bytes";
constexpr const char* kDroppedKey = "outbox.dropped";

using sql::run;
using sql::wrap;

Result<int64_t> query_int(sql::Db& db, const std::string& sql) {
  auto stmt = db.cached(sql);
  if (!stmt.ok()) return stmt.error();
  auto row = (*stmt)->step();
  if (!row.ok()) return row.error();
  return *row ? (*stmt)->int64(0) : int64_t{0};
}

}  // namespace

Result<bool> OutboxRepo::enqueue(std::string_view kind, std::string_view topic, std::string_view payload,
                                 std::string_view idempotency_key) {
  bool inserted = false;
  Status s = db_.transaction([&]() -> Status {
    Status ins = run(db_.sql(),
                     "INSERT INTO outbox (topic, payload, idempotency_key, kind, created_at) "
                     "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (idempotency_key) DO NOTHING",
                     topic, payload, idempotency_key, kind, db_.clock().wall_ms());
    if (!ins.ok()) return ins;
    inserted = db_.sql().changes() > 0;
    if (!inserted) return {};
    if (Status b = meta_.add_int(kBytesKey, static_cast<int64_t>(payload.size())); !b.ok()) return b;
    return enforce_quota();
  });
  if (!s.ok()) return wrap("queueing " + std::string(idempotency_key), s.error());
  return inserted;
}

// Runs inside the enqueue transaction, so a dropped event and the new row commit together.
Status OutboxRepo::enforce_quota() {
  auto rows = query_int(db_.sql(), "SELECT COUNT(*) FROM outbox");
  if (!rows.ok()) return rows.error();
  auto bytes = meta_.get_int(kBytesKey);
  if (!bytes.ok()) return bytes.error();
  int64_t n = *rows, b = *bytes;
  int64_t dropped = 0;
  while (n > limits_.max_rows || b > limits_.max_bytes) {
    auto stmt = db_.sql().cached(
        "DELETE FROM outbox WHERE id = (SELECT MIN(id) FROM outbox WHERE kind <> 'call') "
        "RETURNING LENGTH(CAST(payload AS BLOB))");
    if (!stmt.ok()) return stmt.error();
    auto row = (*stmt)->step();
    if (!row.ok()) return row.error();
    if (!*row) break;  // only call records left: they stay, over quota (alarm)
    b -= (*stmt)->int64(0);
    --n;
    ++dropped;
  }
  if (dropped == 0) return {};
  if (Status s = meta_.add_int(kBytesKey, -(*bytes - b)); !s.ok()) return s;
  return meta_.add_int(kDroppedKey, dropped);
}

Result<std::vector<OutboxRow>> OutboxRepo::pending(int64_t after_id, size_t limit) {
  auto stmt = db_.sql().cached(
      "SELECT id, topic, payload, idempotency_key, kind, created_at, attempts FROM outbox WHERE id > ?1 "
      "ORDER BY id LIMIT ?2");
  if (!stmt.ok()) return wrap("listing the outbox", stmt.error());
  (*stmt)->bind_all(after_id, static_cast<int64_t>(limit));
  std::vector<OutboxRow> out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap("listing the outbox", row.error());
    if (!*row) break;
    OutboxRow r;
    r.id = (*stmt)->int64(0);
    r.topic = (*stmt)->text(1);
    r.payload = (*stmt)->text(2);
    r.idempotency_key = (*stmt)->text(3);
    r.kind = (*stmt)->text(4);
    r.created_at_ms = (*stmt)->int64(5);
    r.attempts = (*stmt)->int64(6);
    out.push_back(std::move(r));
  }
  return out;
}

Status OutboxRepo::mark_attempted(int64_t first_id, int64_t last_id) {
  Status s = run(db_.sql(),
                 "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?3 WHERE id BETWEEN ?1 AND ?2",
                 first_id, last_id, db_.clock().wall_ms());
  if (!s.ok()) return wrap("marking outbox attempts", s.error());
  return {};
}

Status OutboxRepo::remove(const std::vector<int64_t>& ids) {
  if (ids.empty()) return {};
  Status s = db_.transaction([&]() -> Status {
    int64_t freed = 0;
    for (int64_t id : ids) {
      auto stmt =
          db_.sql().cached("DELETE FROM outbox WHERE id = ?1 RETURNING LENGTH(CAST(payload AS BLOB))");
      if (!stmt.ok()) return stmt.error();
      (*stmt)->bind(1, id);
      auto row = (*stmt)->step();
      if (!row.ok()) return row.error();
      if (*row) freed += (*stmt)->int64(0);
    }
    return meta_.add_int(kBytesKey, -freed);
  });
  if (!s.ok()) return wrap("deleting delivered outbox rows", s.error());
  return {};
}

Result<OutboxStats> OutboxRepo::stats() {
  OutboxStats st;
  auto stmt = db_.sql().cached(
      "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(payload AS BLOB))), 0), COALESCE(MIN(created_at), 0), "
      "COALESCE(SUM(kind <> 'call'), 0) FROM outbox");
  if (!stmt.ok()) return wrap("reading outbox statistics", stmt.error());
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("reading outbox statistics", row.error());
  int64_t non_call = 0;
  if (*row) {
    st.queued = (*stmt)->int64(0);
    st.bytes = (*stmt)->int64(1);
    st.oldest_created_at_ms = (*stmt)->int64(2);
    non_call = (*stmt)->int64(3);
  }
  if (auto d = meta_.get(kDroppedKey)) st.dropped = std::strtoll(d->c_str(), nullptr, 10);
  st.over_quota = non_call == 0 && (st.queued > limits_.max_rows || st.bytes > limits_.max_bytes);
  // The running byte count can drift when other tools write the table; the exact sum resets it.
  auto cached = meta_.get(kBytesKey);
  if (!cached || std::strtoll(cached->c_str(), nullptr, 10) != st.bytes) {
    if (!db_.in_transaction()) (void)meta_.set(kBytesKey, std::to_string(st.bytes));
  }
  return st;
}

}  // namespace osvi::daemon
