// Configuration of SIP lines (type "sip"): every key of the `sip` object, its default and each rejection by
// key path; the password file read at load; the checks between two SIP lines.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <sstream>
#include <string>
#include <vector>

#include "osvi/config/config.hpp"
#include "test_support.hpp"

namespace {

using namespace osvi::daemon;
namespace hal = osvi::hal;
using osvi::hal::RtpCodec;
using osvi::hal::SipTransport;

// Every test gets a password file the daemon may use (mode 0600) in its own folder.
class SipConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    pass_ = dir_.file("sip-201.pass");
    osvi::test::write_file(pass_, "s3cret pass\n");
    ASSERT_EQ(chmod(pass_.c_str(), 0600), 0);
  }
  // A configuration with one SIP line whose sip object is the minimal one plus `extra` (JSON members).
  std::string one_line(const std::string& extra = "", const std::string& line_extra = "") const {
    return R"({"lines":[{"id":"pbx","type":"sip")" + line_extra +
           R"(,"sip":{"registrar":"pbx.branch.lan:5060",)" + R"("user":"201","password_file":")" + pass_ +
           "\"" + (extra.empty() ? "" : "," + extra) + "}}]}";
  }
  // The same with the registrar given.
  std::string with_registrar(const std::string& registrar) const {
    return R"({"lines":[{"id":"pbx","type":"sip","sip":{"registrar":")" + registrar +
           R"(","user":"201","password_file":")" + pass_ + "\"}}]}";
  }
  // A SIP line object with the given id and extra sip members, for documents with several lines.
  std::string line(const std::string& id, const std::string& extra) const {
    return R"({"id":")" + id + R"(","type":"sip","sip":{"registrar":"pbx","user":"201","password_file":")" +
           pass_ + "\"" + (extra.empty() ? "" : "," + extra) + "}}";
  }
  static std::string rejection(const std::string& json) {
    auto r = parse_config(json);
    EXPECT_FALSE(r.ok()) << "accepted: " << json;
    if (r.ok()) return {};
    EXPECT_EQ(r.error().code, -EINVAL);
    return r.error().message;
  }
  static hal::SipLineOptions accepted(const std::string& json) {
    auto r = parse_config(json);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message) << "\nfor: " << json;
    if (!r.ok() || r->lines.empty()) return {};
    return r->lines[0].sip;
  }

  osvi::test::TempDir dir_;
  std::string pass_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}
bool has_line(const std::string& message, const std::string& line) {
  for (const std::string& l : lines_of(message))
    if (l == line) return true;
  return false;
}
bool names_path(const std::string& message, const std::string& path) {
  for (const std::string& l : lines_of(message))
    if (l.rfind(path + ": ", 0) == 0) return true;
  return false;
}
#define EXPECT_LINE(msg, line) EXPECT_TRUE(has_line(msg, line)) << "message was:\n" << (msg)
#define EXPECT_PATH(msg, path) \
  EXPECT_TRUE(names_path(msg, path)) << "no problem at " << (path) << "; message was:\n" << (msg)

TEST_F(SipConfig, MinimalLineTakesTheDocumentedDefaults) {
  auto r = parse_config(one_line());
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->lines.size(), 1u);
  const LineConfig& l = r->lines[0];
  EXPECT_EQ(l.type, LineType::sip);
  const hal::SipLineOptions& s = l.sip;
  EXPECT_EQ(s.id, "pbx");
  EXPECT_EQ(s.registrar, "pbx.branch.lan:5060");
  EXPECT_EQ(s.user, "201");
  EXPECT_EQ(s.auth_user, "");
  EXPECT_EQ(s.password, "s3cret pass");  // one trailing newline dropped, the inner blank kept
  EXPECT_EQ(s.transport, SipTransport::udp);
  EXPECT_EQ(s.tls_ca_file, "");
  EXPECT_EQ(s.outbound_proxy, "");
  EXPECT_EQ(s.local_ip, "");
  EXPECT_EQ(s.local_port, 5060);
  EXPECT_EQ(s.rtp_port_min, 16384);
  EXPECT_EQ(s.rtp_port_max, 16999);
  EXPECT_EQ(s.codecs, (std::vector<RtpCodec>{RtpCodec::opus, RtpCodec::pcmu, RtpCodec::pcma}));
  EXPECT_EQ(s.register_expires_s, 600u);
  EXPECT_EQ(s.keepalive_s, 25u);
  EXPECT_EQ(s.max_calls, 4u);
  EXPECT_EQ(s.ring_timeout_s, 60u);
  EXPECT_EQ(s.rt_priority, r->audio.rt_priority);
}

