// Dialer: the campaign scheduler on the loop — keeps free lines busy with due contacts, inside the callee's
// calling hours, never a do-not-disturb number, never a second call for an attempt already placed.
//
// Threading: loop thread only.
#pragma once

namespace osvi::daemon {

// What the API and the fleet tell the dialler (campaigns.hpp's service pokes it after an import or a status
// change); the dialler itself is built and wired by the app.
class DialerControl {
 public:
  virtual ~DialerControl() = default;
  // Something may have become due (contacts enqueued, a campaign activated): look again on the next turn.
  virtual void poke() = 0;
};

}  // namespace osvi::daemon
