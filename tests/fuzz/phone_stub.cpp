// Fuzz targets' stand-in for the phone number module (osvi-phone.so is loaded at run time, not linked).
#include <string>
#include <string_view>

#include "osvi/base/phone.hpp"
#include "osvi/net/text.hpp"

// Like the module, it quotes the number it refuses, so the validation around it is what gets fuzzed.
namespace osvi::daemon {
bool valid_country(std::string_view country_code) {
  return country_code.size() == 2 && country_code[0] >= 'A' && country_code[0] <= 'Z';
}
Result<std::string> normalize_phone(std::string_view digits, std::string_view) {
  std::string out = "+";
  for (char c : digits) {
    if (c < '0' || c > '9')
      return make_error("must contain digits only (got " + net::quoted(digits) + ")", -22);
    out += c;
  }
  if (out.size() < 4 || out.size() > 16) return make_error(net::quoted(digits) + " is not plausible", -22);
  return out;
}
}  // namespace osvi::daemon
