// SipTrunk against sipp scenarios (tests/sip/*.xml) on loopback: registration with digest auth and refresh,
// refusal and retry, calls both ways, every final-answer mapping, early media, ring timeout, re-INVITE,
// REFER, SIP INFO DTMF, malformed input.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "osvi/clock.hpp"
#include "osvi/hal/sip_line.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using osvi::hal::LineEvent;
using osvi::hal::LineState;
using osvi::hal::SipLineOptions;
using osvi::hal::SipTrunk;

namespace {

const std::string kScenarios = std::string(OSVI_SOURCE_DIR) + "/tests/sip/";

// A port free right now on 127.0.0.1 (UDP and TCP), for sipp or the trunk.
uint16_t free_port() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    int u = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(u, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::getsockname(u, reinterpret_cast<sockaddr*>(&a), &len);
    int t = ::socket(AF_INET, SOCK_STREAM, 0);
    const bool tcp_ok = ::bind(t, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(t);
    ::close(u);
    if (tcp_ok) return ntohs(a.sin_port);
  }
  return 0;
}

// One sipp run as a child process, killed at the end of the test whatever happened.
class Sipp {
 public:
  Sipp(const std::string& dir, const std::string& scenario, uint16_t port, std::vector<std::string> extra) {
    const std::string file = scenario.front() == '/' ? scenario : kScenarios + scenario;
    std::vector<std::string> args = {
        "sipp", "-sf",      file,       "-i",  "127.0.0.1",      "-p",        std::to_string(port), "-m",
        "1",    "-nostdin", "-timeout", "20s", "-timeout_error", "-trace_err"};
    args.insert(args.end(), extra.begin(), extra.end());
    log_ = dir + "/sipp-" + std::to_string(port) + "-" + std::to_string(++runs_) + ".log";
    pid_ = ::fork();
    if (pid_ == 0) {
      if (::chdir(dir.c_str()) != 0) ::_exit(126);
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("sipp", argv.data());
      ::_exit(127);
    }
  }
  ~Sipp() {
    if (pid_ > 0 && status_ < 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  // sipp's exit status once it ended (0 = every call completed), or -1 while it runs.
  int poll_exit() {
    if (status_ >= 0 || pid_ <= 0) return status_;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return status_;
  }
  std::string log() const { return osvi::test::read_file(log_); }

 private:
  static inline int runs_ = 0;
  pid_t pid_ = -1;
  int status_ = -1;
  std::string log_;
};

// A plain child process (openssl s_server as a TLS registrar stand-in): stdout+stderr to a file, stdin a pipe
// kept open, killed at the end.
class Child {
 public:
  Child(const std::string& dir, std::vector<std::string> args, const std::string& log) : log_(log) {
    int in[2];
    if (::pipe(in) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      if (::chdir(dir.c_str()) != 0) ::_exit(126);
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::dup2(in[0], 0);
      ::close(in[1]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    stdin_ = in[1];
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stdin_ >= 0) ::close(stdin_);
  }
  std::string log() const { return osvi::test::read_file(log_); }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  std::string log_;
};

class SipTrunkTest : public ::testing::Test {
 protected:
  SipLineOptions options(uint16_t registrar_port) {
    SipLineOptions o;
    o.id = "pbx";
    o.registrar = "127.0.0.1:" + std::to_string(registrar_port);
    o.user = "201";
    o.password = "s3cret";
    o.local_ip = "127.0.0.1";
    o.local_port = free_port();
    o.rtp_port_min = 20000;
    o.rtp_port_max = 29999;
    o.register_expires_s = 0;
    o.keepalive_s = 0;
    o.max_calls = 2;
    o.ring_timeout_s = 10;
    return o;
  }

  void make(SipLineOptions o) {
    auto t = SipTrunk::create(std::move(o), clock_);
    ASSERT_TRUE(t.ok()) << t.error().message;
    trunk_ = std::move(t.value());
    for (osvi::hal::Line* l : trunk_->channels())
      l->set_event_handler([this, l](const LineEvent& e) { events_.push_back({l, e}); });
    ASSERT_TRUE(trunk_->start().ok());
  }

  // Runs the trunk as a loop would until done() or the time is up.
  bool pump_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= end) return false;
      int timeout_ms = 20;
      const int64_t d = trunk_->next_deadline_us();
      if (d >= 0)
        timeout_ms = static_cast<int>(std::clamp<int64_t>((d - clock_.monotonic_us()) / 1000, 0, 20));
      pollfd p{trunk_->poll_fd(), trunk_->poll_events(), 0};
      if (::poll(&p, 1, timeout_ms) > 0) trunk_->handle_io(p.revents);
      const int64_t d2 = trunk_->next_deadline_us();
      if (d2 >= 0 && clock_.monotonic_us() >= d2) trunk_->handle_timer();
    }
    return true;
  }
  const LineEvent* find(LineEvent::Type type) const {
    for (const auto& [line, e] : events_)
      if (e.type == type) return &e;
    return nullptr;
  }
  osvi::hal::Line* line_of(LineEvent::Type type) const {
    for (const auto& [line, e] : events_)
      if (e.type == type) return line;
    return nullptr;
  }
  bool wait_event(LineEvent::Type type, std::chrono::milliseconds t = 5s) {
    return pump_until([&] { return find(type) != nullptr; }, t);
  }
  bool wait_sipp(Sipp& s, std::chrono::milliseconds t = 8s) {
    return pump_until([&] { return s.poll_exit() >= 0; }, t);
  }
  // An up trunk without registration, ready for calls.
  void bring_up(SipLineOptions o) {
    make(std::move(o));
    ASSERT_TRUE(pump_until([&] { return trunk_->state() == LineState::idle; })) << trunk_->reason();
    events_.clear();
  }
  std::string types() const {
    std::string s;
    for (const auto& [line, e] : events_) s += std::string(to_string(e.type)) + "(" + e.reason + ") ";
    return s;
  }

