// Names for the upstream vocabulary (journal fields, the call record's upstream_errors).
#include "osvi/net/upstream.hpp"

namespace osvi::net {

std::string_view to_string(UpstreamStage s) {
  switch (s) {
    case UpstreamStage::stt:
      return "stt";
    case UpstreamStage::llm:
      return "llm";
    case UpstreamStage::tts:
      return "tts";
    case UpstreamStage::embeddings:
      return "embeddings";
  }
  return "unknown";
}

std::string_view to_string(UpstreamError::Kind k) {
  switch (k) {
    case UpstreamError::Kind::timeout:
      return "timeout";
    case UpstreamError::Kind::connect:
      return "connect";
    case UpstreamError::Kind::http:
      return "http";
    case UpstreamError::Kind::protocol:
      return "protocol";
    case UpstreamError::Kind::reset:
      return "reset";
    case UpstreamError::Kind::breaker_open:
      return "breaker_open";
  }
  return "unknown";
}

}  // namespace osvi::net
