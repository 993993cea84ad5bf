// EventHub: server-sent event streams (WHATWG text/event-stream) by topic, with ids, a replay ring for
// reconnecting clients, heartbeats, per-agent filtering, and slow consumers dropped with a reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "osvi/calls/call_timers.hpp"
#include "osvi/clock.hpp"
#include "osvi/config/config.hpp"
#include "osvi/net/http_server.hpp"
#include "osvi/net/json.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon {

struct EventHubOptions {
  // Streams open at once; one more is answered 503. Each holds an API connection for as long as it is
  // open (api.max_connections, 64 by default): half of that leaves room for the rest of the API.
  size_t max_subscribers = 32;
  // Bytes of events a subscriber may leave unread in osvid before it is dropped as a slow consumer.
  size_t buffer_bytes = 256 * 1024;
  // Recent events kept (of every topic) for clients that reconnect with Last-Event-ID.
  size_t replay_events = 256;
  // A comment line to each subscriber this often, so proxies and clients see the stream alive.
  int64_t heartbeat_ms = 15'000;
  // The reconnection delay suggested to clients (the stream's first line, `retry:`).
  int64_t retry_ms = 3'000;
};

struct EventHubStats {
  size_t subscribers = 0;
  uint64_t events_published = 0;
  uint64_t dropped_slow_consumers = 0;
  uint64_t refused_at_cap = 0;  // subscriptions answered 503
  uint64_t resets = 0;          // reconnections whose Last-Event-ID could not be replayed
};

// One event as the wire has it: `id:`, `event:`, one `data:` line per line of `data` (CR, LF and CRLF all
// break lines, as the spec reads them), and the blank line that dispatches it.
std::string format_sse_event(std::string_view id, std::string_view event, std::string_view data);

// Loop thread only. Topics are keys chosen by the publisher (e.g. "inbox", "session:<id>"): a subscriber
// follows one key, an event is published to several at once and reaches each subscriber at most once.
class EventHub {
 public:
  // The timer drives the heartbeats (on `clock`'s monotonic time).
  static Result<std::unique_ptr<EventHub>> create(const Clock& clock, CallTimerFactory timer,
                                                  EventHubOptions options = {});
  ~EventHub();
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // Answers `reply` with the event stream of `key`: the `retry:` hint, then (when the request carries
  // Last-Event-ID) the events it missed, or an `event: reset` when they are no longer kept, then every
  // event published to `key` from now on. `agents` set: only events of those agents (an agent-limited
  // token); nullopt: all. Past max_subscribers the answer is 503 in the API's error envelope.
  void subscribe(const net::HttpRequest& request, net::HttpReply reply, std::string key,
                 std::optional<std::set<std::string>> agents);

  // The agent filter of a caller for subscribe(): its token's agents, nullopt for a token of all agents.
  static std::optional<std::set<std::string>> agents_of(const ApiToken& caller);

  // Sends `event` with `data` (compact JSON, one line) to the subscribers of any of `keys` whose agent
  // filter admits `agent_uuid` (empty: an event of no agent, for unfiltered subscribers only). Returns the
  // event's id; "" when `event` is empty or holds a line break (refused: it would corrupt the stream).
  std::string publish(const std::vector<std::string>& keys, std::string_view event, const cJSON* data,
                      std::string_view agent_uuid);

  EventHubStats stats() const;
  // The id the next event gets has this prefix: "<instance>-<seq>"; a reconnection naming another
  // instance (osvid restarted) is told to reset.
  const std::string& instance() const { return instance_; }

 private:
  struct Event {
    uint64_t seq = 0;
    std::vector<std::string> keys;
    std::string agent_uuid;
    std::string frame;  // format_sse_event's text
  };
  struct Subscriber {
    std::string key;
    std::optional<std::set<std::string>> agents;
    net::HttpStream stream;
  };

  EventHub(const Clock& clock, EventHubOptions options);
  static bool admits(const Subscriber& s, const std::vector<std::string>& keys, std::string_view agent_uuid);
  // Writes `bytes`, or drops `s` (closed with the reason) when they do not fit under buffer_bytes; false
  // when the subscriber is gone either way.
  bool deliver(Subscriber& s, std::string_view bytes);
  // What a reconnection after `last_id` is sent before the live events: the missed events, or a reset.
  std::string catch_up(const Subscriber& s, std::string_view last_id);
  std::string reset_frame(std::string_view why);
  std::string id_of(uint64_t seq) const { return instance_ + "-" + std::to_string(seq); }
  void heartbeat();

  const Clock& clock_;
  EventHubOptions options_;
  std::unique_ptr<CallTimer> timer_;
  int64_t next_beat_us_ = -1;  // the heartbeat timer's deadline; -1 = not armed
  std::string instance_;
  uint64_t seq_ = 0;
  std::deque<Event> ring_;
  std::map<uint64_t, Subscriber> subscribers_;
  uint64_t next_subscriber_ = 1;
  EventHubStats stats_;
};

}  // namespace osvi::daemon
