// Call recordings on disk: written as <call_id>.opus.part, made durable off the loop, registered once
// durable; and, at start, what a dead daemon left behind closed into playable files.
//
// Threading: the loop thread, except the durability work of a finished file (fdatasync, close, rename, fsync
// of the folder), which runs on one worker thread owned here: a disk under load can take seconds to sync,
// and the loop must not stall a live call for it. The result comes back to the loop through an eventfd,
// and only then is the `recordings` row written — a registered recording is always a durable file.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "osvi/audio/recording.hpp"
#include "osvi/base/event_loop.hpp"
#include "osvi/hal/fd.hpp"
#include "osvi/result.hpp"
#include "osvi/store/calls.hpp"

namespace osvi::daemon {

// One call's recording while the call runs: the recorder's ByteSink, appending pages to the .part file.
class RecordingFile final : public audio::ByteSink {
 public:
  bool write(std::span<const uint8_t> bytes) noexcept override;
  const std::string& call_id() const { return call_id_; }
  const std::string& part_path() const { return part_; }
  const std::string& path() const { return path_; }  // where it goes once durable
  uint64_t bytes() const { return bytes_; }
  bool failed() const { return failed_; }

 private:
  friend class Recordings;
  RecordingFile(std::string call_id, std::string part, std::string path, hal::UniqueFd fd)
      : call_id_(std::move(call_id)), part_(std::move(part)), path_(std::move(path)), fd_(std::move(fd)) {}
  std::string call_id_, part_, path_;
  hal::UniqueFd fd_;
  uint64_t bytes_ = 0;
  bool failed_ = false;
};

struct RecordingsOptions {
  std::string dir;  // must exist
  // Makes a file's data durable before it is renamed into place (0, or -1 with errno). fdatasync(2) unless
  // set; runs on the worker thread.
  std::function<int(int fd)> sync;
};

class Recordings {
 public:
  static Result<std::unique_ptr<Recordings>> create(EventLoop& loop, CallsRepo& calls,
                                                    RecordingsOptions options);
  // Finishes every file already handed over (synced, renamed, registered) before returning, so a clean stop
  // leaves no .part behind. Destroy it before the store it registers into.
  ~Recordings();
  Recordings(const Recordings&) = delete;
  Recordings& operator=(const Recordings&) = delete;

  const std::string& dir() const { return options_.dir; }

  // Creates <dir>/<call_id>.opus.part (replacing a stale one).
  Result<std::unique_ptr<RecordingFile>> open(std::string_view call_id);
  // The recorder has finished the stream: returns at once. The worker syncs the file and renames it to
  // <call_id>.opus; back on the loop the row (format "ogg_opus", duration_ms, bytes) is saved. A file whose
  // sync or rename fails is removed and logged, and no row is written.
  void commit(std::unique_ptr<RecordingFile> file, int64_t duration_ms);
  // The recording failed: its .part is removed and nothing is registered.
  void discard(std::unique_ptr<RecordingFile> file);
  // Files handed to commit() whose row is not written yet.
  size_t pending() const { return pending_; }
  // Whether the call's recording was handed to commit() and its row is not written yet.
  bool pending_for(std::string_view call_id) const;
  // Runs `then` on the loop once that call's recording is settled (registered, or dropped on an error); at
  // once when nothing of it is pending. Lets the API answer "where is the recording" without a 404 window.
  void when_settled(std::string_view call_id, std::function<void()> then);
  // Runs `then` on the loop once nothing is pending (at once when nothing is): e.g. the demo's report,
  // which prints the recording's path.
  void when_idle(std::function<void()> then);

 private:
  struct Job {
    std::unique_ptr<RecordingFile> file;
    int64_t duration_ms = 0;
    Status result;
    bool renamed = false;  // in place as <call_id>.opus (result may still carry a folder sync error)
  };
  Recordings(EventLoop& loop, CallsRepo& calls, RecordingsOptions options, hal::EventFd wake);
  void work();
  void register_done();

  EventLoop& loop_;
  CallsRepo& calls_;
  RecordingsOptions options_;
  hal::EventFd wake_;
  EventSource wake_source_;
  size_t pending_ = 0;  // loop thread
  std::vector<std::function<void()>> idle_waiters_;
  std::vector<std::string> pending_ids_;  // loop thread: the calls behind pending_
  std::vector<std::pair<std::string, std::function<void()>>> call_waiters_;
  std::mutex mu_;  // guards todo_, done_, stopping_
  std::condition_variable cv_;
  std::deque<Job> todo_, done_;
  bool stopping_ = false;
  std::thread worker_;  // last: started once everything it touches exists
};

// What start-up recovery did with the files in the recordings folder.
struct RecoveredRecording {
  std::string call_id;
  std::string file;         // the file it was about
  bool registered = false;  // closed into <call_id>.opus and saved as the call's recording
  std::string note;         // why it was removed (or left), or what was kept
};

// Start-up, before any call runs (it blocks: reads, truncates and syncs files). For every
// <call_id>.opus.part in `dir`: when its call exists, is over and has no recording yet, the longest usable
// prefix of whole Ogg pages is kept (audio::salvage_ogg_opus), its last page marked end-of-stream, the file
// synced, renamed to <call_id>.opus and registered with the duration it holds; otherwise — no such call,
// a recording already registered, or nothing playable (no complete audio page) — the .part is removed.
// A finished <call_id>.opus without a row (a crash between the rename and the row) is registered too.
// Other files are left alone.
Result<std::vector<RecoveredRecording>> recover_recordings(CallsRepo& calls, const std::string& dir);

}  // namespace osvi::daemon
