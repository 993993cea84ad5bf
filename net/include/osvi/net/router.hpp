// Path router: "/v1/call/{id}/transcript" patterns, telling "no such path" (404) from "wrong method" (405).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "osvi/net/http_server.hpp"

namespace osvi::net {

class Router {
 public:
  void add(std::string method, std::string pattern, HttpHandler handler);

  struct Match {
    enum class Kind { found, not_found, method_not_allowed } kind = Kind::not_found;
    const HttpHandler* handler = nullptr;
    std::vector<std::pair<std::string, std::string>> params;
    std::string allow;  // for 405: "GET, POST"
  };
  Match match(std::string_view method, std::string_view path) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    HttpHandler handler;
  };
  std::vector<Route> routes_;
};

}  // namespace osvi::net
