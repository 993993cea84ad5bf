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
#include "osvi/shared_library.hpp"
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

// ---------------------------------------------------------------------------------------------------------
// libre and the OpenSSL it runs TLS on (libssl; ~0.5 MB resident with their relocations) are opened by the
// first SIP trunk, not at start: a box without a SIP line never maps them. Both are C APIs, so they are
// opened by soname and the functions this file calls bound here (libre's header-inline helpers need nothing).
// Once per process, never closed (RTLD_NODELETE), so the pointers stay valid for the SIP thread.

struct ReApi {
  decltype(&::dns_srv_get) dns_srv_get = nullptr;
  decltype(&::dnsc_alloc) dnsc_alloc = nullptr;
  decltype(&::libre_close) libre_close = nullptr;
  decltype(&::libre_init) libre_init = nullptr;
  decltype(&::list_head) list_head = nullptr;
  decltype(&::mbuf_alloc) mbuf_alloc = nullptr;
  decltype(&::mbuf_printf) mbuf_printf = nullptr;
  decltype(&::mbuf_write_str) mbuf_write_str = nullptr;
  decltype(&::mem_deref) mem_deref = nullptr;
  decltype(&::mem_nrefs) mem_nrefs = nullptr;
  decltype(&::mem_ref) mem_ref = nullptr;
  decltype(&::mqueue_alloc) mqueue_alloc = nullptr;
  decltype(&::mqueue_push) mqueue_push = nullptr;
  decltype(&::msg_ctype_cmp) msg_ctype_cmp = nullptr;
  decltype(&::net_default_source_addr_get) net_default_source_addr_get = nullptr;
  decltype(&::pl_set_str) pl_set_str = nullptr;
  decltype(&::pl_strcmp) pl_strcmp = nullptr;
  decltype(&::rand_u64) rand_u64 = nullptr;
  decltype(&::re_cancel) re_cancel = nullptr;
  decltype(&::re_main) re_main = nullptr;
  decltype(&::re_snprintf) re_snprintf = nullptr;
  decltype(&::re_thread_init) re_thread_init = nullptr;
  decltype(&::sa_isset) sa_isset = nullptr;
  decltype(&::sa_port) sa_port = nullptr;
  decltype(&::sa_set_str) sa_set_str = nullptr;
  decltype(&::sdp_decode) sdp_decode = nullptr;
  decltype(&::sdp_encode) sdp_encode = nullptr;
  decltype(&::sdp_format_add) sdp_format_add = nullptr;
  decltype(&::sdp_media_add) sdp_media_add = nullptr;
  decltype(&::sdp_media_format) sdp_media_format = nullptr;
  decltype(&::sdp_media_format_lst) sdp_media_format_lst = nullptr;
  decltype(&::sdp_media_laddr) sdp_media_laddr = nullptr;
  decltype(&::sdp_media_raddr) sdp_media_raddr = nullptr;
  decltype(&::sdp_media_raddr_rtcp) sdp_media_raddr_rtcp = nullptr;
  decltype(&::sdp_media_rdir) sdp_media_rdir = nullptr;
  decltype(&::sdp_media_set_lattr) sdp_media_set_lattr = nullptr;
  decltype(&::sdp_media_set_ldir) sdp_media_set_ldir = nullptr;
  decltype(&::sdp_media_set_lport) sdp_media_set_lport = nullptr;
  decltype(&::sdp_session_alloc) sdp_session_alloc = nullptr;
  decltype(&::sip_addr_decode) sip_addr_decode = nullptr;
  decltype(&::sip_alloc) sip_alloc = nullptr;
  decltype(&::sip_close) sip_close = nullptr;
  decltype(&::sip_listen) sip_listen = nullptr;
  decltype(&::sip_msg_hdr) sip_msg_hdr = nullptr;
  decltype(&::sip_reply) sip_reply = nullptr;
  decltype(&::sip_requestf) sip_requestf = nullptr;
  decltype(&::sip_send) sip_send = nullptr;
  decltype(&::sip_transp_add) sip_transp_add = nullptr;
  decltype(&::sip_treply) sip_treply = nullptr;
  decltype(&::sip_treplyf) sip_treplyf = nullptr;
  decltype(&::sipevent_drefer) sipevent_drefer = nullptr;
  decltype(&::sipevent_listen) sipevent_listen = nullptr;
  decltype(&::sipreg_laddr) sipreg_laddr = nullptr;
  decltype(&::sipreg_proxy_expires) sipreg_proxy_expires = nullptr;
  decltype(&::sipreg_register) sipreg_register = nullptr;
  decltype(&::sipsess_accept) sipsess_accept = nullptr;
  decltype(&::sipsess_answer) sipsess_answer = nullptr;
  decltype(&::sipsess_connect) sipsess_connect = nullptr;
  decltype(&::sipsess_dialog) sipsess_dialog = nullptr;
  decltype(&::sipsess_info) sipsess_info = nullptr;
  decltype(&::sipsess_listen) sipsess_listen = nullptr;
  decltype(&::sipsess_reject) sipsess_reject = nullptr;
  decltype(&::str_casecmp) str_casecmp = nullptr;
  decltype(&::str_dup) str_dup = nullptr;
  decltype(&::str_error) str_error = nullptr;
  decltype(&::tls_add_ca) tls_add_ca = nullptr;
  decltype(&::tls_alloc) tls_alloc = nullptr;
  decltype(&::tls_openssl_context) tls_openssl_context = nullptr;
  decltype(&::tmr_cancel) tmr_cancel = nullptr;
  decltype(&::tmr_init) tmr_init = nullptr;
  decltype(&::tmr_jiffies) tmr_jiffies = nullptr;
  decltype(&::tmr_start) tmr_start = nullptr;
  decltype(&::uri_decode) uri_decode = nullptr;
  decltype(&::SSL_CTX_get0_param) SSL_CTX_get0_param = nullptr;
  decltype(&::SSL_CTX_set_default_verify_paths) SSL_CTX_set_default_verify_paths = nullptr;
  decltype(&::SSL_CTX_set_verify) SSL_CTX_set_verify = nullptr;
  decltype(&::X509_VERIFY_PARAM_set1_host) X509_VERIFY_PARAM_set1_host = nullptr;
  decltype(&::X509_VERIFY_PARAM_set1_ip_asc) X509_VERIFY_PARAM_set1_ip_asc = nullptr;
};

