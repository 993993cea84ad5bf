// The seam between a SipTrunk's loop side (sip_line.cpp) and its SIP-thread side (sip_stack.cpp, libre).
//
// Only plain data crosses: the loop posts Commands (SipEngine::post, carried by libre's mqueue), the SIP
// thread posts Reports into the trunk's Inbox (a mutex-protected queue + eventfd the loop watches). A
// channel slot is claimed with one compare-and-swap by whichever side starts a call on it (dial on the loop,
// an INVITE on the SIP thread) and released by the loop once that call's last report was applied.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "osvi/hal/fd.hpp"
#include "osvi/hal/line.hpp"
#include "osvi/hal/rtp_stream.hpp"
#include "osvi/hal/sip_line.hpp"
#include "osvi/result.hpp"

namespace osvi::hal::sipi {

// What an SDP exchange settled for one call's audio.
struct Media {
  RtpCodec codec = RtpCodec::pcmu;
  uint8_t payload_type = 0;
  uint8_t dtmf_payload_type = 0;  // 0 = no telephone-event agreed
  std::string remote_ip;
  uint16_t remote_rtp_port = 0;
  uint16_t remote_rtcp_port = 0;
  bool hold = false;  // the far end sends nothing (a=sendonly / a=inactive, or port 0)
};

struct Command {
  enum class Kind { start, dial, answer, hangup, info_dtmf, refer, refer_attended };
  Kind kind = Kind::start;
  unsigned slot = 0;
  uint64_t call = 0;
  std::string text;  // dial/refer: the number; info_dtmf: the digits
  uint16_t rtp_port = 0;
};

struct Report {
  enum class Kind {
    registration,     // status fields below
    incoming,         // text = caller
    alerting,         // 18x
    media,            // SDP agreed (early, answer, re-INVITE): `media`
    answered,         // 200 (outbound) or ACK (inbound)
    ended,            // the call is gone on the SIP side: event type + reason
    dtmf,             // SIP INFO digit
    transfer_failed,  // reason
  };
  Kind kind = Kind::registration;
  unsigned slot = 0;
  uint64_t call = 0;
  std::string text;
  char digit = 0;
  LineEvent::Type end = LineEvent::Type::failed;
  bool ours = false;  // ended: the loop asked for it (hangup, ring timeout): the loop picks the event
  Media media;
  // registration
  std::string registration;  // "registered", "registering", "failed", "disabled"
  uint16_t code = 0;
  std::string reason;
  unsigned expires_s = 0;
  std::string contact;
  bool up = false;
};

class Inbox {
 public:
  explicit Inbox(EventFd efd) : efd_(std::move(efd)) {}
  int fd() const { return efd_.fd(); }
  void post(Report r) {
    {
      std::lock_guard lock(mu_);
      q_.push_back(std::move(r));
    }
    efd_.signal();
  }
  std::deque<Report> take() {
    efd_.drain();
    std::lock_guard lock(mu_);
    return std::exchange(q_, {});
  }

 private:
  EventFd efd_;
  std::mutex mu_;
  std::deque<Report> q_;
};

// State both threads see: slot claims and the call id counter.
struct Shared {
  explicit Shared(unsigned n, EventFd efd) : claims(n), inbox(std::move(efd)) {}
  std::vector<std::atomic<bool>> claims;
  std::atomic<uint64_t> next_call{1};
  Inbox inbox;
  bool claim(unsigned slot) {
    bool expected = false;
    return claims[slot].compare_exchange_strong(expected, true);
  }
  void release(unsigned slot) { claims[slot].store(false); }
};

// The SIP-thread half of one trunk. Every method is called on the loop thread; the work runs on the SIP
// thread.
class SipEngine {
 public:
  static Result<std::unique_ptr<SipEngine>> create(const SipLineOptions& options,
                                                   std::shared_ptr<Shared> shared);
  virtual ~SipEngine() = default;  // the implementation's tears the trunk down on the SIP thread and waits
  virtual void post(Command c) = 0;
};

}  // namespace osvi::hal::sipi
