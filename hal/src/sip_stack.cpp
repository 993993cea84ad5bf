// The SIP-thread side of SipTrunk: libre (registration, sessions, SDP, REFER) on one process-wide thread.
//
// libre 1.1.0 keeps its main loop (fd table, timer list) in one global `struct re` unless a thread calls
// re_thread_init(), and libre_init()/libre_close() set up and tear down process-wide state (OpenSSL, the fd
// table). Two trunks with a thread each would share that global loop from two threads. So every trunk of the
// process runs on ONE shared SIP thread (Stack, reference-counted: started by the first trunk, stopped and
// joined, libre_close()d, by the last). Each trunk has its own `struct sip` and sockets on it.
//
// Work reaches the thread through libre's mqueue (mqueue_push is thread-safe); results go back through the
// trunk's Inbox (sip_internal.hpp). Nothing here touches loop-side state.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "osvi/hal/sip_parse.hpp"
#include "sip_internal.hpp"

// libre's headers define min/max macros and C99 bool helpers; they come last and the macros go. libre is
// built with OpenSSL (Debian), which exposes tls_openssl_context() only under USE_OPENSSL.
#define USE_OPENSSL 1
#include <re.h>
#undef min
#undef max

namespace osvi::hal::sipi {

namespace {

constexpr const char* kAllow = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REFER, NOTIFY";
constexpr unsigned kBackoffMinS = 5;
constexpr unsigned kBackoffMaxS = 300;
constexpr unsigned kReferTimeoutMs = 30000;
constexpr uint64_t kTeardownMs = 900;

std::string err_text(int err) {
  char buf[128];
  return std::string(str_error(err, buf, sizeof buf));
}

std::string pl_str(const pl& p) {
  return p.p && p.l ? std::string(p.p, p.l) : std::string();
}

// ---------------------------------------------------------------------------------------------------------
// The shared SIP thread.

class Stack {
 public:
  // Starts the thread for the first user; an error when libre could not start.
  static Result<Stack*> acquire() {
    std::lock_guard lock(mu_);
    if (!instance_) {
      auto s = std::unique_ptr<Stack>(new Stack());
      std::promise<int> ready;
      auto started = ready.get_future();
      s->thread_ = std::thread([p = s.get(), &ready] { p->run(ready); });
      const int err = started.get();
      if (err) {
        s->thread_.join();
        return make_error("SIP stack (libre) failed to start: " + err_text(err), -err);
      }
      instance_ = s.release();
    }
    ++refs_;
    return instance_;
  }
  // The last user stops the thread and joins it.
  static void release() {
    std::lock_guard lock(mu_);
    if (--refs_ > 0) return;
    mqueue_push(instance_->mq_, kCancel, nullptr);
    instance_->thread_.join();
    delete instance_;
    instance_ = nullptr;
  }
  void post(std::function<void()> fn) {
    auto* f = new std::function<void()>(std::move(fn));
    if (mqueue_push(mq_, kRun, f) != 0) delete f;  // only when out of memory: the command is lost
  }

 private:
  enum { kRun = 1, kCancel = 2 };
  Stack() = default;

  void run(std::promise<int>& ready) {
    int err = libre_init();
    if (!err) err = mqueue_alloc(&mq_, &Stack::on_message, this);
    if (err) {
      mq_ = static_cast<mqueue*>(mem_deref(mq_));
      libre_close();
      ready.set_value(err);
      return;
    }
    ready.set_value(0);
    (void)re_main(nullptr);
    mq_ = static_cast<mqueue*>(mem_deref(mq_));
    libre_close();
  }
  static void on_message(int id, void* data, void*) {
    if (id == kCancel) {
      re_cancel();
      return;
    }
    std::unique_ptr<std::function<void()>> f(static_cast<std::function<void()>*>(data));
    (*f)();
  }

  static inline std::mutex mu_;
  static inline Stack* instance_ = nullptr;
  static inline unsigned refs_ = 0;
  std::thread thread_;
  mqueue* mq_ = nullptr;
};

// ---------------------------------------------------------------------------------------------------------
// One trunk on the SIP thread.

struct HostPort {
  std::string host;  // without brackets
  uint16_t port = 0;
};

HostPort split_host_port(const std::string& s) {
  HostPort hp;
  if (!s.empty() && s.front() == '[') {
    const size_t close = s.find(']');
    hp.host = s.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < s.size() && s[close + 1] == ':')
      hp.port = static_cast<uint16_t>(std::atoi(s.c_str() + close + 2));
    return hp;
  }
  const size_t colon = s.rfind(':');
  if (colon != std::string::npos && s.find(':') == colon) {
    hp.host = s.substr(0, colon);
    hp.port = static_cast<uint16_t>(std::atoi(s.c_str() + colon + 1));
  } else {
    hp.host = s;
  }
  return hp;
}

// The address this host would send from to reach `host` (a connected UDP socket sends nothing).
std::string source_address_towards(const HostPort& hp) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(hp.port ? hp.port : 5060);
  if (getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res) != 0 || !res) return {};
  std::string out;
  const int fd = ::socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      char buf[INET6_ADDRSTRLEN] = {};
      const void* a = ss.ss_family == AF_INET6
                          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr)
                          : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&ss)->sin_addr);
      if (inet_ntop(ss.ss_family, a, buf, sizeof buf)) out = buf;
    }
    ::close(fd);
  }
  freeaddrinfo(res);
  return out;
}

class Trunk;

struct Call {
  Trunk* trunk = nullptr;
  unsigned slot = 0;
  uint64_t id = 0;
  bool outbound = false;
  bool answered = false;  // 200 sent (inbound) / received (outbound)
  bool alerting_sent = false;
  bool closing = false;  // we are ending it: libre's callbacks for it are void
  std::string number;
  sipsess* sess = nullptr;
  sdp_session* sdp = nullptr;
  sdp_media* media = nullptr;
  const sip_msg* invite = nullptr;  // inbound, until answered: its SDP offer (or none)
  bool offer_pending = false;       // inbound INVITE without SDP: we offer in the 200
  Media agreed;
  bool have_media = false;
  // REFER
  sipsub* sub = nullptr;
  std::string refer_to;
  bool refer_done = true;
  tmr refer_tmr{};
  tmr defer_tmr{};
  int deferred = 0;  // what defer_tmr does: 1 transfer succeeded, 2 transfer failed
  std::string defer_reason;
  // Attended transfer: the consultation call to the target (no media: a=inactive), and its dialog's ids
  // for the REFER's Replaces (RFC 3891).
  sipsess* consult = nullptr;
  sdp_session* consult_sdp = nullptr;
  bool consult_up = false;
  tmr consult_tmr{};
  // SIP INFO DTMF out, one request at a time
  std::string info_queue;
  bool info_pending = false;
};

