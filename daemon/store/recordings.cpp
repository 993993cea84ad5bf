// Recordings: the .part file behind the recorder, its durability off the loop, and start-up salvage.
#include "osvi/store/recordings.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "osvi/base/files.hpp"
#include "osvi/base/log.hpp"
#include "osvi/base/thread_rank.hpp"

namespace osvi::daemon {
namespace {

constexpr std::string_view kPartSuffix = ".opus.part";
constexpr std::string_view kFinalSuffix = ".opus";
constexpr std::string_view kFormat = "ogg_opus";

std::string errno_text(int e) {
  return std::strerror(e);
}

// Only names the daemon itself gives files (a call id: letters, digits, dashes) are recovered.
bool plain_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-'))
      return false;
  }
  return true;
}

// A read-only mapping of a whole file: salvage reads it in place, whatever the call's length.
class Mapping {
 public:
  Mapping(int fd, size_t size) : size_(size) {
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) data_ = static_cast<const uint8_t*>(p);
    }
  }
  ~Mapping() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  bool ok() const { return data_ != nullptr; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_;
};

Error io_error(const std::string& what, const std::string& path, int e) {
  return make_error("recordings: " + what + " " + path + ": " + errno_text(e), -e);
}

// Cuts `path` to its usable Ogg Opus prefix, marks the end of the stream and syncs it. The salvage result
// says what is left.
Result<audio::OggOpusSalvage> close_stream(const std::string& path) {
  hal::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return io_error("opening", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return io_error("reading the size of", path, errno);
  if (!S_ISREG(st.st_mode)) return make_error("recordings: " + path + " is not a regular file", -EBADMSG);
  if (st.st_size == 0) return make_error("recordings: " + path + " is empty", -EBADMSG);
  Result<audio::OggOpusSalvage> salvage = make_error("recordings: cannot map " + path, -EIO);
  std::vector<uint8_t> last_page;
  {
    Mapping map(fd.get(), static_cast<size_t>(st.st_size));
    if (!map.ok()) return io_error("mapping", path, errno);
    salvage = audio::salvage_ogg_opus(map.bytes());
    if (!salvage) return salvage;
    const auto page = map.bytes().subspan(salvage->last_page_offset, salvage->last_page_bytes);
    last_page.assign(page.begin(), page.end());
  }
  if (!salvage->ended) {
    if (Status s = audio::mark_ogg_end_of_stream(last_page); !s) return s.error();
    const auto at = static_cast<off_t>(salvage->last_page_offset);
    if (::pwrite(fd.get(), last_page.data(), last_page.size(), at) != static_cast<ssize_t>(last_page.size()))
      return io_error("writing the last page of", path, errno);
  }
  if (static_cast<size_t>(st.st_size) != salvage->keep_bytes &&
      ::ftruncate(fd.get(), static_cast<off_t>(salvage->keep_bytes)) != 0)
    return io_error("truncating", path, errno);
  if (::fdatasync(fd.get()) != 0) return io_error("syncing", path, errno);
  return salvage;
}

}  // namespace

bool RecordingFile::write(std::span<const uint8_t> b) noexcept {
  if (failed_) return false;
  size_t off = 0;
  while (off < b.size()) {
    const ssize_t n = ::write(fd_.get(), b.data() + off, b.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failed_ = true;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  bytes_ += b.size();
  return true;
}

Recordings::Recordings(EventLoop& loop, CallsRepo& calls, RecordingsOptions options, hal::EventFd wake)
    : loop_(loop), calls_(calls), options_(std::move(options)), wake_(std::move(wake)) {}

Result<std::unique_ptr<Recordings>> Recordings::create(EventLoop& loop, CallsRepo& calls,
                                                       RecordingsOptions options) {
  if (!options.sync) options.sync = [](int fd) { return ::fdatasync(fd); };
  auto wake = hal::EventFd::create();
  if (!wake) return make_error("recordings: eventfd: " + wake.error().message, wake.error().code);
  std::unique_ptr<Recordings> self(new Recordings(loop, calls, std::move(options), std::move(*wake)));
  auto src = loop.add_io(self->wake_.fd(), EPOLLIN, [r = self.get()](uint32_t) {
    r->wake_.drain();
    r->register_done();
  });
  if (!src) return src.error();
  self->wake_source_ = std::move(*src);
  self->worker_ = std::thread([r = self.get()] { r->work(); });
  return self;
}

Recordings::~Recordings() {
  idle_waiters_.clear();  // whoever waited is being torn down too
  call_waiters_.clear();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (worker_.joinable()) worker_.join();  // it empties todo_ first
  wake_source_.reset();
  register_done();
}

Result<std::unique_ptr<RecordingFile>> Recordings::open(std::string_view call_id) {
  if (!plain_id(call_id)) return make_error("recordings: unusable call id for a file name", -EINVAL);
  std::string path = options_.dir + "/" + std::string(call_id) + std::string(kFinalSuffix);
  std::string part = path + ".part";
  hal::UniqueFd fd(::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640));
  if (!fd.valid()) return io_error("creating", part, errno);
  return std::unique_ptr<RecordingFile>(
      new RecordingFile(std::string(call_id), std::move(part), std::move(path), std::move(fd)));
}

void Recordings::commit(std::unique_ptr<RecordingFile> file, int64_t duration_ms) {
  if (!file) return;
  ++pending_;
  pending_ids_.push_back(file->call_id_);
  {
    std::lock_guard lock(mu_);
    todo_.push_back(Job{std::move(file), duration_ms, {}});
  }
  cv_.notify_one();
}

void Recordings::discard(std::unique_ptr<RecordingFile> file) {
  if (!file) return;
  file->fd_.reset();
  ::unlink(file->part_.c_str());
}

bool Recordings::pending_for(std::string_view call_id) const {
  return std::find(pending_ids_.begin(), pending_ids_.end(), call_id) != pending_ids_.end();
}

void Recordings::when_settled(std::string_view call_id, std::function<void()> then) {
  if (!pending_for(call_id)) return then();
  call_waiters_.emplace_back(std::string(call_id), std::move(then));
}

void Recordings::when_idle(std::function<void()> then) {
  if (pending_ == 0) return then();
  idle_waiters_.push_back(std::move(then));
}

void Recordings::work() {
  lower_this_thread();  // fsyncs and renames must not delay the loop (thread_rank.hpp)
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !todo_.empty(); });
      if (todo_.empty()) return;  // stopping, and nothing left to finish
      job = std::move(todo_.front());
      todo_.pop_front();
    }
    RecordingFile& f = *job.file;
    if (options_.sync(f.fd_.get()) != 0) {
      job.result = io_error("syncing", f.part_, errno);
    } else if (f.fd_.reset(), ::rename(f.part_.c_str(), f.path_.c_str()) != 0) {
      job.result = io_error("renaming", f.part_, errno);
    } else {
      job.renamed = true;
      // The file is whole either way; a failed folder sync only means the rename may not survive a power cut.
      job.result = sync_parent_directory(f.path_);
    }
    {
      std::lock_guard lock(mu_);
      done_.push_back(std::move(job));
    }
    wake_.signal();
  }
}

