// SimLine: the scripted remote party in both directions, on a ManualClock.
#include "osvi/hal/sim_line.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "osvi/clock.hpp"

using osvi::hal::LineEvent;
using osvi::hal::LineState;
using osvi::hal::SimLine;
using osvi::hal::SimScript;
using osvi::hal::SimStep;

namespace {

class SimLineTest : public ::testing::Test {
 protected:
  void make(SimScript s) {
    line_ = std::make_unique<SimLine>("sim0", std::move(s), clock_);
    line_->set_event_handler([this](const LineEvent& e) { events_.push_back(e); });
    ASSERT_TRUE(line_->start().ok());
    run_ms(0);
  }
  // Time passes in 10 ms steps; the line acts at its deadlines, as under the daemon's loop.
  void run_ms(int64_t ms) {
    for (int64_t t = 0; t <= ms; t += 10) {
      for (int guard = 0; guard < 100; ++guard) {
        const int64_t d = line_->next_deadline_us();
        if (d < 0 || d > clock_.monotonic_us()) break;
        line_->handle_timer();
      }
      if (t < ms) clock_.advance_ms(10);
    }
  }
  std::vector<LineEvent::Type> types() const {
    std::vector<LineEvent::Type> out;
    for (const LineEvent& e : events_) out.push_back(e.type);
    return out;
  }

  osvi::ManualClock clock_;
  std::unique_ptr<SimLine> line_;
  std::vector<LineEvent> events_;
};

using T = LineEvent::Type;

TEST_F(SimLineTest, UpAtStart) {
  make({});
  EXPECT_TRUE(line_->settled());
  EXPECT_EQ(line_->state(), LineState::idle);
  EXPECT_EQ(types(), (std::vector<T>{T::up}));
}

TEST_F(SimLineTest, AnswersAfterRingsThenPressesDtmfAndHangsUp) {
  SimScript s;
  s.rings = 3;
  s.ring_interval_ms = 100;
  s.steps = {{SimStep::Kind::say, 200, "hello"},
             {SimStep::Kind::dtmf, 0, "42"},
             {SimStep::Kind::silence, 500, {}},
             {SimStep::Kind::hangup, 0, {}}};
  make(s);
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  EXPECT_FALSE(line_->dial("+919800000002").ok());
  run_ms(150);
  EXPECT_EQ(line_->state(), LineState::alerting);
  run_ms(300);
  EXPECT_EQ(line_->state(), LineState::active);
  EXPECT_TRUE(line_->audio().ready);
  EXPECT_TRUE(line_->send_dtmf("1").ok());
  EXPECT_EQ(line_->sent_dtmf(), "1");
  run_ms(2000);
  EXPECT_EQ(types(), (std::vector<T>{T::up, T::answered, T::audio, T::dtmf, T::dtmf, T::remote_hangup}));
  EXPECT_EQ(events_[3].digit, '4');
  EXPECT_EQ(events_[4].digit, '2');
  EXPECT_EQ(line_->state(), LineState::idle);
}

TEST_F(SimLineTest, Busy) {
  SimScript s;
  s.outcome = SimScript::Outcome::busy;
  make(s);
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  run_ms(2000);
  EXPECT_EQ(types().back(), T::busy);
}

TEST_F(SimLineTest, NoAnswer) {
  SimScript s;
  s.outcome = SimScript::Outcome::no_answer;
  s.rings = 2;
  s.ring_interval_ms = 100;
  make(s);
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  run_ms(1000);
  EXPECT_EQ(types().back(), T::no_answer);
  EXPECT_EQ(line_->state(), LineState::idle);
}

TEST_F(SimLineTest, Fail) {
  SimScript s;
  s.outcome = SimScript::Outcome::fail;
  make(s);
  ASSERT_TRUE(line_->dial("+919800000002").ok());
  run_ms(2000);
  EXPECT_EQ(types().back(), T::failed);
  EXPECT_FALSE(events_.back().reason.empty());
}

TEST_F(SimLineTest, ScriptedInboundCallAnsweredAndHungUpByUs) {
  SimScript s;
  s.incoming_after_ms = 500;
  s.caller = "+919800000001";
  make(s);
  run_ms(600);
  ASSERT_EQ(types().back(), T::incoming);
  EXPECT_EQ(events_.back().number, "+919800000001");
  EXPECT_EQ(line_->state(), LineState::ringing);
  ASSERT_TRUE(line_->answer().ok());
  run_ms(10);
  EXPECT_EQ(line_->state(), LineState::active);
  ASSERT_TRUE(line_->hangup().ok());
  run_ms(10);
  EXPECT_EQ(types().back(), T::hung_up);
  EXPECT_EQ(line_->state(), LineState::idle);
}

TEST_F(SimLineTest, UnansweredCallerGivesUp) {
  SimScript s;
  s.max_rings = 3;
  s.ring_interval_ms = 100;
  make(s);
  ASSERT_TRUE(line_->ring("+919800000001").ok());
  run_ms(1000);
  EXPECT_EQ(types().back(), T::remote_hangup);
}

TEST_F(SimLineTest, RejectsBadNumbers) {
  make({});
  EXPECT_FALSE(line_->dial("12345").ok());
  EXPECT_FALSE(line_->answer().ok());
  EXPECT_FALSE(line_->hangup().ok());
}

}  // namespace
