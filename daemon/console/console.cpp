// The web console's static files: lookup in the embedded table, caching validators and security headers.
#include "osvi/console/console.hpp"

#include <algorithm>

#include "assets.hpp"
#include "osvi/api/api.hpp"
#include "osvi/net/text.hpp"

namespace osvi::daemon {
namespace {

constexpr std::string_view kFolders[] = {"/css/", "/js/", "/img/", "/vendor/"};

void add_security_headers(net::HttpResponse& r) {
  r.headers.emplace_back("Content-Security-Policy", std::string(kConsoleCsp));
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
}

// If-None-Match holds "*" or a comma list of entity tags, weak ones (W/"…") compared weakly (RFC
// 9110 13.1.2).
bool etag_matches(std::string_view header, std::string_view etag) {
  while (!header.empty()) {
    const size_t comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.starts_with("W/")) item.remove_prefix(2);
    if (item == "*" || item == etag) return true;
  }
  return false;
}

}  // namespace

bool console_owns(std::string_view path) {
  if (path == "/" || path == "/index.html" || path == "/favicon.ico") return true;
  return std::any_of(std::begin(kFolders), std::end(kFolders),
                     [&](std::string_view f) { return path.starts_with(f); });
}

net::HttpResponse console_response(const net::HttpRequest& request) {
  net::HttpResponse r;
  if (request.method != "GET" && request.method != "HEAD") {
    r = Api::error(405, "method " + net::quoted(request.method, 16) + " not allowed on " +
                            net::quoted(request.path) + " (allowed: GET, HEAD)");
    r.headers.emplace_back("Allow", "GET, HEAD");
    add_security_headers(r);
    return r;
  }
  const std::string_view path = request.path == "/" ? std::string_view("/index.html") : request.path;
  const auto assets = console::embedded_assets();
  const auto it = std::lower_bound(assets.begin(), assets.end(), path,
                                   [](const console::Asset& a, std::string_view p) { return a.path < p; });
  if (it == assets.end() || it->path != path) {
    r = Api::error(404, "no such console file: " + net::quoted(request.path));
    add_security_headers(r);
    return r;
  }
  r.content_type = std::string(it->content_type);
  r.headers.emplace_back("ETag", std::string(it->etag));
  // Revalidated on every use: the files change with the binary, and a 304 costs one round trip on the LAN.
  r.headers.emplace_back("Cache-Control", "no-cache");
  add_security_headers(r);
  if (auto inm = request.header("If-None-Match"); inm && etag_matches(*inm, it->etag)) {
    r.status = 304;
    return r;
  }
  r.body = std::string(it->body);
  return r;
}

}  // namespace osvi::daemon
