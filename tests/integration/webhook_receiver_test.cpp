// The webhook test receiver itself: what it records and each way it answers, seen through net::HttpClient.
#include "webhook_receiver.hpp"

#include <gtest/gtest.h>

#include "osvi/net/poll_driver.hpp"

namespace osvi::test {
namespace {

struct Outcome {
  net::HttpClient::Done done;
  bool finished = false;
};

Outcome send(net::PollDriver& d, net::HttpClient::Request req) {
  Outcome out;
  net::HttpClient::Callbacks cb;
  cb.on_done = [&](const net::HttpClient::Done& done) {
    out.done = done;
    out.finished = true;
  };
  auto id = d.client().start(std::move(req), std::move(cb));
  EXPECT_TRUE(id.ok());
  EXPECT_TRUE(d.run_until([&] { return out.finished; }, 5000));
  return out;
}

TEST(WebhookReceiver, RecordsAndAnswersEachWay) {
  WebhookReceiver rx;
  ASSERT_TRUE(rx.start().ok());
  auto d = net::PollDriver::create();
  ASSERT_TRUE(d.ok());
  net::HttpClient::Request req;
  req.method = "POST";
  req.url = rx.url("/a?x=1");
  req.headers = {"X-Test: yes", "Content-Type: application/json"};
  req.body = R"({"n":1})";
  req.timeout_ms = 300;

  auto ok = send(**d, req);
  EXPECT_EQ(ok.done.failure, net::HttpClient::Failure::none);
  EXPECT_EQ(ok.done.status, 200);
  ASSERT_EQ(rx.count(), 1u);
  auto r = rx.requests()[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/a?x=1");
  EXPECT_EQ(r.header("x-test"), "yes");
  EXPECT_EQ(r.body, R"({"n":1})");

  rx.push(WebhookReceiver::Reply::with_status(500));
  EXPECT_EQ(send(**d, req).done.status, 500);
  rx.push(WebhookReceiver::Reply::of(WebhookReceiver::Mode::hang));
  EXPECT_EQ(send(**d, req).done.failure, net::HttpClient::Failure::timeout);
  rx.push(WebhookReceiver::Reply::of(WebhookReceiver::Mode::reset));
  EXPECT_EQ(send(**d, req).done.failure, net::HttpClient::Failure::reset);
  rx.push(WebhookReceiver::Reply::of(WebhookReceiver::Mode::close));
  EXPECT_EQ(send(**d, req).done.failure, net::HttpClient::Failure::reset);
  rx.set_route("/r", WebhookReceiver::Reply::redirect(307, "/a"));
  req.url = rx.url("/r");
  EXPECT_EQ(send(**d, req).done.status, 307);
  EXPECT_EQ(rx.count(), 6u);

  uint16_t port = rx.port();
  rx.stop();
  EXPECT_EQ(send(**d, req).done.failure, net::HttpClient::Failure::connect);
  ASSERT_TRUE(rx.start(port).ok());
  req.url = rx.url("/a");
  EXPECT_EQ(send(**d, req).done.status, 200);
  EXPECT_EQ(rx.count(), 7u);
}

}  // namespace
}  // namespace osvi::test
