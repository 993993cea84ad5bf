// The dialler's per-contact time arithmetic: TimeZone::next_inside and phone_time_zones, cost per call.
//
//   time_zone_bench [calls]   (default 200000 per figure)
//
// Each call is timed on its own (steady_clock around it; the clock's own cost is printed for reference), so
// p99 is the tail a single contact sees, not a batch average.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "osvi/base/phone.hpp"
#include "osvi/base/time_zone.hpp"

using namespace osvi::daemon;
using Steady = std::chrono::steady_clock;

namespace {

struct Lcg {
  uint64_t s = 12345;
  uint64_t next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return s >> 33;
  }
  int64_t in(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo));
  }
};

void report(const char* what, std::vector<double> ns) {
  std::sort(ns.begin(), ns.end());
  auto pct = [&](double p) {
    return ns[std::min(ns.size() - 1, static_cast<size_t>(p * static_cast<double>(ns.size())))];
  };
  std::printf("%-58s p50 %7.0f ns  p99 %7.0f ns  max %8.0f ns  (n=%zu)\n", what, pct(0.5), pct(0.99),
              ns.back(), ns.size());
}

template <class Fn>
std::vector<double> time_each(size_t n, Fn fn) {
  std::vector<double> ns;
  ns.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const auto t0 = Steady::now();
    fn(i);
    ns.push_back(std::chrono::duration<double, std::nano>(Steady::now() - t0).count());
  }
  return ns;
}

int64_t g_sink = 0;  // keeps the calls from being optimised away

}  // namespace

int main(int argc, char** argv) {
  const size_t n = argc > 1 ? static_cast<size_t>(std::atol(argv[1])) : 200000;
  TimeZones zones;
  std::vector<std::shared_ptr<const TimeZone>> tzs;
  for (const char* name : {"America/New_York", "America/Los_Angeles", "Asia/Kolkata", "Europe/London",
                           "Australia/Lord_Howe", "America/Sao_Paulo"}) {
    auto tz = zones.get(name);
    if (!tz.ok()) {
      std::fprintf(stderr, "%s: %s\n", name, tz.error().message.c_str());
      return 1;
    }
    tzs.push_back(*tz);
  }

  struct Case {
    const TimeZone* tz;
    int64_t at_ms;
    int start, end, mask;
  };
  Lcg rng;
  const int64_t from = 1767225600000;        // 2026-01-01, over two years of DST changes
  const int64_t past_table = 2208988800000;  // 2040-01-01: Debian's "fat" files list changes to 2037 only
  auto cases = [&](bool one_day, int64_t start_ms) {
    std::vector<Case> v(4096);
    for (auto& c : v) {
      c.tz = tzs[static_cast<size_t>(rng.in(0, static_cast<int64_t>(tzs.size())))].get();
      c.at_ms = start_ms + rng.in(0, 2 * 365 * 86400000LL);
      c.start = static_cast<int>(rng.in(0, 48)) * 30;
      c.end = static_cast<int>(rng.in(0, 48)) * 30;
      if (c.end == c.start) c.end = (c.start + 600) % 1440;
      c.mask = one_day ? 1 << rng.in(0, 7) : 0x3e;
    }
    return v;
  };

  std::printf("time_zone_bench: %zu calls per figure\n", n);
  report("steady_clock::now() pair (timing overhead)", time_each(n, [](size_t) {}));
  const auto mixed = cases(false, from);
  report("next_inside, random instant/window, Mon-Fri", time_each(n, [&](size_t i) {
           const Case& c = mixed[i % mixed.size()];
           g_sink += c.tz->next_inside(c.at_ms, c.start, c.end, c.mask);
         }));
  const auto sparse = cases(true, from);
  report("next_inside, one weekday only (up to a week ahead)", time_each(n, [&](size_t i) {
           const Case& c = sparse[i % sparse.size()];
           g_sink += c.tz->next_inside(c.at_ms, c.start, c.end, c.mask);
         }));
  const auto footer = cases(false, past_table);
  report("next_inside, 2040-2041 (the POSIX TZ footer's rule)", time_each(n, [&](size_t i) {
           const Case& c = footer[i % footer.size()];
           g_sink += c.tz->next_inside(c.at_ms, c.start, c.end, c.mask);
         }));
  report("offset_at, random instant 2026-2027", time_each(n, [&](size_t i) {
           const Case& c = mixed[i % mixed.size()];
           g_sink += c.tz->offset_at(c.at_ms / 1000);
         }));
  report("TimeZones::get (cached)", time_each(n, [&](size_t i) {
           g_sink += zones.get(i % 2 ? "Asia/Kolkata" : "America/Sao_Paulo").ok();
         }));

  const std::vector<std::string> numbers = {
      "+12125551234", "+14155550123",   "+919876543210", "+442079460958",  "+447400123456",
      "+61212345678", "+8613912345678", "+80012345678",  "+5511987654321", "+18005550123"};
  const auto first_t0 = Steady::now();
  g_sink += static_cast<int64_t>(phone_time_zones(numbers[0]).size());  // loads osvi-phone.so
  std::printf("%-58s %.1f ms\n", "phone_time_zones first call (dlopen + metadata)",
              std::chrono::duration<double, std::milli>(Steady::now() - first_t0).count());
  if (phone_time_zones("+12125551234").empty()) {
    std::fprintf(stderr, "phone_time_zones gave nothing: is osvi-phone.so built?\n");
    return 1;
  }
  report("phone_time_zones, 10 numbers of 7 countries", time_each(n / 2, [&](size_t i) {
           g_sink += static_cast<int64_t>(phone_time_zones(numbers[i % numbers.size()]).size());
         }));
  std::printf("(checksum %lld)\n", static_cast<long long>(g_sink));
  return 0;
}