class Trunk final : public SipEngine {
 public:
  Trunk(SipLineOptions opt, std::shared_ptr<Shared> shared, Stack* stack)
      : opt_(std::move(opt)), sh_(std::move(shared)), stack_(stack), slots_(opt_.max_calls) {
    tmr_init(&reg_tmr_);
    tmr_init(&drop_tmr_);
    tmr_init(&ka_tmr_);
    tmr_init(&close_tmr_);
  }

  ~Trunk() override {
    std::promise<void> done;
    auto f = done.get_future();
    stack_->post([this, &done] { teardown(&done); });
    f.wait();
    Stack::release();
  }

  void post(Command c) override {
    stack_->post([this, c = std::move(c)] { on_command(c); });
  }

  // SIP thread: allocates the stack objects (no socket yet).
  int setup(std::string& why) {
    reg_hp_ = split_host_port(opt_.registrar);
    const char* tparam = opt_.transport == SipTransport::udp   ? ""
                         : opt_.transport == SipTransport::tcp ? ";transport=tcp"
                                                               : ";transport=tls";
    const std::string host_lit =
        reg_hp_.host.find(':') != std::string::npos ? "[" + reg_hp_.host + "]" : reg_hp_.host;
    domain_ = reg_hp_.port ? host_lit + ":" + std::to_string(reg_hp_.port) : host_lit;
    reg_uri_ = "sip:" + domain_ + tparam;
    aor_ = "sip:" + opt_.user + "@" + host_lit;
    tparam_ = tparam;
    if (!opt_.outbound_proxy.empty()) route_ = "sip:" + opt_.outbound_proxy + ";lr" + tparam;

    sa nsv[8];
    uint32_t nsn = 8;
    char dom[64] = {};
    if (dns_srv_get(dom, sizeof dom, nsv, &nsn) == 0 && nsn > 0) (void)dnsc_alloc(&dnsc_, nullptr, nsv, nsn);
    int err = sip_alloc(&sip_, dnsc_, 32, 32, 32, "osvi-edge", nullptr, nullptr);
    if (err) return why = "sip_alloc: " + err_text(err), err;
    err = sipsess_listen(&sock_, sip_, 32, &Trunk::on_invite, this);
    if (!err) err = sipevent_listen(&evsock_, sip_, 32, 32, &Trunk::on_subscribe, this);
    if (!err) err = sip_listen(&lsnr_, sip_, true, &Trunk::on_other_request, this);
    if (err) return why = "SIP listeners: " + err_text(err), err;
    if (opt_.transport == SipTransport::tls) {
      err = tls_alloc(&tls_, TLS_METHOD_SSLV23, nullptr, nullptr);
      if (err) return why = "TLS: " + err_text(err), err;
      if (!opt_.tls_ca_file.empty()) {
        err = tls_add_ca(tls_, opt_.tls_ca_file.c_str());
        if (err) return why = "tls_ca_file " + opt_.tls_ca_file + ": cannot load", err;
      } else {
        SSL_CTX_set_default_verify_paths(tls_openssl_context(tls_));
      }
      // libre 1.1.0 does not verify a SIP server's certificate on its own: require it, and its name.
      SSL_CTX* ctx = tls_openssl_context(tls_);
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
      X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
      in6_addr a6{};
      in_addr a4{};
      if (inet_pton(AF_INET, reg_hp_.host.c_str(), &a4) == 1 ||
          inet_pton(AF_INET6, reg_hp_.host.c_str(), &a6) == 1)
        X509_VERIFY_PARAM_set1_ip_asc(param, reg_hp_.host.c_str());
      else
        X509_VERIFY_PARAM_set1_host(param, reg_hp_.host.c_str(), 0);
    }
    base_refs_ = mem_nrefs(sip_);
    return 0;
  }

 private:
  // --- reports ----------------------------------------------------------------------------------------
  void report(Report r) { sh_->inbox.post(std::move(r)); }
  void report_call(const Call& c, Report::Kind k) {
    Report r;
    r.kind = k;
    r.slot = c.slot;
    r.call = c.id;
    report(std::move(r));
  }
  void report_registration(const std::string& state, uint16_t code, std::string reason, bool up) {
    Report r;
    r.kind = Report::Kind::registration;
    r.registration = state;
    r.code = code;
    r.reason = std::move(reason);
    r.up = up;
    r.expires_s = expires_;
    r.contact = contact_;
    report(std::move(r));
  }

  // --- commands ---------------------------------------------------------------------------------------
  void on_command(const Command& c) {
    if (closing_) return;
    switch (c.kind) {
      case Command::Kind::start:
        return start_transport();
      case Command::Kind::dial:
        return dial(c);
      case Command::Kind::answer:
        return answer(c);
      case Command::Kind::hangup:
        return hangup(c);
      case Command::Kind::info_dtmf:
        if (Call* call = find(c.slot, c.call)) {
          call->info_queue += c.text;
          send_next_info(call);
        }
        return;
      case Command::Kind::refer:
        return refer(c);
      case Command::Kind::refer_attended:
        return consult(c);
    }
  }

  Call* find(unsigned slot, uint64_t id) {
    if (slot >= slots_.size() || !slots_[slot] || slots_[slot]->id != id) return nullptr;
    return slots_[slot].get();
  }

