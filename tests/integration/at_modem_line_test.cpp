// AtModemLine against the pty modem simulator: init, calls in both directions, odd modems, the tty vanishing.
#include "osvi/hal/at_modem_line.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "modem_sim.hpp"
#include "osvi/clock.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using osvi::hal::AtModemLine;
using osvi::hal::AtModemOptions;
using osvi::hal::LineEvent;
using osvi::hal::LineState;
using osvi::test::ModemSim;

namespace {

class AtModemLineTest : public ::testing::Test {
 protected:
  AtModemOptions options() {
    AtModemOptions o;
    o.id = "gsm0";
    o.device = dir_.file("modem-at");
    o.command_timeout_ms = 400;
    o.dial_timeout_ms = 1000;
    o.ring_timeout_ms = 5000;
    o.poll_interval_ms = 50;
    o.reopen_min_ms = 50;
    o.reopen_max_ms = 200;
    o.pcm_enable_delay_ms = 100;
    return o;
  }
  void make_line(AtModemOptions o) {
    line_ = std::make_unique<AtModemLine>(std::move(o), clock_);
    line_->set_event_handler([this](const LineEvent& e) { events_.push_back(e); });
    ASSERT_TRUE(line_->start().ok());
  }
  bool pump_until(const std::function<bool()>& done, std::chrono::milliseconds t = 5s) {
    return osvi::test::pump_line(*line_, done, t);
  }
  bool wait_event(LineEvent::Type type, std::chrono::milliseconds t = 5s) {
    return pump_until([&] { return find(type) != nullptr; }, t);
  }
  const LineEvent* find(LineEvent::Type type) const {
    for (const LineEvent& e : events_)
      if (e.type == type) return &e;
    return nullptr;
  }
  void bring_up(AtModemOptions o) {
    make_line(std::move(o));
    ASSERT_TRUE(wait_event(LineEvent::Type::up)) << line_->reason();
    ASSERT_EQ(line_->state(), LineState::idle);
    events_.clear();
  }

  osvi::test::TempDir dir_;
  osvi::SystemClock clock_;
  ModemSim sim_{dir_.file("modem-at")};
  std::unique_ptr<AtModemLine> line_;
  std::vector<LineEvent> events_;
};

TEST_F(AtModemLineTest, InitReadsIdentity) {
  auto o = options();
  o.vendor = osvi::hal::ModemVendor::quectel_ec25;  // what the simulator says it is; its audio is fine
  make_line(o);
  EXPECT_FALSE(line_->settled());
  ASSERT_TRUE(wait_event(LineEvent::Type::up));
  EXPECT_TRUE(line_->settled());
  EXPECT_EQ(line_->state(), LineState::idle);
  EXPECT_EQ(line_->reason(), "");
  auto id = line_->identity();
  EXPECT_EQ(id.imei, ModemSim::imei());
  EXPECT_EQ(id.firmware, "EC25EFAR06A06M4G");
  EXPECT_EQ(id.manufacturer, "Quectel");
  EXPECT_EQ(id.registration, "home");
  EXPECT_EQ(id.own_number, ModemSim::own_number());  // alpha tag "Own, voice" holds a comma
  auto cmds = sim_.commands();
  ASSERT_FALSE(cmds.empty());
  EXPECT_EQ(cmds.front(), "ATE0");
  for (const char* c : {"AT+CMEE=2", "AT+CLIP=1", "AT+CRC=1", "AT+CGSN", "AT+CGMR", "AT+CREG?"})
    EXPECT_EQ(sim_.count(c), 1u) << c;
}

// AT+CNUM (27.007 §7.1) as modules answer it: ERROR, no entries, an empty alpha with type 145 and no "+",
// several numbers (the first wins). The line comes up whatever it says.
TEST_F(AtModemLineTest, OwnNumberFromCnum) {
  struct Case {
    std::string reply, want;
  };
  const std::vector<Case> cases = {
      {"\r\nERROR\r\n", ""},
      {"\r\n+CME ERROR: SIM failure\r\n", ""},
      {ModemSim::ok(), ""},
      {ModemSim::ok({"+CNUM: ,\"919876500001\",145"}), "+919876500001"},
      {ModemSim::ok({"+CNUM: \"\",\"09876500002\",129", "+CNUM: \"Fax\",\"+919876500003\",145,4,4"}),
       "09876500002"},
      {ModemSim::ok({"+CNUM: \"Data\",\"\",129", "+CNUM: \"Voice\",\"+919876500004\",145"}), "+919876500004"},
  };
  for (const Case& c : cases) {
    line_.reset();
    events_.clear();
    sim_.on("AT+CNUM", c.reply);
    make_line(options());
    ASSERT_TRUE(wait_event(LineEvent::Type::up)) << c.reply;
    EXPECT_EQ(line_->identity().own_number, c.want) << c.reply;
    EXPECT_EQ(line_->identity().imei, ModemSim::imei()) << c.reply;  // init went on after AT+CNUM
  }
}

TEST_F(AtModemLineTest, OutboundAnswered) {
  bring_up(options());
  sim_.on("ATD*", [this](const std::string&) {
    sim_.set_calls({"+CLCC: 1,0,3,0,0,\"+919800000002\",145"});
    return ModemSim::ok();
  });
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  EXPECT_EQ(line_->state(), LineState::dialing);
  EXPECT_FALSE(line_->dial("+919800000003").ok());  // one call at a time
  ASSERT_TRUE(pump_until([&] { return line_->state() == LineState::alerting; }));
  sim_.set_calls({"+CLCC: 1,0,0,0,0,\"+919800000002\",145"});
  ASSERT_TRUE(wait_event(LineEvent::Type::answered));
  EXPECT_EQ(line_->state(), LineState::active);
  EXPECT_EQ(sim_.count("ATD+919800000002;"), 1u);

  ASSERT_TRUE(line_->send_dtmf("12#").ok());
  EXPECT_FALSE(line_->send_dtmf("1;ATH").ok());
  ASSERT_TRUE(pump_until([&] { return sim_.count("AT+VTS=") == 3; }));

  ASSERT_TRUE(line_->hangup().ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::hung_up));
  EXPECT_EQ(line_->state(), LineState::idle);
  EXPECT_EQ(sim_.count("AT+CHUP"), 1u);
}

