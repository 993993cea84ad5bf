// LineManager: io sources and timers that follow each line's fd and deadline, and the journal entries for
// lines.
#include "osvi/lines/line_manager.hpp"

#include <poll.h>
#include <sys/epoll.h>

#include "osvi/base/log.hpp"
#include "osvi/hal/at_modem_line.hpp"
#include "osvi/hal/sim_line.hpp"
#include "osvi/net/json.hpp"

namespace osvi::daemon {

// Line::poll_events() speaks poll(2); sd-event speaks epoll(7). On Linux the bits are the same.
static_assert(POLLIN == EPOLLIN && POLLOUT == EPOLLOUT && POLLHUP == EPOLLHUP && POLLERR == EPOLLERR);

struct LineManager::Entry {
  LineConfig cfg;
  std::unique_ptr<hal::Line> line;
  EventSource io;
  int io_fd = -1;
  short io_events = 0;
  EventSource timer;
};

LineManager::LineManager(EventLoop& loop, const Clock& clock) : loop_(loop), clock_(clock) {}

LineManager::~LineManager() {
  // Sources first: their callbacks point at the lines.
  for (auto& e : entries_) {
    e->io.reset();
    e->timer.reset();
  }
}

Status LineManager::start(const std::vector<LineConfig>& lines, std::function<void()> on_change) {
  on_change_ = std::move(on_change);
  configs_ = lines;
  for (const LineConfig& c : lines) {
    if (!c.enabled) continue;
    auto e = std::make_unique<Entry>();
    e->cfg = c;
    if (c.type == LineType::at) {
      e->line = std::make_unique<hal::AtModemLine>(c.at, clock_);
    } else {
      e->line = std::make_unique<hal::SimLine>(c.id, c.sim, clock_);
    }
    Entry* raw = e.get();
    e->line->set_event_handler([this, raw](const hal::LineEvent& ev) { on_event(*raw, ev); });
    auto timer = loop_.add_timer(UINT64_MAX, [this, raw] {
      raw->line->handle_timer();
      sync(*raw);
    });
    if (!timer) return make_error("line " + c.id + ": " + timer.error().message, timer.error().code);
    e->timer = std::move(*timer);
    entries_.push_back(std::move(e));
    if (auto s = raw->line->start(); !s)
      return make_error("line " + c.id + ": " + s.error().message, s.error().code);
    if (raw->line->state() == hal::LineState::down && raw->line->settled()) {
      log::warning("line " + c.id + " down: " + raw->line->reason(), {{"LINE", c.id}}, log::id::kLineDown);
    }
    sync(*raw);
  }
  return {};
}

void LineManager::sync(Entry& e) {
  hal::Line& l = *e.line;
  const int fd = l.poll_fd();
  const short events = l.poll_events();
  if (fd != e.io_fd) {
    e.io.reset();
    e.io_fd = -1;
    if (fd >= 0) {
      Entry* raw = &e;
      auto io = loop_.add_io(fd, static_cast<uint32_t>(events), [this, raw](uint32_t revents) {
        raw->line->handle_io(static_cast<short>(revents));
        sync(*raw);
      });
      if (io) {
        e.io = std::move(*io);
        e.io_fd = fd;
        e.io_events = events;
      } else {
        log::error("line " + e.cfg.id + ": cannot watch its tty: " + io.error().message,
                   {{"LINE", e.cfg.id}});
      }
    }
  } else if (e.io && events != e.io_events) {
    sd_event_source_set_io_events(e.io.get(), static_cast<uint32_t>(events));
    e.io_events = events;
  }
  const int64_t d = l.next_deadline_us();
  if (d >= 0) {
    EventLoop::set_timer(e.timer.get(), static_cast<uint64_t>(d));
  } else {
    sd_event_source_set_enabled(e.timer.get(), SD_EVENT_OFF);
  }
}

void LineManager::on_event(Entry& e, const hal::LineEvent& ev) {
  hal::Line& l = *e.line;
  const std::string& id = e.cfg.id;
  using T = hal::LineEvent::Type;
  switch (ev.type) {
    case T::down:
      log::warning("line " + id + " down: " + ev.reason, {{"LINE", id}}, log::id::kLineDown);
      break;
    case T::up: {
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
    if (!e->line->settled()) return false;
  return true;
}

std::vector<LineHealth> LineManager::health() const {
  std::vector<LineHealth> out;
  for (const auto& e : entries_) {
    LineHealth h;
    h.id = e->cfg.id;
    h.type = std::string(e->line->type());
    h.state = std::string(hal::to_string(e->line->state()));
    h.reason = e->line->settled() ? e->line->reason() : "starting";
    h.agent_uuid = e->cfg.agent_uuid;
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
    s += e->cfg.id + " " + std::string(hal::to_string(e->line->state()));
    if (e->line->state() == hal::LineState::down) {
      std::string r = e->line->settled() ? e->line->reason() : "starting";
      if (r.size() > 80) r = r.substr(0, 77) + "...";
      s += " (" + r + ")";
    }
  }
  return s;
}

hal::Line* LineManager::find(std::string_view id) {
  for (auto& e : entries_)
    if (e->cfg.id == id) return e->line.get();
  return nullptr;
}

const LineConfig* LineManager::config_of(std::string_view id) const {
  for (const auto& e : entries_)
    if (e->cfg.id == id) return &e->cfg;
  return nullptr;
}

std::vector<hal::Line*> LineManager::lines() {
  std::vector<hal::Line*> out;
  for (auto& e : entries_) out.push_back(e->line.get());
  return out;
}

void LineManager::release(hal::Line& line) {
  line.set_held(false);
  if (sink_ && line.state() == hal::LineState::idle)
    sink_(line, hal::LineEvent{hal::LineEvent::Type::up, {}, 0, {}});
}

void LineManager::refresh(const hal::Line& line) {
  for (auto& e : entries_)
    if (e->line.get() == &line) sync(*e);
}

cJSON* line_health_json(const LineHealth& lh) {
  cJSON* o = cJSON_CreateObject();
  net::json_add_string(o, "id", lh.id);
  net::json_add_string(o, "type", lh.type);
  net::json_add_string(o, "state", lh.state);
  net::json_add_string(o, "reason", lh.reason);
  net::json_add_string(o, "agent_uuid", lh.agent_uuid);
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
