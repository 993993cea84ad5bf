// Browser test calls: the web AudioPort (paced by the browser's frames), the `web` Line, the WebSocket
// session on the loop, and the one-time tickets.
#include "osvi/calls/web_call.hpp"

#include <systemd/sd-event.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "audio_ports.hpp"
#include "osvi/base/ids.hpp"
#include "osvi/base/log.hpp"
#include "osvi/config/audio_settings.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/websocket_conn.hpp"

namespace osvi::daemon {

namespace ws = net::ws;

// ---------------------------------------------------------------------------------------------------------
// WebAudioPort

Result<std::unique_ptr<WebAudioPort>> WebAudioPort::create(const AudioPortSetup& setup,
                                                           std::shared_ptr<WebAudioLink> link,
                                                           AudioPort::Listener& listener) {
  if (!link) return make_error("web audio port: no link", -EINVAL);
  AudioConfig ac = setup.audio;
  ac.rate = kWebRate;
  ac.frame_ms = 20;
  // The browser cancels its own echo (getUserMedia echoCancellation); a second canceller here would only
  // chew the caller's double talk. No call-progress tones exist on a web call.
  ac.echo_backend = "null";
  ac.call_progress_plan = "";
  audio::LineChainConfig cc = line_chain_config(ac, setup.agent);
  cc.format = {kWebRate, 20};
  cc.capture.backend = audio::EchoBackend::null;
  cc.call_progress_plan.clear();
  cc.amd = false;
  auto chain = audio::LineChain::create(cc);
  if (!chain) return chain.error();
  return std::make_unique<WebAudioPort>(std::move(*chain), std::move(link), listener);
}

WebAudioPort::WebAudioPort(std::unique_ptr<audio::LineChain> chain, std::shared_ptr<WebAudioLink> link,
                           AudioPort::Listener& listener)
    : chain_(std::move(chain)),
      link_(std::move(link)),
      listener_(listener),
      alive_(std::make_shared<bool>(true)) {
  ref_.assign(kWebFrameSamples, 0);
  resample_out_.resize(chain_->max_playback_output());
  queue_.reserve(kQueueSamples);
  inflight_.reserve((kCushionFrames + 1) * kWebFrameSamples);
  // A frame carries at most a few events (opened, drained, stopped): sized once, none allocates.
  events_.reserve(8);
  events_taken_.reserve(8);
  link_->attach(this);
}

WebAudioPort::~WebAudioPort() {
  *alive_ = false;
  link_->attach(nullptr);
  chain_->attach_recorder(nullptr);
}

Status WebAudioPort::start() {
  if (started_) return {};
  started_ = true;
  // The browser's frames already flow: the device is "open" at the first one.
  events_.push_back({hal::StreamEventKind::opened, hal::StreamDirection::both, 0, 0, 0});
  return {};
}

size_t WebAudioPort::queue_playback(std::span<const int16_t> samples) {
  const size_t n = std::min(samples.size(), kQueueSamples - std::min(kQueueSamples, queue_.size()));
  queue_.insert(queue_.end(), samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(n));
  // The cushion goes out at once: the agent's first words do not wait for the browser's next frame.
  send_ahead();
  return n;
}

void WebAudioPort::resample_tts(std::span<const int16_t> in, std::vector<int16_t>& out) {
  resample_tts_through(*chain_, resample_out_, in, out);
}

void WebAudioPort::send_ahead() {
  const size_t limit = (kCushionFrames + 1) * kWebFrameSamples;
  while (!link_failed_ && !queue_.empty() && inflight_.size() < limit) {
    // Whole frames (the last one of a burst may be short): the browser's queue takes any length.
    const size_t n = std::min({kWebFrameSamples, queue_.size(), limit - inflight_.size()});
    std::span<const int16_t> chunk(queue_.data(), n);
    if (!link_->send_audio(chunk)) {
      link_failed_ = true;  // the link ends the call; nothing more is sent
      return;
    }
    inflight_.insert(inflight_.end(), chunk.begin(), chunk.end());
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    sent_ += n;
  }
}

void WebAudioPort::stop_playback() {
  // Barge-in: what was not sent is dropped here, what the browser holds is dropped there, now; the Call
  // hears of it with the next frame (never from inside its own call).
  const uint64_t dropped = queue_.size() + inflight_.size();
  queue_.clear();
  inflight_.clear();
  link_->clear_playback();
  events_.push_back(
      {hal::StreamEventKind::playback_stopped, hal::StreamDirection::playback, 0, burst_played_, dropped});
  burst_played_ = 0;
}

void WebAudioPort::on_frame(std::span<const int16_t> mic) {
  if (mic.size() != kWebFrameSamples) return;
  const std::shared_ptr<bool> alive = alive_;
  // Events first (each may end the call and destroy this port).
  // Swapped with a second vector, not moved out: both keep their buffers, so an event costs no allocation.
  // Iterating a member is safe: nothing is touched after a listener call that destroyed the port.
  events_taken_.clear();
  events_taken_.swap(events_);
  for (const hal::StreamEvent& e : events_taken_) {
    listener_.on_stream_event(e);
    if (!*alive) return;
  }
  // The browser played one frame of its queue during this frame: that is the reference and the agent
  // channel of the recording.
  const size_t n = std::min(kWebFrameSamples, inflight_.size());
  std::copy_n(inflight_.begin(), n, ref_.begin());
  std::fill(ref_.begin() + static_cast<std::ptrdiff_t>(n), ref_.end(), int16_t{0});
  inflight_.erase(inflight_.begin(), inflight_.begin() + static_cast<std::ptrdiff_t>(n));
  played_ += n;
  burst_played_ += n;
  if (started_) {
    const audio::CaptureOutput& out = chain_->process_capture(mic, ref_);
    if (!out.clean.empty()) {
      listener_.on_capture(out);
      if (!*alive) return;
    }
  }
  send_ahead();
  if (queue_.empty() && inflight_.empty() && burst_played_ > 0) {
    events_.push_back(
        {hal::StreamEventKind::playback_drained, hal::StreamDirection::playback, 0, burst_played_, 0});
    burst_played_ = 0;
  }
  listener_.on_audio_tick();
}

// ---------------------------------------------------------------------------------------------------------
// The `web` line and the session

namespace {

// A web call's line: answered at once, hung up by closing the socket (through the session). Its events are
// delivered by the session's timer, never from inside an action (hal/line.hpp).
class WebLine final : public hal::Line {
 public:
  using Defer = std::function<void(hal::LineEvent)>;
  WebLine(std::string id, Defer defer, std::function<void()> on_hangup)
      : id_(std::move(id)), defer_(std::move(defer)), on_hangup_(std::move(on_hangup)) {}

