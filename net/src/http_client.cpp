// HttpClient: curl multi socket API; every curl callback lands here and is forwarded to the transfer's owner.
#include "osvi/net/http_client.hpp"

#include <curl/curl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "osvi/shared_library.hpp"

namespace osvi::net {

namespace {

constexpr const char* kCurlSoname = "libcurl.so.4";

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// libcurl (with its TLS, HTTP/2, IDN, Kerberos, LDAP, SSH and RTMP dependencies, and the OpenSSL TLS state
// curl_global_init sets up: ~4 MB resident) is opened at the first request, not at start: an idle box with no
// model service configured never maps it. Its C API is the ABI, so the library is opened by soname and its
// functions bound here; no wrapper module is needed. Opened once per process and never closed
// (RTLD_NODELETE), so the pointers stay valid.
struct CurlApi {
  decltype(&::curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&::curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&::curl_easy_init) easy_init = nullptr;
  decltype(&::curl_easy_setopt) easy_setopt = nullptr;
  decltype(&::curl_easy_strerror) easy_strerror = nullptr;
  decltype(&::curl_global_init) global_init = nullptr;
  decltype(&::curl_mime_addpart) mime_addpart = nullptr;
  decltype(&::curl_mime_data) mime_data = nullptr;
  decltype(&::curl_mime_filename) mime_filename = nullptr;
  decltype(&::curl_mime_free) mime_free = nullptr;
  decltype(&::curl_mime_init) mime_init = nullptr;
  decltype(&::curl_mime_name) mime_name = nullptr;
  decltype(&::curl_mime_type) mime_type = nullptr;
  decltype(&::curl_multi_add_handle) multi_add_handle = nullptr;
  decltype(&::curl_multi_cleanup) multi_cleanup = nullptr;
  decltype(&::curl_multi_info_read) multi_info_read = nullptr;
  decltype(&::curl_multi_init) multi_init = nullptr;
  decltype(&::curl_multi_remove_handle) multi_remove_handle = nullptr;
  decltype(&::curl_multi_setopt) multi_setopt = nullptr;
  decltype(&::curl_multi_socket_action) multi_socket_action = nullptr;
  decltype(&::curl_multi_strerror) multi_strerror = nullptr;
  decltype(&::curl_slist_append) slist_append = nullptr;
  decltype(&::curl_slist_free_all) slist_free_all = nullptr;
};

using LoadedCurl = dl::Table<CurlApi>;

LoadedCurl load_curl() {
  LoadedCurl l = dl::load_table<CurlApi>(kCurlSoname, "the HTTP client library", [](void* h, CurlApi& a) {
    return dl::bind(h, "curl_easy_cleanup", a.easy_cleanup) &&
           dl::bind(h, "curl_easy_getinfo", a.easy_getinfo) && dl::bind(h, "curl_easy_init", a.easy_init) &&
           dl::bind(h, "curl_easy_setopt", a.easy_setopt) &&
           dl::bind(h, "curl_easy_strerror", a.easy_strerror) &&
           dl::bind(h, "curl_global_init", a.global_init) &&
           dl::bind(h, "curl_mime_addpart", a.mime_addpart) && dl::bind(h, "curl_mime_data", a.mime_data) &&
           dl::bind(h, "curl_mime_filename", a.mime_filename) && dl::bind(h, "curl_mime_free", a.mime_free) &&
           dl::bind(h, "curl_mime_init", a.mime_init) && dl::bind(h, "curl_mime_name", a.mime_name) &&
           dl::bind(h, "curl_mime_type", a.mime_type) &&
           dl::bind(h, "curl_multi_add_handle", a.multi_add_handle) &&
           dl::bind(h, "curl_multi_cleanup", a.multi_cleanup) &&
           dl::bind(h, "curl_multi_info_read", a.multi_info_read) &&
           dl::bind(h, "curl_multi_init", a.multi_init) &&
           dl::bind(h, "curl_multi_remove_handle", a.multi_remove_handle) &&
           dl::bind(h, "curl_multi_setopt", a.multi_setopt) &&
           dl::bind(h, "curl_multi_socket_action", a.multi_socket_action) &&
           dl::bind(h, "curl_multi_strerror", a.multi_strerror) &&
           dl::bind(h, "curl_slist_append", a.slist_append) &&
           dl::bind(h, "curl_slist_free_all", a.slist_free_all);
  });
  // Once per process (curl_global_init is refcounted, but curl_global_cleanup on the last HttpClient would
  // unload OpenSSL state a later client needs again): the library stays for the life of the process.
  if (l.status && l.api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    l.status = make_error("curl_global_init failed", dl::kLibraryMissing);
  return l;
}

const LoadedCurl& loaded_curl() {
  static const LoadedCurl l = load_curl();  // thread-safe static: the first caller loads
  return l;
}

// Only called once loaded_curl() succeeded (HttpClient::start checks it before making a handle).
const CurlApi& curl() {
  return loaded_curl().api;
}

struct EasyDeleter {
  void operator()(CURL* e) const { curl().easy_cleanup(e); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl().slist_free_all(l); }
};
struct MimeDeleter {
  void operator()(curl_mime* m) const { curl().mime_free(m); }
};
struct MultiDeleter {
  void operator()(CURLM* m) const { curl().multi_cleanup(m); }
};

HttpClient::Failure classify(CURLcode code) {
  switch (code) {
    case CURLE_OK:
      return HttpClient::Failure::none;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
      return HttpClient::Failure::connect;
    case CURLE_OPERATION_TIMEDOUT:
      return HttpClient::Failure::timeout;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return HttpClient::Failure::invalid;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return HttpClient::Failure::reset;
    default:
      return HttpClient::Failure::other;
  }
}

}  // namespace

struct HttpClient::Transfer {
  Id id = 0;
  HttpClient* owner = nullptr;
  std::unique_ptr<CURL, EasyDeleter> easy;
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  std::unique_ptr<curl_mime, MimeDeleter> mime;
  std::string body;  // CURLOPT_POSTFIELDS points here, so it lives as long as the handle
  Callbacks cb;
  bool added = false;
  bool cancelled = false;
  bool sent = false;
  bool headers_done = false;
  std::shared_ptr<const TargetGuard> guard;
  std::string refused;  // the guard's last refusal
  char error[CURL_ERROR_SIZE] = {};
};

struct HttpClient::Impl {
  std::unique_ptr<CURLM, MultiDeleter> multi;