  // --- transport and registration ---------------------------------------------------------------------
  void start_transport() {
    if (transport_up_) return;
    std::string ip = opt_.local_ip;
    if (ip.empty()) ip = source_address_towards(reg_hp_);
    if (ip.empty()) {
      sa def{};
      if (net_default_source_addr_get(AF_INET, &def) == 0) {
        char buf[64];
        if (re_snprintf(buf, sizeof buf, "%j", &def) > 0) ip = buf;
      }
    }
    if (ip.empty()) return transport_failed("no local address routes to the registrar " + reg_hp_.host);
    sa laddr{};
    int err = sa_set_str(&laddr, ip.c_str(), opt_.local_port);
    if (!err) {
      const sip_transp tp = opt_.transport == SipTransport::udp   ? SIP_TRANSP_UDP
                            : opt_.transport == SipTransport::tcp ? SIP_TRANSP_TCP
                                                                  : SIP_TRANSP_TLS;
      err = tp == SIP_TRANSP_TLS ? sip_transp_add(sip_, tp, &laddr, tls_) : sip_transp_add(sip_, tp, &laddr);
    }
    if (err) {
      return transport_failed("cannot bind SIP " + std::string(to_string(opt_.transport)) + " on " + ip +
                              ":" + std::to_string(opt_.local_port) + ": " + err_text(err));
    }
    local_ip_ = ip;
    transport_up_ = true;
    if (opt_.register_expires_s == 0) {
      contact_ = "sip:" + opt_.user + "@" + ip;
      return report_registration("disabled", 0, {}, true);
    }
    do_register();
  }

  void transport_failed(std::string why) {
    report_registration("failed", 0, why, false);
    schedule_retry(0);
  }

  void do_register() {
    if (closing_) return;
    report_registration("registering", last_code_, last_reason_, registered_);
    const char* routev[1] = {route_.c_str()};
    const int err =
        sipreg_register(&reg_, sip_, reg_uri_.c_str(), aor_.c_str(), nullptr, aor_.c_str(),
                        opt_.register_expires_s, opt_.user.c_str(), routev, route_.empty() ? 0 : 1, 0,
                        &Trunk::on_auth, this, false, &Trunk::on_register_response, this, nullptr, nullptr);
    if (err) {
      reg_ = nullptr;
      registration_failed(0, "registrar unreachable: " + err_text(err), 0);
    }
  }

  static int on_auth(char** user, char** pass, const char*, void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    const std::string& u = t->opt_.auth_user.empty() ? t->opt_.user : t->opt_.auth_user;
    int err = str_dup(user, u.c_str());
    err |= str_dup(pass, t->opt_.password.c_str());
    return err;
  }

  static void on_register_response(int err, const sip_msg* msg, void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    if (t->closing_) return;
    if (err || !msg)
      return t->registration_failed(0, "registrar unreachable: " + err_text(err ? err : ETIMEDOUT), 0);
    if (msg->scode < 200) return;
    if (msg->scode < 300) {
      t->registered_ = true;
      t->backoff_s_ = kBackoffMinS;
      t->expires_ = sipreg_proxy_expires(t->reg_);
      t->registrar_addr_ = msg->src;
      t->last_code_ = msg->scode;
      t->last_reason_ = pl_str(msg->reason);
      const sa* l = sipreg_laddr(t->reg_);
      char buf[128] = {};
      if (l && re_snprintf(buf, sizeof buf, "sip:%s@%J%s", t->opt_.user.c_str(), l, t->tparam_.c_str()) > 0)
        t->contact_ = buf;
      t->report_registration("registered", msg->scode, t->last_reason_, true);
      t->arm_keepalive();
      return;
    }
    unsigned retry_after = 0;
    if (const sip_hdr* h = sip_msg_hdr(msg, SIP_HDR_RETRY_AFTER)) {
      for (size_t i = 0; i < h->val.l && std::isdigit(static_cast<unsigned char>(h->val.p[i])); ++i)
        retry_after = std::min(retry_after * 10 + static_cast<unsigned>(h->val.p[i] - '0'), 86400u);
    }
    t->registration_failed(
        msg->scode, "SIP registration failed: " + std::to_string(msg->scode) + " " + pl_str(msg->reason),
        retry_after);
  }

  void registration_failed(uint16_t code, std::string why, unsigned retry_after_s) {
    registered_ = false;
    expires_ = 0;
    last_code_ = code;
    last_reason_ = why;
    tmr_cancel(&ka_tmr_);
    report_registration("failed", code, std::move(why), false);
    // The failed sipreg would retry on its own schedule: drop it outside its own callback, retry on ours.
    tmr_start(&drop_tmr_, 0, &Trunk::on_drop_reg, this);
    schedule_retry(retry_after_s);
  }

  static void on_drop_reg(void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    t->reg_ = static_cast<sipreg*>(mem_deref(t->reg_));
  }

  void schedule_retry(unsigned retry_after_s) {
    const unsigned wait_s = retry_after_s > 0 ? std::min(retry_after_s, 3600u) : backoff_s_;
    if (retry_after_s == 0) backoff_s_ = std::min(backoff_s_ * 2, kBackoffMaxS);
    tmr_start(&reg_tmr_, static_cast<uint64_t>(wait_s) * 1000, &Trunk::on_retry, this);
  }

  static void on_retry(void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    t->reg_ = static_cast<sipreg*>(mem_deref(t->reg_));
    if (!t->transport_up_) return t->start_transport();
    t->do_register();
  }

  void arm_keepalive() {
    if (opt_.keepalive_s == 0) return;
    tmr_start(&ka_tmr_, static_cast<uint64_t>(opt_.keepalive_s) * 1000, &Trunk::on_keepalive, this);
  }

  static void on_keepalive(void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    if (!t->registered_ || t->closing_) return;
    if (t->opt_.transport == SipTransport::udp) {
      // OPTIONS refreshes the NAT binding and proves the registrar still answers (any answer will do).
      uri route{};
      pl rpl{};
      const uri* routep = nullptr;
      if (!t->route_.empty()) {
        pl_set_str(&rpl, t->route_.c_str());
        if (uri_decode(&route, &rpl) == 0) routep = &route;
      }
      const int err =
          sip_requestf(nullptr, t->sip_, true, "OPTIONS", t->reg_uri_.c_str(), routep, nullptr, nullptr,
                       &Trunk::on_options_response, t,
                       "Max-Forwards: 70\r\n"
                       "To: <%s>\r\n"
                       "From: <%s>;tag=%016llx\r\n"
                       "Call-ID: %016llx\r\n"
                       "CSeq: %u OPTIONS\r\n"
                       "Content-Length: 0\r\n\r\n",
                       t->reg_uri_.c_str(), t->aor_.c_str(), static_cast<unsigned long long>(rand_u64()),
                       static_cast<unsigned long long>(rand_u64()), ++t->options_cseq_);
      (void)err;
    } else {
      // RFC 5626 §4.4.1: a CRLF ping over the registration's connection.
      mbuf* mb = mbuf_alloc(4);
      if (mb) {
        (void)mbuf_write_str(mb, "\r\n\r\n");
        mb->pos = 0;
        const sip_transp tp = t->opt_.transport == SipTransport::tcp ? SIP_TRANSP_TCP : SIP_TRANSP_TLS;
        (void)sip_send(t->sip_, nullptr, tp, &t->registrar_addr_, mb);
        mem_deref(mb);
      }
    }
    t->arm_keepalive();
  }

