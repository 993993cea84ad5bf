// Call recordings on disk: salvage of a cut Ogg Opus stream, start-up recovery of .part files, and the
// durability work done off the loop (store/recordings.hpp).
#include "osvi/store/recordings.hpp"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.hpp"
#include "osvi/api/api.hpp"
#include "osvi/audio/recording.hpp"
#include "osvi/base/http_on_loop.hpp"
#include "osvi/clock.hpp"
#include "osvi/net/http_server.hpp"
#include "osvi/store/store.hpp"
#include "test_support.hpp"

namespace osvi::daemon {
namespace {

constexpr int64_t kT0 = 1'780'000'000'000;
constexpr const char* kCall = "0190a1b2-c3d4-7e5f-8a9b-000000000001";

// `seconds` of a stereo call (a tone for the caller, another for the agent), as the recorder writes it.
// Without finish() the stream is what a killed daemon leaves: no end-of-stream page.
std::vector<uint8_t> recording(double seconds, bool finish) {
  audio::MemorySink sink(1 << 20);
  auto rec = audio::CallRecorder::create(sink, {.call_id = kCall});
  EXPECT_TRUE(rec.ok());
  const size_t n = rec->frame_samples();
  std::vector<int16_t> caller(n), agent(n);
  const auto frames = static_cast<size_t>(seconds * 16000.0 / static_cast<double>(n));
  for (size_t f = 0; f < frames; ++f) {
    for (size_t i = 0; i < n; ++i) {
      const double t = static_cast<double>(f * n + i) / 16000.0;
      caller[i] = static_cast<int16_t>(6000.0 * std::sin(2.0 * M_PI * 440.0 * t));
      agent[i] = static_cast<int16_t>(6000.0 * std::sin(2.0 * M_PI * 660.0 * t));
    }
    EXPECT_TRUE(rec->push(caller, agent).ok());
  }
  if (finish) {
    EXPECT_TRUE(rec->finish().ok());
  }
  return sink.take();
}

// Offsets of every page ("OggS" at a page boundary) in a well-formed stream.
std::vector<size_t> page_starts(const std::vector<uint8_t>& b) {
  std::vector<size_t> out;
  size_t at = 0;
  while (at + 27 <= b.size()) {
    out.push_back(at);
    size_t body = 0;
    for (size_t i = 0; i < b[at + 26]; ++i) body += b[at + 27 + i];
    at += 27 + b[at + 26] + body;
  }
  return out;
}

std::string bytes_as_string(const std::vector<uint8_t>& b) {
  return std::string(b.begin(), b.end());
}

// opusinfo exits non-zero on any warning (no EOS, holes, bad granules): its status is the validity check.
int opusinfo(const std::string& path, std::string* info) {
  const std::string out = path + ".info";
  const int rc = std::system(("opusinfo '" + path + "' > '" + out + "' 2>&1").c_str());
  *info = test::read_file(out);
  return rc;
}

double playback_seconds(const std::string& info) {
  const std::string key = "Playback length: ";
  const size_t at = info.find(key);
  int minutes = 0;
  double seconds = -1;
  if (at == std::string::npos ||
      std::sscanf(info.c_str() + at + key.size(), "%dm:%lfs", &minutes, &seconds) != 2)
    return -1;
  return minutes * 60 + seconds;
}

// --- salvage (pure) ---

TEST(OggSalvage, ACompleteStreamIsKeptWhole) {
  const auto b = recording(3.0, true);
  auto s = audio::salvage_ogg_opus(b);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_TRUE(s->ended);
  EXPECT_EQ(s->keep_bytes, b.size());
  EXPECT_EQ(s->channels, 2);
  EXPECT_EQ(s->input_rate, 16000);
  EXPECT_EQ(s->duration_ms(), 3000);
}

TEST(OggSalvage, ACutStreamEndsAtItsLastWholePage) {
  const auto b = recording(4.5, false);
  const auto pages = page_starts(b);
  ASSERT_GE(pages.size(), 6u);  // OpusHead, OpusTags, one page per second of audio
  // Cut in the middle of the last page: the prefix ends where that page starts.
  const size_t last = pages.back();
  std::vector<uint8_t> cut(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(last + (b.size() - last) / 2));
  auto s = audio::salvage_ogg_opus(cut);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_FALSE(s->ended);
  EXPECT_EQ(s->keep_bytes, last);
  EXPECT_EQ(s->last_page_offset, pages[pages.size() - 2]);
  EXPECT_GT(s->duration_ms(), 2500);
  EXPECT_LT(s->duration_ms(), 4500);

  // A flipped byte inside a page fails its CRC: the prefix stops before that page.
  std::vector<uint8_t> bad = b;
  bad[pages[4] + 40] ^= 0x5a;
  auto t = audio::salvage_ogg_opus(bad);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->keep_bytes, pages[4]);