  osvi::test::TempDir dir_;
  osvi::SystemClock clock_;
  std::unique_ptr<SipTrunk> trunk_;
  std::vector<std::pair<osvi::hal::Line*, LineEvent>> events_;
};

TEST_F(SipTrunkTest, RegistersWithDigestAuthAndRefreshes) {
  const uint16_t port = free_port();
  Sipp sipp(dir_.path(), "registrar_auth.xml", port, {"-key", "user", "201", "-key", "password", "s3cret"});
  auto o = options(port);
  o.register_expires_s = 2;  // granted as asked: the refresh comes at 90 %, ~1.8 s
  make(o);
  EXPECT_EQ(trunk_->state(), LineState::down);
  EXPECT_FALSE(trunk_->settled());
  ASSERT_TRUE(wait_event(LineEvent::Type::up)) << trunk_->reason() << "\n" << sipp.log();
  EXPECT_TRUE(trunk_->settled());
  EXPECT_EQ(trunk_->state(), LineState::idle);
  auto st = trunk_->status();
  EXPECT_EQ(st.registration, "registered");
  EXPECT_EQ(st.last_code, 200);
  EXPECT_EQ(st.expires_s, 2u);
  EXPECT_NE(st.contact.find("sip:201@127.0.0.1:"), std::string::npos) << st.contact;
  EXPECT_GE(st.registered_at_us, 0);
  EXPECT_EQ(st.max_calls, 2u);
  // Every channel came up, named after the trunk.
  std::vector<std::string> ids;
  for (auto* l : trunk_->channels()) {
    ids.push_back(l->id());
    EXPECT_EQ(l->type(), "sip");
    EXPECT_EQ(l->state(), LineState::idle);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"pbx.1", "pbx.2"}));
  // The scenario ends only after the refresh REGISTER was answered.
  ASSERT_TRUE(wait_sipp(sipp, 6s)) << sipp.log();
  EXPECT_EQ(sipp.poll_exit(), 0) << sipp.log();
  EXPECT_EQ(trunk_->status().registration, "registered");
}

TEST_F(SipTrunkTest, WrongPasswordIsRefused) {
  const uint16_t port = free_port();
  Sipp sipp(dir_.path(), "registrar_auth.xml", port, {"-key", "user", "201", "-key", "password", "other"});
  auto o = options(port);
  o.register_expires_s = 60;
  make(o);
  ASSERT_TRUE(pump_until([&] { return trunk_->settled(); })) << sipp.log();
  EXPECT_EQ(trunk_->state(), LineState::down);
  EXPECT_EQ(trunk_->reason(), "SIP registration failed: 403 Forbidden");
  EXPECT_EQ(trunk_->status().registration, "failed");
  EXPECT_EQ(trunk_->status().last_code, 403);
}

