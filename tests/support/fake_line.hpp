// FakeLine: a scripted hal::Line for call-engine unit tests — records every action, answers with the
// configured results, and hands the test the events to deliver.
#pragma once

#include <string>
#include <vector>

#include "osvi/hal/line.hpp"

namespace osvi::test {

class FakeLine final : public hal::Line {
 public:
  explicit FakeLine(std::string id = "fake0") : id_(std::move(id)) {}

  // Every action in order: "dial +4915...", "answer", "hangup", "dtmf 12#", "transfer_blind +49...",
  // "transfer_attended +49...".
  std::vector<std::string> actions;
  // What the next actions return (an error: "not possible now").
  Status dial_result, answer_result, hangup_result, dtmf_result, transfer_result;
  hal::AudioEndpoint endpoint{
      hal::AudioEndpoint::Kind::alsa, "fake", 16000, 1, 20, true, false, {}, {}, false, {}, {}};

  // Delivers an event to the handler set with set_event_handler() (as the loop would).
  void deliver(const hal::LineEvent& e) const { emit(e); }
  bool did(const std::string& action) const;

  const std::string& id() const override { return id_; }
  std::string_view type() const override { return "fake"; }
  hal::LineState state() const override { return hal::LineState::idle; }
  std::string reason() const override { return {}; }
  bool settled() const override { return true; }
  hal::AudioEndpoint audio() const override { return endpoint; }
  Status start() override { return {}; }
  Status dial(std::string_view e164) override;
  Status answer() override;
  Status hangup() override;
  Status send_dtmf(std::string_view digits) override;
  Status transfer_blind(std::string_view e164) override;
  Status transfer_attended(std::string_view e164) override;
  void report_audio_stalled(std::string reason) override { actions.push_back("stalled " + reason); }
  int64_t next_deadline_us() const override { return -1; }
  void handle_timer() override {}

 private:
  std::string id_;
};

}  // namespace osvi::test