  static void on_options_response(int err, const sip_msg*, void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    if (t->closing_ || !err || !t->registered_) return;
    // The registrar stopped answering: register again now (which reports the failure and backs off).
    tmr_cancel(&t->reg_tmr_);
    t->registration_failed(0, "registrar unreachable: " + err_text(err), 1);
  }

  // --- SDP ----------------------------------------------------------------------------------------------
  int make_sdp(Call* c, uint16_t rtp_port) {
    sa laddr{};
    int err = sa_set_str(&laddr, local_ip_.c_str(), 0);
    if (!err) err = sdp_session_alloc(&c->sdp, &laddr);
    if (!err) err = sdp_media_add(&c->media, c->sdp, "audio", rtp_port, "RTP/AVP");
    if (err) return err;
    const bool opus = std::find(opt_.codecs.begin(), opt_.codecs.end(), RtpCodec::opus) != opt_.codecs.end();
    for (RtpCodec codec : opt_.codecs) {
      switch (codec) {
        case RtpCodec::opus:
          err |= sdp_format_add(nullptr, c->media, false, "111", "opus", 48000, 2, nullptr, nullptr, nullptr,
                                false, "maxplaybackrate=16000;sprop-maxcapturerate=16000;useinbandfec=1");
          break;
        case RtpCodec::pcmu:
          err |= sdp_format_add(nullptr, c->media, false, "0", "PCMU", 8000, 1, nullptr, nullptr, nullptr,
                                false, nullptr);
          break;
        case RtpCodec::pcma:
          err |= sdp_format_add(nullptr, c->media, false, "8", "PCMA", 8000, 1, nullptr, nullptr, nullptr,
                                false, nullptr);
          break;
      }
    }
    err |= sdp_format_add(nullptr, c->media, false, "101", "telephone-event", 8000, 1, nullptr, nullptr,
                          nullptr, false, "0-16");
    if (opus)
      err |= sdp_format_add(nullptr, c->media, false, "102", "telephone-event", 48000, 1, nullptr, nullptr,
                            nullptr, false, "0-16");
    err |= sdp_media_set_lattr(c->media, true, "ptime", "20");
    return err;
  }

  // After sdp_decode: our first preference the peer has, and the telephone-event of its clock. The other
  // formats are marked unsupported so an answer names only these.
  bool negotiate(Call* c) {
    const sdp_format* chosen = nullptr;
    RtpCodec chosen_codec = RtpCodec::pcmu;
    for (RtpCodec codec : opt_.codecs) {
      const char* name = codec == RtpCodec::opus ? "opus" : codec == RtpCodec::pcmu ? "PCMU" : "PCMA";
      const int32_t srate = codec == RtpCodec::opus ? 48000 : 8000;
      const sdp_format* f = sdp_media_format(c->media, true, nullptr, -1, name, srate, -1);
      if (f && f->sup) {
        chosen = f;
        chosen_codec = codec;
        break;
      }
    }
    if (!chosen) return false;
    const uint32_t clock = chosen_codec == RtpCodec::opus ? 48000 : 8000;
    const sdp_format* dtmf = nullptr;
    for (le* e = list_head(sdp_media_format_lst(c->media, true)); e; e = e->next) {
      auto* f = static_cast<sdp_format*>(e->data);
      if (f == chosen) continue;
      if (f->sup && !dtmf && f->name && str_casecmp(f->name, "telephone-event") == 0 && f->srate == clock) {
        dtmf = f;
        continue;
      }
      f->sup = false;
    }
    Media m;
    m.codec = chosen_codec;
    m.payload_type = static_cast<uint8_t>(chosen->pt);
    m.dtmf_payload_type = dtmf ? static_cast<uint8_t>(dtmf->pt) : 0;
    const sa* raddr = sdp_media_raddr(c->media);
    char ip[64] = {};
    if (raddr && sa_isset(raddr, SA_ADDR)) re_snprintf(ip, sizeof ip, "%j", raddr);
    m.remote_ip = ip;
    m.remote_rtp_port = raddr ? sa_port(raddr) : 0;
    sa rtcp{};
    sdp_media_raddr_rtcp(c->media, &rtcp);
    m.remote_rtcp_port = sa_port(&rtcp);
    const sdp_dir rdir = sdp_media_rdir(c->media);
    m.hold =
        m.remote_rtp_port == 0 || rdir == SDP_SENDONLY || rdir == SDP_INACTIVE || m.remote_ip == "0.0.0.0";
    c->agreed = m;
    c->have_media = true;
    return true;
  }

  void report_media(const Call& c) {
    Report r;
    r.kind = Report::Kind::media;
    r.slot = c.slot;
    r.call = c.id;
    r.media = c.agreed;
    report(std::move(r));
  }

  // --- calls --------------------------------------------------------------------------------------------
  Call* new_call(unsigned slot, uint64_t id, bool outbound) {
    auto c = std::make_unique<Call>();
    c->trunk = this;
    c->slot = slot;
    c->id = id;
    c->outbound = outbound;
    tmr_init(&c->refer_tmr);
    tmr_init(&c->defer_tmr);
    tmr_init(&c->consult_tmr);
    slots_[slot] = std::move(c);
    return slots_[slot].get();
  }

  // Frees every libre object of the call (a session still up ends with BYE/CANCEL) and the slot.
  void free_call(Call* c) {
    c->closing = true;
    tmr_cancel(&c->refer_tmr);
    tmr_cancel(&c->defer_tmr);
    tmr_cancel(&c->consult_tmr);
    c->sub = static_cast<sipsub*>(mem_deref(c->sub));
    c->consult = static_cast<sipsess*>(mem_deref(c->consult));
    c->consult_sdp = static_cast<sdp_session*>(mem_deref(c->consult_sdp));
    c->sess = static_cast<sipsess*>(mem_deref(c->sess));
    c->invite = static_cast<const sip_msg*>(mem_deref(const_cast<sip_msg*>(c->invite)));
    c->media = nullptr;
    c->sdp = static_cast<sdp_session*>(mem_deref(c->sdp));
    slots_[c->slot].reset();
  }