TEST_F(SipTrunkTest, RefusedRegistrationGoesDownThenRetriesAfterRetryAfter) {
  const uint16_t port = free_port();
  auto o = options(port);
  o.register_expires_s = 60;
  {
    Sipp reject(dir_.path(), "registrar_reject.xml", port, {});
    make(o);
    ASSERT_TRUE(pump_until([&] { return trunk_->settled(); })) << reject.log();
    ASSERT_TRUE(wait_sipp(reject)) << reject.log();
  }
  EXPECT_EQ(trunk_->state(), LineState::down);
  EXPECT_EQ(trunk_->reason(), "SIP registration failed: 403 Forbidden");
  for (auto* l : trunk_->channels()) {
    EXPECT_EQ(l->state(), LineState::down);
    EXPECT_EQ(l->reason(), "SIP registration failed: 403 Forbidden");
    EXPECT_FALSE(l->dial("202").ok());
  }
  // Retry-After: 1 — not the 5 s backoff.
  Sipp accept(dir_.path(), "registrar_ok.xml", port, {});
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_event(LineEvent::Type::up, 4s)) << types() << accept.log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_EQ(trunk_->state(), LineState::idle);
  EXPECT_EQ(trunk_->reason(), "");
  EXPECT_EQ(trunk_->status().registration, "registered");
}

TEST_F(SipTrunkTest, EmptyLocalIpIsTheAddressRoutingToTheRegistrar) {
  const uint16_t port = free_port();
  Sipp registrar(dir_.path(), "registrar_ok.xml", port, {});
  auto o = options(port);
  o.local_ip.clear();
  o.register_expires_s = 60;
  make(o);
  ASSERT_TRUE(wait_event(LineEvent::Type::up)) << trunk_->reason() << registrar.log();
  EXPECT_EQ(trunk_->status().contact, "sip:201@127.0.0.1:" + std::to_string(o.local_port))
      << trunk_->status().contact;
}

// sipp has no TLS here: openssl s_server stands in for the registrar's TLS side and shows what arrived.
TEST_F(SipTrunkTest, TlsVerifiesTheRegistrarCertificate) {
  auto make_cert = [&](const std::string& name) {
    const std::string cmd =
        "cd " + dir_.path() +
        " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + name +
        "-key.pem -out " + name +
        "-cert.pem -subj /CN=registrar -addext subjectAltName=IP:127.0.0.1 -days 1 >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
  };
  ASSERT_TRUE(make_cert("good"));
  ASSERT_TRUE(make_cert("other"));
  const uint16_t port = free_port();
  Child server(dir_.path(),
               {"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
                "good-cert.pem", "-key", "good-key.pem", "-quiet"},
               dir_.file("s_server.log"));
  std::this_thread::sleep_for(300ms);
  // A CA that did not sign the registrar's certificate: no REGISTER leaves the box.
  auto o = options(port);
  o.transport = osvi::hal::SipTransport::tls;
  o.register_expires_s = 60;
  o.tls_ca_file = dir_.file("other-cert.pem");
  make(o);
  ASSERT_TRUE(pump_until([&] { return trunk_->settled(); }, 10s)) << server.log();
  EXPECT_EQ(trunk_->state(), LineState::down);
  EXPECT_EQ(trunk_->reason().rfind("registrar unreachable: ", 0), 0u) << trunk_->reason();
  EXPECT_EQ(server.log().find("REGISTER sip:"), std::string::npos) << server.log();
  trunk_.reset();
  // The right CA: the REGISTER arrives over TLS.
  o.tls_ca_file = dir_.file("good-cert.pem");
  o.local_port = free_port();
  make(o);
  ASSERT_TRUE(pump_until(
      [&] {
        return server.log().find("REGISTER sip:127.0.0.1:" + std::to_string(port) + ";transport=tls") !=
               std::string::npos;
      },
      10s))
      << server.log();
  EXPECT_NE(server.log().find("Contact: <sip:201@127.0.0.1:"), std::string::npos) << server.log();
}