  const std::string& id() const override { return id_; }
  std::string_view type() const override { return "web"; }
  hal::LineState state() const override { return state_; }
  std::string reason() const override { return {}; }
  bool settled() const override { return true; }
  hal::AudioEndpoint audio() const override {
    hal::AudioEndpoint ep;
    ep.kind = hal::AudioEndpoint::Kind::web;
    ep.device = "websocket";
    ep.sample_rate = kWebRate;
    ep.frame_ms = 20;
    ep.ready = state_ == hal::LineState::active;
    return ep;
  }
  Status start() override { return {}; }
  Status dial(std::string_view) override { return make_error("a web line does not dial", -ENOTSUP); }
  Status answer() override {
    if (state_ != hal::LineState::ringing) return make_error("web line: nothing to answer", -EINVAL);
    state_ = hal::LineState::active;
    defer_({hal::LineEvent::Type::answered, {}, 0, {}});
    return {};
  }
  Status hangup() override {
    if (state_ == hal::LineState::idle || state_ == hal::LineState::ending) return {};
    state_ = hal::LineState::ending;
    if (on_hangup_) on_hangup_();
    defer_({hal::LineEvent::Type::hung_up, {}, 0, {}});
    return {};
  }
  Status send_dtmf(std::string_view) override { return make_error("a web call carries no DTMF", -ENOTSUP); }
  Status transfer_blind(std::string_view) override {
    return make_error("a web test call cannot be transferred", -ENOTSUP);
  }
  Status transfer_attended(std::string_view) override {
    return make_error("a web test call cannot be transferred", -ENOTSUP);
  }
  void report_audio_stalled(std::string) override {}
  int64_t next_deadline_us() const override { return -1; }
  void handle_timer() override {}