TEST_F(AtModemLineTest, OutboundBusyAsFinalResult) {
  bring_up(options());
  sim_.on("ATD*", "\r\nBUSY\r\n");
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::busy));
  EXPECT_EQ(line_->state(), LineState::idle);
}

TEST_F(AtModemLineTest, OutboundBusyAfterOk) {
  bring_up(options());
  sim_.on("ATD*", [this](const std::string&) {
    sim_.set_calls({"+CLCC: 1,0,2,0,0,\"+919800000002\",145"});
    return ModemSim::ok();
  });
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  ASSERT_TRUE(pump_until([&] { return sim_.count("AT+CLCC") >= 1; }));
  sim_.send("\r\nBUSY\r\n");
  ASSERT_TRUE(wait_event(LineEvent::Type::busy));
}

TEST_F(AtModemLineTest, OutboundNoAnswerFromTheNetwork) {
  bring_up(options());
  sim_.on("ATD*", ModemSim::ok() + "\r\nNO ANSWER\r\n");
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::no_answer));
}

TEST_F(AtModemLineTest, OutboundRingTimeout) {
  auto o = options();
  o.ring_timeout_ms = 300;
  bring_up(o);
  sim_.on("ATD*", [this](const std::string&) {
    sim_.set_calls({"+CLCC: 1,0,3,0,0,\"+919800000002\",145"});
    return ModemSim::ok();
  });
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::no_answer));
  EXPECT_EQ(sim_.count("AT+CHUP"), 1u);
  EXPECT_EQ(line_->state(), LineState::idle);
}

TEST_F(AtModemLineTest, OutboundFailedWithCeerReason) {
  bring_up(options());
  sim_.on("ATD*", "\r\n+CME ERROR: no network service\r\n");
  sim_.on("AT+CEER", ModemSim::ok({"+CEER: No route to destination"}));
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::failed));
  const LineEvent* e = find(LineEvent::Type::failed);
  EXPECT_NE(e->reason.find("no network service"), std::string::npos) << e->reason;
  EXPECT_NE(e->reason.find("No route to destination"), std::string::npos) << e->reason;
}

TEST_F(AtModemLineTest, OutboundNoCarrierBeforeAnswerIsFailed) {
  bring_up(options());
  sim_.on("ATD*", "\r\nNO CARRIER\r\n");
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::failed));
  EXPECT_NE(find(LineEvent::Type::failed)->reason.find("NO CARRIER"), std::string::npos);
}

