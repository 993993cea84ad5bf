// The campaign dialler on a virtual clock, with a fake calls engine: calling hours in the callee's zone
// (India, US East/West, a DST change), week days, the legal floor, retries, pause, the daily attempts cap,
// do-not-disturb at dial time, per-agent concurrency and restart with attempts left open; callbacks and
// retry_config retries (due time, calling hours, DND, cancel, the cap, the agent, restart).
#include "osvi/campaigns/dialer.hpp"

#include <gtest/gtest.h>
#include <systemd/sd-event.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "osvi/base/event_loop.hpp"
#include "osvi/calls/call_manager.hpp"
#include "osvi/lines/line_manager.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"
#include "upstream_sim.hpp"
#include "virtual_time.hpp"

namespace osvi::daemon {
namespace {

constexpr int64_t kMin = 60'000;
constexpr int64_t kHour = 60 * kMin;
constexpr int64_t kDay = 24 * kHour;

// Unix ms of a UTC date and time.
int64_t utc(int year, int month, int day, int hour, int minute = 0) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

// The calls engine as the dialler sees it: lines, calls that end when the test (or their script) says.
class FakeCalls final : public CallService {
 public:
  struct Placed {
    PlaceCallRequest request;
    int64_t at_ms = 0;
  };
  explicit FakeCalls(test::VirtualTime& vt) : vt_(vt) {}

  size_t lines = 1;
  std::vector<Placed> placed;
  std::vector<std::string> live;  // call ids
  std::deque<Error> fail;         // the next place_call results, before any success
  // When set, a placed call ends `call_ms` later with the status this returns (by phone).
  std::function<std::string(const PlaceCallRequest&)> outcome;
  int64_t call_ms = kMin;

  Result<std::string> place_call(const PlaceCallRequest& r) override {
    if (!fail.empty()) {
      Error e = fail.front();
      fail.pop_front();
      return e;
    }
    EXPECT_TRUE(r.call_id.has_value()) << "the dialler names the call it recorded";
    EXPECT_LT(live.size(), lines) << "dialled without a free line";
    placed.push_back({r, vt_.clock.wall_ms()});
    live.push_back(*r.call_id);
    if (outcome) {
      const std::string status = outcome(r);
      vt_.schedule()(call_ms, [this, id = *r.call_id, status] { end(id, status); });
    }
    return *r.call_id;
  }
  size_t idle_lines() const override { return live.size() < lines ? lines - live.size() : 0; }
  int add_finished_listener(CallFinishedListener l) override {
    listeners_[next_] = std::move(l);
    return next_++;
  }
  void remove_finished_listener(int handle) override { listeners_.erase(handle); }

  // The call's final record to every listener, as CallManager delivers it.
  void end(const std::string& call_id, const std::string& status) {
    auto it = std::find(live.begin(), live.end(), call_id);
    if (it == live.end()) return;
    live.erase(it);
    CallRecord rec;
    rec.call_id = call_id;
    rec.status = status;
    for (const Placed& p : placed) {
      if (p.request.call_id == call_id) {
        rec.agent_uuid = p.request.agent_uuid;
        rec.phone_number = p.request.phone_e164;
        rec.campaign_id = p.request.campaign_id;
        rec.campaign_upload_id = p.request.campaign_upload_id;
        // What the engine stores from the request (call_manager.cpp), which a retry copies.
        rec.person_name = p.request.person_name;
        rec.system_prompt = p.request.system_prompt;
        rec.initial_greeting = p.request.initial_greeting;
        rec.webhook_url = p.request.webhook_url;
        rec.additional_data = p.request.additional_data;
        rec.call_config_overrides = p.request.call_config_overrides;
        rec.data_extraction = p.request.data_extraction;
        rec.retry_count = p.request.retry_count;
      }
    }
    auto copy = listeners_;
    for (auto& [h, l] : copy) l(rec);
  }
  std::vector<int64_t> times_of(const std::string& phone) const {
    std::vector<int64_t> out;
    for (const Placed& p : placed)
      if (p.request.phone_e164 == phone) out.push_back(p.at_ms);
    return out;
  }
  size_t listeners() const { return listeners_.size(); }

 private:
  test::VirtualTime& vt_;
  std::map<int, CallFinishedListener> listeners_;
  int next_ = 0;
};

class DialerTest : public ::testing::Test {
 protected:
  // Opens the store and the dialler at `t0` (UTC ms).
  void start_at(int64_t t0) {
    vt_.clock = ManualClock(t0, 1'000'000);
    auto store = Store::open(StoreOptions{dir_.file("osvid.db"), 2000, true}, vt_.clock);
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    for (const char* uuid : {"agent_a", "agent_b"}) {
      AgentConfig a;
      a.agent_uuid = uuid;
      a.active = true;
      config_.agents.push_back(a);
    }
    config_.site.time_zone = "Asia/Kolkata";
    config_.site.utc_offset_minutes = 330;
  }
  void make_dialer() {
    DialerContext ctx;
    ctx.clock = &vt_.clock;
    ctx.store = store_.get();
    ctx.calls = &calls_;
    ctx.zones = &zones_;
    ctx.timer = vt_.timer_factory();
    auto d = Dialer::create(std::move(ctx));
    ASSERT_TRUE(d.ok()) << d.error().message;
    dialer_ = std::move(*d);
    dialer_->set_config(&config_);
    ASSERT_TRUE(dialer_->start().ok());
  }

  CampaignRow campaign(int64_t id, int start_min = 0, int end_min = 24 * 60) {
    CampaignRow c;
    c.id = id;
    c.name = "Campaign " + std::to_string(id);
    c.agents = {{"agent_a", true}};
    c.window_start_min = start_min;
    c.window_end_min = end_min;
    return c;
  }
  void save(const CampaignRow& c) {
    ASSERT_TRUE(store_->campaigns().upsert(c).ok());
    if (uploads_.count(c.id) == 0) {
      UploadRow u;
      u.campaign_id = c.id;
      u.agent_uuid = c.agents.front().agent_uuid;
      u.file_name = "contacts.csv";
      auto up = store_->campaigns().create_upload(u);
      ASSERT_TRUE(up.ok()) << up.error().message;
      uploads_[c.id] = *up;
    }
  }
  // A contact queued now; zone none = the site's.
  void add(int64_t campaign, const std::string& phone, std::optional<std::string> zone = std::nullopt,
           const std::string& agent = "agent_a") {
    ContactInput in;
    in.phone = phone;
    in.person_name = "Person " + phone.substr(phone.size() - 3);
    in.variables_json = R"({"phone_tail":")" + phone.substr(phone.size() - 3) + R"("})";
    in.time_zone = std::move(zone);
    auto r = store_->campaigns().add_contact(campaign, uploads_[campaign], agent, in, true);
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(*r, ContactAdd::added);
  }
  ContactRow contact(int64_t campaign, const std::string& phone) {
    int64_t total = 0;
    auto all = store_->campaigns().contacts(campaign, "", 1, 100, &total);
    EXPECT_TRUE(all.ok());
    if (all.ok()) {
      for (const ContactRow& c : *all)
        if (c.phone == phone) return c;
    }
    ADD_FAILURE() << "no contact " << phone << " in campaign " << campaign;
    return {};
  }
  void advance(int64_t ms) { vt_.advance_ms(ms); }