  // From the session's timer.
  void deliver(const hal::LineEvent& e) {
    if (e.type == hal::LineEvent::Type::remote_hangup || e.type == hal::LineEvent::Type::hung_up)
      state_ = hal::LineState::idle;
    emit(e);
  }

 private:
  std::string id_;
  Defer defer_;
  std::function<void()> on_hangup_;
  hal::LineState state_ = hal::LineState::ringing;
};

// A close still unsent after this long is given up (the browser stopped reading).
constexpr int64_t kCloseGraceUs = 2'000'000;

}  // namespace

class WebCalls::Session final : public WebAudioLink, public std::enable_shared_from_this<Session> {
 public:
  // What it needs of the owner is copied: a session lives on while its call holds the port, which may be
  // after the WebCalls is gone (the daemon stopping).
  Session(const WebCalls& owner, net::UpgradedSocket socket)
      : loop_(owner.ctx_.loop),
        clock_(owner.ctx_.clock),
        make_timer_(owner.ctx_.timer),
        options_(owner.options_),
        ws_(std::move(socket), net::WebSocket::Options{kWebFrameBytes, owner.options_.max_send_buffer}) {}
  ~Session() override {
    io_.reset();
    ws_.abort();
  }

  Status open(std::string line_id) {
    auto io = loop_->add_io(ws_.fd(), ws_.events(), [this](uint32_t rev) { on_io(rev); });
    if (!io) return io.error();
    io_ = std::move(*io);
    auto timer = make_timer_ ? make_timer_([this] { on_timer(); })
                             : make_loop_call_timer(*loop_, [this] { on_timer(); });
    if (!timer) return timer.error();
    timer_ = std::move(*timer);
    // A server torn down (a reload of the api section) takes the socket: the caller is gone.
    ws_.on_server_gone([this] {
      io_.reset();
      caller_gone("the API server stopped");
    });
    std::weak_ptr<Session> weak = weak_from_this();
    line_ = std::make_shared<WebLine>(
        std::move(line_id),
        [weak](hal::LineEvent e) {
          if (auto s = weak.lock()) s->defer(std::move(e));
        },
        [weak] {
          if (auto s = weak.lock()) s->agent_hung_up_ = true;
        });
    last_frame_us_ = now_us();
    arm();
    return {};
  }

  std::shared_ptr<WebLine> line() const { return line_; }
  const std::string& agent_uuid() const { return agent_uuid_; }
  const std::string& call_id() const { return call_id_; }
  void set_call(std::string id, const std::string& agent_uuid) {
    call_id_ = std::move(id);
    agent_uuid_ = agent_uuid;
    net::JsonPtr o(cJSON_CreateObject());
    net::json_add_string(o.get(), "type", "call");
    net::json_add_string(o.get(), "call_id", call_id_);
    net::json_add_string(o.get(), "agent_uuid", agent_uuid);
    send_json(o.get());
    drive();
  }
  bool closed() const { return ws_.state() == net::WebSocket::State::closed; }

  // WebAudioLink
  bool send_audio(std::span<const int16_t> samples) override {
    if (ws_.state() != net::WebSocket::State::open) return false;
    // One buffer for every frame (it keeps its capacity): nothing is allocated per frame sent.
    audio_out_.resize(samples.size() * 2);
    for (size_t i = 0; i < samples.size(); ++i) {
      const auto u = static_cast<uint16_t>(samples[i]);
      audio_out_[2 * i] = static_cast<char>(u & 0xff);
      audio_out_[2 * i + 1] = static_cast<char>(u >> 8);
    }
    if (ws_.send(ws::Opcode::binary, audio_out_)) return true;
    // The browser does not read what it is sent: it is dropped, and the call ends as if it hung up.
    if (ws_.state() == net::WebSocket::State::open) ws_.abort();
    caller_gone("the browser stopped reading");
    update_io();
    return false;
  }
  void clear_playback() override {
    net::JsonPtr o(cJSON_CreateObject());
    net::json_add_string(o.get(), "type", "clear");
    send_json(o.get());
  }
  void attach(WebAudioPort* port) override { port_ = port; }

