// LineManager: io sources and timers that follow each line's (or SIP trunk's) fd and deadline, and the
// journal entries for lines.
#include "osvi/lines/line_manager.hpp"

#include <poll.h>
#include <sys/epoll.h>

#include <algorithm>
#include <optional>

#include "osvi/base/log.hpp"
#include "osvi/hal/at_modem_line.hpp"
#include "osvi/hal/sim_line.hpp"
#include "osvi/net/json.hpp"

namespace osvi::daemon {

// Line::poll_events() speaks poll(2); sd-event speaks epoll(7). On Linux the bits are the same.
static_assert(POLLIN == EPOLLIN && POLLOUT == EPOLLOUT && POLLHUP == EPOLLHUP && POLLERR == EPOLLERR);

// One configured line: a Line, or a SipTrunk and its channels.
struct LineManager::Entry {
  LineConfig cfg;
  std::unique_ptr<hal::Line> line;
  std::unique_ptr<hal::SipTrunk> trunk;
  std::vector<hal::Line*> channels;  // the trunk's, fixed at creation
  EventSource io;
  int io_fd = -1;
  short io_events = 0;
  EventSource timer;
  // Every channel reports the trunk going down and up: the journal gets it once per change (unset: nothing
  // logged yet).
  std::optional<bool> logged_up;