TEST_F(AtModemLineTest, InboundRingClipAnswerAndRemoteHangup) {
  bring_up(options());
  sim_.send("\r\nRING\r\n\r\n+CLIP: \"+919800000001\",145,,,,0\r\n");
  ASSERT_TRUE(wait_event(LineEvent::Type::incoming));
  EXPECT_EQ(find(LineEvent::Type::incoming)->number, "+919800000001");
  EXPECT_EQ(line_->state(), LineState::ringing);
  sim_.set_calls({"+CLCC: 1,1,4,0,0,\"+919800000001\",145"});
  sim_.on("ATA", [this](const std::string&) {
    sim_.set_calls({"+CLCC: 1,1,0,0,0,\"+919800000001\",145"});
    return ModemSim::ok();
  });
  ASSERT_TRUE(line_->answer().ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::answered));
  EXPECT_EQ(line_->state(), LineState::active);
  sim_.send("\r\n+RXDTMF: 5\r\n");
  ASSERT_TRUE(wait_event(LineEvent::Type::dtmf));
  EXPECT_EQ(find(LineEvent::Type::dtmf)->digit, '5');
  sim_.set_calls({});
  sim_.send("\r\nNO CARRIER\r\n");
  ASSERT_TRUE(wait_event(LineEvent::Type::remote_hangup));
  EXPECT_EQ(line_->state(), LineState::idle);
}

TEST_F(AtModemLineTest, InboundCallerGivesUpNoticedByPolling) {
  bring_up(options());
  sim_.set_calls({"+CLCC: 1,1,4,0,0,\"+919800000001\",145"});
  sim_.send("\r\nRING\r\n\r\n+CLIP: \"+919800000001\",145\r\n");
  ASSERT_TRUE(wait_event(LineEvent::Type::incoming));
  ASSERT_TRUE(pump_until([&] { return sim_.count("AT+CLCC") >= 1; }));
  sim_.set_calls({});
  ASSERT_TRUE(wait_event(LineEvent::Type::remote_hangup));
}

TEST_F(AtModemLineTest, UrcsBetweenCommandAndFinal) {
  sim_.on("AT+CGSN", "\r\n+CREG: 5\r\n\r\n" + ModemSim::imei() + "\r\n\r\n+QIND: SMS DONE\r\n\r\nOK\r\n");
  sim_.on("AT+CGMR", "\r\n+CPIN: READY\r\n\r\n+CGMR: LE11B14SIM7600M22\r\n\r\nOK\r\n");
  bring_up(options());
  EXPECT_EQ(line_->identity().imei, ModemSim::imei());
  EXPECT_EQ(line_->identity().firmware, "LE11B14SIM7600M22");
}

TEST_F(AtModemLineTest, GarbageBytesAndMissingCarriageReturns) {
  sim_.on("AT+CGSN", std::string("\xff\xfe\x00garbage", 10) + "\n" + ModemSim::imei() + "\nOK\n");
  sim_.on("AT+CRC=1", "\r\nOK");  // no terminator at all: taken as complete after a quiet gap
  make_line(options());
  sim_.send(std::string("\x00\x13\xff\xff noise", 10));
  ASSERT_TRUE(wait_event(LineEvent::Type::up));
  EXPECT_EQ(line_->identity().imei, ModemSim::imei());
  EXPECT_GT(line_->garbage_bytes(), 0u);
}

TEST_F(AtModemLineTest, UnknownVendorFinalsDoNotStallTheQueue) {
  auto o = options();
  o.vendor_finals = {"+QERR"};
  sim_.on("AT+CRC=1", "\r\nCOMMAND NOT SUPPORT\r\n");
  sim_.on("AT+CLIP=1", "\r\n+QERR: 1\r\n");
  make_line(o);
  ASSERT_TRUE(wait_event(LineEvent::Type::up, 2s));
  EXPECT_EQ(line_->identity().imei, ModemSim::imei());
}

TEST_F(AtModemLineTest, SlowAnswerHitsTheCommandTimeout) {
  sim_.on("AT+CGMM", "");  // never answers
  make_line(options());
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_event(LineEvent::Type::up));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 350ms);
  EXPECT_EQ(line_->identity().model, "");
  EXPECT_EQ(line_->identity().imei, ModemSim::imei());  // the queue moved on
}

TEST_F(AtModemLineTest, SilentModemIsDownWithAReasonAndRetried) {
  sim_.on("ATE0", "");
  make_line(options());
  ASSERT_TRUE(pump_until([&] { return line_->settled(); }));
  EXPECT_EQ(line_->state(), LineState::down);
  EXPECT_NE(line_->reason().find("does not answer"), std::string::npos) << line_->reason();
  ASSERT_TRUE(pump_until([&] { return sim_.count("ATE0") >= 2; }));
  sim_.on("ATE0", ModemSim::ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::up));
}