  void send_state(std::string_view state) {
    net::JsonPtr o(cJSON_CreateObject());
    net::json_add_string(o.get(), "type", "state");
    net::json_add_string(o.get(), "state", std::string(state));
    send_json(o.get());
  }
  void send_turn(const TranscriptTurn& t) {
    if (t.role != "agent" && t.role != "user") return;
    net::JsonPtr o(cJSON_CreateObject());
    net::json_add_string(o.get(), "type", "transcript");
    net::json_add_string(o.get(), "role", t.role == "agent" ? "agent" : "caller");
    net::json_add_string(o.get(), "text", t.text);
    cJSON_AddBoolToObject(o.get(), "interrupted", t.interrupted);
    send_json(o.get());
  }
  // The call's final record: the browser is told, then the socket closes normally.
  void end(const CallRecord& r) {
    net::JsonPtr o(cJSON_CreateObject());
    net::json_add_string(o.get(), "type", "end");
    net::json_add_string(o.get(), "call_id", r.call_id);
    net::json_add_string(o.get(), "status", r.status);
    net::json_add_string(o.get(), "reason", r.call_ended_reason.value_or(""));
    send_json(o.get());
    ended_ = true;
    close(ws::close_code::normal, "call ended");
  }
  void close(uint16_t code, std::string_view reason) {
    if (ws_.state() == net::WebSocket::State::open) {
      ws_.close(code, reason);
      closing_since_us_ = now_us();
    }
    update_io();
    arm();
  }

 private:
  int64_t now_us() const { return clock_->monotonic_us(); }

  void send_json(const cJSON* o) {
    if (ws_.state() != net::WebSocket::State::open) return;
    // Small control messages: a browser that lets them pile up past the buffer is not reading.
    if (!ws_.send(ws::Opcode::text, net::json_print(o))) {
      ws_.abort();
      caller_gone("the browser stopped reading");
    }
    update_io();
  }

  void defer(hal::LineEvent e) {
    pending_.push_back(std::move(e));
    arm();
  }

  // The browser is gone (closed, broke, stopped reading or sending): the caller hung up.
  void caller_gone(const std::string& why) {
    if (gone_) return;
    gone_ = true;
    if (!call_id_.empty() && !ended_ && !agent_hung_up_) {
      log::info("web call: " + why, {{"CALL_ID", call_id_}, {"LINE", line_ ? line_->id() : ""}});
      defer({hal::LineEvent::Type::remote_hangup, {}, 0, why});
    }
  }

  void on_io(uint32_t revents) {
    const std::shared_ptr<Session> self = shared_from_this();  // a frame may end the call
    // Kept from read to read with its payload buffers: a frame read allocates nothing.
    ws::Messages& msgs = msgs_;
    msgs.clear();
    ws_.handle_io(revents, msgs);
    for (const ws::Message& m : msgs) {
      if (ws_.state() != net::WebSocket::State::open) break;
      if (m.opcode != ws::Opcode::binary) {
        close(ws::close_code::unsupported_data, "text messages are not accepted");
        break;
      }
      if (m.payload.size() != kWebFrameBytes) {
        close(ws::close_code::unsupported_data, "a frame is 640 bytes: 20 ms of s16le mono 16 kHz");
        break;
      }
      last_frame_us_ = now_us();
      for (size_t i = 0; i < kWebFrameSamples; ++i)
        frame_[i] =
            static_cast<int16_t>(static_cast<uint16_t>(static_cast<uint8_t>(m.payload[2 * i])) |
                                 static_cast<uint16_t>(static_cast<uint8_t>(m.payload[2 * i + 1]) << 8));
      if (port_) port_->on_frame(frame_);
    }
    drive();
  }

  // After any socket activity: the caller gone when the socket is, the io source in step with the socket.
  void drive() {
    if (ws_.state() != net::WebSocket::State::open) {
      if (ws_.closed_by_peer() || !ended_)
        caller_gone(ws_.closed_by_peer() ? "the browser closed the call" : "the call's socket closed");
    }
    update_io();
    arm();
  }

