// Webhooks: what the webhooks room offers the app and the API — per-call webhook_url and per-agent
// integrations queued after each call's analysis, delivered signed from the durable queue.
#pragma once

namespace osvi::daemon {

// Filled by the webhooks issue's work: WebhookService (queues a call's deliveries once its analysis is over)
// in webhook_service.hpp, the Dispatcher (sends, retries, dead-letters) in dispatcher.hpp, the payload
// builders in payloads.hpp, Standard Webhooks signing in signature.hpp.

}  // namespace osvi::daemon
