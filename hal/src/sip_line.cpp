// PLACEHOLDER (issue 17 integration contract): replaced by the sip helper's implementation.
#include "osvi/hal/sip_line.hpp"

#include <cerrno>

namespace osvi::hal {

std::string_view to_string(SipTransport t) {
  switch (t) {
    case SipTransport::udp:
      return "udp";
    case SipTransport::tcp:
      return "tcp";
    case SipTransport::tls:
      return "tls";
  }
  return "udp";
}

struct SipTrunk::Impl {
  SipLineOptions options;
};

Result<std::unique_ptr<SipTrunk>> SipTrunk::create(SipLineOptions, const Clock&) {
  return make_error("SIP not built yet", -ENOSYS);
}
SipTrunk::SipTrunk(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SipTrunk::~SipTrunk() = default;
const std::string& SipTrunk::id() const {
  return impl_->options.id;
}
const SipLineOptions& SipTrunk::options() const {
  return impl_->options;
}
Status SipTrunk::start() {
  return make_error("SIP not built yet", -ENOSYS);
}
std::vector<Line*> SipTrunk::channels() {
  return {};
}
LineState SipTrunk::state() const {
  return LineState::down;
}
std::string SipTrunk::reason() const {
  return "SIP not built yet";
}
bool SipTrunk::settled() const {
  return true;
}
SipStatus SipTrunk::status() const {
  return {};
}
int SipTrunk::poll_fd() const {
  return -1;
}
short SipTrunk::poll_events() const {
  return 0;
}
void SipTrunk::handle_io(short) {}
int64_t SipTrunk::next_deadline_us() const {
  return -1;
}
void SipTrunk::handle_timer() {}

bool is_sip_dialable(std::string_view number) {
  return !number.empty();
}

}  // namespace osvi::hal
