// Drives a net::HttpServer from the control loop: its poll fd, the server's own deadlines, and replies
// sent later from other sources (the daemon, and the benches and tests that stand in for it).
#pragma once

#include <vector>

#include "osvi/base/event_loop.hpp"
#include "osvi/net/http_server.hpp"
#include "osvi/result.hpp"

namespace osvi::daemon {

// The sources that serve `server` on `loop`; they must go before the server does. After every loop
// iteration the server's deadline is re-armed, so a reply sent from another source (a model's answer, a
// timer) is written on the next turn rather than at the server's next deadline.
Result<std::vector<EventSource>> serve_http_on_loop(EventLoop& loop, net::HttpServer& server);

}  // namespace osvi::daemon