  static int on_socket_cb(CURL*, curl_socket_t s, int what, void* userp, void*) {
    auto* self = static_cast<HttpClient*>(userp);
    if (self->destroying_ || !self->hooks_.watch) return 0;
    short events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= POLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= POLLOUT;
    self->hooks_.watch(s, events);  // CURL_POLL_REMOVE → 0
    return 0;
  }

  static int on_timer_cb(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<HttpClient*>(userp);
    self->curl_deadline_ = timeout_ms < 0 ? -1 : steady_ms() + timeout_ms;
    if (!self->destroying_) self->rearm();
    return 0;
  }

  static void fire_sent(Transfer& t) {
    if (t.sent || t.cancelled) return;
    t.sent = true;
    if (t.cb.on_sent) t.cb.on_sent();
  }

  static size_t on_header_cb(char* data, size_t size, size_t n, void* userp) {
    auto& t = *static_cast<Transfer*>(userp);
    size_t len = size * n;
    if (t.cancelled) return 0;
    std::string_view line(data, len);
    if (line != "\r\n" && line != "\n") return len;
    long status = 0;
    curl().easy_getinfo(t.easy.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status < 200) return len;    // 100 Continue and friends: the real answer follows
    if (t.headers_done) return len;  // trailers
    t.headers_done = true;
    fire_sent(t);
    if (t.cancelled) return 0;
    char* ct = nullptr;
    curl().easy_getinfo(t.easy.get(), CURLINFO_CONTENT_TYPE, &ct);
    if (t.cb.on_headers) t.cb.on_headers(status, ct ? std::string_view(ct) : std::string_view());
    return t.cancelled ? 0 : len;
  }