  // Marking the last page as the end keeps it a valid page (CRC recomputed) with EOS set.
  std::vector<uint8_t> page(b.begin() + static_cast<std::ptrdiff_t>(s->last_page_offset),
                            b.begin() + static_cast<std::ptrdiff_t>(s->keep_bytes));
  ASSERT_TRUE(audio::mark_ogg_end_of_stream(page).ok());
  EXPECT_EQ(page[5] & 0x04, 0x04);
  std::vector<uint8_t> fixed(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(s->last_page_offset));
  fixed.insert(fixed.end(), page.begin(), page.end());
  auto u = audio::salvage_ogg_opus(fixed);
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_TRUE(u->ended);
  EXPECT_EQ(u->keep_bytes, fixed.size());
}

TEST(OggSalvage, NothingPlayableIsAnError) {
  const auto b = recording(2.5, false);
  const auto pages = page_starts(b);
  ASSERT_GE(pages.size(), 3u);
  // Headers only (the audio page torn), part of OpusHead, nothing, garbage.
  for (size_t n : {pages[2] + 10, size_t{20}, size_t{0}}) {
    auto s = audio::salvage_ogg_opus(std::span(b.data(), n));
    EXPECT_FALSE(s.ok()) << n;
    if (!s.ok()) {
      EXPECT_EQ(s.error().code, -EBADMSG);
    }
  }
  const std::vector<uint8_t> junk(5000, 0x4f);
  EXPECT_FALSE(audio::salvage_ogg_opus(junk).ok());
}

// --- start-up recovery ---

class RecordingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rec_dir_ = dir_.path() + "/recordings";
    ASSERT_EQ(::mkdir(rec_dir_.c_str(), 0750), 0);
  }
  std::unique_ptr<Store> open_store() {
    auto s = Store::open(StoreOptions{dir_.file("osvid.db"), 2000, true}, clock_);
    if (!s) {
      ADD_FAILURE() << s.error().message;
      return nullptr;
    }
    return std::move(*s);
  }
  static CallRecord call(const std::string& id) {
    CallRecord c;
    c.call_id = id;
    c.agent_uuid = "agent_a";
    c.agent_name = "A";
    c.phone_number = "+919876543210";
    c.from_number = "+911140000000";
    c.created_at_ms = kT0;
    return c;
  }
  std::string file(const std::string& name) const { return rec_dir_ + "/" + name; }
  static bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

  test::TempDir dir_;
  std::string rec_dir_;
  ManualClock clock_{kT0};
};