TEST_F(SipTrunkTest, RegistersOverTcp) {
  const uint16_t port = free_port();
  Sipp registrar(dir_.path(), "registrar_twice.xml", port, {"-t", "t1"});
  std::this_thread::sleep_for(200ms);
  auto o = options(port);
  o.transport = osvi::hal::SipTransport::tcp;
  o.register_expires_s = 60;
  make(o);
  ASSERT_TRUE(wait_event(LineEvent::Type::up)) << trunk_->reason() << registrar.log();
  EXPECT_NE(trunk_->status().contact.find(";transport=tcp"), std::string::npos) << trunk_->status().contact;
  trunk_.reset();  // the un-REGISTER over the same connection completes the scenario
  for (int i = 0; i < 100 && registrar.poll_exit() < 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(registrar.poll_exit(), 0) << registrar.log();
}

TEST_F(SipTrunkTest, UnreachableRegistrarOverTcpIsAReason) {
  auto o = options(free_port());  // nothing listens there
  o.transport = osvi::hal::SipTransport::tcp;
  o.register_expires_s = 60;
  make(o);
  ASSERT_TRUE(pump_until([&] { return trunk_->settled(); }));
  EXPECT_EQ(trunk_->state(), LineState::down);
  EXPECT_EQ(trunk_->reason().rfind("registrar unreachable: ", 0), 0u) << trunk_->reason();
}

TEST_F(SipTrunkTest, InboundCallAnsweredWithInfoDtmfAndFarEndBye) {
  const uint16_t port = free_port();
  auto o = options(port);
  const uint16_t trunk_port = o.local_port;
  bring_up(o);
  Sipp caller(dir_.path(), "uac_inbound.xml", port,
              {"127.0.0.1:" + std::to_string(trunk_port), "-s", "201", "-key", "farport",
               std::to_string(free_port())});
  ASSERT_TRUE(wait_event(LineEvent::Type::incoming)) << caller.log();
  EXPECT_EQ(find(LineEvent::Type::incoming)->number, "+4930222");  // P-Asserted-Identity over From
  osvi::hal::Line* ch = line_of(LineEvent::Type::incoming);
  EXPECT_EQ(ch->id(), "pbx.1");
  EXPECT_EQ(ch->state(), LineState::ringing);
  EXPECT_EQ(trunk_->state(), LineState::active);
  ASSERT_TRUE(ch->answer().ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::answered)) << caller.log();
  EXPECT_EQ(ch->state(), LineState::active);
  // The media: PCMU (our preference among PCMA/PCMU offered), 8 kHz, telephone-event 101.
  ASSERT_NE(find(LineEvent::Type::audio), nullptr);
  auto audio = ch->audio();
  EXPECT_EQ(audio.kind, osvi::hal::AudioEndpoint::Kind::rtp);
  EXPECT_TRUE(audio.ready) << audio.error;
  ASSERT_NE(audio.rtp, nullptr);
  EXPECT_EQ(audio.rtp->options().codec, osvi::hal::RtpCodec::pcmu);
  EXPECT_EQ(audio.rtp->options().payload_type, 0);
  EXPECT_EQ(audio.rtp->options().dtmf_payload_type, 101);
  EXPECT_EQ(audio.sample_rate, 8000u);
  ASSERT_TRUE(wait_event(LineEvent::Type::dtmf)) << caller.log();
  EXPECT_EQ(find(LineEvent::Type::dtmf)->digit, '5');
  ASSERT_TRUE(wait_event(LineEvent::Type::remote_hangup)) << caller.log();
  EXPECT_EQ(ch->state(), LineState::idle);
  EXPECT_FALSE(ch->audio().ready);
  ASSERT_TRUE(wait_sipp(caller)) << caller.log();
  EXPECT_EQ(caller.poll_exit(), 0) << caller.log();
  EXPECT_EQ(trunk_->state(), LineState::idle);
}

TEST_F(SipTrunkTest, CallerCancelsWhileRinging) {
  const uint16_t port = free_port();
  auto o = options(port);
  const std::string target = "127.0.0.1:" + std::to_string(o.local_port);
  bring_up(o);
  Sipp caller(dir_.path(), "uac_cancel.xml", port,
              {target, "-s", "201", "-key", "farport", std::to_string(free_port())});
  ASSERT_TRUE(wait_event(LineEvent::Type::incoming)) << caller.log();
  EXPECT_EQ(find(LineEvent::Type::incoming)->number, "+4930444");
  ASSERT_TRUE(wait_event(LineEvent::Type::remote_hangup)) << types() << caller.log();
  EXPECT_EQ(find(LineEvent::Type::remote_hangup)->reason, "the caller hung up before the answer");
  osvi::hal::Line* ch = line_of(LineEvent::Type::incoming);
  EXPECT_EQ(ch->state(), LineState::idle);
  EXPECT_FALSE(ch->answer().ok());
  ASSERT_TRUE(wait_sipp(caller)) << caller.log();
  EXPECT_EQ(caller.poll_exit(), 0) << caller.log();  // 200 to the CANCEL, 487 to the INVITE
}

struct FinalCase {
  int code;
  const char* reason;
  LineEvent::Type type;
  const char* why;
};