void Recordings::register_done() {
  std::deque<Job> done;
  {
    std::lock_guard lock(mu_);
    done.swap(done_);
  }
  std::vector<std::string> settled;
  for (Job& job : done) {
    --pending_;
    RecordingFile& f = *job.file;
    settled.push_back(f.call_id_);
    if (auto it = std::find(pending_ids_.begin(), pending_ids_.end(), f.call_id_); it != pending_ids_.end())
      pending_ids_.erase(it);
    if (!job.renamed) {
      log::warning(
          "the call recording could not be made durable and is dropped: " + job.result.error().message,
          {{"CALL_ID", f.call_id_}});
      ::unlink(f.part_.c_str());
      continue;
    }
    if (!job.result.ok())
      log::warning("call recording: " + job.result.error().message, {{"CALL_ID", f.call_id_}});
    if (Status s = calls_.save_recording(f.call_id_, f.path_, kFormat, job.duration_ms,
                                         static_cast<int64_t>(f.bytes_));
        !s)
      log::error("cannot save the recording row: " + s.error().message, {{"CALL_ID", f.call_id_}});
  }
  for (const std::string& id : settled) {
    if (pending_for(id)) continue;  // the same call committed twice: wait for the last
    std::vector<std::function<void()>> ready;
    for (auto it = call_waiters_.begin(); it != call_waiters_.end();) {
      if (it->first == id) {
        ready.push_back(std::move(it->second));
        it = call_waiters_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& w : ready) w();
  }
  if (pending_ == 0 && !idle_waiters_.empty()) {
    auto waiters = std::move(idle_waiters_);
    idle_waiters_.clear();
    for (auto& w : waiters) w();
  }
}

Result<std::vector<RecoveredRecording>> recover_recordings(CallsRepo& calls, const std::string& dir) {
  std::vector<std::string> names;
  {
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), &::closedir);
    if (!d) return io_error("listing", dir, errno);
    while (const dirent* e = ::readdir(d.get())) names.emplace_back(e->d_name);
  }
  std::sort(names.begin(), names.end());  // one order, whatever the file system's
  std::vector<RecoveredRecording> out;
  for (const std::string& name : names) {
    const bool part = name.ends_with(kPartSuffix);
    const bool final = !part && name.ends_with(kFinalSuffix);
    if (!part && !final) continue;
    const std::string id = name.substr(0, name.size() - (part ? kPartSuffix : kFinalSuffix).size());
    if (!plain_id(id)) continue;
    const std::string file = dir + "/" + name;
    const std::string path = dir + "/" + id + std::string(kFinalSuffix);
    RecoveredRecording r{id, file, false, {}};
    auto call = calls.get(id);
    if (!call) return call.error();
    auto row = calls.recording(id);
    if (!row) return row.error();
    if (final) {
      // A finished file is only ever registered here, never removed: it was complete once.
      if (!*call || *row || (*call)->status == "in_progress") continue;
    } else if (*call && (*call)->status == "in_progress") {
      continue;  // not ours to touch: recovery closes calls before it runs, so someone is writing it
    } else if (!*call || *row) {
      r.note = !*call ? "no such call" : "the call already has a recording";
      ::unlink(file.c_str());
      out.push_back(std::move(r));
      continue;
    }
    auto closed = close_stream(file);
    if (!closed) {
      r.note = closed.error().message;
      if (part) ::unlink(file.c_str());
      out.push_back(std::move(r));
      continue;
    }
    if (part) {
      if (::rename(file.c_str(), path.c_str()) != 0) return io_error("renaming", file, errno);
      if (Status s = sync_parent_directory(path); !s) return s.error();
    }
    if (Status s = calls.save_recording(id, path, kFormat, closed->duration_ms(),
                                        static_cast<int64_t>(closed->keep_bytes));
        !s)
      return s.error();
    r.registered = true;
    r.note = std::to_string(closed->duration_ms()) + " ms kept" +
             (closed->ended ? "" : " (cut at the last whole page, end of stream marked)");
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace osvi::daemon