  static size_t on_write_cb(char* data, size_t size, size_t n, void* userp) {
    auto& t = *static_cast<Transfer*>(userp);
    size_t len = size * n;
    if (t.cancelled) return 0;  // aborts the transfer; its removal is already queued
    if (t.cb.on_body && len > 0) t.cb.on_body(std::string_view(data, len));
    return t.cancelled ? 0 : len;
  }

  // Every connect goes through here when a guard is set: the address is the resolved one curl is about to
  // use, so the check cannot be raced by a second DNS answer.
  static curl_socket_t on_opensocket_cb(void* userp, curlsocktype purpose, curl_sockaddr* address) {
    auto& t = *static_cast<Transfer*>(userp);
    if (purpose != CURLSOCKTYPE_IPCXN || address == nullptr) return CURL_SOCKET_BAD;
    if (t.guard) {
      if (auto refused = t.guard->check(&address->addr, address->addrlen)) {
        t.refused = *refused;
        return CURL_SOCKET_BAD;
      }
    }
    int fd = ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
  }

  static int on_xferinfo_cb(void* userp, curl_off_t, curl_off_t, curl_off_t ultotal, curl_off_t ulnow) {
    auto& t = *static_cast<Transfer*>(userp);
    if (t.cancelled) return 1;
    if (ultotal > 0 && ulnow >= ultotal) fire_sent(t);
    return t.cancelled ? 1 : 0;
  }
};

HttpClient::HttpClient(Hooks hooks) : hooks_(std::move(hooks)), impl_(std::make_unique<Impl>()) {}

Result<std::unique_ptr<HttpClient>> HttpClient::create(Hooks hooks) {
  // No libcurl yet: the library is opened and the multi handle made by the first start().
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(hooks)));
}

Status HttpClient::ensure_multi() {
  if (impl_->multi) return {};
  const LoadedCurl& l = loaded_curl();
  if (!l.status) return l.status.error();
  impl_->multi.reset(curl().multi_init());
  if (!impl_->multi) return make_error("curl_multi_init failed", -ENOMEM);
  CURLM* m = impl_->multi.get();
  curl().multi_setopt(m, CURLMOPT_SOCKETFUNCTION, &Impl::on_socket_cb);
  curl().multi_setopt(m, CURLMOPT_SOCKETDATA, this);
  curl().multi_setopt(m, CURLMOPT_TIMERFUNCTION, &Impl::on_timer_cb);
  curl().multi_setopt(m, CURLMOPT_TIMERDATA, this);
  return {};
}

HttpClient::~HttpClient() {
  destroying_ = true;
  for (auto& [id, t] : transfers_) {
    if (t->added) curl().multi_remove_handle(impl_->multi.get(), t->easy.get());
  }
  transfers_.clear();
  impl_->multi.reset();
}