TEST_F(SipTrunkTest, OutboundFinalAnswersMapToOutcomes) {
  const std::vector<FinalCase> cases = {
      {486, "Busy Here", LineEvent::Type::busy, "SIP 486 Busy Here"},
      {600, "Busy Everywhere", LineEvent::Type::busy, "SIP 600 Busy Everywhere"},
      {480, "Temporarily Unavailable", LineEvent::Type::no_answer, "SIP 480 Temporarily Unavailable"},
      {408, "Request Timeout", LineEvent::Type::no_answer, "SIP 408 Request Timeout"},
      {503, "Service Unavailable", LineEvent::Type::failed, "SIP 503 Service Unavailable"},
      {404, "Not Found", LineEvent::Type::failed, "SIP 404 Not Found"},
  };
  const uint16_t port = free_port();
  bring_up(options(port));
  osvi::hal::Line* ch = trunk_->channels().front();
  for (const FinalCase& c : cases) {
    events_.clear();
    std::string scenario = osvi::test::read_file(kScenarios + "uas_final.xml");
    scenario.replace(scenario.find("CODE REASON"), 11, std::to_string(c.code) + " " + c.reason);
    const std::string file = dir_.file("final-" + std::to_string(c.code) + ".xml");
    osvi::test::write_file(file, scenario);
    Sipp far(dir_.path(), file, port, {});
    std::this_thread::sleep_for(100ms);  // sipp binds its port
    ASSERT_TRUE(ch->dial("+4930123456").ok());
    EXPECT_EQ(ch->state(), LineState::dialing);
    ASSERT_TRUE(wait_event(c.type)) << c.code << ": " << types() << far.log();
    EXPECT_EQ(find(c.type)->reason, c.why);
    EXPECT_EQ(find(c.type)->number, "+4930123456");
    EXPECT_EQ(ch->state(), LineState::idle);
    ASSERT_TRUE(wait_sipp(far)) << far.log();
    EXPECT_EQ(far.poll_exit(), 0) << c.code << far.log();
  }
}

TEST_F(SipTrunkTest, EarlyMediaThenAnswerThenReinviteThenFarEndBye) {
  const uint16_t port = free_port();
  bring_up(options(port));
  Sipp far(dir_.path(), "uas_early_media.xml", port, {"-key", "farport", std::to_string(free_port())});
  std::this_thread::sleep_for(100ms);
  osvi::hal::Line* ch = trunk_->channels().front();
  ASSERT_TRUE(ch->dial("201").ok());
  // 183 with SDP: the stream exists (ready) before the answer, for the call-progress detector.
  ASSERT_TRUE(wait_event(LineEvent::Type::audio)) << types() << far.log();
  EXPECT_EQ(find(LineEvent::Type::answered), nullptr);
  EXPECT_EQ(ch->state(), LineState::alerting);
  auto audio = ch->audio();
  EXPECT_TRUE(audio.ready);
  ASSERT_NE(audio.rtp, nullptr);
  EXPECT_EQ(audio.rtp->options().codec, osvi::hal::RtpCodec::pcma);  // the only one it has
  ASSERT_TRUE(wait_event(LineEvent::Type::answered)) << far.log();
  EXPECT_EQ(ch->audio().rtp, audio.rtp);  // the same stream carries on
  ASSERT_TRUE(wait_event(LineEvent::Type::remote_hangup)) << types() << far.log();
  EXPECT_EQ(ch->state(), LineState::idle);
  ASSERT_TRUE(wait_sipp(far)) << far.log();
  EXPECT_EQ(far.poll_exit(), 0) << far.log();  // our 200 to the re-INVITE and to the BYE arrived
}

TEST_F(SipTrunkTest, NoAnswerWithinRingTimeoutCancels) {
  const uint16_t port = free_port();
  auto o = options(port);
  o.ring_timeout_s = 1;
  bring_up(o);
  Sipp far(dir_.path(), "uas_noanswer.xml", port, {});
  std::this_thread::sleep_for(100ms);
  osvi::hal::Line* ch = trunk_->channels().front();
  ASSERT_TRUE(ch->dial("*97").ok());
  ASSERT_TRUE(pump_until([&] { return ch->state() == LineState::alerting; })) << far.log();
  ASSERT_TRUE(wait_event(LineEvent::Type::no_answer, 4s)) << types() << far.log();
  EXPECT_EQ(find(LineEvent::Type::no_answer)->reason, "no answer within 1 s (CANCEL sent)");
  EXPECT_EQ(ch->state(), LineState::idle);
  ASSERT_TRUE(wait_sipp(far)) << far.log();
  EXPECT_EQ(far.poll_exit(), 0) << far.log();  // the CANCEL came
}