using LoadedRe = dl::Table<ReApi>;

LoadedRe load_re() {
  LoadedRe l = dl::load_table<ReApi>("libre.so.0", "the SIP stack library", [](void* h, ReApi& a) {
    return dl::bind(h, "dns_srv_get", a.dns_srv_get) && dl::bind(h, "dnsc_alloc", a.dnsc_alloc) &&
           dl::bind(h, "libre_close", a.libre_close) && dl::bind(h, "libre_init", a.libre_init) &&
           dl::bind(h, "list_head", a.list_head) && dl::bind(h, "mbuf_alloc", a.mbuf_alloc) &&
           dl::bind(h, "mbuf_printf", a.mbuf_printf) && dl::bind(h, "mbuf_write_str", a.mbuf_write_str) &&
           dl::bind(h, "mem_deref", a.mem_deref) && dl::bind(h, "mem_nrefs", a.mem_nrefs) &&
           dl::bind(h, "mem_ref", a.mem_ref) && dl::bind(h, "mqueue_alloc", a.mqueue_alloc) &&
           dl::bind(h, "mqueue_push", a.mqueue_push) && dl::bind(h, "msg_ctype_cmp", a.msg_ctype_cmp) &&
           dl::bind(h, "net_default_source_addr_get", a.net_default_source_addr_get) &&
           dl::bind(h, "pl_set_str", a.pl_set_str) && dl::bind(h, "pl_strcmp", a.pl_strcmp) &&
           dl::bind(h, "rand_u64", a.rand_u64) && dl::bind(h, "re_cancel", a.re_cancel) &&
           dl::bind(h, "re_main", a.re_main) && dl::bind(h, "re_snprintf", a.re_snprintf) &&
           dl::bind(h, "re_thread_init", a.re_thread_init) && dl::bind(h, "sa_isset", a.sa_isset) &&
           dl::bind(h, "sa_port", a.sa_port) && dl::bind(h, "sa_set_str", a.sa_set_str) &&
           dl::bind(h, "sdp_decode", a.sdp_decode) && dl::bind(h, "sdp_encode", a.sdp_encode) &&
           dl::bind(h, "sdp_format_add", a.sdp_format_add) && dl::bind(h, "sdp_media_add", a.sdp_media_add) &&
           dl::bind(h, "sdp_media_format", a.sdp_media_format) &&
           dl::bind(h, "sdp_media_format_lst", a.sdp_media_format_lst) &&
           dl::bind(h, "sdp_media_laddr", a.sdp_media_laddr) &&
           dl::bind(h, "sdp_media_raddr", a.sdp_media_raddr) &&
           dl::bind(h, "sdp_media_raddr_rtcp", a.sdp_media_raddr_rtcp) &&
           dl::bind(h, "sdp_media_rdir", a.sdp_media_rdir) &&
           dl::bind(h, "sdp_media_set_lattr", a.sdp_media_set_lattr) &&
           dl::bind(h, "sdp_media_set_ldir", a.sdp_media_set_ldir) &&
           dl::bind(h, "sdp_media_set_lport", a.sdp_media_set_lport) &&
           dl::bind(h, "sdp_session_alloc", a.sdp_session_alloc) &&
           dl::bind(h, "sip_addr_decode", a.sip_addr_decode) && dl::bind(h, "sip_alloc", a.sip_alloc) &&
           dl::bind(h, "sip_close", a.sip_close) && dl::bind(h, "sip_listen", a.sip_listen) &&
           dl::bind(h, "sip_msg_hdr", a.sip_msg_hdr) && dl::bind(h, "sip_reply", a.sip_reply) &&
           dl::bind(h, "sip_requestf", a.sip_requestf) && dl::bind(h, "sip_send", a.sip_send) &&
           dl::bind(h, "sip_transp_add", a.sip_transp_add) && dl::bind(h, "sip_treply", a.sip_treply) &&
           dl::bind(h, "sip_treplyf", a.sip_treplyf) && dl::bind(h, "sipevent_drefer", a.sipevent_drefer) &&
           dl::bind(h, "sipevent_listen", a.sipevent_listen) && dl::bind(h, "sipreg_laddr", a.sipreg_laddr) &&
           dl::bind(h, "sipreg_proxy_expires", a.sipreg_proxy_expires) &&
           dl::bind(h, "sipreg_register", a.sipreg_register) &&
           dl::bind(h, "sipsess_accept", a.sipsess_accept) &&
           dl::bind(h, "sipsess_answer", a.sipsess_answer) &&
           dl::bind(h, "sipsess_connect", a.sipsess_connect) &&
           dl::bind(h, "sipsess_dialog", a.sipsess_dialog) && dl::bind(h, "sipsess_info", a.sipsess_info) &&
           dl::bind(h, "sipsess_listen", a.sipsess_listen) &&
           dl::bind(h, "sipsess_reject", a.sipsess_reject) && dl::bind(h, "str_casecmp", a.str_casecmp) &&
           dl::bind(h, "str_dup", a.str_dup) && dl::bind(h, "str_error", a.str_error) &&
           dl::bind(h, "tls_add_ca", a.tls_add_ca) && dl::bind(h, "tls_alloc", a.tls_alloc) &&
           dl::bind(h, "tls_openssl_context", a.tls_openssl_context) &&
           dl::bind(h, "tmr_cancel", a.tmr_cancel) && dl::bind(h, "tmr_init", a.tmr_init) &&
           dl::bind(h, "tmr_jiffies", a.tmr_jiffies) && dl::bind(h, "tmr_start", a.tmr_start) &&
           dl::bind(h, "uri_decode", a.uri_decode);
  });
  // libre leaves certificate checks to its OpenSSL context: the few libssl calls for them come from the
  // same libssl.so.3 libre itself links.
  if (l.status)
    l.status = dl::load_library("libssl.so.3", "the SIP stack library", [&a = l.api](void* h) {
      return dl::bind(h, "SSL_CTX_get0_param", a.SSL_CTX_get0_param) &&
             dl::bind(h, "SSL_CTX_set_default_verify_paths", a.SSL_CTX_set_default_verify_paths) &&
             dl::bind(h, "SSL_CTX_set_verify", a.SSL_CTX_set_verify) &&
             dl::bind(h, "X509_VERIFY_PARAM_set1_host", a.X509_VERIFY_PARAM_set1_host) &&
             dl::bind(h, "X509_VERIFY_PARAM_set1_ip_asc", a.X509_VERIFY_PARAM_set1_ip_asc);
    });
  return l;
}