TEST_F(SipConfig, EveryKeyIsRead) {
  osvi::test::write_file(dir_.file("ca.pem"),
                         "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  const hal::SipLineOptions s = accepted(
      R"({"audio":{"rt_priority":20},"lines":[{"id":"pbx","type":"sip","agent_uuid":"",)"
      R"("number":"+4930123456","sip":{"registrar":"[2001:db8::5]:5061","user":"201","auth_user":"auth-201",)"
      R"("password_file":")" +
      pass_ + R"(","transport":"tls","tls_ca_file":")" + dir_.file("ca.pem") +
      R"(","outbound_proxy":"proxy.lan:5070","local_ip":"192.0.2.10","local_port":0,"rtp_port_min":20000,)"
      R"("rtp_port_max":20099,"codecs":["pcma","opus"],"register_expires_s":0,"keepalive_s":0,"max_calls":20,)"
      R"("ring_timeout_s":30}}]})");
  EXPECT_EQ(s.registrar, "[2001:db8::5]:5061");
  EXPECT_EQ(s.auth_user, "auth-201");
  EXPECT_EQ(s.transport, SipTransport::tls);
  EXPECT_EQ(s.tls_ca_file, dir_.file("ca.pem"));
  EXPECT_EQ(s.outbound_proxy, "proxy.lan:5070");
  EXPECT_EQ(s.local_ip, "192.0.2.10");
  EXPECT_EQ(s.local_port, 0);
  EXPECT_EQ(s.rtp_port_min, 20000);
  EXPECT_EQ(s.rtp_port_max, 20099);
  EXPECT_EQ(s.codecs, (std::vector<RtpCodec>{RtpCodec::pcma, RtpCodec::opus}));
  EXPECT_EQ(s.register_expires_s, 0u);
  EXPECT_EQ(s.keepalive_s, 0u);
  EXPECT_EQ(s.max_calls, 20u);
  EXPECT_EQ(s.ring_timeout_s, 30u);
  EXPECT_EQ(s.rt_priority, 20);  // the audio section's: the media threads are audio threads
}

TEST_F(SipConfig, SipObjectOnlyWithTypeSipAndModemKeysRefused) {
  EXPECT_LINE(rejection(R"({"lines":[{"id":"pbx","type":"sip"}]})"),
              "lines[0].sip: required when type is \"sip\"");
  EXPECT_LINE(rejection(R"({"lines":[{"id":"s","type":"sim","sip":{}}]})"),
              "lines[0].sip: only allowed when type is \"sip\"");
  EXPECT_LINE(rejection(R"({"lines":[{"id":"g","type":"at","device":"/dev/x","sip":{}}]})"),
              "lines[0].sip: only allowed when type is \"sip\"");
  EXPECT_LINE(rejection(one_line("", R"(,"device":"/dev/ttyUSB2")")),
              "lines[0].device: only allowed when type is \"at\"");
  EXPECT_LINE(rejection(one_line("", R"(,"ring_timeout_s":30)")),
              "lines[0].ring_timeout_s: only allowed when type is \"at\"");
  EXPECT_LINE(rejection(one_line("", R"(,"sim":{})")), "lines[0].sim: only allowed when type is \"sim\"");
  EXPECT_PATH(rejection(one_line(R"("bogus":1)")), "lines[0].sip.bogus");
  EXPECT_PATH(rejection(R"({"lines":[{"id":"pbx","type":"sip","sip":"x"}]})"), "lines[0].sip");
}