TEST_F(SipTrunkTest, BlindTransferByRefer) {
  const uint16_t port = free_port();
  bring_up(options(port));
  Sipp far(dir_.path(), "uas_refer.xml", port, {"-key", "farport", std::to_string(free_port())});
  std::this_thread::sleep_for(100ms);
  osvi::hal::Line* ch = trunk_->channels().front();
  ASSERT_TRUE(ch->dial("201").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::answered)) << far.log();
  EXPECT_FALSE(ch->transfer_blind("not a number").ok());
  ASSERT_TRUE(ch->transfer_blind("+4930999").ok());
  EXPECT_FALSE(ch->transfer_blind("+4930999").ok());  // one at a time
  ASSERT_TRUE(wait_event(LineEvent::Type::transferred)) << types() << far.log();
  EXPECT_EQ(find(LineEvent::Type::transferred)->number, "+4930999");
  EXPECT_EQ(ch->state(), LineState::idle);
  ASSERT_TRUE(wait_sipp(far)) << far.log();
  EXPECT_EQ(far.poll_exit(), 0) << far.log();  // NOTIFY answered, BYE received
}

TEST_F(SipTrunkTest, DtmfGoesAsSipInfoWithoutTelephoneEvent) {
  const uint16_t port = free_port();
  bring_up(options(port));
  Sipp far(dir_.path(), "uas_info_dtmf.xml", port, {"-key", "farport", std::to_string(free_port())});
  std::this_thread::sleep_for(100ms);
  osvi::hal::Line* ch = trunk_->channels().front();
  EXPECT_FALSE(ch->send_dtmf("5").ok());  // no call yet
  ASSERT_TRUE(ch->dial("201").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::answered)) << far.log();
  ASSERT_NE(ch->audio().rtp, nullptr);
  EXPECT_EQ(ch->audio().rtp->options().dtmf_payload_type, 0);  // the answer had no telephone-event
  EXPECT_FALSE(ch->send_dtmf("5x").ok());
  ASSERT_TRUE(ch->send_dtmf("5#").ok());
  // Both INFOs answered before the BYE: the scenario checks their bodies and order.
  pump_until([] { return false; }, 500ms);
  ASSERT_TRUE(ch->hangup().ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::hung_up)) << types();
  ASSERT_TRUE(wait_sipp(far)) << far.log();
  EXPECT_EQ(far.poll_exit(), 0) << far.log();
}

TEST_F(SipTrunkTest, HangupOfOurOwnCall) {
  const uint16_t port = free_port();
  bring_up(options(port));
  Sipp far(dir_.path(), "uas_refer.xml", port, {"-key", "farport", std::to_string(free_port())});
  std::this_thread::sleep_for(100ms);
  osvi::hal::Line* ch = trunk_->channels().front();
  ASSERT_TRUE(ch->dial("201").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::answered)) << far.log();
  ASSERT_TRUE(ch->hangup().ok());
  EXPECT_EQ(ch->state(), LineState::ending);
  ASSERT_TRUE(wait_event(LineEvent::Type::hung_up)) << types();
  EXPECT_EQ(ch->state(), LineState::idle);
  EXPECT_FALSE(ch->hangup().ok());
}

TEST_F(SipTrunkTest, MalformedMessagesNeitherCrashNorWedge) {
  const uint16_t port = free_port();
  auto o = options(port);
  const uint16_t trunk_port = o.local_port;
  bring_up(o);
  Sipp peer(dir_.path(), "uac_malformed.xml", port, {"127.0.0.1:" + std::to_string(trunk_port), "-s", "201"});
  ASSERT_TRUE(wait_sipp(peer)) << peer.log();
  EXPECT_EQ(peer.poll_exit(), 0) << peer.log();  // the OPTIONS after the garbage was answered
  EXPECT_EQ(trunk_->state(), LineState::idle);
  EXPECT_TRUE(events_.empty()) << types();
}

TEST_F(SipTrunkTest, TwoTrunksShareTheSipThread) {
  const uint16_t port = free_port();
  auto o = options(port);
  o.id = "a";
  bring_up(o);
  auto o2 = options(port);
  o2.id = "b";
  auto second = SipTrunk::create(o2, clock_);
  ASSERT_TRUE(second.ok()) << second.error().message;
  ASSERT_TRUE((*second)->start().ok());
  // The first trunk still answers while the second one comes and goes.
  second->reset();
  Sipp peer(dir_.path(), "uac_malformed.xml", port,
            {"127.0.0.1:" + std::to_string(o.local_port), "-s", "201"});
  ASSERT_TRUE(wait_sipp(peer)) << peer.log();
  EXPECT_EQ(peer.poll_exit(), 0) << peer.log();
}

