// PollDriver: the HttpClient hooks kept in a small fd map and one deadline, turned with poll().
#include "osvi/net/poll_driver.hpp"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace osvi::net {

namespace {
int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Result<std::unique_ptr<PollDriver>> PollDriver::create() {
  std::unique_ptr<PollDriver> d(new PollDriver());
  PollDriver* self = d.get();
  HttpClient::Hooks hooks;
  hooks.watch = [self](int fd, short events) {
    if (events == 0)
      self->fds_.erase(fd);
    else
      self->fds_[fd] = events;
  };
  hooks.timer = [self](int64_t timeout_ms) {
    self->timer_deadline_ = timeout_ms < 0 ? -1 : steady_ms() + timeout_ms;
  };
  auto client = HttpClient::create(std::move(hooks));
  if (!client) return client.error();
  d->client_ = std::move(client.value());
  return d;
}

void PollDriver::turn(int64_t max_wait_ms) {
  int64_t now = steady_ms();
  int64_t wait = max_wait_ms;
  if (timer_deadline_ >= 0) wait = std::min(wait, std::max<int64_t>(0, timer_deadline_ - now));
  std::vector<pollfd> pfds;
  pfds.reserve(fds_.size());
  for (auto [fd, events] : fds_) pfds.push_back(pollfd{fd, events, 0});
  int n = ::poll(pfds.data(), pfds.size(), static_cast<int>(std::max<int64_t>(0, wait)));
  if (n > 0) {
    for (const auto& p : pfds) {
      // An earlier callback may have stopped watching this fd (the transfer ended or was cancelled).
      if (p.revents == 0 || !fds_.contains(p.fd)) continue;
      client_->on_socket(p.fd, p.revents);
    }
  }
  if (timer_deadline_ >= 0 && timer_deadline_ <= steady_ms()) {
    timer_deadline_ = -1;
    client_->on_timeout();
  }
}

bool PollDriver::run_until(const std::function<bool()>& done, int64_t timeout_ms) {
  int64_t deadline = steady_ms() + timeout_ms;
  while (!done()) {
    int64_t left = deadline - steady_ms();
    if (left <= 0) return false;
    turn(left);
  }
  return true;
}

void PollDriver::run_for(int64_t duration_ms) {
  int64_t deadline = steady_ms() + duration_ms;
  for (int64_t left = duration_ms; left > 0; left = deadline - steady_ms()) turn(left);
}

}  // namespace osvi::net
