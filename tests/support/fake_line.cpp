// FakeLine: a scripted hal::Line (fake_line.hpp).
#include "fake_line.hpp"

#include <algorithm>

namespace osvi::test {

bool FakeLine::did(const std::string& action) const {
  return std::find(actions.begin(), actions.end(), action) != actions.end();
}

Status FakeLine::dial(std::string_view e164) {
  actions.push_back("dial " + std::string(e164));
  return dial_result;
}
Status FakeLine::answer() {
  actions.push_back("answer");
  return answer_result;
}
Status FakeLine::hangup() {
  actions.push_back("hangup");
  return hangup_result;
}
Status FakeLine::send_dtmf(std::string_view digits) {
  actions.push_back("dtmf " + std::string(digits));
  return dtmf_result;
}
Status FakeLine::transfer_blind(std::string_view e164) {
  actions.push_back("transfer_blind " + std::string(e164));
  return transfer_result;
}
Status FakeLine::transfer_attended(std::string_view e164) {
  actions.push_back("transfer_attended " + std::string(e164));
  return transfer_result;
}

}  // namespace osvi::test