TEST_F(SipTrunkTest, KeepAliveIsAnOptionsOverUdp) {
  const uint16_t port = free_port();
  auto o = options(port);
  o.register_expires_s = 60;
  o.keepalive_s = 2;
  {
    Sipp registrar(dir_.path(), "registrar_ok.xml", port, {});
    make(o);
    ASSERT_TRUE(wait_event(LineEvent::Type::up)) << trunk_->reason() << registrar.log();
    ASSERT_TRUE(wait_sipp(registrar)) << registrar.log();
  }
  Sipp options_peer(dir_.path(), "options_answer.xml", port, {});
  ASSERT_TRUE(wait_sipp(options_peer, 4s)) << options_peer.log();
  EXPECT_EQ(options_peer.poll_exit(), 0) << options_peer.log();
  EXPECT_EQ(trunk_->state(), LineState::idle);
}

TEST_F(SipTrunkTest, IncomingCallWhenEveryChannelIsTakenIsBusy) {
  const uint16_t port = free_port();
  auto o = options(port);
  o.max_calls = 1;
  const std::string target = "127.0.0.1:" + std::to_string(o.local_port);
  bring_up(o);
  Sipp first(dir_.path(), "uac_inbound.xml", port,
             {target, "-s", "201", "-key", "farport", std::to_string(free_port())});
  ASSERT_TRUE(wait_event(LineEvent::Type::incoming)) << first.log();
  const uint16_t port2 = free_port();
  Sipp second(dir_.path(), "uac_busy.xml", port2,
              {target, "-s", "201", "-key", "farport", std::to_string(free_port())});
  ASSERT_TRUE(wait_sipp(second)) << second.log();
  EXPECT_EQ(second.poll_exit(), 0) << second.log();  // 486 Busy Here
  // Declining the ringing call (603) frees the channel.
  osvi::hal::Line* ch = trunk_->channels().front();
  ASSERT_TRUE(ch->hangup().ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::hung_up)) << types();
  EXPECT_EQ(ch->state(), LineState::idle);
}

TEST_F(SipTrunkTest, OutboundProxyIsALooseRoute) {
  const uint16_t port = free_port();
  auto o = options(0);
  o.registrar = "192.0.2.1:5070";  // never reached: every request goes to the proxy
  o.outbound_proxy = "127.0.0.1:" + std::to_string(port);
  bring_up(o);
  std::string scenario = osvi::test::read_file(kScenarios + "uas_final.xml");
  scenario.replace(scenario.find("CODE REASON"), 11, "486 Busy Here");
  scenario.replace(
      scenario.find("<recv request=\"INVITE\" />"), 27,
      "<recv request=\"INVITE\"><action>"
      "<ereg regexp=\"^sip:201@192\\.0\\.2\\.1:5070\" search_in=\"hdr\" header=\"To:\" check_it=\"false\" "
      "assign_to=\"unused\" />"
      "<ereg regexp=\"127\\.0\\.0\\.1:[0-9]+;lr\" search_in=\"hdr\" header=\"Route:\" check_it=\"true\" "
      "assign_to=\"route\" /></action></recv><Reference variables=\"unused,route\" />");
  const std::string file = dir_.file("proxy.xml");
  osvi::test::write_file(file, scenario);
  Sipp proxy(dir_.path(), file, port, {});
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(trunk_->channels().front()->dial("202").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::busy)) << types() << proxy.log();
  ASSERT_TRUE(wait_sipp(proxy)) << proxy.log();
  EXPECT_EQ(proxy.poll_exit(), 0) << proxy.log();
}

TEST_F(SipTrunkTest, AttendedTransferConsultsThenRefersWithReplaces) {
  const uint16_t port = free_port();
  bring_up(options(port));
  Sipp far(dir_.path(), "uas_attended.xml", port,
           {"-m", "2", "-key", "farport", std::to_string(free_port())});
  std::this_thread::sleep_for(100ms);
  osvi::hal::Line* ch = trunk_->channels().front();
  ASSERT_TRUE(ch->dial("201").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::answered)) << far.log();
  ASSERT_TRUE(ch->transfer_attended("203").ok());
  EXPECT_FALSE(ch->transfer_blind("203").ok());  // one transfer at a time
  ASSERT_TRUE(wait_event(LineEvent::Type::transferred)) << types() << far.log();
  EXPECT_EQ(find(LineEvent::Type::transferred)->number, "203");
  EXPECT_EQ(ch->state(), LineState::idle);
  // The consultation used no channel of ours.
  EXPECT_EQ(trunk_->channels()[1]->state(), LineState::idle);
  ASSERT_TRUE(wait_sipp(far)) << far.log();
  EXPECT_EQ(far.poll_exit(), 0) << far.log();  // REFER with Replaces, then BYE on both legs
}

