// The chat room's events on the API's event streams: the topics GET /v1/chat/events (the inbox) and
// GET /v1/chat/session/{id}/events follow, and the publisher the App connects to ChatService's listener.
#pragma once

#include <string>
#include <string_view>

#include "osvi/api/event_hub.hpp"
#include "osvi/chat/chat_service.hpp"

namespace osvi::daemon {

inline constexpr std::string_view kChatInboxTopic = "chat";
std::string chat_session_topic(std::string_view session_id);

// Sends the event to the inbox's streams and to its session's.
void publish_chat_event(EventHub& hub, const ChatEvent& event);

}  // namespace osvi::daemon