  void update_io() {
    if (!io_) return;
    if (ws_.state() == net::WebSocket::State::closed) {
      // Before the HTTP server closes the descriptor.
      io_.reset();
      return;
    }
    sd_event_source_set_io_events(io_.get(), ws_.events());
  }

  void arm() {
    if (!timer_) return;
    int64_t at = -1;
    if (!pending_.empty()) at = now_us();
    if (ws_.state() == net::WebSocket::State::open && !gone_) {
      const int64_t idle = last_frame_us_ + options_.idle_timeout_ms * 1000;
      at = at < 0 ? idle : std::min(at, idle);
    }
    if (ws_.state() == net::WebSocket::State::closing) {
      const int64_t give_up = closing_since_us_ + kCloseGraceUs;
      at = at < 0 ? give_up : std::min(at, give_up);
    }
    timer_->arm(at);
  }

  void on_timer() {
    const std::shared_ptr<Session> self = shared_from_this();
    const int64_t now = now_us();
    std::vector<hal::LineEvent> events = std::move(pending_);
    pending_.clear();
    for (const hal::LineEvent& e : events) {
      if (e.type == hal::LineEvent::Type::answered) send_state("connected");
      if (line_) line_->deliver(e);
    }
    if (ws_.state() == net::WebSocket::State::open && !gone_ &&
        now >= last_frame_us_ + options_.idle_timeout_ms * 1000) {
      close(ws::close_code::policy_violation, "no audio from the browser");
      caller_gone("no audio from the browser for " + std::to_string(options_.idle_timeout_ms) + " ms");
    }
    if (ws_.state() == net::WebSocket::State::closing && now >= closing_since_us_ + kCloseGraceUs)
      ws_.abort();
    update_io();
    arm();
  }

