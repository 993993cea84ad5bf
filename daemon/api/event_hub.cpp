// EventHub: topics, ids, the replay ring, heartbeats and slow-consumer drops of the SSE streams
// (event_hub.hpp).
#include "osvi/api/event_hub.hpp"

#include <charconv>
#include <utility>

#include "osvi/api/api.hpp"
#include "osvi/base/log.hpp"

namespace osvi::daemon {
namespace {

// Room past buffer_bytes for the one `event: dropped` that ends a slow consumer's stream: it is queued
// behind what the client has not read, so it must fit when nothing else does.
constexpr size_t kNoticeReserve = 1024;

void add_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.push_back('\n');
}

}  // namespace

std::string format_sse_event(std::string_view id, std::string_view event, std::string_view data) {
  std::string out;
  out.reserve(data.size() + id.size() + event.size() + 24);
  if (!id.empty()) add_field(out, "id", id);
  if (!event.empty()) add_field(out, "event", event);
  // A client splits data at CR, LF and CRLF alike: each piece goes on a data line of its own, and the
  // client joins them back with LF.
  size_t start = 0;
  for (;;) {
    const size_t brk = data.find_first_of("\r\n", start);
    add_field(out, "data",
              data.substr(start, brk == std::string_view::npos ? std::string_view::npos : brk - start));
    if (brk == std::string_view::npos) break;
    start = brk + (data[brk] == '\r' && brk + 1 < data.size() && data[brk + 1] == '\n' ? 2 : 1);
  }
  out.push_back('\n');
  return out;
}

Result<std::unique_ptr<EventHub>> EventHub::create(const Clock& clock, CallTimerFactory timer,
                                                   EventHubOptions options) {
  std::unique_ptr<EventHub> hub(new EventHub(clock, options));
  auto t = timer([h = hub.get()] { h->heartbeat(); });
  if (!t) return t.error();
  hub->timer_ = std::move(*t);
  return hub;
}

EventHub::EventHub(const Clock& clock, EventHubOptions options)
    : clock_(clock), options_(options), instance_(std::to_string(clock.wall_ms())) {}

EventHub::~EventHub() = default;

EventHubStats EventHub::stats() const {
  EventHubStats s = stats_;
  s.subscribers = subscribers_.size();
  return s;
}

std::optional<std::set<std::string>> EventHub::agents_of(const ApiToken& caller) {
  if (caller.agents.empty()) return std::nullopt;
  return std::set<std::string>(caller.agents.begin(), caller.agents.end());
}

bool EventHub::admits(const Subscriber& s, const std::vector<std::string>& keys,
                      std::string_view agent_uuid) {
  if (s.agents && !s.agents->count(std::string(agent_uuid))) return false;
  for (const std::string& k : keys)
    if (k == s.key) return true;
  return false;
}

void EventHub::subscribe(const net::HttpRequest& request, net::HttpReply reply, std::string key,
                         std::optional<std::set<std::string>> agents) {
  if (subscribers_.size() >= options_.max_subscribers) {
    ++stats_.refused_at_cap;
    net::HttpResponse r = Api::error(503, "too many event streams open (at most " +
                                              std::to_string(options_.max_subscribers) + "); retry later");
    r.headers.emplace_back("Retry-After", std::to_string((options_.retry_ms + 999) / 1000));
    reply.send(std::move(r));
    return;
  }
  Subscriber s{std::move(key), std::move(agents), {}};
  std::string first = "retry: " + std::to_string(options_.retry_ms) + "\n\n";
  if (auto last = request.header("Last-Event-ID"); last && !last->empty()) first += catch_up(s, *last);
  // No caching and no proxy buffering (nginx honours X-Accel-Buffering): each event should arrive when sent.
  s.stream =
      reply.stream(200, "text/event-stream", {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}},
                   options_.buffer_bytes + kNoticeReserve);
  if (!s.stream.write(first)) return;  // the client has gone already
  const uint64_t id = next_subscriber_++;
  s.stream.on_closed([this, id](net::HttpStream::End) { subscribers_.erase(id); });
  subscribers_.emplace(id, std::move(s));
  if (next_beat_us_ < 0) {
    next_beat_us_ = clock_.monotonic_us() + options_.heartbeat_ms * 1000;
    timer_->arm(next_beat_us_);
  }
}

