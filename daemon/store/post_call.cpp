// PostCallJobsRepo: the durable after-the-call pipeline (post_call.hpp).
#include "osvi/store/post_call.hpp"

#include <cerrno>
#include <string>

#include "osvi/store/database.hpp"
#include "sqlite.hpp"

namespace osvi::daemon {
namespace {

using sql::run;
using sql::wrap;

constexpr const char* kColumns =
    "call_id, analysis_state, attempts, next_attempt_at, last_error, webhooks_state, created_at, updated_at";

PostCallJob read_job(const sql::Stmt& s) {
  PostCallJob j;
  j.call_id = s.text(0);
  j.analysis_state = s.text(1);
  j.attempts = s.int64(2);
  j.next_attempt_at_ms = s.int64(3);
  j.last_error = s.opt_text(4);
  j.webhooks_state = s.text(5);
  j.created_at_ms = s.int64(6);
  j.updated_at_ms = s.int64(7);
  return j;
}

template <class... Args>
Result<std::vector<PostCallJob>> rows(Database& db, const std::string& sql, std::string_view what,
                                      const Args&... args) {
  auto stmt = db.sql().cached(sql);
  if (!stmt.ok()) return wrap(what, stmt.error());
  (*stmt)->bind_all(args...);
  std::vector<PostCallJob> out;
  for (;;) {
    auto row = (*stmt)->step();
    if (!row.ok()) return wrap(what, row.error());
    if (!*row) break;
    out.push_back(read_job(**stmt));
  }
  return out;
}

// An UPDATE that must touch exactly one row: -ENOENT otherwise.
template <class... Args>
Status update_one(Database& db, const std::string& sql, const std::string& what, const Args&... args) {
  if (Status s = run(db.sql(), sql, args...); !s.ok()) return wrap(what, s.error());
  if (db.sql().changes() == 0) return make_error("store: " + what + ": no such job in that state", -ENOENT);
  return {};
}

}  // namespace

Status PostCallJobsRepo::create(std::string_view call_id, int64_t now_ms) {
  if (now_ms <= 0) now_ms = db_.clock().wall_ms();
  Status s = run(db_.sql(),
                 "INSERT INTO post_call_jobs (call_id, next_attempt_at, created_at, updated_at) "
                 "VALUES (?1, ?2, ?2, ?2) ON CONFLICT (call_id) DO NOTHING",
                 call_id, now_ms);
  if (!s.ok()) return wrap("queueing the post-call job of " + std::string(call_id), s.error());
  return {};
}

Result<std::optional<PostCallJob>> PostCallJobsRepo::get(std::string_view call_id) {
  static const std::string sql =
      std::string("SELECT ") + kColumns + " FROM post_call_jobs WHERE call_id = ?1";
  auto r = rows(db_, sql, "reading a post-call job", call_id);
  if (!r.ok()) return r.error();
  if (r->empty()) return std::optional<PostCallJob>();
  return std::optional<PostCallJob>(std::move(r->front()));
}

Result<std::vector<PostCallJob>> PostCallJobsRepo::due_for_analysis(int64_t now_ms, size_t limit) {
  static const std::string sql = std::string("SELECT ") + kColumns +
                                 " FROM post_call_jobs WHERE analysis_state = 'pending' AND next_attempt_at "
                                 "<= ?1 ORDER BY next_attempt_at, created_at, call_id LIMIT ?2";
  return rows(db_, sql, "reading due post-call jobs", now_ms, static_cast<int64_t>(limit));
}

Result<std::optional<int64_t>> PostCallJobsRepo::earliest_analysis() {
  auto stmt = db_.sql().cached(
      "SELECT next_attempt_at FROM post_call_jobs WHERE analysis_state = 'pending' "
      "ORDER BY next_attempt_at, created_at, call_id LIMIT 1");
  if (!stmt.ok()) return wrap("finding the next post-call job", stmt.error());
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("finding the next post-call job", row.error());
  if (!*row) return std::optional<int64_t>();
  return std::optional<int64_t>((*stmt)->int64(0));
}

Status PostCallJobsRepo::retry_analysis(std::string_view call_id, int64_t next_attempt_at_ms,
                                        std::string_view error) {
  return update_one(
      db_,
      "UPDATE post_call_jobs SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3, "
      "updated_at = ?4 WHERE call_id = ?1 AND analysis_state = 'pending'",
      "retrying the analysis of " + std::string(call_id), call_id, next_attempt_at_ms, error,
      db_.clock().wall_ms());
}

Status PostCallJobsRepo::finish_analysis(std::string_view call_id, std::string_view state,
                                         std::optional<std::string_view> error) {
  return update_one(
      db_,
      "UPDATE post_call_jobs SET analysis_state = ?2, attempts = attempts + 1, last_error = ?3, "
      "updated_at = ?4 WHERE call_id = ?1 AND analysis_state = 'pending'",
      "finishing the analysis of " + std::string(call_id), call_id, state, error, db_.clock().wall_ms());
}

Result<std::vector<PostCallJob>> PostCallJobsRepo::waiting_for_webhooks(size_t limit) {
  static const std::string sql =
      std::string("SELECT ") + kColumns +
      " FROM post_call_jobs WHERE analysis_state <> 'pending' AND webhooks_state = "
      "'waiting' ORDER BY updated_at, call_id LIMIT ?1";
  return rows(db_, sql, "reading post-call jobs waiting for webhooks", static_cast<int64_t>(limit));
}

Status PostCallJobsRepo::mark_webhooks_queued(std::string_view call_id) {
  return update_one(
      db_,
      "UPDATE post_call_jobs SET webhooks_state = 'queued' WHERE call_id = ?1 AND analysis_state "
      "<> 'pending' AND webhooks_state = 'waiting'",
      "marking the webhooks of " + std::string(call_id) + " queued", call_id);
}

Result<PostCallJobsRepo::Counts> PostCallJobsRepo::counts() {
  auto stmt = db_.sql().cached(
      "SELECT (SELECT count(*) FROM post_call_jobs WHERE analysis_state = 'pending'), "
      "(SELECT count(*) FROM post_call_jobs WHERE analysis_state = 'failed'), "
      "(SELECT count(*) FROM post_call_jobs WHERE analysis_state <> 'pending' AND webhooks_state = "
      "'waiting')");
  if (!stmt.ok()) return wrap("counting post-call jobs", stmt.error());
  auto row = (*stmt)->step();
  if (!row.ok()) return wrap("counting post-call jobs", row.error());
  Counts c;
  if (*row) {
    c.analysis_pending = (*stmt)->int64(0);
    c.analysis_failed = (*stmt)->int64(1);
    c.webhooks_waiting = (*stmt)->int64(2);
  }
  return c;
}

}  // namespace osvi::daemon
