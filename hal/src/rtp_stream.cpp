// PLACEHOLDER (issue 17 integration contract): replaced by the rtp helper's implementation.
#include "osvi/hal/rtp_stream.hpp"

#include <cerrno>

namespace osvi::hal {

std::string_view to_string(RtpCodec c) {
  switch (c) {
    case RtpCodec::pcmu:
      return "PCMU";
    case RtpCodec::pcma:
      return "PCMA";
    case RtpCodec::opus:
      return "opus";
  }
  return "PCMU";
}

struct RtpStream::Impl {
  RtpStreamOptions options;
};

Result<RtpSockets> RtpSockets::bind(const std::string&, uint16_t, uint16_t) {
  return make_error("RTP not built yet", -ENOSYS);
}
Result<std::unique_ptr<RtpStream>> RtpStream::create(RtpStreamOptions, RtpSockets) {
  return make_error("RTP not built yet", -ENOSYS);
}
RtpStream::RtpStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RtpStream::~RtpStream() = default;
Status RtpStream::start() {
  return make_error("RTP not built yet", -ENOSYS);
}
void RtpStream::stop() {}
int RtpStream::event_fd() const {
  return -1;
}
size_t RtpStream::drain_events(std::span<StreamEvent>) {
  return 0;
}
bool RtpStream::read_frame(std::span<int16_t>, std::span<int16_t>) {
  return false;
}
size_t RtpStream::frames_available() const {
  return 0;
}
size_t RtpStream::queue_playback(std::span<const int16_t>) {
  return 0;
}
size_t RtpStream::playback_queued() const {
  return 0;
}
void RtpStream::stop_playback() {}
bool RtpStream::stop_playback_pending() const {
  return false;
}
AudioStreamStats RtpStream::stats() const {
  return {};
}
size_t RtpStream::period_frames() const {
  return 0;
}
const RtpStreamOptions& RtpStream::options() const {
  return impl_->options;
}
RtpStreamStats RtpStream::rtp_stats() const {
  return {};
}
Status RtpStream::send_dtmf(std::string_view) {
  return make_error("RTP not built yet", -ENOSYS);
}
void RtpStream::set_remote(const std::string&, uint16_t, uint16_t) {}
void RtpStream::set_hold(bool) {}

}  // namespace osvi::hal