// What a daemon killed 4.5 s into an answered call leaves: an in_progress row and a .part torn mid-page.
// Recovery closes the stream at its last whole page, opus-tools read it, and the API's row points at it.
TEST_F(RecordingsTest, ATruncatedPartBecomesTheCallsRecording) {
  const auto b = recording(4.5, false);
  const auto pages = page_starts(b);
  const size_t cut = pages.back() + (b.size() - pages.back()) / 2;
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->calls().insert(call(kCall)).ok());
    ASSERT_TRUE(store->calls().set_picked(kCall, kT0 + 500).ok());
  }
  test::write_file(file(std::string(kCall) + ".opus.part"), bytes_as_string(b).substr(0, cut));
  clock_.advance_ms(20'000);
  auto store = open_store();  // closes the call (daemon_restart)
  ASSERT_TRUE(store);
  auto done = recover_recordings(store->calls(), rec_dir_);
  ASSERT_TRUE(done.ok()) << done.error().message;
  ASSERT_EQ(done->size(), 1u);
  EXPECT_TRUE((*done)[0].registered) << (*done)[0].note;
  EXPECT_EQ((*done)[0].call_id, kCall);

  const std::string path = file(std::string(kCall) + ".opus");
  EXPECT_FALSE(exists(path + ".part"));
  ASSERT_TRUE(exists(path));
  auto row = store->calls().recording(kCall);
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->path, path);
  EXPECT_EQ((*row)->format, "ogg_opus");
  EXPECT_EQ((*row)->bytes, static_cast<int64_t>(pages.back()));
  EXPECT_EQ(static_cast<int64_t>(test::read_file(path).size()), (*row)->bytes);

  std::string info;
  EXPECT_EQ(opusinfo(path, &info), 0) << info;
  EXPECT_NE(info.find("Channels: 2"), std::string::npos) << info;
  EXPECT_NE(info.find(std::string("CALL_ID=") + kCall), std::string::npos) << info;
  const double secs = playback_seconds(info);
  EXPECT_NEAR(secs * 1000.0, static_cast<double>((*row)->duration_ms), 25.0) << info;
  EXPECT_GT(secs, 2.5) << info;

  // Recovery is done once: a second pass finds nothing to do.
  auto again = recover_recordings(store->calls(), rec_dir_);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
}

// What cannot be used is removed: a .part with no complete page, one of a call that does not exist, one of
// a call that already has its recording. Unrelated files stay.
TEST_F(RecordingsTest, UnusablePartsAreRemoved) {
  const std::string torn = "0190a1b2-c3d4-7e5f-8a9b-000000000002";
  const std::string orphan = "0190a1b2-c3d4-7e5f-8a9b-000000000003";
  const std::string has_one = "0190a1b2-c3d4-7e5f-8a9b-000000000004";
  auto store = open_store();
  ASSERT_TRUE(store);
  for (const std::string& id : {torn, has_one}) {
    CallRecord c = call(id);
    c.status = "picked";
    ASSERT_TRUE(store->calls().insert(c).ok());
  }
  ASSERT_TRUE(store->calls().save_recording(has_one, file(has_one + ".opus"), "ogg_opus", 1000, 10).ok());
  const auto b = recording(2.0, false);
  test::write_file(file(torn + ".opus.part"), bytes_as_string(b).substr(0, 60));  // inside OpusHead's page
  test::write_file(file(orphan + ".opus.part"), bytes_as_string(b));
  test::write_file(file(has_one + ".opus.part"), bytes_as_string(b));
  test::write_file(file("notes.txt"), "keep me");

  auto done = recover_recordings(store->calls(), rec_dir_);
  ASSERT_TRUE(done.ok()) << done.error().message;
  EXPECT_EQ(done->size(), 3u);
  for (const auto& r : *done) EXPECT_FALSE(r.registered) << r.file;
  EXPECT_FALSE(exists(file(torn + ".opus.part")));
  EXPECT_FALSE(exists(file(orphan + ".opus.part")));
  EXPECT_FALSE(exists(file(has_one + ".opus.part")));
  EXPECT_TRUE(exists(file("notes.txt")));
  EXPECT_FALSE(store->calls().recording(torn)->has_value());
  EXPECT_EQ(store->calls().recording(has_one)->value().duration_ms, 1000);
}

// A crash after the rename but before the row: the finished file is registered as it is.
TEST_F(RecordingsTest, AFinishedFileWithoutARowIsRegistered) {
  auto store = open_store();
  ASSERT_TRUE(store);
  CallRecord c = call(kCall);
  c.status = "picked";
  ASSERT_TRUE(store->calls().insert(c).ok());
  const auto b = recording(2.0, true);
  test::write_file(file(std::string(kCall) + ".opus"), bytes_as_string(b));
  auto done = recover_recordings(store->calls(), rec_dir_);
  ASSERT_TRUE(done.ok()) << done.error().message;
  ASSERT_EQ(done->size(), 1u);
  EXPECT_TRUE((*done)[0].registered);
  auto row = store->calls().recording(kCall);
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->duration_ms, 2000);
  EXPECT_EQ((*row)->bytes, static_cast<int64_t>(b.size()));
  EXPECT_EQ(test::read_file(file(std::string(kCall) + ".opus")), bytes_as_string(b));
}