Result<HttpClient::Id> HttpClient::start(Request request, Callbacks callbacks) {
  if (auto s = ensure_multi(); !s) return s.error();
  auto t = std::make_unique<Transfer>();
  t->id = next_id_++;
  t->owner = this;
  t->cb = std::move(callbacks);
  t->easy.reset(curl().easy_init());
  if (!t->easy) return make_error("curl_easy_init failed", -ENOMEM);
  CURL* e = t->easy.get();
  curl().easy_setopt(e, CURLOPT_URL, request.url.c_str());
  curl().easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl().easy_setopt(e, CURLOPT_PRIVATE, t.get());
  curl().easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl().easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::on_header_cb);
  curl().easy_setopt(e, CURLOPT_HEADERDATA, t.get());
  curl().easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::on_write_cb);
  curl().easy_setopt(e, CURLOPT_WRITEDATA, t.get());
  curl().easy_setopt(e, CURLOPT_XFERINFOFUNCTION, &Impl::on_xferinfo_cb);
  curl().easy_setopt(e, CURLOPT_XFERINFODATA, t.get());
  curl().easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
  if (request.timeout_ms > 0)
    curl().easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout_ms));
  if (request.connect_timeout_ms > 0)
    curl().easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(request.connect_timeout_ms));

  if (request.guard) {
    t->guard = std::move(request.guard);
    curl().easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &Impl::on_opensocket_cb);
    curl().easy_setopt(e, CURLOPT_OPENSOCKETDATA, t.get());
    curl().easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl().easy_setopt(e, CURLOPT_PROXY, "");
  }

  curl_slist* list = nullptr;
  // "Expect: 100-continue" would stall larger uploads for a second on servers that do not answer it.
  request.headers.emplace_back("Expect:");
  for (const auto& h : request.headers) {
    curl_slist* next = curl().slist_append(list, h.c_str());
    if (!next) {
      curl().slist_free_all(list);
      return make_error("out of memory for headers", -ENOMEM);
    }
    list = next;
  }
  t->headers.reset(list);
  curl().easy_setopt(e, CURLOPT_HTTPHEADER, list);

  if (!request.multipart.empty()) {
    t->mime.reset(curl().mime_init(e));
    if (!t->mime) return make_error("curl_mime_init failed", -ENOMEM);
    for (const auto& p : request.multipart) {
      curl_mimepart* part = curl().mime_addpart(t->mime.get());
      if (!part) return make_error("curl_mime_addpart failed", -ENOMEM);
      curl().mime_name(part, p.name.c_str());
      curl().mime_data(part, p.data.data(), p.data.size());  // copies
      if (!p.filename.empty()) curl().mime_filename(part, p.filename.c_str());
      if (!p.mime.empty()) curl().mime_type(part, p.mime.c_str());
    }
    curl().easy_setopt(e, CURLOPT_MIMEPOST, t->mime.get());
  } else if (request.method != "GET") {
    t->body = std::move(request.body);
    curl().easy_setopt(e, CURLOPT_POSTFIELDS, t->body.data());
    curl().easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->body.size()));
  }
  if (request.method != "GET" && request.method != "POST")
    curl().easy_setopt(e, CURLOPT_CUSTOMREQUEST, request.method.c_str());

  Id id = t->id;
  Transfer& ref = *t;
  transfers_.emplace(id, std::move(t));
  if (in_curl_ > 0) {
    // curl_multi_add_handle refuses recursive calls; added once libcurl is off the stack.
    deferred_adds_.push_back(id);
    return id;
  }
  if (CURLMcode rc = curl().multi_add_handle(impl_->multi.get(), ref.easy.get()); rc != CURLM_OK) {
    transfers_.erase(id);
    return make_error(std::string("curl_multi_add_handle: ") + curl().multi_strerror(rc), -EIO);
  }
  ref.added = true;
  return id;
}

void HttpClient::release(Transfer& t) {
  if (t.added) curl().multi_remove_handle(impl_->multi.get(), t.easy.get());
  t.added = false;
}

void HttpClient::cancel(Id id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end() || it->second->cancelled) return;
  it->second->cancelled = true;
  if (in_curl_ > 0) {
    deferred_removals_.push_back(id);  // curl forbids removing a handle from inside its callbacks
    return;
  }
  auto owned = std::move(it->second);
  transfers_.erase(it);
  release(*owned);
}

HttpClient::TimerId HttpClient::schedule(int64_t delay_ms, std::function<void()> fn) {
  TimerId id = next_timer_++;
  timers_.emplace(id, Timer{steady_ms() + std::max<int64_t>(0, delay_ms), std::move(fn)});
  if (in_curl_ == 0) rearm();
  return id;
}

void HttpClient::cancel_timer(TimerId id) {
  timers_.erase(id);  // the hook keeps its deadline; an early on_timeout() is harmless
}

