// The web console: its static files, embedded in osvid, served on the API listener at "/" (docs/console.md).
#pragma once

#include <string_view>

#include "osvi/net/http_server.hpp"

namespace osvi::daemon {

// The strict Content-Security-Policy of every console response: the console loads nothing from another
// host, runs no inline script or style, and cannot be framed.
inline constexpr std::string_view kConsoleCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'";

// Whether a request path is the console's: "/", "/index.html", "/favicon.ico" and everything under its
// asset folders (/css/, /js/, /img/, /vendor/). Those are answered here, without an API token (they hold no
// data); every other path goes to the API, which asks for one.
bool console_owns(std::string_view path);

// The answer to a console path: the embedded file (200, or 304 for a matching If-None-Match), 404 for a
// path under the console's folders that names no file, 405 for a method other than GET and HEAD. Every
// answer carries the CSP, X-Content-Type-Options: nosniff and Referrer-Policy: no-referrer.
net::HttpResponse console_response(const net::HttpRequest& request);

}  // namespace osvi::daemon