// --- durability off the loop ---

class RecordingsWorker : public RecordingsTest {
 protected:
  void SetUp() override {
    RecordingsTest::SetUp();
    auto loop = EventLoop::create();
    ASSERT_TRUE(loop.ok());
    loop_ = std::move(*loop);
    store_ = open_store();
    ASSERT_TRUE(store_);
    CallRecord c = call(kCall);
    c.status = "picked";
    ASSERT_TRUE(store_->calls().insert(c).ok());
  }
  // Turns the loop until `done` or 5 s.
  bool turn_until(const std::function<bool()>& done) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done()) {
      if (std::chrono::steady_clock::now() > end) return false;
      sd_event_run(loop_->get(), 50'000);
    }
    return true;
  }
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<Store> store_;
};

// The call's end hands the file over and goes on: while the sync is stuck (a slow disk), nothing is
// registered and the loop is free; once the sync returns, the file is renamed and then registered.
TEST_F(RecordingsWorker, CommitDoesNotWaitForTheSyncAndRegistersAfterIt) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> synced_fd{-1};
  std::atomic<bool> on_loop_thread{true};
  const auto loop_thread = std::this_thread::get_id();
  auto rec = Recordings::create(*loop_, store_->calls(), {.dir = rec_dir_, .sync = [&](int fd) {
                                                            on_loop_thread =
                                                                std::this_thread::get_id() == loop_thread;
                                                            released.wait();
                                                            synced_fd = fd;
                                                            return 0;
                                                          }});
  ASSERT_TRUE(rec.ok()) << rec.error().message;
  auto f = (*rec)->open(kCall);
  ASSERT_TRUE(f.ok()) << f.error().message;
  const auto b = recording(1.0, true);
  ASSERT_TRUE((*f)->write(b));
  const std::string path = (*f)->path();
  const std::string part = (*f)->part_path();

  (*rec)->commit(std::move(*f), 1000);  // returns although the sync cannot finish yet
  EXPECT_EQ((*rec)->pending(), 1u);
  EXPECT_TRUE((*rec)->pending_for(kCall));
  // Whoever asks for the recording meanwhile (the API) is answered once it is registered, row included.
  bool row_when_settled = false;
  int settled = 0;
  (*rec)->when_settled(kCall, [&] {
    ++settled;
    row_when_settled = store_->calls().recording(kCall)->has_value();
  });
  int other = 0;
  (*rec)->when_settled("0190a1b2-c3d4-7e5f-8a9b-000000000009", [&] { ++other; });
  EXPECT_EQ(other, 1);                                             // nothing pending for that call: at once
  for (int i = 0; i < 5; ++i) sd_event_run(loop_->get(), 10'000);  // the loop turns freely meanwhile
  EXPECT_EQ((*rec)->pending(), 1u);
  EXPECT_FALSE(store_->calls().recording(kCall)->has_value());  // not durable, not registered
  EXPECT_EQ(settled, 0);
  EXPECT_TRUE(exists(part));
  EXPECT_FALSE(exists(path));

  release.set_value();
  ASSERT_TRUE(turn_until([&] { return (*rec)->pending() == 0; }));
  EXPECT_FALSE(on_loop_thread.load());
  EXPECT_EQ(settled, 1);
  EXPECT_TRUE(row_when_settled);
  EXPECT_FALSE((*rec)->pending_for(kCall));
  EXPECT_GE(synced_fd.load(), 0);
  EXPECT_FALSE(exists(part));
  ASSERT_TRUE(exists(path));
  auto row = store_->calls().recording(kCall);
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->path, path);
  EXPECT_EQ((*row)->duration_ms, 1000);
  EXPECT_EQ((*row)->bytes, static_cast<int64_t>(b.size()));
  EXPECT_EQ(test::read_file(path), bytes_as_string(b));
}