  int poll_fd() const { return trunk ? trunk->poll_fd() : line->poll_fd(); }
  short poll_events() const { return trunk ? trunk->poll_events() : line->poll_events(); }
  int64_t next_deadline_us() const { return trunk ? trunk->next_deadline_us() : line->next_deadline_us(); }
  void handle_io(short revents) { trunk ? trunk->handle_io(revents) : line->handle_io(revents); }
  void handle_timer() { trunk ? trunk->handle_timer() : line->handle_timer(); }
  hal::LineState state() const { return trunk ? trunk->state() : line->state(); }
  bool settled() const { return trunk ? trunk->settled() : line->settled(); }
  std::string reason() const { return trunk ? trunk->reason() : line->reason(); }
  bool owns(const hal::Line& l) const {
    return line.get() == &l || std::find(channels.begin(), channels.end(), &l) != channels.end();
  }
};

LineManager::LineManager(EventLoop& loop, const Clock& clock) : loop_(loop), clock_(clock) {}

LineManager::~LineManager() {
  // Sources first: their callbacks point at the lines. The handlers point at this manager, whose sink and
  // on_change die before the lines do.
  for (auto& e : entries_) {
    e->io.reset();
    e->timer.reset();
    if (e->line) e->line->set_event_handler({});
    for (hal::Line* ch : e->channels) ch->set_event_handler({});
  }
}

Status LineManager::start(const std::vector<LineConfig>& lines, std::function<void()> on_change) {
  on_change_ = std::move(on_change);
  configs_ = lines;
  for (const LineConfig& c : lines) {
    if (!c.enabled) continue;
    auto e = std::make_unique<Entry>();
    e->cfg = c;
    Entry* raw = e.get();
    if (c.type == LineType::sip) {
      auto trunk = hal::SipTrunk::create(c.sip, clock_);
      if (!trunk) return make_error("line " + c.id + ": " + trunk.error().message, trunk.error().code);
      e->trunk = std::move(*trunk);
      e->channels = e->trunk->channels();
      for (hal::Line* ch : e->channels)
        ch->set_event_handler([this, raw, ch](const hal::LineEvent& ev) { on_event(*raw, *ch, ev); });
    } else {
      if (c.type == LineType::at) {
        e->line = std::make_unique<hal::AtModemLine>(c.at, clock_);
      } else {
        e->line = std::make_unique<hal::SimLine>(c.id, c.sim, clock_);
      }
      e->line->set_event_handler([this, raw](const hal::LineEvent& ev) { on_event(*raw, *raw->line, ev); });
    }
    auto timer = loop_.add_timer(UINT64_MAX, [this, raw] {
      raw->handle_timer();
      sync(*raw);
    });
    if (!timer) return make_error("line " + c.id + ": " + timer.error().message, timer.error().code);
    e->timer = std::move(*timer);
    entries_.push_back(std::move(e));
    Status s = raw->trunk ? raw->trunk->start() : raw->line->start();
    if (!s) return make_error("line " + c.id + ": " + s.error().message, s.error().code);
    if (raw->state() == hal::LineState::down && raw->settled()) {
      log::warning("line " + c.id + " down: " + raw->reason(), {{"LINE", c.id}}, log::id::kLineDown);
      raw->logged_up = false;
    }
    sync(*raw);
  }
  return {};
}

void LineManager::sync(Entry& e) {
  const int fd = e.poll_fd();
  const short events = e.poll_events();
  if (fd != e.io_fd) {
    e.io.reset();
    e.io_fd = -1;
    if (fd >= 0) {
      Entry* raw = &e;
      auto io = loop_.add_io(fd, static_cast<uint32_t>(events), [this, raw](uint32_t revents) {
        raw->handle_io(static_cast<short>(revents));
        sync(*raw);
      });
      if (io) {
        e.io = std::move(*io);
        e.io_fd = fd;
        e.io_events = events;
      } else {
        log::error("line " + e.cfg.id + ": cannot watch its " + (e.trunk ? "SIP thread" : "tty") + ": " +
                       io.error().message,
                   {{"LINE", e.cfg.id}});
      }
    }
  } else if (e.io && events != e.io_events) {
    sd_event_source_set_io_events(e.io.get(), static_cast<uint32_t>(events));
    e.io_events = events;
  }
  const int64_t d = e.next_deadline_us();
  if (d >= 0) {
    EventLoop::set_timer(e.timer.get(), static_cast<uint64_t>(d));
  } else {
    sd_event_source_set_enabled(e.timer.get(), SD_EVENT_OFF);
  }
}

void LineManager::on_event(Entry& e, hal::Line& l, const hal::LineEvent& ev) {
  const std::string& id = l.id();  // a SIP channel's own ("pbx.2"): which call it was
  using T = hal::LineEvent::Type;
  switch (ev.type) {
    case T::down:
      if (e.trunk && e.logged_up == false) break;  // another channel of the trunk reported it
      e.logged_up = false;
      log::warning("line " + e.cfg.id + " down: " + ev.reason, {{"LINE", e.cfg.id}}, log::id::kLineDown);
      break;
    case T::up: {
      if (e.trunk) {
        // A channel is idle again after each call: that is no news about the line.
        if (e.logged_up == true) break;
        e.logged_up = true;
        const hal::SipStatus st = e.trunk->status();
        log::write(log::Level::notice, log::id::kLineUp,
                   "line " + e.cfg.id + " up (idle), " +
                       (st.registration == "disabled" ? std::string("without registration")
                                                      : "registered as " + st.contact) +
                       (ev.reason.empty() ? std::string() : "; " + ev.reason),
                   {{"LINE", e.cfg.id}});
        break;
      }
      e.logged_up = true;
      const hal::LineIdentity ident = l.identity();
      std::string msg = "line " + id + " up (idle)";
      if (!ident.imei.empty()) msg += ", IMEI " + ident.imei;
      if (!ident.firmware.empty()) msg += ", firmware " + ident.firmware;
      if (!ev.reason.empty()) msg += "; " + ev.reason;
      log::write(ev.reason.empty() ? log::Level::notice : log::Level::warning, log::id::kLineUp, msg,
                 {{"LINE", id}, {"IMEI", ident.imei}});
      break;
    }
    case T::failed:
      log::warning("line " + id + ": call failed: " + ev.reason, {{"LINE", id}});
      break;
    case T::audio:
      if (l.audio().stalled)
        log::error("line " + id + ": call audio stalled: " + l.audio().error, {{"LINE", id}});
      break;
    case T::dtmf:
      log::debug("line " + id + ": DTMF " + std::string(1, ev.digit), {{"LINE", id}});
      break;
    default:
      log::info("line " + id + ": " + std::string(hal::to_string(ev.type)) +
                    (ev.number.empty() ? std::string() : " " + ev.number) +
                    (ev.reason.empty() ? std::string() : " (" + ev.reason + ")"),
                {{"LINE", id}});
      break;
  }
  if (sink_) sink_(l, ev);
  if (on_change_) on_change_();
}

bool LineManager::all_settled() const {
  for (const auto& e : entries_)
    if (!e->settled()) return false;
  return true;
}

std::vector<LineHealth> LineManager::health() const {
  std::vector<LineHealth> out;
  for (const auto& e : entries_) {
    LineHealth h;
    h.id = e->cfg.id;
    h.state = std::string(hal::to_string(e->state()));
    h.reason = e->settled() ? e->reason() : "starting";
    h.agent_uuid = e->cfg.agent_uuid;
    if (e->trunk) {
      h.type = "sip";
      h.sip = e->trunk->status();
      // The channels with a call: an idle or down one says nothing the line's own state does not.
      for (const hal::Line* ch : e->channels)
        if (ch->state() != hal::LineState::idle && ch->state() != hal::LineState::down)
          h.channels.push_back({ch->id(), std::string(hal::to_string(ch->state()))});
      out.push_back(std::move(h));
      continue;
    }
    h.type = std::string(e->line->type());
    h.identity = e->line->identity();
    h.audio = e->line->audio();
    // Ready means the call's audio path is open in the engine, not only that the module offers PCM.
    h.audio.ready = h.audio.ready && e->line->audio_open();
    if (h.reason.empty() && !h.audio.unavailable.empty())
      h.reason = "audio unavailable: " + h.audio.unavailable;
    out.push_back(std::move(h));
  }
  return out;
}

std::string LineManager::summary() const {
  std::string s;
  for (const auto& e : entries_) {
    if (!s.empty()) s += ", ";
    s += e->cfg.id + " " + std::string(hal::to_string(e->state()));
    if (e->state() == hal::LineState::down) {
      std::string r = e->settled() ? e->reason() : "starting";
      if (r.size() > 80) r = r.substr(0, 77) + "...";
      s += " (" + r + ")";
    } else if (e->trunk) {
      const hal::SipStatus st = e->trunk->status();
      s += " (" + std::to_string(st.calls_active) + "/" + std::to_string(st.max_calls) + " calls)";
    }
  }
  return s;
}

hal::Line* LineManager::find(std::string_view id) {
  for (auto& e : entries_) {
    if (e->line && e->cfg.id == id) return e->line.get();
    for (hal::Line* ch : e->channels)
      if (ch->id() == id) return ch;
  }
  return nullptr;
}

// A SIP channel answers for its line: the agent that answers, the number calls come from.
const LineConfig* LineManager::config_of(std::string_view id) const {
  for (const auto& e : entries_) {
    if (e->cfg.id == id) return &e->cfg;
    for (const hal::Line* ch : e->channels)
      if (ch->id() == id) return &e->cfg;
  }
  return nullptr;
}

std::vector<hal::Line*> LineManager::lines() {
  std::vector<hal::Line*> out;
  for (auto& e : entries_) {
    if (e->line) out.push_back(e->line.get());
    out.insert(out.end(), e->channels.begin(), e->channels.end());
  }
  return out;
}

size_t LineManager::size() const {
  size_t n = 0;
  for (const auto& e : entries_) n += e->line ? 1 : e->channels.size();
  return n;
}

LineManager::Entry* LineManager::entry_of(const hal::Line& line) {
  for (auto& e : entries_)
    if (e->owns(line)) return e.get();
  return nullptr;
}

bool LineManager::is_sip(const hal::Line& line) const {
  for (const auto& e : entries_)
    if (e->trunk && e->owns(line)) return true;
  return false;
}

bool LineManager::has_sip() const {
  return std::any_of(entries_.begin(), entries_.end(), [](const auto& e) { return e->trunk != nullptr; });
}

void LineManager::release(hal::Line& line) {
  line.set_held(false);
  if (sink_ && line.state() == hal::LineState::idle)
    sink_(line, hal::LineEvent{hal::LineEvent::Type::up, {}, 0, {}});
}

void LineManager::refresh(const hal::Line& line) {
  if (Entry* e = entry_of(line)) sync(*e);
}

cJSON* line_health_json(const LineHealth& lh) {
  cJSON* o = cJSON_CreateObject();
  net::json_add_string(o, "id", lh.id);
  net::json_add_string(o, "type", lh.type);
  net::json_add_string(o, "state", lh.state);
  net::json_add_string(o, "reason", lh.reason);
  net::json_add_string(o, "agent_uuid", lh.agent_uuid);
  if (lh.sip) {
    // A SIP line has no modem and no audio device of its own: its registration, and its calls by channel.
    const hal::SipStatus& st = *lh.sip;
    cJSON* sip = cJSON_AddObjectToObject(o, "sip");
    net::json_add_string(sip, "registration", st.registration);
    cJSON_AddNumberToObject(sip, "last_code", st.last_code);
    net::json_add_string(sip, "last_reason", st.last_reason);
    cJSON_AddNumberToObject(sip, "expires_s", st.expires_s);
    net::json_add_string(sip, "contact", st.contact);
    cJSON_AddNumberToObject(sip, "calls_active", st.calls_active);
    cJSON_AddNumberToObject(sip, "max_calls", st.max_calls);
    cJSON* chans = cJSON_AddArrayToObject(o, "channels");
    for (const LineHealth::Channel& c : lh.channels) {
      cJSON* co = cJSON_CreateObject();
      net::json_add_string(co, "id", c.id);
      net::json_add_string(co, "state", c.state);
      cJSON_AddItemToArray(chans, co);
    }
    return o;
  }
  cJSON* m = cJSON_AddObjectToObject(o, "modem");
  net::json_add_string(m, "manufacturer", lh.identity.manufacturer);
  net::json_add_string(m, "model", lh.identity.model);
  net::json_add_string(m, "imei", lh.identity.imei);
  net::json_add_string(m, "firmware", lh.identity.firmware);
  net::json_add_string(m, "registration", lh.identity.registration);
  cJSON* a = cJSON_AddObjectToObject(o, "audio");
  net::json_add_string(a, "kind", hal::to_string(lh.audio.kind));
  net::json_add_string(a, "device", lh.audio.device);
  cJSON_AddNumberToObject(a, "sample_rate", lh.audio.sample_rate);
  cJSON_AddBoolToObject(a, "ready", lh.audio.ready);
  cJSON_AddBoolToObject(a, "stalled", lh.audio.stalled);
  net::json_add_string(a, "error", lh.audio.error);
  return o;
}

}  // namespace osvi::daemon