  void end_call(Call* c, LineEvent::Type type, std::string reason, bool ours = false) {
    Report r;
    r.kind = Report::Kind::ended;
    r.slot = c->slot;
    r.call = c->id;
    r.end = type;
    r.text = c->number;
    r.reason = std::move(reason);
    r.ours = ours;
    free_call(c);
    report(std::move(r));
  }

  void dial(const Command& cmd) {
    Call* c = new_call(cmd.slot, cmd.call, true);
    c->number = cmd.text;
    mbuf* desc = nullptr;
    int err = make_sdp(c, cmd.rtp_port);
    if (!err) err = sdp_encode(&desc, c->sdp, true);
    const std::string to = "sip:" + cmd.text + "@" + domain_ + tparam_;
    const char* routev[1] = {route_.c_str()};
    if (!err) {
      err = sipsess_connect(&c->sess, sock_, to.c_str(), nullptr, aor_.c_str(), opt_.user.c_str(), routev,
                            route_.empty() ? 0 : 1, "application/sdp", desc, &Trunk::on_auth, this, false,
                            &Trunk::on_offer, &Trunk::on_answer, &Trunk::on_progress, &Trunk::on_established,
                            &Trunk::on_info, nullptr, &Trunk::on_close, c, "Allow: %s\r\n", kAllow);
    }
    mem_deref(desc);
    if (err) end_call(c, LineEvent::Type::failed, "cannot send the INVITE: " + err_text(err));
  }

  // The caller: P-Asserted-Identity (RFC 3325, a sip: or tel: URI) when the PBX asserts one, else the From
  // user. "anonymous" (RFC 3323) is withheld; anything longer than a number is taken as withheld too.
  static std::string caller_of(const sip_msg* msg) {
    std::string user;
    if (const sip_hdr* h = sip_msg_hdr(msg, SIP_HDR_P_ASSERTED_IDENTITY)) {
      sip_addr addr{};
      if (sip_addr_decode(&addr, &h->val) == 0) {
        const std::string auri = pl_str(addr.auri);
        if (auri.size() > 4 && strncasecmp(auri.c_str(), "tel:", 4) == 0)
          user = auri.substr(4, auri.find(';') == std::string::npos ? std::string::npos : auri.find(';') - 4);
        else
          user = pl_str(addr.uri.user);
      }
    }
    if (user.empty()) user = pl_str(msg->from.uri.user);
    if (user == "anonymous" || user.size() > 64) return {};
    return user;
  }

  static void on_invite(const sip_msg* msg, void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    if (t->closing_) {
      (void)sip_treply(nullptr, t->sip_, msg, 503, "Service Unavailable");
      return;
    }
    unsigned slot = 0;
    for (; slot < t->slots_.size(); ++slot)
      if (t->sh_->claim(slot)) break;
    if (slot == t->slots_.size()) {
      (void)sip_treply(nullptr, t->sip_, msg, 486, "Busy Here");
      return;
    }
    Call* c = t->new_call(slot, t->sh_->next_call.fetch_add(1), false);
    c->number = caller_of(msg);
    int err = t->make_sdp(c, 9);  // the real port is known at answer()
    if (err) {
      t->free_call(c);
      t->sh_->release(slot);
      (void)sip_treply(nullptr, t->sip_, msg, 500, "Server Internal Error");
      return;
    }
    const bool has_sdp = msg->mb && mbuf_get_left(msg->mb) > 0;
    if (has_sdp) {
      if (sdp_decode(c->sdp, msg->mb, true) != 0 || !t->negotiate(c)) {
        t->free_call(c);
        t->sh_->release(slot);
        (void)sip_treply(nullptr, t->sip_, msg, 488, "Not Acceptable Here");
        return;
      }
    } else {
      c->offer_pending = true;
    }
    err = sipsess_accept(&c->sess, t->sock_, msg, 180, "Ringing", t->opt_.user.c_str(), "application/sdp",
                         nullptr, &Trunk::on_auth, t, false, &Trunk::on_offer, &Trunk::on_answer,
                         &Trunk::on_established, &Trunk::on_info, nullptr, &Trunk::on_close, c,
                         "Allow: %s\r\n", kAllow);
    if (err) {
      t->free_call(c);
      t->sh_->release(slot);
      (void)sip_treply(nullptr, t->sip_, msg, 500, "Server Internal Error");
      return;
    }
    c->invite = static_cast<const sip_msg*>(mem_ref(const_cast<sip_msg*>(msg)));
    Report r;
    r.kind = Report::Kind::incoming;
    r.slot = slot;
    r.call = c->id;
    r.text = c->number;
    t->report(std::move(r));
  }

  void answer(const Command& cmd) {
    Call* c = find(cmd.slot, cmd.call);
    if (!c || c->outbound || c->answered) return;
    sdp_media_set_lport(c->media, cmd.rtp_port);
    mbuf* desc = nullptr;
    int err = sdp_encode(&desc, c->sdp, c->offer_pending);
    if (!err) err = sipsess_answer(c->sess, 200, "OK", desc, "Allow: %s\r\n", kAllow);
    mem_deref(desc);
    if (err) return end_call(c, LineEvent::Type::failed, "cannot send the 200 OK: " + err_text(err));
    c->answered = true;
    c->invite = static_cast<const sip_msg*>(mem_deref(const_cast<sip_msg*>(c->invite)));
    if (c->have_media) report_media(*c);
    report_call(*c, Report::Kind::answered);
  }

  void hangup(const Command& cmd) {
    Call* c = find(cmd.slot, cmd.call);
    if (!c) return;  // already ended: its report is on the way
    if (!c->outbound && !c->answered && c->sess) {
      c->closing = true;
      (void)sipsess_reject(c->sess, 603, "Decline", nullptr);
    }
    end_call(c, LineEvent::Type::hung_up, {}, true);
  }