  EventLoop* loop_;
  const Clock* clock_;
  CallTimerFactory make_timer_;
  WebCallsOptions options_;
  net::WebSocket ws_;
  EventSource io_;
  std::unique_ptr<CallTimer> timer_;
  std::shared_ptr<WebLine> line_;
  WebAudioPort* port_ = nullptr;
  std::string call_id_;
  std::string agent_uuid_;
  std::vector<hal::LineEvent> pending_;
  int16_t frame_[kWebFrameSamples] = {};
  ws::Messages msgs_;      // on_io's messages
  std::string audio_out_;  // send_audio's frame payload
  int64_t last_frame_us_ = 0;
  int64_t closing_since_us_ = 0;
  bool gone_ = false;           // the caller's hang-up was reported
  bool ended_ = false;          // the final record was sent
  bool agent_hung_up_ = false;  // the call hung up (end_call): the end message closes the socket
};

// ---------------------------------------------------------------------------------------------------------
// WebCalls

WebCalls::WebCalls(CallContext& ctx, CallManager& calls, WebCallsOptions options)
    : ctx_(ctx), calls_(calls), options_(options) {
  listener_ = calls_.add_finished_listener([this](const CallRecord& r) { finished(r); });
}

WebCalls::~WebCalls() {
  calls_.remove_finished_listener(listener_);
  shutdown();
}

void WebCalls::expire_tickets() {
  const int64_t now = ctx_.clock->wall_ms();
  std::erase_if(tickets_, [now](const auto& kv) { return kv.second.expires_at_ms <= now; });
}

Result<WebCallTicket> WebCalls::issue(const std::string& agent_uuid) {
  if (!calls_.voice_agent_active(agent_uuid))
    return make_error("agent_uuid: " + agent_uuid + " is not an active voice agent", -ENOENT);
  expire_tickets();
  if (tickets_.size() >= options_.max_tickets)
    return make_error("too many web call tickets outstanding (" + std::to_string(tickets_.size()) +
                          "); each is valid for " + std::to_string(options_.ticket_ttl_ms / 1000) + " s",
                      -ENOSPC);
  if (sessions_.size() + tickets_.size() >= options_.max_calls)
    return make_error("the box is at its limit of " + std::to_string(options_.max_calls) +
                          " web call(s) at once (live calls and unused tickets)",
                      -EBUSY);
  WebCallTicket t;
  t.ticket = random_token(32);
  t.expires_at_ms = ctx_.clock->wall_ms() + options_.ticket_ttl_ms;
  t.ws_path = "/v1/web_calls/ws?ticket=" + t.ticket;
  tickets_[t.ticket] = Ticket{agent_uuid, t.expires_at_ms};
  return t;
}

Result<std::string> WebCalls::redeem(std::string_view ticket) {
  auto it = tickets_.find(ticket);
  if (it == tickets_.end()) return make_error("unknown or already used web call ticket", -ENOENT);
  Ticket t = std::move(it->second);
  tickets_.erase(it);  // one use, whatever follows
  if (t.expires_at_ms <= ctx_.clock->wall_ms())
    return make_error("the web call ticket has expired", -ETIMEDOUT);
  if (sessions_.size() >= options_.max_calls)
    return make_error("the box is at its limit of web calls at once", -EBUSY);
  return t.agent_uuid;
}

void WebCalls::start(const std::string& agent_uuid, net::UpgradedSocket socket) {
  std::erase_if(retired_, [](const auto& s) { return s->closed(); });
  auto session = std::make_shared<Session>(*this, std::move(socket));
  const std::string line_id = "web" + std::to_string(++next_line_);
  if (Status s = session->open(line_id); !s) {
    log::warning("web call: cannot watch the socket: " + s.error().message);
    return;  // the session's destructor gives the socket back
  }
  if (sessions_.size() >= options_.max_calls) {
    session->close(1013, "too many web calls at once; try again later");
    retired_.push_back(std::move(session));
    return;
  }
  std::weak_ptr<Session> weak = session;
  AudioPortFactory port = [weak](const AudioPortSetup& setup,
                                 AudioPort::Listener& listener) -> Result<std::unique_ptr<AudioPort>> {
    auto s = weak.lock();
    if (!s) return make_error("the web call's socket is gone", -ENOTCONN);
    auto p = WebAudioPort::create(setup, s, listener);
    if (!p) return p.error();
    return std::unique_ptr<AudioPort>(std::move(*p));
  };
  auto on_turn = [weak](const TranscriptTurn& t) {
    if (auto s = weak.lock()) s->send_turn(t);
  };
  auto id = calls_.start_web_call(agent_uuid, session->line(), std::move(port), std::move(on_turn));
  if (!id) {
    log::warning("web call not started: " + id.error().message, {{"AGENT_UUID", agent_uuid}});
    session->close(
        id.error().code == -ENOENT ? ws::close_code::policy_violation : ws::close_code::internal_error,
        id.error().code == -ENOENT ? "the agent is not an active voice agent" : "the call could not start");
    retired_.push_back(std::move(session));
    return;
  }
  log::info("web test call started", {{"CALL_ID", *id}, {"LINE", line_id}, {"AGENT_UUID", agent_uuid}});
  sessions_[*id] = session;
  session->set_call(*id, agent_uuid);
}

void WebCalls::finished(const CallRecord& record) {
  std::erase_if(retired_, [](const auto& s) { return s->closed(); });
  auto it = sessions_.find(record.call_id);
  if (it == sessions_.end()) return;
  std::shared_ptr<Session> s = std::move(it->second);
  sessions_.erase(it);
  s->end(record);
  if (!s->closed()) retired_.push_back(std::move(s));
}

std::vector<LineHealth> WebCalls::lines() const {
  std::vector<LineHealth> out;
  for (const auto& [id, s] : sessions_) {
    const auto line = s->line();
    if (!line) continue;
    LineHealth h;
    h.id = line->id();
    h.type = "web";
    h.state = std::string(hal::to_string(line->state()));
    h.agent_uuid = s->agent_uuid();
    h.audio = line->audio();
    out.push_back(std::move(h));
  }
  return out;
}

void WebCalls::shutdown() {
  for (auto& [id, s] : sessions_) s->close(ws::close_code::going_away, "the box is stopping");
  tickets_.clear();
}

}  // namespace osvi::daemon