TEST_F(AtModemLineTest, AbsentDeviceIsDownWithAReason) {
  auto o = options();
  o.device = dir_.file("nothing-here");
  make_line(o);
  EXPECT_TRUE(line_->settled());
  EXPECT_EQ(line_->state(), LineState::down);
  EXPECT_NE(line_->reason().find("No such file"), std::string::npos) << line_->reason();
}

TEST_F(AtModemLineTest, ModemVanishesMidCallAndComesBack) {
  bring_up(options());
  sim_.on("ATD*", [this](const std::string&) {
    sim_.set_calls({"+CLCC: 1,0,0,0,0,\"+919800000002\",145"});
    return ModemSim::ok();
  });
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::answered));
  sim_.disappear();
  ASSERT_TRUE(wait_event(LineEvent::Type::down));
  const LineEvent* failed = find(LineEvent::Type::failed);
  ASSERT_NE(failed, nullptr);
  EXPECT_NE(failed->reason.find("modem lost"), std::string::npos) << failed->reason;
  EXPECT_EQ(line_->state(), LineState::down);
  EXPECT_NE(line_->reason().find("modem lost"), std::string::npos);
  events_.clear();
  pump_until([] { return false; }, 300ms);  // reopen attempts fail while nothing is there
  EXPECT_EQ(line_->state(), LineState::down);
  sim_.reappear();
  ASSERT_TRUE(wait_event(LineEvent::Type::up));
  EXPECT_EQ(line_->state(), LineState::idle);
  EXPECT_EQ(line_->identity().imei, ModemSim::imei());
}

TEST_F(AtModemLineTest, Ec25FirmwareWithoutAudioIsReported) {
  auto o = options();
  o.vendor = osvi::hal::ModemVendor::quectel_ec25;
  sim_.on("AT+QPCMV=1,2", "\r\nERROR\r\n");
  make_line(o);
  ASSERT_TRUE(wait_event(LineEvent::Type::up));
  EXPECT_NE(line_->reason().find("QPCMV"), std::string::npos) << line_->reason();
  EXPECT_NE(line_->audio().error.find("refused"), std::string::npos);
  EXPECT_EQ(line_->audio().kind, osvi::hal::AudioEndpoint::Kind::alsa);
}

TEST_F(AtModemLineTest, Ec25AudioReadyWhenActive) {
  auto o = options();
  o.vendor = osvi::hal::ModemVendor::quectel_ec25;
  o.audio_device = "plughw:CARD=OsviEC25,DEV=0";
  bring_up(o);
  sim_.on("ATD*", [this](const std::string&) {
    sim_.set_calls({"+CLCC: 1,0,0,0,0,\"+919800000002\",145"});
    return ModemSim::ok();
  });
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::audio));
  auto a = line_->audio();
  EXPECT_TRUE(a.ready);
  EXPECT_EQ(a.device, "plughw:CARD=OsviEC25,DEV=0");
  EXPECT_EQ(a.sample_rate, 8000u);
}

TEST_F(AtModemLineTest, Sim7600PcmRegistrationAroundTheCall) {
  auto o = options();
  o.vendor = osvi::hal::ModemVendor::simcom_sim7600;
  bring_up(o);
  EXPECT_EQ(line_->audio().sample_rate, 16000u);
  EXPECT_EQ(line_->audio().device, "/dev/osvi-sim7600-audio");
  sim_.on("ATD*", [this](const std::string&) {
    sim_.set_calls({"+CLCC: 1,0,3,0,0,\"+919800000002\",145"});
    return ModemSim::ok();
  });
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  ASSERT_TRUE(pump_until([&] { return sim_.count("AT+CLCC") >= 1; }));
  sim_.set_calls({"+CLCC: 1,0,0,0,0,\"+919800000002\",145"});
  sim_.send("\r\nVOICE CALL: BEGIN\r\n");
  ASSERT_TRUE(wait_event(LineEvent::Type::answered));
  EXPECT_EQ(sim_.count("AT+CPCMREG=1"), 0u);  // not at once: the module drops it that early
  ASSERT_TRUE(wait_event(LineEvent::Type::audio));
  EXPECT_EQ(sim_.count("AT+CPCMREG=1"), 1u);
  EXPECT_TRUE(line_->audio().ready);
  EXPECT_EQ(line_->audio().kind, osvi::hal::AudioEndpoint::Kind::tty);

  line_->report_audio_stalled("PCM write blocked for 500 ms");
  events_.clear();
  ASSERT_TRUE(wait_event(LineEvent::Type::audio));
  EXPECT_TRUE(line_->audio().stalled);
  EXPECT_NE(line_->audio().error.find("USB reset"), std::string::npos);

  sim_.set_calls({});
  sim_.send("\r\nVOICE CALL: END: 000004\r\n\r\nNO CARRIER\r\n");
  ASSERT_TRUE(wait_event(LineEvent::Type::remote_hangup));
  ASSERT_TRUE(pump_until([&] { return sim_.count("AT+CPCMREG=0") == 1; }));
}