TEST_F(SipConfig, RegistrarIsRequiredHostOrHostPortWithIpv6InBrackets) {
  EXPECT_LINE(
      rejection(R"({"lines":[{"id":"pbx","type":"sip","sip":{"user":"201","register_expires_s":0}}]})"),
      "lines[0].sip.registrar: required key is missing");
  for (const std::string ok : {"pbx", "pbx.branch.lan", "10.0.0.1:5060", "[::1]", "[fd00::1]:5080"})
    EXPECT_EQ(accepted(with_registrar(ok)).registrar, ok);
  EXPECT_LINE(rejection(with_registrar("fd00::1")),
              "lines[0].sip.registrar: an IPv6 address goes in brackets (\"[2001:db8::1]:5060\")");
  EXPECT_LINE(rejection(with_registrar("pbx:0")),
              "lines[0].sip.registrar: the port must be 1 to 65535, got \"0\"");
  EXPECT_LINE(rejection(with_registrar("pbx:65536")),
              "lines[0].sip.registrar: the port must be 1 to 65535, got \"65536\"");
  EXPECT_LINE(rejection(with_registrar("pbx:")),
              "lines[0].sip.registrar: the port must be 1 to 65535, got \"\"");
  EXPECT_LINE(rejection(with_registrar("[fd00::1")),
              "lines[0].sip.registrar: an IPv6 address in brackets lacks its ']'");
  EXPECT_LINE(rejection(with_registrar("[nope]:5060")),
              "lines[0].sip.registrar: not an IPv6 address between the brackets: \"nope\"");
  EXPECT_LINE(rejection(with_registrar("[::1]5060")),
              "lines[0].sip.registrar: expected ':' and a port after ']'");
  EXPECT_PATH(rejection(with_registrar("sip:pbx")), "lines[0].sip.registrar");
  EXPECT_PATH(rejection(with_registrar("pbx lan")), "lines[0].sip.registrar");
  EXPECT_PATH(rejection(with_registrar("")), "lines[0].sip.registrar");
  EXPECT_PATH(rejection(one_line(R"("outbound_proxy":"proxy:99999")")), "lines[0].sip.outbound_proxy");
  EXPECT_EQ(accepted(one_line(R"("outbound_proxy":"[::1]:5070")")).outbound_proxy, "[::1]:5070");
}

TEST_F(SipConfig, UserAndAuthUser) {
  EXPECT_LINE(
      rejection(R"({"lines":[{"id":"pbx","type":"sip","sip":{"registrar":"pbx","register_expires_s":0}}]})"),
      "lines[0].sip.user: required key is missing");
  EXPECT_PATH(rejection(one_line(R"("auth_user":"a b")")), "lines[0].sip.auth_user");
  EXPECT_PATH(rejection(one_line(R"("auth_user":5)")), "lines[0].sip.auth_user");
  EXPECT_PATH(
      rejection(
          R"({"lines":[{"id":"pbx","type":"sip","sip":{"registrar":"pbx","user":"2@1","register_expires_s":0}}]})"),
      "lines[0].sip.user");
  EXPECT_EQ(accepted(one_line(R"("auth_user":"auth.201")")).auth_user, "auth.201");
}

TEST_F(SipConfig, PasswordFileIsReadAtLoadAndMustBePrivate) {
  // Missing key: required while registering, not for a trunk that routes to us by address.
  EXPECT_LINE(rejection(R"({"lines":[{"id":"pbx","type":"sip","sip":{"registrar":"pbx","user":"201"}}]})"),
              "lines[0].sip.password_file: required key is missing (registration needs the digest password)");
  EXPECT_EQ(
      accepted(
          R"({"lines":[{"id":"pbx","type":"sip","sip":{"registrar":"pbx","user":"201","register_expires_s":0}}]})")
          .password,
      "");
  const std::string missing = dir_.file("nope.pass");
  auto with_file = [this](const std::string& f) {
    return R"({"lines":[{"id":"pbx","type":"sip","sip":{"registrar":"pbx","user":"201","password_file":")" +
           f + "\"}}]}";
  };
  EXPECT_LINE(rejection(with_file(missing)),
              "lines[0].sip.password_file: " + missing + ": No such file or directory");
  EXPECT_LINE(rejection(with_file(dir_.path())),
              "lines[0].sip.password_file: " + dir_.path() + ": Is a directory");
  const std::string empty = dir_.file("empty.pass");
  osvi::test::write_file(empty, "\n");
  ASSERT_EQ(chmod(empty.c_str(), 0600), 0);
  EXPECT_LINE(rejection(with_file(empty)), "lines[0].sip.password_file: " + empty + ": empty");
  const std::string two = dir_.file("two.pass");
  osvi::test::write_file(two, "one\ntwo\n");
  ASSERT_EQ(chmod(two.c_str(), 0600), 0);
  EXPECT_LINE(rejection(with_file(two)), "lines[0].sip.password_file: " + two + ": more than one line");
  ASSERT_EQ(chmod(pass_.c_str(), 0640), 0);
  const std::string msg = rejection(with_file(pass_));
  EXPECT_LINE(msg, "lines[0].sip.password_file: " + pass_ +
                       ": a password file must be readable by its owner only (mode 0640; chmod 600 it)");
  EXPECT_EQ(msg.find("s3cret"), std::string::npos) << "the password must never be printed";
  ASSERT_EQ(chmod(pass_.c_str(), 0604), 0);
  EXPECT_PATH(rejection(with_file(pass_)), "lines[0].sip.password_file");
  // Without a newline, and with CRLF: one line end dropped, nothing else.
  osvi::test::write_file(pass_, "pw ");
  ASSERT_EQ(chmod(pass_.c_str(), 0600), 0);
  EXPECT_EQ(accepted(with_file(pass_)).password, "pw ");
  osvi::test::write_file(pass_, "pw\r\n");
  EXPECT_EQ(accepted(with_file(pass_)).password, "pw");
}