  static void on_progress(const sip_msg* msg, void* arg) {
    auto* c = static_cast<Call*>(arg);
    Trunk* t = c->trunk;
    if (c->closing || msg->scode <= 100) return;
    if (!c->alerting_sent) {
      c->alerting_sent = true;
      t->report_call(*c, Report::Kind::alerting);
    }
    if (msg->mb && mbuf_get_left(msg->mb) > 0 && msg_ctype_cmp(&msg->ctyp, "application", "sdp")) {
      // Early media (RFC 3960): the far end's tones or announcements before the answer.
      if (sdp_decode(c->sdp, msg->mb, false) == 0 && t->negotiate(c)) t->report_media(*c);
    }
  }

  static int on_offer(mbuf** descp, const sip_msg* msg, void* arg) {
    auto* c = static_cast<Call*>(arg);
    Trunk* t = c->trunk;
    if (c->closing) return ECANCELED;
    const bool has_sdp = msg->mb && mbuf_get_left(msg->mb) > 0;
    if (has_sdp) {
      if (sdp_decode(c->sdp, msg->mb, true) != 0) return EBADMSG;
      if (!t->negotiate(c)) return ENOENT;
      t->report_media(*c);
    }
    return sdp_encode(descp, c->sdp, !has_sdp);
  }

  static int on_answer(const sip_msg* msg, void* arg) {
    auto* c = static_cast<Call*>(arg);
    Trunk* t = c->trunk;
    if (c->closing) return 0;
    if (!msg->mb || mbuf_get_left(msg->mb) == 0) return 0;
    int err = sdp_decode(c->sdp, msg->mb, false);
    if (err) return err;
    if (!t->negotiate(c)) return ENOENT;
    c->offer_pending = false;
    t->report_media(*c);
    return 0;
  }

  static void on_established(const sip_msg*, void* arg) {
    auto* c = static_cast<Call*>(arg);
    if (c->closing || !c->outbound) return;
    c->answered = true;
    c->trunk->report_call(*c, Report::Kind::answered);
  }

  static void on_close(int err, const sip_msg* msg, void* arg) {
    auto* c = static_cast<Call*>(arg);
    Trunk* t = c->trunk;
    if (c->closing) return;
    using T = LineEvent::Type;
    if (!c->answered) {
      if (!c->outbound) return t->end_call(c, T::remote_hangup, "the caller hung up before the answer");
      if (msg && msg->scode >= 300) {
        const std::string why = "SIP " + std::to_string(msg->scode) + " " + pl_str(msg->reason);
        switch (msg->scode) {
          case 486:
          case 600:
            return t->end_call(c, T::busy, why);
          case 480:
          case 408:
            return t->end_call(c, T::no_answer, why);
          default:
            return t->end_call(c, T::failed, why);
        }
      }
      return t->end_call(c, T::failed, "no answer from the PBX: " + err_text(err ? err : ETIMEDOUT));
    }
    if (err == ECONNRESET) return t->end_call(c, T::remote_hangup, {});
    if (msg && msg->scode >= 300)
      return t->end_call(c, T::failed, "SIP " + std::to_string(msg->scode) + " " + pl_str(msg->reason));
    t->end_call(c, T::failed, "call lost: " + err_text(err ? err : ETIMEDOUT));
  }

  // --- DTMF over SIP INFO -------------------------------------------------------------------------------
  static void on_info(sip* sip, const sip_msg* msg, void* arg) {
    auto* c = static_cast<Call*>(arg);
    const bool relay = msg_ctype_cmp(&msg->ctyp, "application", "dtmf-relay");
    const bool plain = msg_ctype_cmp(&msg->ctyp, "application", "dtmf");
    if (!relay && !plain) {
      (void)sip_reply(sip, msg, 415, "Unsupported Media Type");
      return;
    }
    std::string body;  // longer than 1024 bytes is refused by the parser: no need to copy more
    if (msg->mb)
      body.assign(reinterpret_cast<const char*>(mbuf_buf(msg->mb)),
                  std::min<size_t>(mbuf_get_left(msg->mb), 1025));
    const auto digit = parse_dtmf_info(body, relay);
    (void)sip_reply(sip, msg, digit ? 200 : 400, digit ? "OK" : "Bad Request");
    if (!digit || c->closing) return;
    Report r;
    r.kind = Report::Kind::dtmf;
    r.slot = c->slot;
    r.call = c->id;
    r.digit = *digit;
    c->trunk->report(std::move(r));
  }

  void send_next_info(Call* c) {
    if (c->info_pending || c->info_queue.empty() || !c->sess) return;
    const char d = c->info_queue.front();
    c->info_queue.erase(0, 1);
    mbuf* body = mbuf_alloc(64);
    if (!body) return;
    (void)mbuf_printf(body, "Signal=%c\r\nDuration=160\r\n", d);
    body->pos = 0;
    if (sipsess_info(c->sess, "application/dtmf-relay", body, &Trunk::on_info_response, c) == 0)
      c->info_pending = true;
    mem_deref(body);
  }

  static void on_info_response(int, const sip_msg*, void* arg) {
    auto* c = static_cast<Call*>(arg);
    if (c->closing) return;
    c->info_pending = false;
    c->trunk->send_next_info(c);
  }

  // --- REFER (RFC 3515) ---------------------------------------------------------------------------------
  void refer(const Command& cmd) {
    Call* c = find(cmd.slot, cmd.call);
    if (!c) return;
    if (!c->sess || !c->answered || !c->refer_done)
      return report_transfer_failed(*c, "no established call to transfer");
    c->refer_to = cmd.text;
    c->refer_done = false;
    send_refer(c, "sip:" + cmd.text + "@" + domain_);
  }

  void report_transfer_failed(const Call& c, std::string why) {
    Report r;
    r.kind = Report::Kind::transfer_failed;
    r.slot = c.slot;
    r.call = c.id;
    r.reason = std::move(why);
    report(std::move(r));
  }

  // REFER on the call's dialog; refer_done is false (a transfer is in progress) when called.
  void send_refer(Call* c, const std::string& refer_to) {
    const int err =
        sipevent_drefer(&c->sub, evsock_, sipsess_dialog(c->sess), opt_.user.c_str(), &Trunk::on_auth, this,
                        false, &Trunk::on_notify, &Trunk::on_sub_close, c,
                        "Refer-To: <%s>\r\nReferred-By: <%s>\r\n", refer_to.c_str(), aor_.c_str());
    if (err) return conclude_refer(c, false, "cannot send the REFER: " + err_text(err));
    tmr_start(&c->refer_tmr, kReferTimeoutMs, &Trunk::on_refer_timeout, c);
  }