  // A callback scheduled as analysis does (kind callback), due at `due` (UTC ms).
  int64_t callback(const std::string& phone, int64_t due, std::optional<std::string> zone = std::nullopt,
                   const std::string& agent = "agent_a", const std::string& request_json = "{}") {
    CallbackRow r;
    r.source_call_id = "source-" + std::to_string(++sources_);
    r.agent_uuid = agent;
    r.phone = phone;
    r.time_zone = std::move(zone);
    r.due_at_ms = due;
    r.requested_text = "after six";
    r.request_json = request_json;
    auto id = store_->callbacks().schedule(r);
    EXPECT_TRUE(id.ok()) << id.error().message;
    if (dialer_) dialer_->poke();  // as whoever schedules does
    return id.ok() ? *id : 0;
  }
  CallbackRow row(int64_t id) {
    auto r = store_->callbacks().get(id);
    EXPECT_TRUE(r.ok() && r->has_value());
    return r.ok() && r->has_value() ? **r : CallbackRow{};
  }
  std::vector<CallbackRow> rows(const std::string& kind) {
    CallbacksRepo::Filter f;
    f.kind = kind;
    f.per_page = 100;
    auto page = store_->callbacks().list(f);
    EXPECT_TRUE(page.ok());
    std::vector<CallbackRow> out = page.ok() ? page->rows : std::vector<CallbackRow>{};
    std::reverse(out.begin(), out.end());  // oldest first
    return out;
  }
  // An API call (not the dialler's) on the fake engine, as POST /v1/call places it.
  std::string api_call(const std::string& phone, const std::string& overrides) {
    PlaceCallRequest r;
    r.agent_uuid = "agent_a";
    r.phone_e164 = phone;
    r.person_name = "Asha";
    r.system_prompt = "Be brief.";
    r.initial_greeting = "Hello Asha";
    r.webhook_url = "https://example.com/hook";
    r.additional_data = R"({"plan":"gold"})";
    r.call_config_overrides = overrides;
    r.data_extraction = R"([{"key":"city","description":"the city"}])";
    r.call_id = "0190f000-0000-7000-8000-0000000000" + std::to_string(10 + api_calls_++);
    auto placed = calls_.place_call(r);
    EXPECT_TRUE(placed.ok());
    return *r.call_id;
  }