TEST_F(SipConfig, TransportAndTlsCaFile) {
  EXPECT_EQ(accepted(one_line(R"("transport":"tcp")")).transport, SipTransport::tcp);
  EXPECT_LINE(rejection(one_line(R"("transport":"sctp")")),
              "lines[0].sip.transport: must be \"udp\", \"tcp\" or \"tls\", got \"sctp\"");
  EXPECT_LINE(rejection(one_line(R"("transport":"tls")")),
              "lines[0].sip.tls_ca_file: required when transport is \"tls\" (the CA bundle the registrar is "
              "checked against)");
  const std::string ca = dir_.file("missing-ca.pem");
  EXPECT_LINE(rejection(one_line(R"("transport":"tls","tls_ca_file":")" + ca + "\"")),
              "lines[0].sip.tls_ca_file: " + ca + ": No such file or directory");
  EXPECT_LINE(rejection(one_line(R"("tls_ca_file":")" + pass_ + "\"")),
              "lines[0].sip.tls_ca_file: only allowed when transport is \"tls\"");
}

TEST_F(SipConfig, LocalAddressAndPorts) {
  EXPECT_EQ(accepted(one_line(R"("local_ip":"::1")")).local_ip, "::1");
  EXPECT_PATH(rejection(one_line(R"("local_ip":"pbx.lan")")), "lines[0].sip.local_ip");
  EXPECT_PATH(rejection(one_line(R"("local_ip":"[::1]")")), "lines[0].sip.local_ip");
  EXPECT_LINE(rejection(one_line(R"("local_port":70000)")),
              "lines[0].sip.local_port: must be between 0 and 65535, got 70000");
  EXPECT_LINE(rejection(one_line(R"("local_port":16500)")),
              "lines[0].sip.local_port: must lie outside the RTP range 16384-16999, got 16500");
}

TEST_F(SipConfig, RtpPortRangeIsWholePairsAndHoldsMaxCalls) {
  EXPECT_LINE(rejection(one_line(R"("rtp_port_min":80)")),
              "lines[0].sip.rtp_port_min: must be between 1024 and 65535, got 80");
  EXPECT_LINE(rejection(one_line(R"("rtp_port_max":70000)")),
              "lines[0].sip.rtp_port_max: must be between 1024 and 65535, got 70000");
  EXPECT_LINE(rejection(one_line(R"("rtp_port_min":20000,"rtp_port_max":20000)")),
              "lines[0].sip.rtp_port_max: must be above rtp_port_min (20000), got 20000");
  EXPECT_LINE(rejection(one_line(R"("rtp_port_min":20001,"rtp_port_max":20100)")),
              "lines[0].sip.rtp_port_min: must be even (RTP takes the even port of each pair), got 20001");
  EXPECT_LINE(rejection(one_line(R"("rtp_port_min":20000,"rtp_port_max":20100)")),
              "lines[0].sip.rtp_port_max: must be odd, so the range holds whole RTP/RTCP pairs, got 20100");
  EXPECT_LINE(
      rejection(one_line(R"("rtp_port_min":20000,"rtp_port_max":20005,"max_calls":4)")),
      "lines[0].sip.rtp_port_max: the range 20000-20005 holds 3 RTP/RTCP pairs, fewer than max_calls (4)");
  const hal::SipLineOptions s =
      accepted(one_line(R"("rtp_port_min":20000,"rtp_port_max":20007,"max_calls":4)"));
  EXPECT_EQ(s.rtp_port_max, 20007);
}

TEST_F(SipConfig, CodecsAreADistinctNonEmptyList) {
  EXPECT_EQ(accepted(one_line(R"("codecs":["pcmu"])")).codecs, std::vector<RtpCodec>{RtpCodec::pcmu});
  EXPECT_LINE(rejection(one_line(R"("codecs":[])")),
              "lines[0].sip.codecs: must list at least one of \"opus\", \"pcmu\", \"pcma\"");
  EXPECT_LINE(rejection(one_line(R"("codecs":["pcmu","g729"])")),
              "lines[0].sip.codecs[1]: must be \"opus\", \"pcmu\" or \"pcma\", got \"g729\"");
  EXPECT_LINE(rejection(one_line(R"("codecs":["pcma","pcma"])")),
              "lines[0].sip.codecs[1]: duplicate codec \"pcma\"");
  EXPECT_LINE(rejection(one_line(R"("codecs":[8])")),
              "lines[0].sip.codecs[0]: expected a string, got number");
  EXPECT_PATH(rejection(one_line(R"("codecs":"opus")")), "lines[0].sip.codecs");
}

