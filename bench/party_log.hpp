// The simulated party's log (a sim line's `party_log`: one JSON object per line) as the call benches read it.
#pragma once

#include <cjson/cJSON.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace osvi::bench {

struct PartyEvent {
  int call = 0;
  std::string event;
  int step = 0;
  int64_t sample = 0;  // on the party's sample clock
};

// Every event of the log; false when an entry names a rate other than `rate` (sample positions would then be
// misread), with `bad` set to that entry.
inline bool read_party_log(const std::string& path, int rate, std::vector<PartyEvent>* out,
                           std::string* bad) {
  auto num = [](const cJSON* o, const char* k, double dflt) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
  };
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    osvi::net::JsonPtr j = osvi::test::parse_json(line);
    if (!j) continue;
    const double r = num(j.get(), "rate", rate);
    if (r != rate) {
      *bad = line;
      return false;
    }
    out->push_back({static_cast<int>(num(j.get(), "call", -1)), osvi::test::json_str(j.get(), "event"),
                    static_cast<int>(num(j.get(), "step", 0)),
                    static_cast<int64_t>(num(j.get(), "sample", -1))});
  }
  return true;
}

}  // namespace osvi::bench