  // Attended transfer, step 1: a consultation INVITE to the target (no media of its own: the agent has
  // nothing to say to it); once it answers, step 2 REFERs the caller to it with Replaces.
  void consult(const Command& cmd) {
    Call* c = find(cmd.slot, cmd.call);
    if (!c) return;
    if (!c->sess || !c->answered || !c->refer_done)
      return report_transfer_failed(*c, "no established call to transfer");
    c->refer_to = cmd.text;
    c->refer_done = false;
    c->consult_up = false;
    sa laddr{};
    int err = sa_set_str(&laddr, local_ip_.c_str(), 0);
    sdp_media* m = nullptr;
    const sa* ours = sdp_media_laddr(c->media);
    if (!err) err = sdp_session_alloc(&c->consult_sdp, &laddr);
    if (!err) err = sdp_media_add(&m, c->consult_sdp, "audio", ours ? sa_port(ours) : 9, "RTP/AVP");
    if (!err)
      err =
          sdp_format_add(nullptr, m, false, "0", "PCMU", 8000, 1, nullptr, nullptr, nullptr, false, nullptr);
    if (!err) sdp_media_set_ldir(m, SDP_INACTIVE);
    mbuf* desc = nullptr;
    if (!err) err = sdp_encode(&desc, c->consult_sdp, true);
    const std::string to = "sip:" + cmd.text + "@" + domain_ + tparam_;
    const char* routev[1] = {route_.c_str()};
    if (!err)
      err = sipsess_connect(&c->consult, sock_, to.c_str(), nullptr, aor_.c_str(), opt_.user.c_str(), routev,
                            route_.empty() ? 0 : 1, "application/sdp", desc, &Trunk::on_auth, this, false,
                            &Trunk::on_consult_offer, &Trunk::on_consult_answer, &Trunk::on_consult_progress,
                            &Trunk::on_consult_established, nullptr, nullptr, &Trunk::on_consult_close, c,
                            "Allow: %s\r\n", kAllow);
    mem_deref(desc);
    if (err) return conclude_refer(c, false, "cannot call the transfer target: " + err_text(err));
    tmr_start(&c->consult_tmr, static_cast<uint64_t>(opt_.ring_timeout_s) * 1000, &Trunk::on_consult_timeout,
              c);
  }

  static int on_consult_offer(mbuf** descp, const sip_msg*, void* arg) {
    auto* c = static_cast<Call*>(arg);
    return sdp_encode(descp, c->consult_sdp, false);
  }
  static int on_consult_answer(const sip_msg*, void*) { return 0; }
  static void on_consult_progress(const sip_msg*, void*) {}