TEST_F(AtModemLineTest, Sim7600Without16kFallsBackTo8k) {
  auto o = options();
  o.vendor = osvi::hal::ModemVendor::simcom_sim7600;
  sim_.on("AT+CPCMFRM=1", "\r\n+CME ERROR: operation not supported\r\n");
  bring_up(o);
  EXPECT_EQ(line_->audio().sample_rate, 8000u);
}

// The generic profile has no vendor audio: without audio_device nothing can carry a call's voice, and the
// line says so (the calls engine then refuses to use it); the line itself still works for control.
TEST_F(AtModemLineTest, GenericWithoutAudioDeviceSaysAudioIsUnavailable) {
  bring_up(options());
  EXPECT_EQ(line_->audio().kind, osvi::hal::AudioEndpoint::Kind::none);
  EXPECT_EQ(line_->audio().unavailable.rfind("no audio_device configured", 0), 0u)
      << line_->audio().unavailable;
  EXPECT_EQ(line_->reason(), "audio unavailable: " + line_->audio().unavailable);
  sim_.on("ATD*", [this](const std::string&) {
    sim_.set_calls({"+CLCC: 1,0,0,0,0,\"+919800000002\",145"});
    return ModemSim::ok();
  });
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::answered));
  EXPECT_FALSE(line_->audio().ready);
}

// Generic with audio_device: an ALSA PCM name, or a path = a PCM tty; 8 kHz; flowing once the call is active;
// audio_clockless carried to the engine.
TEST_F(AtModemLineTest, GenericAudioDeviceIsAlsaOrTtyAndReadyWhenActive) {
  auto o = options();
  o.audio_device = "plughw:CARD=Bench,DEV=0";
  o.audio_clockless = true;
  {
    AtModemLine alsa(o, clock_);
    EXPECT_EQ(alsa.audio().kind, osvi::hal::AudioEndpoint::Kind::alsa);
    EXPECT_EQ(alsa.audio().device, "plughw:CARD=Bench,DEV=0");
    EXPECT_EQ(alsa.audio().sample_rate, 8000u);
    EXPECT_TRUE(alsa.audio().clockless);
  }
  sim_.enable_audio(dir_.file("modem-audio"), 8000);
  o.audio_device = dir_.file("modem-audio");
  o.audio_clockless = false;
  bring_up(o);
  EXPECT_EQ(line_->audio().kind, osvi::hal::AudioEndpoint::Kind::tty);
  EXPECT_EQ(line_->audio().unavailable, "");
  EXPECT_EQ(line_->reason(), "");
  sim_.ring_incoming("+919800000002");
  ASSERT_TRUE(wait_event(LineEvent::Type::incoming));
  EXPECT_FALSE(line_->audio().ready);
  ASSERT_TRUE(line_->answer().ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::audio));
  EXPECT_TRUE(line_->audio().ready);
  EXPECT_FALSE(line_->audio().clockless);
  EXPECT_EQ(sim_.count("AT+CPCMREG"), 0u);
}

TEST_F(AtModemLineTest, Sim7600MissingAudioTtyIsUnavailable) {
  auto o = options();
  o.vendor = osvi::hal::ModemVendor::simcom_sim7600;
  o.audio_device = dir_.file("no-audio-tty");
  bring_up(o);
  EXPECT_NE(line_->audio().unavailable.find("audio tty " + dir_.file("no-audio-tty") + ": No such file"),
            std::string::npos)
      << line_->audio().unavailable;
  EXPECT_NE(line_->reason().find("audio unavailable"), std::string::npos);
  // The port appearing (a USB re-enumeration) is seen at the next init.
  sim_.enable_audio(dir_.file("no-audio-tty"), 16000);
  sim_.disappear();
  sim_.reappear();
  events_.clear();
  ASSERT_TRUE(wait_event(LineEvent::Type::up, 10s));
  EXPECT_EQ(line_->audio().unavailable, "");
  EXPECT_EQ(line_->reason(), "");
}