void HttpClient::socket_action(int fd, int ev_bitmask) {
  int running = 0;
  ++in_curl_;
  curl().multi_socket_action(impl_->multi.get(), fd, ev_bitmask, &running);
  --in_curl_;
  after_action();
}

void HttpClient::after_action() {
  // Collect first: a CURLMsg does not survive removing any handle, and callbacks below may remove some.
  std::vector<std::pair<Id, CURLcode>> finished;
  int queued = 0;
  while (CURLMsg* msg = curl().multi_info_read(impl_->multi.get(), &queued)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Transfer* t = nullptr;
    curl().easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
    if (t) finished.emplace_back(t->id, msg->data.result);
  }
  for (Id id : deferred_removals_) {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) continue;
    auto owned = std::move(it->second);
    transfers_.erase(it);
    release(*owned);
  }
  deferred_removals_.clear();
  for (auto [id, code] : finished) {
    auto it = transfers_.find(id);
    if (it == transfers_.end() || it->second->cancelled) continue;
    auto owned = std::move(it->second);
    transfers_.erase(it);
    Done done;
    done.curl_code = code;
    done.failure = classify(code);
    curl().easy_getinfo(owned->easy.get(), CURLINFO_RESPONSE_CODE, &done.status);
    done.error = owned->error[0] ? owned->error : curl().easy_strerror(code);
    if (code == CURLE_COULDNT_CONNECT && !owned->refused.empty()) {
      done.failure = Failure::refused;
      done.error = owned->refused;
    }
    char* redirect = nullptr;
    if (done.status >= 300 && done.status < 400 &&
        curl().easy_getinfo(owned->easy.get(), CURLINFO_REDIRECT_URL, &redirect) == CURLE_OK &&
        redirect != nullptr)
      done.redirect_url = redirect;
    release(*owned);
    if (code == CURLE_OK) Impl::fire_sent(*owned);
    if (owned->cb.on_done) owned->cb.on_done(done);
  }
  std::vector<Id> adds;
  adds.swap(deferred_adds_);
  for (Id id : adds) {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) continue;
    if (curl().multi_add_handle(impl_->multi.get(), it->second->easy.get()) == CURLM_OK) {
      it->second->added = true;
    } else {
      auto owned = std::move(it->second);
      transfers_.erase(it);
      Done done{Failure::other, CURLE_FAILED_INIT, 0, "curl_multi_add_handle failed", {}};
      if (owned->cb.on_done) owned->cb.on_done(done);
    }
  }
  rearm();
}

void HttpClient::on_socket(int fd, short revents) {
  int mask = 0;
  if (revents & POLLIN) mask |= CURL_CSELECT_IN;
  if (revents & POLLOUT) mask |= CURL_CSELECT_OUT;
  if (revents & (POLLERR | POLLHUP)) mask |= CURL_CSELECT_ERR;
  socket_action(fd, mask);
}

void HttpClient::on_timeout() {
  armed_ = -2;  // whatever the owner had armed has fired
  int64_t now = steady_ms();
  if (curl_deadline_ >= 0 && curl_deadline_ <= now) {
    curl_deadline_ = -1;
    socket_action(CURL_SOCKET_TIMEOUT, 0);
  }
  std::vector<TimerId> due;
  for (const auto& [id, timer] : timers_)
    if (timer.deadline <= now) due.push_back(id);
  for (TimerId id : due) {
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cancelled by an earlier timer
    auto fn = std::move(it->second.fn);
    timers_.erase(it);
    fn();
  }
  rearm();
}

void HttpClient::rearm() {
  if (in_curl_ > 0 || destroying_ || !hooks_.timer) return;
  int64_t earliest = curl_deadline_;
  for (const auto& [id, timer] : timers_)
    if (earliest < 0 || timer.deadline < earliest) earliest = timer.deadline;
  if (earliest == armed_) return;
  armed_ = earliest;
  hooks_.timer(earliest < 0 ? -1 : std::max<int64_t>(0, earliest - steady_ms()));
}

}  // namespace osvi::net