TEST_F(SipConfig, Timers) {
  EXPECT_LINE(rejection(one_line(R"("register_expires_s":59)")),
              "lines[0].sip.register_expires_s: must be 0 (no registration) or 60 to 86400, got 59");
  EXPECT_LINE(rejection(one_line(R"("register_expires_s":86401)")),
              "lines[0].sip.register_expires_s: must be between 0 and 86400, got 86401");
  EXPECT_EQ(accepted(one_line(R"("register_expires_s":60)")).register_expires_s, 60u);
  EXPECT_LINE(rejection(one_line(R"("keepalive_s":3601)")),
              "lines[0].sip.keepalive_s: must be between 0 and 3600, got 3601");
  EXPECT_LINE(rejection(one_line(R"("ring_timeout_s":0)")),
              "lines[0].sip.ring_timeout_s: must be between 1 and 300, got 0");
  EXPECT_LINE(rejection(one_line(R"("max_calls":0)")),
              "lines[0].sip.max_calls: must be between 1 and 64, got 0");
  EXPECT_LINE(rejection(one_line(R"("max_calls":65)")),
              "lines[0].sip.max_calls: must be between 1 and 64, got 65");
}

TEST_F(SipConfig, TwoSipLinesMustNotShareRtpPortsOrTheSipPort) {
  auto two = [this](const std::string& a, const std::string& b) {
    return "{\"lines\":[" + line("pbx", a) + "," + line("trunk", b) + "]}";
  };
  auto ok = parse_config(
      two(R"("local_port":5060)", R"("local_port":5062,"rtp_port_min":17000,"rtp_port_max":17099)"));
  EXPECT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_LINE(rejection(two("", R"("local_port":5062,"rtp_port_min":16900,"rtp_port_max":17099)")),
              "lines[1].sip.rtp_port_min: the RTP range 16900-17099 overlaps line \"pbx\"'s (16384-16999)");
  EXPECT_LINE(rejection(two("", R"("rtp_port_min":17000,"rtp_port_max":17099)")),
              "lines[1].sip.local_port: 5060 is line \"pbx\"'s SIP port too");
  // Different addresses may use the same port; port 0 (any) never collides.
  EXPECT_TRUE(parse_config(two(R"("local_ip":"127.0.0.1")",
                               R"("local_ip":"127.0.0.2","rtp_port_min":17000,"rtp_port_max":17099)"))
                  .ok());
  EXPECT_TRUE(
      parse_config(two(R"("local_port":0)", R"("local_port":0,"rtp_port_min":17000,"rtp_port_max":17099)"))
          .ok());
  EXPECT_LINE(rejection(two(R"("local_port":17010)",
                            R"("local_port":5062,"rtp_port_min":17000,"rtp_port_max":17099)")),
              "lines[1].sip.rtp_port_min: the RTP range 17000-17099 holds line \"pbx\"'s SIP port 17010");
}

TEST_F(SipConfig, NumberStaysE164AndTheAgentMustExist) {
  EXPECT_PATH(rejection(one_line("", R"(,"number":"201")")), "lines[0].number");
  EXPECT_LINE(rejection(one_line("", R"(,"agent_uuid":"nobody")")),
              "lines[0].agent_uuid: unknown agent \"nobody\"");
}

// An agent may transfer to a PBX extension only when a SIP line can carry the REFER.
TEST_F(SipConfig, TransferToAnExtensionNeedsASipLine) {
  EXPECT_LINE(
      rejection(
          R"({"agents":[{"agent_uuid":"agent_a","name":"A","tools":{"transfer":{"enabled":true,"number":"200"}}}]})"),
      "agents[0].tools.transfer.number: \"200\" is a PBX extension, which needs an enabled line of type "
      "\"sip\"");
  std::string with_sip = one_line();
  with_sip.pop_back();  // the closing brace
  with_sip.append(
      R"(,"agents":[{"agent_uuid":"agent_a","name":"A","tools":{"transfer":{"number":"200"}}}]})");
  auto r = parse_config(with_sip);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->agents[0].tools.transfer.number, "200");
  EXPECT_PATH(
      rejection(R"({"agents":[{"agent_uuid":"agent_a","name":"A","tools":{"transfer":{"number":"2-0"}}}]})"),
      "agents[0].tools.transfer.number");
}

}  // namespace