TEST_F(AtModemLineTest, AttendedTransferHoldDialEct) {
  bring_up(options());
  sim_.on("ATD+919800000002;", [this](const std::string&) {
    sim_.set_calls({"+CLCC: 1,0,0,0,0,\"+919800000002\",145"});
    return ModemSim::ok();
  });
  sim_.on("ATD+919800000009;", [this](const std::string&) {
    sim_.set_calls({"+CLCC: 1,0,1,0,0,\"+919800000002\",145", "+CLCC: 2,0,0,0,0,\"+919800000009\",145"});
    return ModemSim::ok();
  });
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::answered));
  ASSERT_TRUE(line_->transfer_attended("+919800000009").ok());
  ASSERT_TRUE(wait_event(LineEvent::Type::transferred));
  EXPECT_EQ(find(LineEvent::Type::transferred)->number, "+919800000009");
  EXPECT_EQ(sim_.count("AT+CHLD=2"), 1u);
  EXPECT_EQ(sim_.count("AT+CHLD=4"), 1u);
  EXPECT_EQ(line_->state(), LineState::idle);
}

}  // namespace

namespace {

// POST /v1/lines/{id}/test's hardware side: the probe's commands go through the line's one queue, the answer
// comes from handle_io (never from inside probe()), a refused command is listed, a call refuses the probe,
// and a modem lost mid-probe answers it once with the error.
TEST_F(AtModemLineTest, ProbeAsksThroughTheQueueAndAnswersOnce) {
  sim_.on("AT+CSQ", ModemSim::ok({"+CSQ: 17,3"}));
  sim_.on("AT+CREG?", "\r\nERROR\r\n");
  bring_up(options());
  int answers = 0;
  osvi::Result<osvi::hal::LineProbe> got = osvi::make_error("none");
  ASSERT_TRUE(line_
                  ->probe([&](osvi::Result<osvi::hal::LineProbe> r) {
                    ++answers;
                    got = std::move(r);
                  })
                  .ok());
  EXPECT_EQ(answers, 0);  // later, not from inside probe()
  ASSERT_TRUE(pump_until([&] { return answers > 0; }));
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->manufacturer, "Quectel");
  EXPECT_EQ(got->model, "EC25");
  EXPECT_EQ(got->revision, "EC25EFAR06A06M4G");
  EXPECT_EQ(got->imei, ModemSim::imei());
  EXPECT_EQ(got->rssi, 17);
  EXPECT_EQ(got->ber, 3);
  EXPECT_EQ(got->cs_registration, "");
  EXPECT_EQ(got->eps_registration, "home");
  ASSERT_EQ(got->failures.size(), 1u);
  EXPECT_EQ(got->failures[0], "AT+CREG?: ERROR");

  // A call on the line: refused, nothing sent.
  const size_t csq = sim_.count("AT+CSQ");
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  EXPECT_FALSE(line_->probe([&](osvi::Result<osvi::hal::LineProbe>) { ++answers; }).ok());
  EXPECT_EQ(sim_.count("AT+CSQ"), csq);
  ASSERT_TRUE(line_->hangup().ok());
  ASSERT_TRUE(pump_until([&] { return line_->state() == LineState::idle; }));

  // The modem vanishes with the probe's commands still queued: one answer, an error.
  sim_.on("AT+CGMI", "");  // no answer: the queue waits on it until the tty goes
  answers = 0;
  ASSERT_TRUE(line_
                  ->probe([&](osvi::Result<osvi::hal::LineProbe> r) {
                    ++answers;
                    got = std::move(r);
                  })
                  .ok());
  ASSERT_TRUE(sim_.wait_command("AT+CGMI", 2s, 3));
  sim_.disappear();
  ASSERT_TRUE(pump_until([&] { return answers > 0; }));
  EXPECT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("modem lost"), std::string::npos) << got.error().message;
  pump_until([] { return false; }, 300ms);
  EXPECT_EQ(answers, 1);
  // Down: refused at once.
  EXPECT_FALSE(line_->probe([&](osvi::Result<osvi::hal::LineProbe>) { ++answers; }).ok());
}

}  // namespace