  test::TempDir dir_;
  test::VirtualTime vt_;
  std::unique_ptr<Store> store_;
  Config config_;
  TimeZones zones_;
  FakeCalls calls_{vt_};
  std::map<int64_t, int64_t> uploads_;
  std::unique_ptr<Dialer> dialer_;
  int sources_ = 0, api_calls_ = 0;
};

// Monday 2 March 2026, 00:00 UTC = 05:30 in India.
TEST_F(DialerTest, IndianContactsWaitForTheirMorning) {
  start_at(utc(2026, 3, 2, 0));
  CampaignRow camp = campaign(1, 9 * 60, 18 * 60);
  camp.max_concurrent_per_agent = 2;
  save(camp);
  add(1, "+919800000001", "Asia/Kolkata");
  add(1, "+919800000002");  // no zone of its own: the site's (Asia/Kolkata)
  calls_.lines = 2;
  make_dialer();
  advance(0);
  EXPECT_TRUE(calls_.placed.empty()) << "05:30 in India is outside 09:00-18:00";
  EXPECT_EQ(contact(1, "+919800000001").next_attempt_at_ms, utc(2026, 3, 2, 3, 30));
  EXPECT_EQ(dialer_->next_wake_ms(), utc(2026, 3, 2, 3, 30));
  advance(3 * kHour + 29 * kMin);
  EXPECT_TRUE(calls_.placed.empty());
  advance(kMin);
  ASSERT_EQ(calls_.placed.size(), 2u);
  EXPECT_EQ(calls_.placed[0].at_ms, utc(2026, 3, 2, 3, 30));
  // What the call carries: the contact, its campaign and upload, its variables.
  const PlaceCallRequest& r = calls_.placed[0].request;
  EXPECT_EQ(r.agent_uuid, "agent_a");
  EXPECT_EQ(r.phone_e164, "+919800000001");
  EXPECT_EQ(r.person_name, "Person 001");
  EXPECT_EQ(r.additional_data, R"({"phone_tail":"001"})");
  EXPECT_EQ(r.campaign_id, 1);
  EXPECT_EQ(r.campaign_upload_id, uploads_[1]);
  EXPECT_EQ(r.source, "campaign");
  const ContactRow c = contact(1, "+919800000001");
  EXPECT_EQ(c.state, "dialing");
  EXPECT_EQ(c.attempts, 1);
  EXPECT_EQ(c.last_call_id, r.call_id) << "the attempt was recorded under the call's id";
}

// site.time_zone is the zone of a contact whose number maps to none: set to New York, a zoneless contact
// waits for 09:00 there, while one zoned in India is called in India's morning.
TEST_F(DialerTest, AZonelessContactIsCalledInTheSitesZone) {
  start_at(utc(2026, 3, 2, 0));  // 05:30 in India, 19:00 (EST) the day before in New York
  config_.site.time_zone = "America/New_York";
  CampaignRow camp = campaign(1, 9 * 60, 18 * 60);
  camp.max_concurrent_per_agent = 2;
  save(camp);
  add(1, "+919800000001", "Asia/Kolkata");
  add(1, "+919800000002");  // no zone of its own: the site's
  calls_.lines = 2;
  make_dialer();
  advance(0);
  EXPECT_TRUE(calls_.placed.empty());
  EXPECT_EQ(contact(1, "+919800000002").next_attempt_at_ms, utc(2026, 3, 2, 14)) << "09:00 EST";
  advance(3 * kHour + 30 * kMin);
  ASSERT_EQ(calls_.placed.size(), 1u);
  EXPECT_EQ(calls_.placed[0].request.phone_e164, "+919800000001");
  advance(10 * kHour + 30 * kMin);
  ASSERT_EQ(calls_.placed.size(), 2u);
  EXPECT_EQ(calls_.placed[1].request.phone_e164, "+919800000002");
  EXPECT_EQ(calls_.placed[1].at_ms, utc(2026, 3, 2, 14));
}

TEST_F(DialerTest, UsEastAndWestAndIndiaEachInTheirOwnHours) {
  start_at(utc(2026, 3, 2, 12));  // 07:00 in New York, 04:00 in Los Angeles, 17:30 in India
  save(campaign(1, 9 * 60, 17 * 60));
  add(1, "+12125550100", "America/New_York");
  add(1, "+12135550100", "America/Los_Angeles");
  add(1, "+919800000001");
  calls_.lines = 3;
  calls_.outcome = [](const PlaceCallRequest&) { return "picked"; };
  make_dialer();
  advance(kDay);
  EXPECT_EQ(calls_.times_of("+12125550100"), std::vector<int64_t>{utc(2026, 3, 2, 14)});
  EXPECT_EQ(calls_.times_of("+12135550100"), std::vector<int64_t>{utc(2026, 3, 2, 17)});
  EXPECT_EQ(calls_.times_of("+919800000001"), std::vector<int64_t>{utc(2026, 3, 3, 3, 30)});
  for (const char* phone : {"+12125550100", "+12135550100", "+919800000001"}) {
    EXPECT_EQ(contact(1, phone).state, "done");
    EXPECT_EQ(contact(1, phone).last_outcome, "picked");
  }
}

// US daylight saving time starts on Sunday 8 March 2026: 09:00 in New York is 14:00 UTC before, 13:00 after.
TEST_F(DialerTest, TheLocalHourHoldsAcrossADstChange) {
  start_at(utc(2026, 3, 6, 0));  // Friday
  CampaignRow c = campaign(1, 9 * 60, 10 * 60);
  c.is_retry_enabled = true;
  c.retry_threshold = 10;
  c.retry_delay_s = 3600;  // an hour after 09:01 is past the window: the next try is the next morning
  save(c);
  add(1, "+12125550100", "America/New_York");
  calls_.outcome = [](const PlaceCallRequest&) { return "not_picked"; };
  make_dialer();
  advance(4 * kDay);
  EXPECT_EQ(calls_.times_of("+12125550100"),
            (std::vector<int64_t>{utc(2026, 3, 6, 14), utc(2026, 3, 7, 14), utc(2026, 3, 8, 13),
                                  utc(2026, 3, 9, 13)}));
  EXPECT_EQ(contact(1, "+12125550100").attempts, 4);
  EXPECT_EQ(contact(1, "+12125550100").state, "queued");
}

TEST_F(DialerTest, WeekDaysSkipTheWeekend) {
  start_at(utc(2026, 3, 7, 0));  // Saturday
  CampaignRow c = campaign(1, 9 * 60, 18 * 60);
  c.days_mask = 0b0111110;  // Monday to Friday
  save(c);
  add(1, "+919800000001");
  make_dialer();
  advance(3 * kDay);
  EXPECT_EQ(calls_.times_of("+919800000001"), std::vector<int64_t>{utc(2026, 3, 9, 3, 30)});  // Monday
}

TEST_F(DialerTest, TheLegalFloorClipsAWiderWindow) {
  start_at(utc(2026, 3, 2, 0));  // 05:30 in India
  CampaignRow wide = campaign(1, 6 * 60, 23 * 60);
  wide.is_retry_enabled = true;
  wide.retry_threshold = 3;
  wide.retry_delay_s = 13 * 3600;  // 08:01 + 13 h = 21:01, past the floor's 21:00
  save(wide);
  add(1, "+919800000001");
  // A window that wraps past midnight keeps only its part inside the floor: 20:00-21:00.
  save(campaign(2, 20 * 60, 2 * 60));
  add(2, "+919800000002");
  calls_.lines = 2;
  calls_.outcome = [](const PlaceCallRequest&) { return "not_picked"; };
  make_dialer();
  advance(2 * kDay);
  EXPECT_EQ(calls_.times_of("+919800000001"),
            (std::vector<int64_t>{utc(2026, 3, 2, 2, 30), utc(2026, 3, 3, 2, 30)}))
      << "08:00 India, not 06:00; the retry due at 21:01 waits for the next 08:00";
  EXPECT_EQ(calls_.times_of("+919800000002"), std::vector<int64_t>{utc(2026, 3, 2, 14, 30)});

  // A narrower floor in configuration narrows every campaign.
  config_.compliance.calling_hours_start_min = 10 * 60;
  config_.compliance.calling_hours_end_min = 19 * 60;
  config_.compliance.calling_hours = "10:00-19:00";
  save(campaign(3, 0, 24 * 60));
  add(3, "+919800000003");
  dialer_->set_config(&config_);
  advance(kDay);  // from 00:00 UTC on the 4th (05:30 India)
  EXPECT_EQ(calls_.times_of("+919800000003"), std::vector<int64_t>{utc(2026, 3, 4, 4, 30)});
}

TEST_F(DialerTest, RetriesFollowDelayThresholdAndOutcomes) {
  const int64_t t0 = utc(2026, 3, 2, 4, 30);  // 10:00 in India
  start_at(t0);
  CampaignRow c = campaign(1);
  c.is_retry_enabled = true;
  c.retry_threshold = 3;
  c.retry_delay_s = 600;
  save(c);
  add(1, "+919800000001");        // busy, not_picked, not_picked: three attempts, then done
  add(1, "+919800000002");        // picked: done at once
  add(1, "+919800000003");        // failed: not a retry outcome
  CampaignRow off = campaign(2);  // retries disabled: one attempt whatever the outcome
  save(off);
  add(2, "+919800000004");
  std::map<std::string, std::deque<std::string>> script = {
      {"+919800000001", {"busy", "not_picked", "not_picked", "not_picked"}},
      {"+919800000002", {"picked"}},
      {"+919800000003", {"failed"}},
      {"+919800000004", {"busy"}}};
  calls_.lines = 4;
  calls_.call_ms = 30'000;
  calls_.outcome = [&](const PlaceCallRequest& r) {
    auto& q = script[r.phone_e164];
    std::string s = q.front();
    q.pop_front();
    return s;
  };
  make_dialer();
  advance(kHour);
  const int64_t gap = 30'000 + 600'000;
  EXPECT_EQ(calls_.times_of("+919800000001"), (std::vector<int64_t>{t0, t0 + gap, t0 + 2 * gap}));
  ContactRow a = contact(1, "+919800000001");
  EXPECT_EQ(a.state, "done");
  EXPECT_EQ(a.attempts, 3);
  EXPECT_EQ(a.last_outcome, "not_picked");
  EXPECT_EQ(calls_.times_of("+919800000002").size(), 1u);
  EXPECT_EQ(contact(1, "+919800000002").last_outcome, "picked");
  EXPECT_EQ(calls_.times_of("+919800000003").size(), 1u);
  EXPECT_EQ(contact(1, "+919800000003").state, "done");
  EXPECT_EQ(contact(1, "+919800000003").last_outcome, "failed");
  EXPECT_EQ(calls_.times_of("+919800000004").size(), 1u);
  EXPECT_EQ(contact(2, "+919800000004").last_outcome, "busy");
  EXPECT_EQ(dialer_->counters().retried, 2);
}

TEST_F(DialerTest, PauseKeepsTheQueueAndResumeDials) {
  const int64_t t0 = utc(2026, 3, 2, 4, 30);
  start_at(t0);
  CampaignRow c = campaign(1);
  c.status = "inactive";
  save(c);
  add(1, "+919800000001");
  add(1, "+919800000002");
  make_dialer();
  advance(kHour);
  EXPECT_TRUE(calls_.placed.empty());
  for (const char* phone : {"+919800000001", "+919800000002"}) {
    const ContactRow r = contact(1, phone);
    EXPECT_EQ(r.state, "queued");
    EXPECT_EQ(r.next_attempt_at_ms, t0) << "a paused campaign's queue is left as it was";
    EXPECT_EQ(r.attempts, 0);
  }
  EXPECT_EQ(dialer_->next_wake_ms(), -1) << "nothing to wake for while paused";

  ASSERT_TRUE(store_->campaigns().set_status(1, "active").ok());
  dialer_->poke();
  advance(0);
  ASSERT_EQ(calls_.placed.size(), 1u);
  EXPECT_EQ(calls_.placed[0].at_ms, t0 + kHour);
  EXPECT_EQ(calls_.placed[0].request.phone_e164, "+919800000001");

  // Paused again mid-call: the call in progress ends normally, the next contact waits.
  ASSERT_TRUE(store_->campaigns().set_status(1, "inactive").ok());
  dialer_->poke();
  calls_.end(*calls_.placed[0].request.call_id, "picked");
  advance(kHour);
  EXPECT_EQ(calls_.placed.size(), 1u);
  EXPECT_EQ(contact(1, "+919800000001").state, "done");
  EXPECT_EQ(contact(1, "+919800000002").state, "queued");
}

TEST_F(DialerTest, TheDailyCapCountsEveryCampaign) {
  const int64_t t0 = utc(2026, 3, 2, 4, 30);
  start_at(t0);
  config_.compliance.max_attempts_per_day = 2;
  for (int64_t id : {1, 2, 3}) {
    save(campaign(id));
    add(id, "+919800000001");
  }
  calls_.lines = 3;
  calls_.outcome = [](const PlaceCallRequest&) { return "picked"; };
  make_dialer();
  advance(0);
  ASSERT_EQ(calls_.placed.size(), 2u) << "two campaigns call the number; the third waits 24 h";
  EXPECT_EQ(calls_.placed[0].request.campaign_id, 1);
  EXPECT_EQ(calls_.placed[1].request.campaign_id, 2);
  EXPECT_EQ(contact(3, "+919800000001").next_attempt_at_ms, t0 + kDay + 1);
  advance(kDay);
  EXPECT_EQ(calls_.placed.size(), 2u);
  advance(1);
  ASSERT_EQ(calls_.placed.size(), 3u);
  EXPECT_EQ(calls_.placed[2].at_ms, t0 + kDay + 1);
  EXPECT_EQ(calls_.placed[2].request.campaign_id, 3);
}

TEST_F(DialerTest, DndAddedMidCampaignStopsTheNextDialAtOnce) {
  const int64_t t0 = utc(2026, 3, 2, 4, 30);
  start_at(t0);
  CampaignRow c = campaign(1);
  c.is_retry_enabled = true;
  c.retry_threshold = 3;
  c.retry_delay_s = 600;
  save(c);
  add(1, "+919800000001");
  add(1, "+919800000002");
  make_dialer();
  advance(0);
  ASSERT_EQ(calls_.placed.size(), 1u);
  // While the first call is live, the second number goes on the agent's list.
  ASSERT_TRUE(
      store_->dnd().add_entry("agent_a", "+919800000002", "asked by email", "api", std::nullopt).ok());
  calls_.end(*calls_.placed[0].request.call_id, "not_picked");
  advance(0);
  EXPECT_EQ(calls_.placed.size(), 1u) << "the listed number is not dialled";
  EXPECT_EQ(contact(1, "+919800000002").state, "dnd");
  EXPECT_EQ(contact(1, "+919800000002").attempts, 0);
  // The first contact's retry is due in 10 minutes; listed meanwhile, it is never called again.
  EXPECT_EQ(contact(1, "+919800000001").state, "queued");
  ASSERT_TRUE(store_->dnd().add_entry("agent_a", "+919800000001", std::nullopt, "api", std::nullopt).ok());
  advance(kHour);
  EXPECT_EQ(calls_.placed.size(), 1u);
  EXPECT_EQ(contact(1, "+919800000001").state, "dnd");
  EXPECT_EQ(dialer_->counters().dnd, 2);
}

TEST_F(DialerTest, ConcurrencyIsPerAgent) {
  const int64_t t0 = utc(2026, 3, 2, 4, 30);
  start_at(t0);
  CampaignRow c = campaign(1);
  c.agents = {{"agent_a", true}, {"agent_b", true}};
  c.max_concurrent_per_agent = 2;
  save(c);
  for (int i = 0; i < 3; ++i) {
    add(1, "+91980000001" + std::to_string(i), std::nullopt, "agent_a");
    add(1, "+91980000002" + std::to_string(i), std::nullopt, "agent_b");
  }
  calls_.lines = 5;
  calls_.outcome = [](const PlaceCallRequest&) { return "picked"; };
  make_dialer();
  advance(0);
  auto count = [&](const std::string& agent) {
    return std::count_if(calls_.live.begin(), calls_.live.end(), [&](const std::string& id) {
      for (const auto& p : calls_.placed)
        if (p.request.call_id == id) return p.request.agent_uuid == agent;
      return false;
    });
  };
  EXPECT_EQ(calls_.placed.size(), 4u) << "five lines, but two calls per agent";
  EXPECT_EQ(count("agent_a"), 2);
  EXPECT_EQ(count("agent_b"), 2);
  advance(kMin);
  EXPECT_EQ(calls_.placed.size(), 6u);
  EXPECT_EQ(count("agent_a"), 1);
  EXPECT_EQ(count("agent_b"), 1);

  // An agent inactive in the campaign, or not an active voice agent in configuration, does not dial.
  CampaignRow c2 = campaign(2);
  c2.agents = {{"agent_a", false}, {"agent_b", true}};
  save(c2);
  add(2, "+919800000031", std::nullopt, "agent_a");
  add(2, "+919800000032", std::nullopt, "agent_b");
  config_.agents[1].active = false;  // agent_b
  dialer_->set_config(&config_);
  advance(kHour);
  EXPECT_EQ(calls_.placed.size(), 6u);
  EXPECT_EQ(contact(2, "+919800000031").state, "queued");
  EXPECT_EQ(contact(2, "+919800000032").state, "queued");
}

TEST_F(DialerTest, BusyLinesRequeueWithoutCountingTheAttempt) {
  const int64_t t0 = utc(2026, 3, 2, 4, 30);
  start_at(t0);
  save(campaign(1));
  add(1, "+919800000001");
  calls_.fail.push_back(make_error("every line is busy", -EBUSY));
  make_dialer();
  advance(0);
  EXPECT_TRUE(calls_.placed.empty());
  ContactRow c = contact(1, "+919800000001");
  EXPECT_EQ(c.state, "queued");
  EXPECT_EQ(c.attempts, 0);
  EXPECT_EQ(c.next_attempt_at_ms, t0 + Dialer::kBusyBackoffMs);
  EXPECT_EQ(dialer_->counters().not_placed, 1);
  advance(Dialer::kBusyBackoffMs);
  ASSERT_EQ(calls_.placed.size(), 1u);
  EXPECT_EQ(calls_.placed[0].at_ms, t0 + Dialer::kBusyBackoffMs);
  EXPECT_EQ(contact(1, "+919800000001").attempts, 1);
  // The not_placed attempt does not count against the daily cap.
  std::optional<int64_t> oldest;
  EXPECT_EQ(*store_->dialer_queue().attempts_since("+919800000001", t0 - kDay, &oldest), 1);
}

TEST_F(DialerTest, AnAgentTheEngineDoesNotKnowIsSkippedAndItsContactsKept) {
  const int64_t t0 = utc(2026, 3, 2, 4, 30);
  start_at(t0);
  CampaignRow c = campaign(1);
  c.agents = {{"agent_a", true}, {"agent_b", true}};
  save(c);
  add(1, "+919800000001", std::nullopt, "agent_a");
  add(1, "+919800000002", std::nullopt, "agent_b");
  calls_.lines = 2;
  calls_.fail.push_back(make_error("the agent is unknown, inactive or not a voice agent", -ENOENT));
  make_dialer();
  advance(0);
  // agent_a's call was refused; agent_b's contact is still called in the same pass.
  ASSERT_EQ(calls_.placed.size(), 1u);
  EXPECT_EQ(calls_.placed[0].request.agent_uuid, "agent_b");
  ContactRow a = contact(1, "+919800000001");
  EXPECT_EQ(a.state, "queued");
  EXPECT_EQ(a.attempts, 0);
  EXPECT_EQ(a.next_attempt_at_ms, t0 + Dialer::kAgentBackoffMs);
  advance(Dialer::kAgentBackoffMs);
  ASSERT_EQ(calls_.placed.size(), 2u);
  EXPECT_EQ(calls_.placed[1].request.agent_uuid, "agent_a");
}

TEST_F(DialerTest, TheDateRangeOpensAndClosesTheCampaign) {
  const int64_t t0 = utc(2026, 3, 2, 4, 30);
  start_at(t0);
  CampaignRow later = campaign(1);
  later.starts_at_ms = t0 + 2 * kHour;
  save(later);
  add(1, "+919800000001");
  CampaignRow over = campaign(2);
  over.starts_at_ms = t0 - 2 * kDay;
  over.ends_at_ms = t0 - kDay;
  save(over);
  add(2, "+919800000002");
  calls_.lines = 2;
  make_dialer();
  advance(0);
  EXPECT_TRUE(calls_.placed.empty());
  EXPECT_EQ(dialer_->next_wake_ms(), t0 + 2 * kHour) << "the timer waits for the campaign's start";
  advance(2 * kHour);
  ASSERT_EQ(calls_.placed.size(), 1u);
  EXPECT_EQ(calls_.placed[0].at_ms, t0 + 2 * kHour);
  EXPECT_EQ(calls_.placed[0].request.campaign_id, 1);
  advance(kDay);
  EXPECT_EQ(calls_.placed.size(), 1u) << "a campaign past its end dials nothing";
  EXPECT_EQ(contact(2, "+919800000002").state, "queued");
}

TEST_F(DialerTest, RestartClosesOpenAttemptsFromTheirCallRecords) {
  const int64_t t0 = utc(2026, 3, 2, 4, 30);
  start_at(t0);
  CampaignRow c = campaign(1);
  c.is_retry_enabled = true;
  c.retry_threshold = 3;
  c.retry_delay_s = 600;
  c.retry_on = {"busy"};
  c.max_concurrent_per_agent = 3;
  save(c);
  add(1, "+919800000001");  // its call ended busy before the crash: retried after the delay
  add(1, "+919800000002");  // answered: done
  add(1, "+919800000003");  // no call record: the line never dialled it
  calls_.lines = 3;
  make_dialer();
  advance(0);
  ASSERT_EQ(calls_.placed.size(), 3u);
  // The daemon dies with three attempts open; the calls engine had written two records.
  dialer_.reset();
  EXPECT_EQ(calls_.listeners(), 0u);
  const std::string id1 = *calls_.placed[0].request.call_id, id2 = *calls_.placed[1].request.call_id,
                    id3 = *calls_.placed[2].request.call_id;
  for (const auto& [id, status] : {std::pair{id1, "busy"}, std::pair{id2, "picked"}}) {
    CallRecord rec;
    rec.call_id = id;
    rec.agent_uuid = "agent_a";
    rec.agent_name = "A";
    rec.phone_number = id == id1 ? "+919800000001" : "+919800000002";
    rec.status = status;
    rec.campaign_id = 1;
    rec.campaign_upload_id = uploads_[1];
    ASSERT_TRUE(store_->calls().insert(rec).ok());
  }
  calls_.live.clear();
  advance(kMin);

  make_dialer();
  EXPECT_EQ(dialer_->counters().recovered, 3);
  EXPECT_TRUE(store_->dialer_queue().open_attempts()->empty());
  ContactRow a = contact(1, "+919800000001");
  EXPECT_EQ(a.state, "queued");
  EXPECT_EQ(a.attempts, 1);
  EXPECT_EQ(a.last_outcome, "busy");
  EXPECT_EQ(a.next_attempt_at_ms, t0 + kMin + 600'000);
  ContactRow b = contact(1, "+919800000002");
  EXPECT_EQ(b.state, "done");
  EXPECT_EQ(b.last_outcome, "picked");
  EXPECT_EQ(b.attempts, 1);

  advance(0);
  // The never-placed contact is dialled again, under a new call id and without counting the lost attempt.
  ASSERT_EQ(calls_.placed.size(), 4u);
  EXPECT_EQ(calls_.placed[3].request.phone_e164, "+919800000003");
  EXPECT_NE(calls_.placed[3].request.call_id, id3);
  EXPECT_EQ(contact(1, "+919800000003").attempts, 1);
  // Nobody else was redialled blindly; the busy one comes back after its delay.
  advance(9 * kMin);
  EXPECT_EQ(calls_.placed.size(), 4u);
  advance(kMin);
  ASSERT_EQ(calls_.placed.size(), 5u);
  EXPECT_EQ(calls_.placed[4].request.phone_e164, "+919800000001");
  EXPECT_EQ(calls_.times_of("+919800000002").size(), 1u);
}

// --- Callbacks and retries ---

// Monday 2 March 2026, 10:00 UTC = 15:30 in India; the callee asked for 18:00 (12:30 UTC).
TEST_F(DialerTest, ACallbackDueAtSixIsDialledThenAndNotBefore) {
  start_at(utc(2026, 3, 2, 10));
  make_dialer();
  const int64_t id =
      callback("+919800000001", utc(2026, 3, 2, 12, 30), "Asia/Kolkata", "agent_a",
               R"({"person_name":"Asha","system_prompt":"Be brief.","initial_greeting":"Hello again",)"
               R"("webhook_url":"https://example.com/h","additional_data":{"plan":"gold"},)"
               R"("call_config_overrides":{"max_call_duration_seconds":120,"enable_callback":false},)"
               R"("data_extraction":[{"key":"city"}],"campaign_id":4,"campaign_upload_id":9})");
  advance(0);
  EXPECT_TRUE(calls_.placed.empty());
  EXPECT_EQ(dialer_->next_wake_ms(), utc(2026, 3, 2, 12, 30)) << "the timer knows the callback";
  advance(2 * kHour + 29 * kMin);
  EXPECT_TRUE(calls_.placed.empty()) << "not before 18:00";
  advance(kMin);
  ASSERT_EQ(calls_.placed.size(), 1u);
  EXPECT_EQ(calls_.placed[0].at_ms, utc(2026, 3, 2, 12, 30));
  const PlaceCallRequest& r = calls_.placed[0].request;
  EXPECT_EQ(r.agent_uuid, "agent_a");
  EXPECT_EQ(r.phone_e164, "+919800000001");
  EXPECT_EQ(r.person_name, "Asha");
  EXPECT_EQ(r.system_prompt, "Be brief.");
  EXPECT_EQ(r.initial_greeting, "Hello again");
  EXPECT_EQ(r.webhook_url, "https://example.com/h");
  EXPECT_EQ(r.additional_data, R"({"plan":"gold"})");
  EXPECT_EQ(r.call_config_overrides, R"({"max_call_duration_seconds":120,"enable_callback":false})");
  EXPECT_EQ(r.max_call_duration_seconds, 120);
  EXPECT_EQ(r.enable_callback, false);
  EXPECT_EQ(r.data_extraction, R"([{"key":"city"}])");
  EXPECT_EQ(r.campaign_id, 4);
  EXPECT_EQ(r.campaign_upload_id, 9);
  EXPECT_EQ(r.retry_count, 0);
  EXPECT_EQ(r.source, "callback");
  CallbackRow open = row(id);
  EXPECT_EQ(open.state, "dialing");
  EXPECT_EQ(open.call_id, r.call_id) << "committed under the call's id before the line dialled";
  EXPECT_EQ(dialer_->counters().callbacks_placed, 1);

  calls_.end(*r.call_id, "picked");
  CallbackRow done = row(id);
  EXPECT_EQ(done.state, "done");
  EXPECT_EQ(done.outcome, "picked");
  advance(kDay);
  EXPECT_EQ(calls_.placed.size(), 1u) << "a done callback is not dialled again";
  EXPECT_TRUE(rows("retry").empty()) << "no retry_config, no retry";
}

// Due at 22:30 in New York (03:30 UTC the next day): past the 08:00-21:00 floor there, so it waits for 08:00
// New York time, although the site is in India (where 08:00 came long before).
TEST_F(DialerTest, ACallbackOutsideCallingHoursWaitsForTheNextAllowedMomentInTheCalleesZone) {
  start_at(utc(2026, 3, 3, 3));
  make_dialer();
  const int64_t id = callback("+12125550100", utc(2026, 3, 3, 3, 30), "America/New_York");
  // No zone of its own: +1 415 maps to Los Angeles, where 21:00 is 05:00 UTC; asked for 18:30 there.
  const int64_t west = callback("+14155550123", utc(2026, 3, 3, 2, 30));
  advance(0);
  ASSERT_EQ(calls_.placed.size(), 1u) << "18:30 in Los Angeles is inside its hours";
  EXPECT_EQ(calls_.placed[0].request.phone_e164, "+14155550123");
  calls_.end(*calls_.placed[0].request.call_id, "picked");
  EXPECT_EQ(row(west).state, "done");
  advance(30 * kMin);
  EXPECT_EQ(calls_.placed.size(), 1u);
  EXPECT_EQ(row(id).due_at_ms, utc(2026, 3, 3, 13)) << "08:00 EST";
  EXPECT_EQ(dialer_->counters().deferred_window, 1);
  EXPECT_EQ(dialer_->next_wake_ms(), utc(2026, 3, 3, 13));
  advance(utc(2026, 3, 3, 13) - utc(2026, 3, 3, 3, 30) - 1);
  EXPECT_EQ(calls_.placed.size(), 1u);
  advance(1);
  ASSERT_EQ(calls_.placed.size(), 2u);
  EXPECT_EQ(calls_.placed[1].at_ms, utc(2026, 3, 3, 13));
  EXPECT_EQ(calls_.placed[1].request.phone_e164, "+12125550100");
}

TEST_F(DialerTest, ACallbackOnTheDndListAtDialTimeIsNotDialled) {
  start_at(utc(2026, 3, 2, 6));  // 11:30 in India
  make_dialer();
  const int64_t id = callback("+919800000001", utc(2026, 3, 2, 7));
  const int64_t other = callback("+919800000002", utc(2026, 3, 2, 7), std::nullopt, "agent_b");
  advance(kMin);
  // Added after the callback was scheduled, for agent_a only.
  ASSERT_TRUE(store_->dnd().add_entry("agent_a", "+919800000001", "asked", "api", std::nullopt).ok());
  advance(kHour);
  ASSERT_EQ(calls_.placed.size(), 1u);
  EXPECT_EQ(calls_.placed[0].request.phone_e164, "+919800000002") << "another agent's list does not apply";
  EXPECT_EQ(row(id).state, "dnd");
  EXPECT_EQ(row(id).outcome, "dnd");
  EXPECT_FALSE(row(id).call_id.has_value());
  EXPECT_EQ(row(other).state, "dialing");
  advance(kDay);
  EXPECT_EQ(calls_.placed.size(), 1u);
}

TEST_F(DialerTest, ACancelledCallbackIsNeverDialled) {
  start_at(utc(2026, 3, 2, 6));
  make_dialer();
  const int64_t id = callback("+919800000001", utc(2026, 3, 2, 7));
  advance(0);
  EXPECT_EQ(dialer_->next_wake_ms(), utc(2026, 3, 2, 7));
  ASSERT_TRUE(store_->callbacks().cancel(id).ok());  // as DELETE /v1/callbacks/{id}: no poke
  advance(2 * kDay);
  EXPECT_TRUE(calls_.placed.empty());
  EXPECT_EQ(row(id).state, "cancelled");
  EXPECT_EQ(store_->callbacks().cancel(id).error().code, -EBUSY);
  EXPECT_EQ(store_->callbacks().cancel(id + 100).error().code, -ENOENT);
}

// retry_config {max_attempts 2, interval 30}: the unanswered API call is retried twice, 30 minutes after
// each end, as the same call (agent, number, person, prompt, greeting, webhook, overrides, extraction).
TEST_F(DialerTest, RetryConfigRetriesAnUnansweredCallUpToMaxAttempts) {
  start_at(utc(2026, 3, 2, 6));
  calls_.outcome = [](const PlaceCallRequest&) { return "not_picked"; };
  make_dialer();
  const std::string overrides = R"({"retry_config":{"enabled":true,"max_attempts":2,"interval_minutes":30}})";
  const std::string first = api_call("+919800000001", overrides);
  advance(kMin);  // the call ends not_picked
  std::vector<CallbackRow> retries = rows("retry");
  ASSERT_EQ(retries.size(), 1u);
  EXPECT_EQ(retries[0].source_call_id, first);
  EXPECT_EQ(retries[0].due_at_ms, utc(2026, 3, 2, 6, 31));
  EXPECT_EQ(retries[0].retry_count, 1);
  EXPECT_EQ(retries[0].state, "scheduled");
  advance(30 * kMin - 1);
  EXPECT_EQ(calls_.placed.size(), 1u);
  advance(1);
  ASSERT_EQ(calls_.placed.size(), 2u);
  const PlaceCallRequest& r = calls_.placed[1].request;
  EXPECT_EQ(r.source, "retry");
  EXPECT_EQ(r.retry_count, 1);
  EXPECT_EQ(r.phone_e164, "+919800000001");
  EXPECT_EQ(r.agent_uuid, "agent_a");
  EXPECT_EQ(r.person_name, "Asha");
  EXPECT_EQ(r.system_prompt, "Be brief.");
  EXPECT_EQ(r.initial_greeting, "Hello Asha");
  EXPECT_EQ(r.webhook_url, "https://example.com/hook");
  EXPECT_EQ(r.additional_data, R"({"plan":"gold"})");
  EXPECT_EQ(r.call_config_overrides, overrides);
  EXPECT_EQ(r.data_extraction, R"([{"key":"city","description":"the city"}])");
  EXPECT_FALSE(r.campaign_id.has_value());
  // The second retry follows the first's end; a third would exceed max_attempts.
  advance(kMin + 30 * kMin);
  ASSERT_EQ(calls_.placed.size(), 3u);
  EXPECT_EQ(calls_.placed[2].at_ms, utc(2026, 3, 2, 7, 2));
  EXPECT_EQ(calls_.placed[2].request.retry_count, 2);
  advance(kDay);
  EXPECT_EQ(calls_.placed.size(), 3u) << "max_attempts 2: two retries, then no more";
  retries = rows("retry");
  ASSERT_EQ(retries.size(), 2u);
  for (const CallbackRow& rr : retries) {
    EXPECT_EQ(rr.state, "done");
    EXPECT_EQ(rr.outcome, "not_picked");
  }
  EXPECT_EQ(retries[1].source_call_id, *calls_.placed[1].request.call_id);
  EXPECT_EQ(dialer_->counters().retries_scheduled, 2);
}

TEST_F(DialerTest, RetryConfigRetriesBusyButNotAnsweredVoicemailFailedOrDisabled) {
  start_at(utc(2026, 3, 2, 6));
  calls_.lines = 6;
  make_dialer();
  const std::string on = R"({"retry_config":{"enabled":true,"max_attempts":1,"interval_minutes":5}})";
  const std::string busy = api_call("+919800000001", on), picked = api_call("+919800000002", on),
                    voicemail = api_call("+919800000003", on), failed = api_call("+919800000004", on),
                    off = api_call("+919800000005", R"({"retry_config":{"enabled":false}})"),
                    none = api_call("+919800000006", R"({"max_call_duration_seconds":60})");
  calls_.end(busy, "busy");
  calls_.end(picked, "picked");
  calls_.end(voicemail, "voicemail");
  calls_.end(failed, "failed");
  calls_.end(off, "not_picked");
  calls_.end(none, "not_picked");
  std::vector<CallbackRow> retries = rows("retry");
  ASSERT_EQ(retries.size(), 1u);
  EXPECT_EQ(retries[0].source_call_id, busy);
  // The same end seen twice (a recovery after the listener) schedules nothing more.
  dialer_->on_call_finished([&] {
    CallRecord rec;
    rec.call_id = busy;
    rec.agent_uuid = "agent_a";
    rec.phone_number = "+919800000001";
    rec.status = "busy";
    rec.call_config_overrides = on;
    return rec;
  }());
  EXPECT_EQ(rows("retry").size(), 1u);
  EXPECT_EQ(dialer_->counters().retries_scheduled, 1);
  // Defaults of a bare retry_config: enabled, 2 retries, 30 minutes.
  const std::optional<RetryConfig> d = retry_config_of(std::string(R"({"retry_config":{}})"));
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->enabled);
  EXPECT_EQ(d->max_attempts, 2);
  EXPECT_EQ(d->interval_minutes, 30);
  EXPECT_FALSE(retry_config_of(std::nullopt).has_value());
}

// Calls to one number in 24 h: a campaign attempt and a callback count together.
TEST_F(DialerTest, TheDailyCapCountsCallbacksAndCampaignCallsTogether) {
  start_at(utc(2026, 3, 2, 4));  // 09:30 in India
  config_.compliance.max_attempts_per_day = 2;
  save(campaign(1));
  add(1, "+919800000001");
  calls_.outcome = [](const PlaceCallRequest&) { return "picked"; };
  make_dialer();
  advance(0);
  ASSERT_EQ(calls_.placed.size(), 1u);  // the campaign's call at 04:00 UTC
  const int64_t first = callback("+919800000001", utc(2026, 3, 2, 5));
  const int64_t second = callback("+919800000001", utc(2026, 3, 2, 6));
  advance(3 * kHour);
  ASSERT_EQ(calls_.placed.size(), 2u);
  EXPECT_EQ(calls_.placed[1].at_ms, utc(2026, 3, 2, 5));
  EXPECT_EQ(row(first).state, "done");
  // Two calls since 04:00: the next may go once the campaign's call is 24 h old.
  EXPECT_EQ(row(second).state, "scheduled");
  EXPECT_EQ(row(second).due_at_ms, utc(2026, 3, 3, 4) + 1);
  EXPECT_EQ(dialer_->counters().deferred_cap, 1);
  advance(utc(2026, 3, 3, 4) + 1 - utc(2026, 3, 2, 7));
  ASSERT_EQ(calls_.placed.size(), 3u);
  EXPECT_EQ(calls_.placed[2].at_ms, utc(2026, 3, 3, 4) + 1);
}

TEST_F(DialerTest, ACallbackWaitsWhileItsAgentIsInactive) {
  start_at(utc(2026, 3, 2, 6));
  config_.agents.clear();
  AgentConfig a;
  a.agent_uuid = "agent_a";
  a.active = false;
  config_.agents.push_back(a);
  make_dialer();
  const int64_t id = callback("+919800000001", utc(2026, 3, 2, 6));
  advance(10 * kMin);
  EXPECT_TRUE(calls_.placed.empty());
  EXPECT_EQ(row(id).state, "scheduled") << "kept for the agent's return";
  EXPECT_EQ(row(id).due_at_ms, utc(2026, 3, 2, 6)) << "its time is not moved while it waits";
  EXPECT_EQ(dialer_->next_wake_ms(), -1) << "nothing to wake for until the agent is back";
  config_.agents[0].active = true;
  dialer_->set_config(&config_);  // a reload pokes
  advance(0);
  ASSERT_EQ(calls_.placed.size(), 1u);
  EXPECT_EQ(calls_.placed[0].at_ms, utc(2026, 3, 2, 6, 10));
  EXPECT_EQ(row(id).state, "dialing");
}

TEST_F(DialerTest, ACallbackTheEngineRefusesIsScheduledAgainWithoutALostCall) {
  start_at(utc(2026, 3, 2, 6));
  make_dialer();
  calls_.fail.push_back(make_error("every line is busy", -EBUSY));
  const int64_t id = callback("+919800000001", utc(2026, 3, 2, 6));
  advance(0);
  EXPECT_TRUE(calls_.placed.empty());
  EXPECT_EQ(row(id).state, "scheduled");
  EXPECT_FALSE(row(id).call_id.has_value());
  EXPECT_EQ(row(id).due_at_ms, utc(2026, 3, 2, 6) + Dialer::kBusyBackoffMs);
  advance(Dialer::kBusyBackoffMs);
  ASSERT_EQ(calls_.placed.size(), 1u);
  calls_.fail.push_back(make_error("on the list", -EPERM));
  const int64_t dnd = callback("+919800000002", utc(2026, 3, 2, 6));
  calls_.lines = 2;
  advance(0);
  EXPECT_EQ(row(dnd).state, "dnd");
}

// Restart: a callback whose call ended (not_picked, with a retry_config) is closed from its record and its
// retry scheduled; one whose call record was never written is scheduled again and dialled under a new id.
TEST_F(DialerTest, RestartClosesOpenCallbacksFromTheirCallRecords) {
  const int64_t t0 = utc(2026, 3, 2, 6);
  start_at(t0);
  calls_.lines = 2;
  make_dialer();
  const std::string overrides = R"({"retry_config":{"max_attempts":1,"interval_minutes":10}})";
  const int64_t ended = callback("+919800000001", t0, std::nullopt, "agent_a",
                                 R"({"person_name":"Ravi","call_config_overrides":)" + overrides + "}");
  const int64_t lost = callback("+919800000002", t0);
  advance(0);
  ASSERT_EQ(calls_.placed.size(), 2u);
  const std::string id1 = *calls_.placed[0].request.call_id, id2 = *calls_.placed[1].request.call_id;
  dialer_.reset();  // the daemon dies; the engine had written one record
  CallRecord rec;
  rec.call_id = id1;
  rec.agent_uuid = "agent_a";
  rec.agent_name = "A";
  rec.phone_number = "+919800000001";
  rec.person_name = "Ravi";
  rec.status = "not_picked";
  rec.call_config_overrides = overrides;
  ASSERT_TRUE(store_->calls().insert(rec).ok());
  calls_.live.clear();
  advance(kMin);

  make_dialer();
  EXPECT_EQ(dialer_->counters().recovered, 2);
  EXPECT_TRUE(store_->callbacks().open_rows()->empty());
  EXPECT_EQ(row(ended).state, "done");
  EXPECT_EQ(row(ended).outcome, "not_picked");
  std::vector<CallbackRow> retries = rows("retry");
  ASSERT_EQ(retries.size(), 1u);
  EXPECT_EQ(retries[0].source_call_id, id1);
  EXPECT_EQ(retries[0].due_at_ms, t0 + kMin + 10 * kMin);
  advance(0);
  ASSERT_EQ(calls_.placed.size(), 3u) << "the never-placed one again, nobody else";
  EXPECT_EQ(calls_.placed[2].request.phone_e164, "+919800000002");
  EXPECT_NE(calls_.placed[2].request.call_id, id2);
  EXPECT_EQ(row(lost).call_id, calls_.placed[2].request.call_id);
  advance(10 * kMin);
  ASSERT_EQ(calls_.placed.size(), 4u);
  EXPECT_EQ(calls_.placed[3].request.phone_e164, "+919800000001");
  EXPECT_EQ(calls_.placed[3].request.person_name, "Ravi");
  EXPECT_EQ(calls_.placed[3].request.retry_count, 1);
}

// A call whose final record committed but whose end the dialler never heard (a crash in between): its
// retry is scheduled at start, from the call's end; a call that has its retry, or is too old, gets none.
TEST_F(DialerTest, RestartSchedulesTheRetryACrashLost) {
  const int64_t t0 = utc(2026, 3, 2, 6);
  start_at(t0);
  const std::string overrides = R"({"retry_config":{"max_attempts":1,"interval_minutes":20}})";
  auto insert = [&](const char* id, const char* status, int64_t created) {
    // Strings built, then moved in: GCC 12's -Wrestrict misfires on assigning these literals here (PR
    // 105329).
    CallRecord rec;
    rec.call_id = std::string(id);
    rec.agent_uuid = std::string("agent_a");
    rec.agent_name = std::string("A");
    rec.phone_number = std::string("+919800000001");
    rec.status = std::string(status);
    rec.call_config_overrides = overrides;
    rec.created_at_ms = created;
    rec.ended_at_ms = created + kMin;
    ASSERT_TRUE(store_->calls().insert(rec).ok());
  };
  insert("0190f000-0000-7000-8000-000000000001", "not_picked", t0 - 10 * kMin);  // owed, due t0 + 11 min
  insert("0190f000-0000-7000-8000-000000000002", "picked", t0 - 10 * kMin);      // answered
  insert("0190f000-0000-7000-8000-000000000003", "busy", t0 - 3 * kDay);         // too old to look at
  make_dialer();
  std::vector<CallbackRow> retries = rows("retry");
  ASSERT_EQ(retries.size(), 1u);
  EXPECT_EQ(retries[0].source_call_id, "0190f000-0000-7000-8000-000000000001");
  EXPECT_EQ(retries[0].due_at_ms, t0 + 11 * kMin);
  EXPECT_EQ(retries[0].retry_count, 1);
  dialer_.reset();
  make_dialer();
  EXPECT_EQ(rows("retry").size(), 1u) << "once";
  advance(11 * kMin);
  ASSERT_EQ(calls_.placed.size(), 1u);
  EXPECT_EQ(calls_.placed[0].request.source, "retry");
}

// Through the real calls engine on a real loop: two simulated lines whose callee is always busy. Every
// contact gets exactly retry_threshold calls, each recorded as an attempt closed with the call's status;
// then a retry row is placed through the same engine and closed with its call's status.
TEST(DialerWithCallManager, EveryContactIsCalledExactlyTheExpectedNumberOfTimes) {
  test::TempDir dir;
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok()) << loop.error().message;
  LoopClock clock(**loop);
  auto opened = Store::open(StoreOptions{dir.file("osvid.db"), 2000, true}, clock);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Store& store = **opened;
  std::vector<EventSource> timers;
  net::SimUpstream up([&](int64_t ms, std::function<void()> fn) {
    auto t = (*loop)->add_timer((*loop)->now_us() + static_cast<uint64_t>(ms) * 1000, std::move(fn));
    ASSERT_TRUE(t.ok());
    timers.push_back(std::move(*t));
  });
  auto parsed = parse_config(
      R"({"lines":[)"
      R"({"id":"sim0","type":"sim","sim":{"outcome":"busy","rings":1,"ring_interval_ms":10}},)"
      R"({"id":"sim1","type":"sim","sim":{"outcome":"busy","rings":1,"ring_interval_ms":10}}],)"
      R"("agents":[{"agent_uuid":"agent_a","name":"Sales","active":true,"greeting":{"text":"Hello."},)"
      R"("stt":{"base_url":"http://sim"},"llm":{"base_url":"http://sim"},"voice":{"base_url":"http://sim"}}]})");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  Config config = std::move(*parsed);
  // Whatever the hour the test runs at: the floor is the whole day.
  config.compliance.calling_hours_start_min = 0;
  config.compliance.calling_hours_end_min = 24 * 60;

  CallContext ctx;
  ctx.loop = loop->get();
  ctx.clock = &clock;
  ctx.store = &store;
  ctx.upstream = &up;
  ctx.audio = config.audio;
  ctx.calls = config.calls;
  ctx.audio_port = [](const AudioPortSetup&, AudioPort::Listener&) -> Result<std::unique_ptr<AudioPort>> {
    return make_error("a busy callee never connects: no audio in this test");
  };
  LineManager lines(**loop, clock);
  CallManager manager(ctx, lines);
  manager.set_config(&config);
  lines.set_event_sink([&](hal::Line& l, const hal::LineEvent& e) { manager.on_line_event(l, e); });
  auto run_until = [&](const std::function<bool()>& done, int ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      if (sd_event_run((*loop)->get(), 10'000) < 0) return false;
    }
    return true;
  };
  Dialer* poked = nullptr;  // as the app does: a line that changes state pokes the dialler
  ASSERT_TRUE(lines
                  .start(config.lines,
                         [&] {
                           if (poked != nullptr) poked->poke();
                         })
                  .ok());
  ASSERT_TRUE(run_until([&] { return lines.all_settled(); }, 5000));

  CampaignRow c;
  c.id = 1;
  c.name = "Busy people";
  c.agents = {{"agent_a", true}};
  c.is_retry_enabled = true;
  c.retry_threshold = 2;
  c.retry_delay_s = 0;
  c.retry_on = {"busy"};
  c.max_concurrent_per_agent = 2;
  ASSERT_TRUE(store.campaigns().upsert(c).ok());
  UploadRow u;
  u.campaign_id = 1;
  u.agent_uuid = "agent_a";
  u.file_name = "contacts.csv";
  auto upload = store.campaigns().create_upload(u);
  ASSERT_TRUE(upload.ok());
  const std::vector<std::string> phones = {"+919800000001", "+919800000002", "+919800000003"};
  for (const std::string& p : phones) {
    ContactInput in;
    in.phone = p;
    ASSERT_TRUE(store.campaigns().add_contact(1, *upload, "agent_a", in, true).ok());
  }

  TimeZones zones;
  DialerContext dctx;
  dctx.clock = &clock;
  dctx.store = &store;
  dctx.calls = &manager;
  dctx.zones = &zones;
  dctx.timer = [&](std::function<void()> fire) { return make_loop_call_timer(**loop, std::move(fire)); };
  auto dialer = Dialer::create(std::move(dctx));
  ASSERT_TRUE(dialer.ok()) << dialer.error().message;
  (*dialer)->set_config(&config);
  poked = dialer->get();
  ASSERT_TRUE((*dialer)->start().ok());

  auto all_done = [&] {
    int64_t total = 0;
    auto done = store.campaigns().contacts(1, "done", 1, 10, &total);
    return done.ok() && total == 3;
  };
  ASSERT_TRUE(run_until(all_done, 10'000)) << "placed " << (*dialer)->counters().placed;
  EXPECT_EQ((*dialer)->counters().placed, 6);
  EXPECT_EQ((*dialer)->counters().retried, 3);
  int64_t total = 0;
  auto contacts = store.campaigns().contacts(1, "", 1, 10, &total);
  ASSERT_TRUE(contacts.ok());
  for (const ContactRow& r : *contacts) {
    EXPECT_EQ(r.attempts, 2) << r.phone;
    EXPECT_EQ(r.last_outcome, "busy") << r.phone;
    ASSERT_TRUE(r.last_call_id.has_value());
    auto rec = store.calls().get(*r.last_call_id);
    ASSERT_TRUE(rec.ok() && rec->has_value()) << "the attempt's call id is the call record's";
    EXPECT_EQ((*rec)->status, "busy");
    EXPECT_EQ((*rec)->campaign_id, 1);
    EXPECT_EQ((*rec)->campaign_upload_id, *upload);
    EXPECT_EQ((*rec)->phone_number, r.phone);
  }
  EXPECT_EQ(*store.calls().count(), 6) << "no call beyond the attempts";
  EXPECT_TRUE(store.dialer_queue().open_attempts()->empty());

  // A retry due now, through the same engine: its call carries the retry count and the overrides; busy
  // again, it is done, and max_attempts 1 is reached (no further retry).
  CallbackRow cb;
  cb.kind = "retry";
  cb.source_call_id = "0190f000-0000-7000-8000-0000000000aa";
  cb.agent_uuid = "agent_a";
  cb.phone = "+919800000009";
  cb.due_at_ms = clock.wall_ms();
  cb.retry_count = 1;
  cb.request_json =
      R"({"person_name":"Ravi","call_config_overrides":{"retry_config":{"max_attempts":1,"interval_minutes":1}}})";
  auto cb_id = store.callbacks().schedule(cb);
  ASSERT_TRUE(cb_id.ok()) << cb_id.error().message;
  (*dialer)->poke();
  auto cb_done = [&] {
    auto r = store.callbacks().get(*cb_id);
    return r.ok() && r->has_value() && (*r)->state == "done";
  };
  ASSERT_TRUE(run_until(cb_done, 10'000));
  const CallbackRow finished = **store.callbacks().get(*cb_id);
  EXPECT_EQ(finished.outcome, "busy");
  ASSERT_TRUE(finished.call_id.has_value());
  auto cb_rec = store.calls().get(*finished.call_id);
  ASSERT_TRUE(cb_rec.ok() && cb_rec->has_value());
  EXPECT_EQ((*cb_rec)->retry_count, 1);
  EXPECT_EQ((*cb_rec)->person_name, "Ravi");
  EXPECT_EQ((*cb_rec)->status, "busy");
  EXPECT_EQ((*cb_rec)->call_config_overrides, R"({"retry_config":{"max_attempts":1,"interval_minutes":1}})");
  CallbacksRepo::Filter retries;
  retries.kind = "retry";
  EXPECT_EQ(store.callbacks().list(retries)->total_count, 1) << "retry_count 1 of max_attempts 1: no more";
  poked = nullptr;
  dialer->reset();
}

}  // namespace
}  // namespace osvi::daemon
