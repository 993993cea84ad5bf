// Private to the config room: the text checks every section shares, so one rule has one spelling.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace osvi::daemon::config_detail {

bool is_hex(char c);
bool all_of(std::string_view s, bool (*pred)(char));
bool is_token_char(char c);  // A-Z a-z 0-9 _ -
bool is_site_char(char c);   // a token character or '.'
bool is_agent_uuid(std::string_view s);
bool is_identifier(std::string_view s, size_t max_len);
bool is_e164(std::string_view s);
bool is_language_tag(std::string_view s);
bool is_http_url(std::string_view s);
// "+05:30" -> 330; real zones span -12:00 to +14:00.
bool parse_utc_offset(std::string_view s, int* minutes);
// "a", "b" or "c", for error messages.
std::string one_of_text(std::span<const std::string_view> names);
// A Standard Webhooks secret: "whsec_" + standard base64 (padded) of 24 to 64 bytes. why never quotes the
// secret.
bool is_webhook_secret(std::string_view s, std::string* why);
// "192.168.1.0/24" or "fd00::/8": an address, '/', a prefix length, no host bits set.
bool is_cidr(std::string_view s, std::string* why);
// Parses "host:port"; why names the part that is wrong.
bool parse_listen(std::string_view s, std::string* host, uint16_t* port, std::string* why);

}  // namespace osvi::daemon::config_detail