TEST_F(SipTrunkTest, AttendedTransferToABusyTargetKeepsTheCall) {
  const uint16_t port = free_port();
  bring_up(options(port));
  Sipp far(dir_.path(), "uas_attended_busy.xml", port,
           {"-m", "2", "-key", "farport", std::to_string(free_port())});
  std::this_thread::sleep_for(100ms);
  osvi::hal::Line* ch = trunk_->channels().front();
  ASSERT_TRUE(ch->dial("201").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::answered)) << far.log();
  ASSERT_TRUE(ch->transfer_attended("203").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::transfer_failed)) << types() << far.log();
  EXPECT_EQ(find(LineEvent::Type::transfer_failed)->reason, "the transfer target answered 486 Busy Here");
  EXPECT_EQ(ch->state(), LineState::active);
  ASSERT_TRUE(ch->hangup().ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::hung_up)) << types();
  ASSERT_TRUE(wait_sipp(far)) << far.log();
  EXPECT_EQ(far.poll_exit(), 0) << far.log();
}

TEST_F(SipTrunkTest, RefusedReferKeepsTheCall) {
  const uint16_t port = free_port();
  bring_up(options(port));
  Sipp far(dir_.path(), "uas_refer_refused.xml", port, {"-key", "farport", std::to_string(free_port())});
  std::this_thread::sleep_for(100ms);
  osvi::hal::Line* ch = trunk_->channels().front();
  ASSERT_TRUE(ch->dial("201").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::answered)) << far.log();
  ASSERT_TRUE(ch->transfer_blind("203").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::transfer_failed)) << types() << far.log();
  EXPECT_EQ(find(LineEvent::Type::transfer_failed)->reason, "REFER rejected: 603 Declined");
  EXPECT_EQ(ch->state(), LineState::active);
  ASSERT_TRUE(ch->hangup().ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::hung_up)) << types();
  ASSERT_TRUE(wait_sipp(far)) << far.log();
  EXPECT_EQ(far.poll_exit(), 0) << far.log();
}

TEST_F(SipTrunkTest, DestroyingTheTrunkEndsItsCalls) {
  const uint16_t port = free_port();
  bring_up(options(port));
  Sipp far(dir_.path(), "uas_answer.xml", port, {"-key", "farport", std::to_string(free_port())});
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(trunk_->channels().front()->dial("201").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::answered)) << far.log();
  const auto t0 = std::chrono::steady_clock::now();
  trunk_.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
  for (int i = 0; i < 200 && far.poll_exit() < 0; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(far.poll_exit(), 0) << far.log();  // our BYE arrived
}

TEST_F(SipTrunkTest, OptionsAreValidated) {
  auto o = options(5060);
  o.max_calls = 0;
  EXPECT_FALSE(SipTrunk::create(o, clock_).ok());
  o = options(5060);
  o.user = "20 1";
  EXPECT_FALSE(SipTrunk::create(o, clock_).ok());
  o = options(5060);
  o.rtp_port_min = 30000;
  o.rtp_port_max = 20000;
  EXPECT_FALSE(SipTrunk::create(o, clock_).ok());
  o = options(5060);
  o.codecs.clear();
  EXPECT_FALSE(SipTrunk::create(o, clock_).ok());
  o = options(5060);
  o.local_ip = "pbx.lan";
  auto bad_ip = SipTrunk::create(o, clock_);
  ASSERT_FALSE(bad_ip.ok());
  EXPECT_EQ(bad_ip.error().message, "line pbx: local_ip must be an IP address of this box, got \"pbx.lan\"");
  o = options(5060);
  o.transport = osvi::hal::SipTransport::tls;
  o.tls_ca_file = dir_.file("missing.pem");
  EXPECT_FALSE(SipTrunk::create(o, clock_).ok());
  o = options(5060);
  EXPECT_TRUE(SipTrunk::create(o, clock_).ok());
}

TEST(SipDialable, NumbersAndExtensions) {
  using osvi::hal::is_sip_dialable;
  EXPECT_TRUE(is_sip_dialable("+4930123456"));
  EXPECT_TRUE(is_sip_dialable("201"));
  EXPECT_TRUE(is_sip_dialable("*97"));
  EXPECT_TRUE(is_sip_dialable("#31#"));
  EXPECT_FALSE(is_sip_dialable(""));
  EXPECT_FALSE(is_sip_dialable("+1"));
  EXPECT_FALSE(is_sip_dialable("+49301234567890123"));
  EXPECT_FALSE(is_sip_dialable("1234567890123456"));
  EXPECT_FALSE(is_sip_dialable("20a"));
  EXPECT_FALSE(is_sip_dialable("201@evil"));
  EXPECT_FALSE(is_sip_dialable("+49 30"));
}

}  // namespace