std::string EventHub::reset_frame(std::string_view why) {
  ++stats_.resets;
  net::JsonPtr d(cJSON_CreateObject());
  net::json_add_string(d.get(), "reason", why);
  // The id moves the client's Last-Event-ID to now, so its next reconnection is not reset again.
  return format_sse_event(id_of(seq_), "reset", net::json_print(d.get()));
}

std::string EventHub::catch_up(const Subscriber& s, std::string_view last_id) {
  const size_t dash = last_id.rfind('-');
  if (dash == std::string_view::npos || last_id.substr(0, dash) != instance_)
    return reset_frame("the last event id is not of this event stream (osvid restarted?): refetch");
  uint64_t seq = 0;
  const std::string_view digits = last_id.substr(dash + 1);
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), seq);
  if (ec != std::errc() || end != digits.data() + digits.size() || seq > seq_)
    return reset_frame("the last event id is unknown: refetch");
  const uint64_t oldest = ring_.empty() ? seq_ + 1 : ring_.front().seq;
  if (seq + 1 < oldest) return reset_frame("the events missed are no longer kept: refetch");
  std::string out;
  for (const Event& e : ring_) {
    if (e.seq <= seq || !admits(s, e.keys, e.agent_uuid)) continue;
    out += e.frame;
    if (out.size() > options_.buffer_bytes) return reset_frame("too many events missed: refetch");
  }
  return out;
}

bool EventHub::deliver(Subscriber& s, std::string_view bytes) {
  if (!s.stream.connected()) return false;
  const size_t unread = s.stream.buffered();
  if (unread + bytes.size() <= options_.buffer_bytes) return s.stream.write(bytes);
  ++stats_.dropped_slow_consumers;
  const std::string reason = "slow consumer: " + std::to_string(unread) + " bytes unread";
  log::info("event stream " + s.key + " dropped: " + reason);
  net::JsonPtr d(cJSON_CreateObject());
  net::json_add_string(d.get(), "reason", reason);
  s.stream.write(format_sse_event("", "dropped", net::json_print(d.get())));
  s.stream.close();
  return false;
}

std::string EventHub::publish(const std::vector<std::string>& keys, std::string_view event, const cJSON* data,
                              std::string_view agent_uuid) {
  if (event.empty() || event.find_first_of("\r\n") != std::string_view::npos) return "";
  Event e;
  e.seq = ++seq_;
  e.keys = keys;
  e.agent_uuid = std::string(agent_uuid);
  e.frame = format_sse_event(id_of(e.seq), event, data ? net::json_print(data) : std::string("null"));
  ++stats_.events_published;
  std::vector<uint64_t> gone;
  for (auto& [id, s] : subscribers_)
    if (admits(s, e.keys, e.agent_uuid) && !deliver(s, e.frame)) gone.push_back(id);
  for (uint64_t id : gone) subscribers_.erase(id);
  std::string id = id_of(e.seq);
  if (options_.replay_events > 0) {
    ring_.push_back(std::move(e));
    while (ring_.size() > options_.replay_events) ring_.pop_front();
  }
  return id;
}

void EventHub::heartbeat() {
  next_beat_us_ = -1;
  std::vector<uint64_t> gone;
  for (auto& [id, s] : subscribers_)
    if (!deliver(s, ": keep-alive\n\n")) gone.push_back(id);
  for (uint64_t id : gone) subscribers_.erase(id);
  if (subscribers_.empty()) return;
  next_beat_us_ = clock_.monotonic_us() + options_.heartbeat_ms * 1000;
  timer_->arm(next_beat_us_);
}

}  // namespace osvi::daemon