  // RFC 3891 §3: the Replaces value, escaped for a header parameter inside the Refer-To URI.
  static std::string uri_escape(const std::string& v) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char ch : v) {
      if (std::isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
        out += static_cast<char>(ch);
      } else {
        out += '%';
        out += hex[ch >> 4];
        out += hex[ch & 15];
      }
    }
    return out;
  }

  static void on_consult_established(const sip_msg* msg, void* arg) {
    auto* c = static_cast<Call*>(arg);
    if (c->closing || c->refer_done) return;
    tmr_cancel(&c->consult_tmr);
    c->consult_up = true;
    const std::string replaces =
        pl_str(msg->callid) + ";to-tag=" + pl_str(msg->to.tag) + ";from-tag=" + pl_str(msg->from.tag);
    c->trunk->send_refer(
        c, "sip:" + c->refer_to + "@" + c->trunk->domain_ + "?Replaces=" + uri_escape(replaces));
  }

  static void on_consult_close(int err, const sip_msg* msg, void* arg) {
    auto* c = static_cast<Call*>(arg);
    if (c->closing || c->refer_done) return;
    if (!c->consult_up) {
      if (msg && msg->scode >= 300)
        return conclude_refer(
            c, false,
            "the transfer target answered " + std::to_string(msg->scode) + " " + pl_str(msg->reason));
      return conclude_refer(c, false,
                            "the transfer target could not be called: " + err_text(err ? err : ETIMEDOUT));
    }
    conclude_refer(c, false, "the transfer target hung up before the transfer");
  }

  static void on_consult_timeout(void* arg) {
    auto* c = static_cast<Call*>(arg);
    conclude_refer(
        c, false,
        "the transfer target did not answer within " + std::to_string(c->trunk->opt_.ring_timeout_s) + " s");
  }

  // Concludes the transfer outside libre's callback (the subscription is freed there).
  static void conclude_refer(Call* c, bool ok, std::string why) {
    if (c->refer_done) return;
    c->refer_done = true;
    tmr_cancel(&c->refer_tmr);
    c->deferred = ok ? 1 : 2;
    c->defer_reason = std::move(why);
    tmr_start(&c->defer_tmr, 0, &Trunk::on_deferred, c);
  }

  static void on_deferred(void* arg) {
    auto* c = static_cast<Call*>(arg);
    Trunk* t = c->trunk;
    c->sub = static_cast<sipsub*>(mem_deref(c->sub));
    if (c->deferred == 1) {
      const std::string to = c->refer_to;
      // The call left us: BYE (free_call), then the channel is free.
      Report r;
      r.kind = Report::Kind::ended;
      r.slot = c->slot;
      r.call = c->id;
      r.end = LineEvent::Type::transferred;
      r.text = to;
      t->free_call(c);
      t->report(std::move(r));
      return;
    }
    // A failed transfer ends the consultation call too (BYE, or CANCEL while it rings); the caller stays.
    tmr_cancel(&c->consult_tmr);
    c->consult = static_cast<sipsess*>(mem_deref(c->consult));
    c->consult_sdp = static_cast<sdp_session*>(mem_deref(c->consult_sdp));
    t->report_transfer_failed(*c, c->defer_reason);
  }

  static void on_notify(sip* sip, const sip_msg* msg, void* arg) {
    auto* c = static_cast<Call*>(arg);
    (void)sip_treply(nullptr, sip, msg, 200, "OK");
    if (c->closing || c->refer_done || !msg->mb) return;
    const std::string body(reinterpret_cast<const char*>(mbuf_buf(msg->mb)),
                           std::min<size_t>(mbuf_get_left(msg->mb), 4096));
    const auto st = parse_sipfrag(body);
    if (!st || st->code < 200) return;
    if (st->code < 300) return conclude_refer(c, true, {});
    conclude_refer(c, false, "the transfer target answered " + std::to_string(st->code) + " " + st->reason);
  }

  static void on_sub_close(int err, const sip_msg* msg, const sipevent_substate*, void* arg) {
    auto* c = static_cast<Call*>(arg);
    if (c->closing || c->refer_done) return;
    if (msg && msg->scode >= 300)
      return conclude_refer(c, false,
                            "REFER rejected: " + std::to_string(msg->scode) + " " + pl_str(msg->reason));
    conclude_refer(c, false,
                   err ? "REFER failed: " + err_text(err) : "the transfer ended without a final answer");
  }

  static void on_refer_timeout(void* arg) {
    conclude_refer(static_cast<Call*>(arg), false, "no transfer result (NOTIFY) within 30 s");
  }

  // --- other requests -----------------------------------------------------------------------------------
  static bool on_subscribe(const sip_msg* msg, void* arg) {
    (void)sip_treply(nullptr, static_cast<Trunk*>(arg)->sip_, msg, 489, "Bad Event");
    return true;
  }

  static bool on_other_request(const sip_msg* msg, void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    if (pl_strcmp(&msg->met, "OPTIONS") == 0) {
      (void)sip_treplyf(nullptr, nullptr, t->sip_, msg, false, 200, "OK",
                        "Allow: %s\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n", kAllow);
      return true;
    }
    if (pl_strcmp(&msg->met, "ACK") == 0) return true;  // a stray ACK gets no answer (RFC 3261 §17.2.1)
    (void)sip_treplyf(nullptr, nullptr, t->sip_, msg, false, 405, "Method Not Allowed",
                      "Allow: %s\r\nContent-Length: 0\r\n\r\n", kAllow);
    return true;
  }

  // --- teardown -----------------------------------------------------------------------------------------
  void teardown(std::promise<void>* done) {
    closing_ = true;
    done_ = done;
    tmr_cancel(&reg_tmr_);
    tmr_cancel(&drop_tmr_);
    tmr_cancel(&ka_tmr_);
    for (auto& s : slots_)
      if (s) free_call(s.get());
    reg_ = static_cast<sipreg*>(mem_deref(reg_));  // un-REGISTERs while registered
    teardown_started_ = tmr_jiffies();
    on_close_wait(this);
  }

  // BYEs, CANCELs and the un-REGISTER get until kTeardownMs to complete; then everything is forced.
  static void on_close_wait(void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    if (t->sip_ && mem_nrefs(t->sip_) > t->base_refs_ && tmr_jiffies() - t->teardown_started_ < kTeardownMs) {
      tmr_start(&t->close_tmr_, 5, &Trunk::on_close_wait, t);
      return;
    }
    t->free_all();
    t->done_->set_value();
  }

 public:
  void free_all() {
    tmr_cancel(&close_tmr_);
    tmr_cancel(&reg_tmr_);
    tmr_cancel(&drop_tmr_);
    tmr_cancel(&ka_tmr_);
    closing_ = true;
    for (auto& s : slots_)
      if (s) free_call(s.get());
    reg_ = static_cast<sipreg*>(mem_deref(reg_));
    if (sip_) sip_close(sip_, true);
    lsnr_ = static_cast<sip_lsnr*>(mem_deref(lsnr_));
    evsock_ = static_cast<sipevent_sock*>(mem_deref(evsock_));
    sock_ = static_cast<sipsess_sock*>(mem_deref(sock_));
    sip_ = static_cast<struct sip*>(mem_deref(sip_));
    tls_ = static_cast<struct tls*>(mem_deref(tls_));
    dnsc_ = static_cast<struct dnsc*>(mem_deref(dnsc_));
  }

 private:
  SipLineOptions opt_;
  std::shared_ptr<Shared> sh_;
  Stack* stack_;
  std::vector<std::unique_ptr<Call>> slots_;

  HostPort reg_hp_;
  std::string domain_;   // registrar host[:port] as URIs carry it
  std::string reg_uri_;  // sip:<registrar>[;transport=..]
  std::string aor_;      // sip:<user>@<registrar host>
  std::string tparam_;
  std::string route_;  // the outbound proxy, a loose route; empty = none
  std::string local_ip_;

  struct sip* sip_ = nullptr;
  sipsess_sock* sock_ = nullptr;
  sipevent_sock* evsock_ = nullptr;
  sip_lsnr* lsnr_ = nullptr;
  struct dnsc* dnsc_ = nullptr;
  struct tls* tls_ = nullptr;
  sipreg* reg_ = nullptr;
  uint32_t base_refs_ = 1;

  tmr reg_tmr_{};
  tmr drop_tmr_{};
  tmr ka_tmr_{};
  tmr close_tmr_{};
  bool transport_up_ = false;
  bool registered_ = false;
  bool closing_ = false;
  unsigned backoff_s_ = kBackoffMinS;
  unsigned expires_ = 0;
  uint16_t last_code_ = 0;
  std::string last_reason_;
  std::string contact_;
  sa registrar_addr_{};
  uint32_t options_cseq_ = 0;
  uint64_t teardown_started_ = 0;
  std::promise<void>* done_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<SipEngine>> SipEngine::create(const SipLineOptions& options,
                                                     std::shared_ptr<Shared> shared) {
  auto stack = Stack::acquire();
  if (!stack.ok()) return stack.error();
  auto trunk = std::make_unique<Trunk>(options, std::move(shared), *stack);
  std::promise<std::string> set_up;
  auto f = set_up.get_future();
  Trunk* t = trunk.get();
  (*stack)->post([t, &set_up] {
    std::string why;
    if (t->setup(why) != 0) t->free_all();
    set_up.set_value(why);
  });
  const std::string why = f.get();
  if (!why.empty()) return make_error("line " + options.id + ": " + why);
  return std::unique_ptr<SipEngine>(std::move(trunk));
}

}  // namespace osvi::hal::sipi