// A sync that fails (EIO): the file is not trusted, removed, and no row is written.
TEST_F(RecordingsWorker, AFailedSyncRegistersNothing) {
  auto rec = Recordings::create(*loop_, store_->calls(), {.dir = rec_dir_, .sync = [](int) {
                                                            errno = EIO;
                                                            return -1;
                                                          }});
  ASSERT_TRUE(rec.ok());
  auto f = (*rec)->open(kCall);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->write(recording(0.5, true)));
  const std::string part = (*f)->part_path(), path = (*f)->path();
  (*rec)->commit(std::move(*f), 500);
  ASSERT_TRUE(turn_until([&] { return (*rec)->pending() == 0; }));
  EXPECT_FALSE(store_->calls().recording(kCall)->has_value());
  EXPECT_FALSE(exists(part));
  EXPECT_FALSE(exists(path));
}

// A clean stop with a file still being synced: the destructor finishes and registers it.
TEST_F(RecordingsWorker, DestroyingFinishesWhatWasHandedOver) {
  auto rec = Recordings::create(*loop_, store_->calls(),
                                {.dir = rec_dir_, .sync = [](int fd) {
                                   std::this_thread::sleep_for(std::chrono::milliseconds(50));
                                   return ::fdatasync(fd);
                                 }});
  ASSERT_TRUE(rec.ok());
  auto f = (*rec)->open(kCall);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->write(recording(0.5, true)));
  (*rec)->commit(std::move(*f), 500);
  rec->reset();
  auto row = store_->calls().recording(kCall);
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->duration_ms, 500);
}

// Asked for a recording while it is still being made durable, the API holds the answer (no 404) and
// answers 200 with the link once the row is written: the server, the API and Recordings on one loop, as
// in osvid.
TEST_F(RecordingsWorker, TheRecordingLinkWaitsForARecordingBeingMadeDurable) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  auto rec = Recordings::create(*loop_, store_->calls(), {.dir = rec_dir_, .sync = [&](int fd) {
                                                            released.wait();
                                                            return ::fdatasync(fd);
                                                          }});
  ASSERT_TRUE(rec.ok());
  Config config;
  std::vector<ApiToken> tokens = {ApiToken{"TokAll0123456789", {}, true}};
  ApiContext ctx;
  ctx.config = &config;
  ctx.tokens = &tokens;
  ctx.store = store_.get();
  ctx.clock = &clock_;
  ctx.recording_key = "0123456789abcdef0123456789abcdef";
  ctx.recordings_dir = rec_dir_;
  ctx.recordings = rec->get();
  ctx.listen = "127.0.0.1:1";
  Api api(ctx);
  net::HttpServerOptions o;
  o.port = 0;
  auto server = net::HttpServer::start(
      o, [&](net::HttpRequest& r, net::HttpReply reply) { api.handle(r, std::move(reply)); });
  ASSERT_TRUE(server.ok());
  net::HttpServer* srv = server->get();
  // Wired as App::start_api does: the epoll fd, and a timer on the server's own deadline re-armed after
  // every loop iteration (how a resumed connection gets served).
  auto served = serve_http_on_loop(*loop_, *srv);
  ASSERT_TRUE(served.ok()) << served.error().message;

  auto f = (*rec)->open(kCall);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->write(recording(1.0, true)));
  (*rec)->commit(std::move(*f), 1000);

  std::atomic<long> status{-1};
  std::string body;
  std::thread client([&] {
    auto r = test::http_request(
        "GET", "http://127.0.0.1:" + std::to_string(srv->port()) + "/v1/call/" + kCall + "/recording",
        "TokAll0123456789");
    body = r.body;
    status = r.status;
  });
  // The request arrives and is held while the sync is stuck.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (std::chrono::steady_clock::now() < until) sd_event_run(loop_->get(), 10'000);
  EXPECT_EQ(status.load(), -1) << body;
  release.set_value();
  ASSERT_TRUE(turn_until([&] { return status.load() != -1; }));
  client.join();
  EXPECT_EQ(status.load(), 200) << body;
  EXPECT_NE(body.find("recording_url"), std::string::npos) << body;
}

}  // namespace
}  // namespace osvi::daemon
