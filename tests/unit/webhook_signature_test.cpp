// Standard Webhooks signing: the spec's test vector, base64 edge cases, the whsec_ form, the box's secret
// file, and agreement with an independent implementation (python3's hmac).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "osvi/net/text.hpp"
#include "osvi/webhooks/signature.hpp"
#include "test_support.hpp"

namespace osvi::daemon::webhooks {
namespace {

// The Standard Webhooks specification's example (and its libraries' shared test vector).
TEST(WebhookSignature, MatchesTheSpecVector) {
  auto key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  ASSERT_TRUE(key.ok());
  auto sig = sign(*key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})");
  ASSERT_TRUE(sig) << sig.error().message;
  EXPECT_EQ(*sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  // One byte of the body, the id or the timestamp changed: another signature.
  auto later = sign(*key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, R"({"test": 2432232314})");
  ASSERT_TRUE(later) << later.error().message;
  EXPECT_NE(*later, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST(WebhookSignature, Base64RoundTripsAndRejectsGarbage) {
  EXPECT_EQ(net::base64_encode(""), "");
  EXPECT_EQ(net::base64_encode("f"), "Zg==");
  EXPECT_EQ(net::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(net::base64_encode("foo"), "Zm9v");
  EXPECT_EQ(net::base64_encode("foobar"), "Zm9vYmFy");
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  auto back = net::base64_decode(net::base64_encode(all));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, all);
  EXPECT_FALSE(net::base64_decode("Zm9").has_value());
  EXPECT_FALSE(net::base64_decode("Zm=v").has_value());
  EXPECT_FALSE(net::base64_decode("Zm9v YmFy").has_value());
  EXPECT_FALSE(decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").ok());  // no whsec_ prefix
  EXPECT_FALSE(decode_secret("whsec_").ok());
  EXPECT_EQ(encode_secret("foo"), "whsec_Zm9v");
}

TEST(WebhookSignature, BoxSecretIsCreatedOnceWith0600) {
  test::TempDir dir;
  const std::string path = dir.file("webhook_secret");
  auto first = load_or_create_secret_file(path);
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto key = decode_secret(*first);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->size(), 32u);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = load_or_create_secret_file(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *first);
  test::write_file(path, "not a secret\n");
  EXPECT_FALSE(load_or_create_secret_file(path).ok());  // damaged: reported, never replaced
}

// python3 computes the same header value from the same inputs (the body through a file, so no quoting).
std::string python_signature(const std::string& secret, const std::string& id, int64_t ts,
                             const std::string& body, const test::TempDir& dir) {
  const std::string body_path = dir.file("body");
  test::write_file(body_path, body);
  const std::string cmd =
      "python3 -c 'import base64,hashlib,hmac,sys; k=base64.b64decode(sys.argv[1][6:]); "
      "b=open(sys.argv[4],\"rb\").read(); m=sys.argv[2].encode()+b\".\"+sys.argv[3].encode()+b\".\"+b; "
      "print(\"v1,\"+base64.b64encode(hmac.new(k,m,hashlib.sha256).digest()).decode())' " +
      secret + " " + id + " " + std::to_string(ts) + " " + body_path;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return {};
  std::string out;
  char buf[256];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  EXPECT_EQ(::pclose(p), 0);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

TEST(WebhookSignature, AgreesWithPythonHmac) {
  test::TempDir dir;
  auto secret = load_or_create_secret_file(dir.file("webhook_secret"));
  ASSERT_TRUE(secret.ok());
  auto key = decode_secret(*secret);
  ASSERT_TRUE(key.ok());
  const std::string bodies[] = {"", R"({"call_id":"c1","summary":"naïve \"quoted\" text\nline 2"})",
                                std::string(5000, 'x')};
  for (const std::string& body : bodies) {
    auto sig = sign(*key, "msg_2abcdefghijklmnopqrstuvwxy", 1780000000, body);
    ASSERT_TRUE(sig) << sig.error().message;
    EXPECT_EQ(*sig, python_signature(*secret, "msg_2abcdefghijklmnopqrstuvwxy", 1780000000, body, dir));
  }
}

}  // namespace
}  // namespace osvi::daemon::webhooks