const LoadedRe& loaded_re() {
  static const LoadedRe l = load_re();  // thread-safe static: the first trunk loads
  return l;
}

// Only called once loaded_re() succeeded (Stack::acquire checks it before starting the SIP thread).
const ReApi& lre() {
  return loaded_re().api;
}

std::string err_text(int err) {
  char buf[128];
  return std::string(lre().str_error(err, buf, sizeof buf));
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
    if (const LoadedRe& l = loaded_re(); !l.status) return l.status.error();
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
    lre().mqueue_push(instance_->mq_, kCancel, nullptr);
    instance_->thread_.join();
    delete instance_;
    instance_ = nullptr;
  }
  void post(std::function<void()> fn) {
    auto* f = new std::function<void()>(std::move(fn));
    if (lre().mqueue_push(mq_, kRun, f) != 0) delete f;  // only when out of memory: the command is lost
  }

 private:
  enum { kRun = 1, kCancel = 2 };
  Stack() = default;

  void run(std::promise<int>& ready) {
    int err = lre().libre_init();
    if (!err) err = lre().mqueue_alloc(&mq_, &Stack::on_message, this);
    if (err) {
      mq_ = static_cast<mqueue*>(lre().mem_deref(mq_));
      lre().libre_close();
      ready.set_value(err);
      return;
    }
    ready.set_value(0);
    (void)lre().re_main(nullptr);
    mq_ = static_cast<mqueue*>(lre().mem_deref(mq_));
    lre().libre_close();
  }
  static void on_message(int id, void* data, void*) {
    if (id == kCancel) {
      lre().re_cancel();
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
    lre().tmr_init(&reg_tmr_);
    lre().tmr_init(&drop_tmr_);
    lre().tmr_init(&ka_tmr_);
    lre().tmr_init(&close_tmr_);
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
    if (lre().dns_srv_get(dom, sizeof dom, nsv, &nsn) == 0 && nsn > 0)
      (void)lre().dnsc_alloc(&dnsc_, nullptr, nsv, nsn);
    int err = lre().sip_alloc(&sip_, dnsc_, 32, 32, 32, "osvi-edge", nullptr, nullptr);
    if (err) return why = "sip_alloc: " + err_text(err), err;
    err = lre().sipsess_listen(&sock_, sip_, 32, &Trunk::on_invite, this);
    if (!err) err = lre().sipevent_listen(&evsock_, sip_, 32, 32, &Trunk::on_subscribe, this);
    if (!err) err = lre().sip_listen(&lsnr_, sip_, true, &Trunk::on_other_request, this);
    if (err) return why = "SIP listeners: " + err_text(err), err;
    if (opt_.transport == SipTransport::tls) {
      err = lre().tls_alloc(&tls_, TLS_METHOD_SSLV23, nullptr, nullptr);
      if (err) return why = "TLS: " + err_text(err), err;
      if (!opt_.tls_ca_file.empty()) {
        err = lre().tls_add_ca(tls_, opt_.tls_ca_file.c_str());
        if (err) return why = "tls_ca_file " + opt_.tls_ca_file + ": cannot load", err;
      } else {
        lre().SSL_CTX_set_default_verify_paths(lre().tls_openssl_context(tls_));
      }
      // libre 1.1.0 does not verify a SIP server's certificate on its own: require it, and its name.
      SSL_CTX* ctx = lre().tls_openssl_context(tls_);
      lre().SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
      X509_VERIFY_PARAM* param = lre().SSL_CTX_get0_param(ctx);
      in6_addr a6{};
      in_addr a4{};
      if (inet_pton(AF_INET, reg_hp_.host.c_str(), &a4) == 1 ||
          inet_pton(AF_INET6, reg_hp_.host.c_str(), &a6) == 1)
        lre().X509_VERIFY_PARAM_set1_ip_asc(param, reg_hp_.host.c_str());
      else
        lre().X509_VERIFY_PARAM_set1_host(param, reg_hp_.host.c_str(), 0);
    }
    base_refs_ = lre().mem_nrefs(sip_);
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
      if (lre().net_default_source_addr_get(AF_INET, &def) == 0) {
        char buf[64];
        if (lre().re_snprintf(buf, sizeof buf, "%j", &def) > 0) ip = buf;
      }
    }
    if (ip.empty()) return transport_failed("no local address routes to the registrar " + reg_hp_.host);
    sa laddr{};
    int err = lre().sa_set_str(&laddr, ip.c_str(), opt_.local_port);
    if (!err) {
      const sip_transp tp = opt_.transport == SipTransport::udp   ? SIP_TRANSP_UDP
                            : opt_.transport == SipTransport::tcp ? SIP_TRANSP_TCP
                                                                  : SIP_TRANSP_TLS;
      err = tp == SIP_TRANSP_TLS ? lre().sip_transp_add(sip_, tp, &laddr, tls_)
                                 : lre().sip_transp_add(sip_, tp, &laddr);
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
    const int err = lre().sipreg_register(&reg_, sip_, reg_uri_.c_str(), aor_.c_str(), nullptr, aor_.c_str(),
                                          opt_.register_expires_s, opt_.user.c_str(), routev,
                                          route_.empty() ? 0 : 1, 0, &Trunk::on_auth, this, false,
                                          &Trunk::on_register_response, this, nullptr, nullptr);
    if (err) {
      reg_ = nullptr;
      registration_failed(0, "registrar unreachable: " + err_text(err), 0);
    }
  }

  static int on_auth(char** user, char** pass, const char*, void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    const std::string& u = t->opt_.auth_user.empty() ? t->opt_.user : t->opt_.auth_user;
    int err = lre().str_dup(user, u.c_str());
    err |= lre().str_dup(pass, t->opt_.password.c_str());
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
      t->expires_ = lre().sipreg_proxy_expires(t->reg_);
      t->registrar_addr_ = msg->src;
      t->last_code_ = msg->scode;
      t->last_reason_ = pl_str(msg->reason);
      const sa* l = lre().sipreg_laddr(t->reg_);
      char buf[128] = {};
      if (l &&
          lre().re_snprintf(buf, sizeof buf, "sip:%s@%J%s", t->opt_.user.c_str(), l, t->tparam_.c_str()) > 0)
        t->contact_ = buf;
      t->report_registration("registered", msg->scode, t->last_reason_, true);
      t->arm_keepalive();
      return;
    }
    unsigned retry_after = 0;
    if (const sip_hdr* h = lre().sip_msg_hdr(msg, SIP_HDR_RETRY_AFTER)) {
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
    lre().tmr_cancel(&ka_tmr_);
    report_registration("failed", code, std::move(why), false);
    // The failed sipreg would retry on its own schedule: drop it outside its own callback, retry on ours.
    lre().tmr_start(&drop_tmr_, 0, &Trunk::on_drop_reg, this);
    schedule_retry(retry_after_s);
  }

  static void on_drop_reg(void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    t->reg_ = static_cast<sipreg*>(lre().mem_deref(t->reg_));
  }

  void schedule_retry(unsigned retry_after_s) {
    const unsigned wait_s = retry_after_s > 0 ? std::min(retry_after_s, 3600u) : backoff_s_;
    if (retry_after_s == 0) backoff_s_ = std::min(backoff_s_ * 2, kBackoffMaxS);
    lre().tmr_start(&reg_tmr_, static_cast<uint64_t>(wait_s) * 1000, &Trunk::on_retry, this);
  }

  static void on_retry(void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    t->reg_ = static_cast<sipreg*>(lre().mem_deref(t->reg_));
    if (!t->transport_up_) return t->start_transport();
    t->do_register();
  }

  void arm_keepalive() {
    if (opt_.keepalive_s == 0) return;
    lre().tmr_start(&ka_tmr_, static_cast<uint64_t>(opt_.keepalive_s) * 1000, &Trunk::on_keepalive, this);
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
        lre().pl_set_str(&rpl, t->route_.c_str());
        if (lre().uri_decode(&route, &rpl) == 0) routep = &route;
      }
      const int err = lre().sip_requestf(
          nullptr, t->sip_, true, "OPTIONS", t->reg_uri_.c_str(), routep, nullptr, nullptr,
          &Trunk::on_options_response, t,
          "Max-Forwards: 70\r\n"
          "To: <%s>\r\n"
          "From: <%s>;tag=%016llx\r\n"
          "Call-ID: %016llx\r\n"
          "CSeq: %u OPTIONS\r\n"
          "Content-Length: 0\r\n\r\n",
          t->reg_uri_.c_str(), t->aor_.c_str(), static_cast<unsigned long long>(lre().rand_u64()),
          static_cast<unsigned long long>(lre().rand_u64()), ++t->options_cseq_);
      (void)err;
    } else {
      // RFC 5626 §4.4.1: a CRLF ping over the registration's connection.
      mbuf* mb = lre().mbuf_alloc(4);
      if (mb) {
        (void)lre().mbuf_write_str(mb, "\r\n\r\n");
        mb->pos = 0;
        const sip_transp tp = t->opt_.transport == SipTransport::tcp ? SIP_TRANSP_TCP : SIP_TRANSP_TLS;
        (void)lre().sip_send(t->sip_, nullptr, tp, &t->registrar_addr_, mb);
        lre().mem_deref(mb);
      }
    }
    t->arm_keepalive();
  }

  static void on_options_response(int err, const sip_msg*, void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    if (t->closing_ || !err || !t->registered_) return;
    // The registrar stopped answering: register again now (which reports the failure and backs off).
    lre().tmr_cancel(&t->reg_tmr_);
    t->registration_failed(0, "registrar unreachable: " + err_text(err), 1);
  }

  // --- SDP ----------------------------------------------------------------------------------------------
  int make_sdp(Call* c, uint16_t rtp_port) {
    sa laddr{};
    int err = lre().sa_set_str(&laddr, local_ip_.c_str(), 0);
    if (!err) err = lre().sdp_session_alloc(&c->sdp, &laddr);
    if (!err) err = lre().sdp_media_add(&c->media, c->sdp, "audio", rtp_port, "RTP/AVP");
    if (err) return err;
    const bool opus = std::find(opt_.codecs.begin(), opt_.codecs.end(), RtpCodec::opus) != opt_.codecs.end();
    for (RtpCodec codec : opt_.codecs) {
      switch (codec) {
        case RtpCodec::opus:
          err |= lre().sdp_format_add(nullptr, c->media, false, "111", "opus", 48000, 2, nullptr, nullptr,
                                      nullptr, false,
                                      "maxplaybackrate=16000;sprop-maxcapturerate=16000;useinbandfec=1");
          break;
        case RtpCodec::pcmu:
          err |= lre().sdp_format_add(nullptr, c->media, false, "0", "PCMU", 8000, 1, nullptr, nullptr,
                                      nullptr, false, nullptr);
          break;
        case RtpCodec::pcma:
          err |= lre().sdp_format_add(nullptr, c->media, false, "8", "PCMA", 8000, 1, nullptr, nullptr,
                                      nullptr, false, nullptr);
          break;
      }
    }
    err |= lre().sdp_format_add(nullptr, c->media, false, "101", "telephone-event", 8000, 1, nullptr, nullptr,
                                nullptr, false, "0-16");
    if (opus)
      err |= lre().sdp_format_add(nullptr, c->media, false, "102", "telephone-event", 48000, 1, nullptr,
                                  nullptr, nullptr, false, "0-16");
    err |= lre().sdp_media_set_lattr(c->media, true, "ptime", "20");
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
      const sdp_format* f = lre().sdp_media_format(c->media, true, nullptr, -1, name, srate, -1);
      if (f && f->sup) {
        chosen = f;
        chosen_codec = codec;
        break;
      }
    }
    if (!chosen) return false;
    const uint32_t clock = chosen_codec == RtpCodec::opus ? 48000 : 8000;
    const sdp_format* dtmf = nullptr;
    for (le* e = lre().list_head(lre().sdp_media_format_lst(c->media, true)); e; e = e->next) {
      auto* f = static_cast<sdp_format*>(e->data);
      if (f == chosen) continue;
      if (f->sup && !dtmf && f->name && lre().str_casecmp(f->name, "telephone-event") == 0 &&
          f->srate == clock) {
        dtmf = f;
        continue;
      }
      f->sup = false;
    }
    Media m;
    m.codec = chosen_codec;
    m.payload_type = static_cast<uint8_t>(chosen->pt);
    m.dtmf_payload_type = dtmf ? static_cast<uint8_t>(dtmf->pt) : 0;
    const sa* raddr = lre().sdp_media_raddr(c->media);
    char ip[64] = {};
    if (raddr && lre().sa_isset(raddr, SA_ADDR)) lre().re_snprintf(ip, sizeof ip, "%j", raddr);
    m.remote_ip = ip;
    m.remote_rtp_port = raddr ? lre().sa_port(raddr) : 0;
    sa rtcp{};
    lre().sdp_media_raddr_rtcp(c->media, &rtcp);
    m.remote_rtcp_port = lre().sa_port(&rtcp);
    const sdp_dir rdir = lre().sdp_media_rdir(c->media);
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
    lre().tmr_init(&c->refer_tmr);
    lre().tmr_init(&c->defer_tmr);
    lre().tmr_init(&c->consult_tmr);
    slots_[slot] = std::move(c);
    return slots_[slot].get();
  }

  // Frees every libre object of the call (a session still up ends with BYE/CANCEL) and the slot.
  void free_call(Call* c) {
    c->closing = true;
    lre().tmr_cancel(&c->refer_tmr);
    lre().tmr_cancel(&c->defer_tmr);
    lre().tmr_cancel(&c->consult_tmr);
    c->sub = static_cast<sipsub*>(lre().mem_deref(c->sub));
    c->consult = static_cast<sipsess*>(lre().mem_deref(c->consult));
    c->consult_sdp = static_cast<sdp_session*>(lre().mem_deref(c->consult_sdp));
    c->sess = static_cast<sipsess*>(lre().mem_deref(c->sess));
    c->invite = static_cast<const sip_msg*>(lre().mem_deref(const_cast<sip_msg*>(c->invite)));
    c->media = nullptr;
    c->sdp = static_cast<sdp_session*>(lre().mem_deref(c->sdp));
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
    if (!err) err = lre().sdp_encode(&desc, c->sdp, true);
    const std::string to = "sip:" + cmd.text + "@" + domain_ + tparam_;
    const char* routev[1] = {route_.c_str()};
    if (!err) {
      err = lre().sipsess_connect(&c->sess, sock_, to.c_str(), nullptr, aor_.c_str(), opt_.user.c_str(),
                                  routev, route_.empty() ? 0 : 1, "application/sdp", desc, &Trunk::on_auth,
                                  this, false, &Trunk::on_offer, &Trunk::on_answer, &Trunk::on_progress,
                                  &Trunk::on_established, &Trunk::on_info, nullptr, &Trunk::on_close, c,
                                  "Allow: %s\r\n", kAllow);
    }
    lre().mem_deref(desc);
    if (err) end_call(c, LineEvent::Type::failed, "cannot send the INVITE: " + err_text(err));
  }

  // The caller: P-Asserted-Identity (RFC 3325, a sip: or tel: URI) when the PBX asserts one, else the From
  // user. "anonymous" (RFC 3323) is withheld; anything longer than a number is taken as withheld too.
  static std::string caller_of(const sip_msg* msg) {
    std::string user;
    if (const sip_hdr* h = lre().sip_msg_hdr(msg, SIP_HDR_P_ASSERTED_IDENTITY)) {
      sip_addr addr{};
      if (lre().sip_addr_decode(&addr, &h->val) == 0) {
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
      (void)lre().sip_treply(nullptr, t->sip_, msg, 503, "Service Unavailable");
      return;
    }
    unsigned slot = 0;
    for (; slot < t->slots_.size(); ++slot)
      if (t->sh_->claim(slot)) break;
    if (slot == t->slots_.size()) {
      (void)lre().sip_treply(nullptr, t->sip_, msg, 486, "Busy Here");
      return;
    }
    Call* c = t->new_call(slot, t->sh_->next_call.fetch_add(1), false);
    c->number = caller_of(msg);
    int err = t->make_sdp(c, 9);  // the real port is known at answer()
    if (err) {
      t->free_call(c);
      t->sh_->release(slot);
      (void)lre().sip_treply(nullptr, t->sip_, msg, 500, "Server Internal Error");
      return;
    }
    const bool has_sdp = msg->mb && mbuf_get_left(msg->mb) > 0;
    if (has_sdp) {
      if (lre().sdp_decode(c->sdp, msg->mb, true) != 0 || !t->negotiate(c)) {
        t->free_call(c);
        t->sh_->release(slot);
        (void)lre().sip_treply(nullptr, t->sip_, msg, 488, "Not Acceptable Here");
        return;
      }
    } else {
      c->offer_pending = true;
    }
    err = lre().sipsess_accept(&c->sess, t->sock_, msg, 180, "Ringing", t->opt_.user.c_str(),
                               "application/sdp", nullptr, &Trunk::on_auth, t, false, &Trunk::on_offer,
                               &Trunk::on_answer, &Trunk::on_established, &Trunk::on_info, nullptr,
                               &Trunk::on_close, c, "Allow: %s\r\n", kAllow);
    if (err) {
      t->free_call(c);
      t->sh_->release(slot);
      (void)lre().sip_treply(nullptr, t->sip_, msg, 500, "Server Internal Error");
      return;
    }
    c->invite = static_cast<const sip_msg*>(lre().mem_ref(const_cast<sip_msg*>(msg)));
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
    lre().sdp_media_set_lport(c->media, cmd.rtp_port);
    mbuf* desc = nullptr;
    int err = lre().sdp_encode(&desc, c->sdp, c->offer_pending);
    if (!err) err = lre().sipsess_answer(c->sess, 200, "OK", desc, "Allow: %s\r\n", kAllow);
    lre().mem_deref(desc);
    if (err) return end_call(c, LineEvent::Type::failed, "cannot send the 200 OK: " + err_text(err));
    c->answered = true;
    c->invite = static_cast<const sip_msg*>(lre().mem_deref(const_cast<sip_msg*>(c->invite)));
    if (c->have_media) report_media(*c);
    report_call(*c, Report::Kind::answered);
  }

  void hangup(const Command& cmd) {
    Call* c = find(cmd.slot, cmd.call);
    if (!c) return;  // already ended: its report is on the way
    if (!c->outbound && !c->answered && c->sess) {
      c->closing = true;
      (void)lre().sipsess_reject(c->sess, 603, "Decline", nullptr);
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
    if (msg->mb && mbuf_get_left(msg->mb) > 0 && lre().msg_ctype_cmp(&msg->ctyp, "application", "sdp")) {
      // Early media (RFC 3960): the far end's tones or announcements before the answer.
      if (lre().sdp_decode(c->sdp, msg->mb, false) == 0 && t->negotiate(c)) t->report_media(*c);
    }
  }

  static int on_offer(mbuf** descp, const sip_msg* msg, void* arg) {
    auto* c = static_cast<Call*>(arg);
    Trunk* t = c->trunk;
    if (c->closing) return ECANCELED;
    const bool has_sdp = msg->mb && mbuf_get_left(msg->mb) > 0;
    if (has_sdp) {
      if (lre().sdp_decode(c->sdp, msg->mb, true) != 0) return EBADMSG;
      if (!t->negotiate(c)) return ENOENT;
      t->report_media(*c);
    }
    return lre().sdp_encode(descp, c->sdp, !has_sdp);
  }

  static int on_answer(const sip_msg* msg, void* arg) {
    auto* c = static_cast<Call*>(arg);
    Trunk* t = c->trunk;
    if (c->closing) return 0;
    if (!msg->mb || mbuf_get_left(msg->mb) == 0) return 0;
    int err = lre().sdp_decode(c->sdp, msg->mb, false);
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
    const bool relay = lre().msg_ctype_cmp(&msg->ctyp, "application", "dtmf-relay");
    const bool plain = lre().msg_ctype_cmp(&msg->ctyp, "application", "dtmf");
    if (!relay && !plain) {
      (void)lre().sip_reply(sip, msg, 415, "Unsupported Media Type");
      return;
    }
    std::string body;  // longer than 1024 bytes is refused by the parser: no need to copy more
    if (msg->mb)
      body.assign(reinterpret_cast<const char*>(mbuf_buf(msg->mb)),
                  std::min<size_t>(mbuf_get_left(msg->mb), 1025));
    const auto digit = parse_dtmf_info(body, relay);
    (void)lre().sip_reply(sip, msg, digit ? 200 : 400, digit ? "OK" : "Bad Request");
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
    mbuf* body = lre().mbuf_alloc(64);
    if (!body) return;
    (void)lre().mbuf_printf(body, "Signal=%c\r\nDuration=160\r\n", d);
    body->pos = 0;
    if (lre().sipsess_info(c->sess, "application/dtmf-relay", body, &Trunk::on_info_response, c) == 0)
      c->info_pending = true;
    lre().mem_deref(body);
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
        lre().sipevent_drefer(&c->sub, evsock_, lre().sipsess_dialog(c->sess), opt_.user.c_str(),
                              &Trunk::on_auth, this, false, &Trunk::on_notify, &Trunk::on_sub_close, c,
                              "Refer-To: <%s>\r\nReferred-By: <%s>\r\n", refer_to.c_str(), aor_.c_str());
    if (err) return conclude_refer(c, false, "cannot send the REFER: " + err_text(err));
    lre().tmr_start(&c->refer_tmr, kReferTimeoutMs, &Trunk::on_refer_timeout, c);
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
    int err = lre().sa_set_str(&laddr, local_ip_.c_str(), 0);
    sdp_media* m = nullptr;
    const sa* ours = lre().sdp_media_laddr(c->media);
    if (!err) err = lre().sdp_session_alloc(&c->consult_sdp, &laddr);
    if (!err)
      err = lre().sdp_media_add(&m, c->consult_sdp, "audio", ours ? lre().sa_port(ours) : 9, "RTP/AVP");
    if (!err)
      err = lre().sdp_format_add(nullptr, m, false, "0", "PCMU", 8000, 1, nullptr, nullptr, nullptr, false,
                                 nullptr);
    if (!err) lre().sdp_media_set_ldir(m, SDP_INACTIVE);
    mbuf* desc = nullptr;
    if (!err) err = lre().sdp_encode(&desc, c->consult_sdp, true);
    const std::string to = "sip:" + cmd.text + "@" + domain_ + tparam_;
    const char* routev[1] = {route_.c_str()};
    if (!err)
      err = lre().sipsess_connect(&c->consult, sock_, to.c_str(), nullptr, aor_.c_str(), opt_.user.c_str(),
                                  routev, route_.empty() ? 0 : 1, "application/sdp", desc, &Trunk::on_auth,
                                  this, false, &Trunk::on_consult_offer, &Trunk::on_consult_answer,
                                  &Trunk::on_consult_progress, &Trunk::on_consult_established, nullptr,
                                  nullptr, &Trunk::on_consult_close, c, "Allow: %s\r\n", kAllow);
    lre().mem_deref(desc);
    if (err) return conclude_refer(c, false, "cannot call the transfer target: " + err_text(err));
    lre().tmr_start(&c->consult_tmr, static_cast<uint64_t>(opt_.ring_timeout_s) * 1000,
                    &Trunk::on_consult_timeout, c);
  }

  static int on_consult_offer(mbuf** descp, const sip_msg*, void* arg) {
    auto* c = static_cast<Call*>(arg);
    return lre().sdp_encode(descp, c->consult_sdp, false);
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
    lre().tmr_cancel(&c->consult_tmr);
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
    lre().tmr_cancel(&c->refer_tmr);
    c->deferred = ok ? 1 : 2;
    c->defer_reason = std::move(why);
    lre().tmr_start(&c->defer_tmr, 0, &Trunk::on_deferred, c);
  }

  static void on_deferred(void* arg) {
    auto* c = static_cast<Call*>(arg);
    Trunk* t = c->trunk;
    c->sub = static_cast<sipsub*>(lre().mem_deref(c->sub));
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
    lre().tmr_cancel(&c->consult_tmr);
    c->consult = static_cast<sipsess*>(lre().mem_deref(c->consult));
    c->consult_sdp = static_cast<sdp_session*>(lre().mem_deref(c->consult_sdp));
    t->report_transfer_failed(*c, c->defer_reason);
  }

  static void on_notify(sip* sip, const sip_msg* msg, void* arg) {
    auto* c = static_cast<Call*>(arg);
    (void)lre().sip_treply(nullptr, sip, msg, 200, "OK");
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
    (void)lre().sip_treply(nullptr, static_cast<Trunk*>(arg)->sip_, msg, 489, "Bad Event");
    return true;
  }

  static bool on_other_request(const sip_msg* msg, void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    if (lre().pl_strcmp(&msg->met, "OPTIONS") == 0) {
      (void)lre().sip_treplyf(nullptr, nullptr, t->sip_, msg, false, 200, "OK",
                              "Allow: %s\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n", kAllow);
      return true;
    }
    if (lre().pl_strcmp(&msg->met, "ACK") == 0) return true;  // a stray ACK gets no answer (RFC 3261 §17.2.1)
    (void)lre().sip_treplyf(nullptr, nullptr, t->sip_, msg, false, 405, "Method Not Allowed",
                            "Allow: %s\r\nContent-Length: 0\r\n\r\n", kAllow);
    return true;
  }

  // --- teardown -----------------------------------------------------------------------------------------
  void teardown(std::promise<void>* done) {
    closing_ = true;
    done_ = done;
    lre().tmr_cancel(&reg_tmr_);
    lre().tmr_cancel(&drop_tmr_);
    lre().tmr_cancel(&ka_tmr_);
    for (auto& s : slots_)
      if (s) free_call(s.get());
    reg_ = static_cast<sipreg*>(lre().mem_deref(reg_));  // un-REGISTERs while registered
    teardown_started_ = lre().tmr_jiffies();
    on_close_wait(this);
  }

  // BYEs, CANCELs and the un-REGISTER get until kTeardownMs to complete; then everything is forced.
  static void on_close_wait(void* arg) {
    auto* t = static_cast<Trunk*>(arg);
    if (t->sip_ && lre().mem_nrefs(t->sip_) > t->base_refs_ &&
        lre().tmr_jiffies() - t->teardown_started_ < kTeardownMs) {
      lre().tmr_start(&t->close_tmr_, 5, &Trunk::on_close_wait, t);
      return;
    }
    t->free_all();
    t->done_->set_value();
  }

 public:
  void free_all() {
    lre().tmr_cancel(&close_tmr_);
    lre().tmr_cancel(&reg_tmr_);
    lre().tmr_cancel(&drop_tmr_);
    lre().tmr_cancel(&ka_tmr_);
    closing_ = true;
    for (auto& s : slots_)
      if (s) free_call(s.get());
    reg_ = static_cast<sipreg*>(lre().mem_deref(reg_));
    if (sip_) lre().sip_close(sip_, true);
    lsnr_ = static_cast<sip_lsnr*>(lre().mem_deref(lsnr_));
    evsock_ = static_cast<sipevent_sock*>(lre().mem_deref(evsock_));
    sock_ = static_cast<sipsess_sock*>(lre().mem_deref(sock_));
    sip_ = static_cast<struct sip*>(lre().mem_deref(sip_));
    tls_ = static_cast<struct tls*>(lre().mem_deref(tls_));
    dnsc_ = static_cast<struct dnsc*>(lre().mem_deref(dnsc_));
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

namespace osvi::hal {

Status load_sip_library() {
  if (const sipi::LoadedRe& l = sipi::loaded_re(); !l.status) return l.status.error();
  return {};
}

}  // namespace osvi::hal
