// POST /v1/lines/{id}/test and /v1/lines/{id}/loopback: the technician's line diagnostics (admin tokens).
// Both answer when the hardware has (the connection is held meanwhile), through lines/ LineDiagnostics.
#include <cerrno>
#include <cmath>
#include <memory>
#include <optional>
#include <string>

#include "osvi/api/api.hpp"
#include "osvi/hal/sim_line.hpp"
#include "osvi/lines/line_diagnostics.hpp"
#include "osvi/lines/line_manager.hpp"
#include "osvi/net/json.hpp"
#include "osvi/net/text.hpp"
#include "util.hpp"

namespace osvi::daemon {
namespace {

using net::HttpReply;
using net::HttpRequest;
using net::JsonPtr;

// A refusal before anything was asked: no such line 404, busy or down 409, nothing to test 422.
int refusal_status(const Error& e) {
  switch (-e.code) {
    case ENOENT:
      return 404;
    case EBUSY:
    case ENODEV:
      return 409;
    case ENOTSUP:
      return 422;
    default:
      return 500;
  }
}

// The device failed while answering: 504 when it did not answer in time, 502 otherwise.
int failure_status(const Error& e) {
  return e.code == -ETIMEDOUT ? 504 : 502;
}

std::string_view step_kind(hal::SimStep::Kind k) {
  switch (k) {
    case hal::SimStep::Kind::wait:
      return "wait";
    case hal::SimStep::Kind::dtmf:
      return "dtmf";
    case hal::SimStep::Kind::say:
      return "say";
    case hal::SimStep::Kind::play:
      return "play";
    case hal::SimStep::Kind::silence:
      return "silence";
    case hal::SimStep::Kind::hangup:
      return "hangup";
  }
  return "wait";
}

std::string_view outcome_name(hal::SimScript::Outcome o) {
  switch (o) {
    case hal::SimScript::Outcome::answer:
      return "answer";
    case hal::SimScript::Outcome::busy:
      return "busy";
    case hal::SimScript::Outcome::no_answer:
      return "no_answer";
    case hal::SimScript::Outcome::fail:
      return "fail";
  }
  return "answer";
}

cJSON* script_json(const hal::SimScript& s) {
  cJSON* o = cJSON_CreateObject();
  net::json_add_string(o, "outcome", outcome_name(s.outcome));
  cJSON_AddNumberToObject(o, "rings", s.rings);
  cJSON_AddNumberToObject(o, "ring_interval_ms", static_cast<double>(s.ring_interval_ms));
  cJSON_AddNumberToObject(o, "incoming_after_ms", static_cast<double>(s.incoming_after_ms));
  net::json_add_string(o, "caller", s.caller);
  cJSON_AddBoolToObject(o, "audio", s.audio);
  cJSON_AddNumberToObject(o, "rate", s.rate);
  cJSON* steps = cJSON_AddArrayToObject(o, "steps");
  for (const hal::SimStep& st : s.steps) {
    cJSON* e = cJSON_CreateObject();
    net::json_add_string(e, "kind", step_kind(st.kind));
    cJSON_AddNumberToObject(e, "ms", static_cast<double>(st.ms));
    net::json_add_string(e, "text", st.text);
    cJSON_AddBoolToObject(e, "after_agent", st.after_agent);
    cJSON_AddItemToArray(steps, e);
  }
  return o;
}

void add_probe(cJSON* o, const hal::LineProbe& p) {
  cJSON* id = cJSON_AddObjectToObject(o, "identity");
  net::json_add_string(id, "manufacturer", p.manufacturer);
  net::json_add_string(id, "model", p.model);
  net::json_add_string(id, "revision", p.revision);
  net::json_add_string(id, "imei", p.imei);
  cJSON* sig = cJSON_AddObjectToObject(o, "signal");
  net::json_add_int_or_null(sig, "rssi", p.rssi ? std::optional<int64_t>(*p.rssi) : std::nullopt);
  // 27.007 §8.5: <rssi> 0 is -113 dBm or less, each step 2 dB, 31 is -51 dBm or more.
  net::json_add_int_or_null(sig, "dbm", p.rssi ? std::optional<int64_t>(-113 + 2 * *p.rssi) : std::nullopt);
  net::json_add_int_or_null(sig, "ber", p.ber ? std::optional<int64_t>(*p.ber) : std::nullopt);
  cJSON* reg = cJSON_AddObjectToObject(o, "registration");
  auto add_reg = [reg](const char* name, const std::string& v) {
    net::json_add_string_or_null(reg, name, v.empty() ? std::nullopt : std::optional<std::string>(v));
  };
  add_reg("cs", p.cs_registration);
  add_reg("eps", p.eps_registration);
  cJSON* failures = cJSON_AddArrayToObject(o, "failures");
  for (const std::string& f : p.failures) cJSON_AddItemToArray(failures, cJSON_CreateString(f.c_str()));
}

}  // namespace

bool Api::line_request_ok(const HttpRequest& request, HttpReply& reply) {
  if (!caller_->admin) {
    reply.send(error(403, "this API token may not test lines"));
    return false;
  }
  if (body_ && body_->child) {
    reply.send(error(422, net::quoted(body_->child->string ? body_->child->string : "", 64) +
                              ": unknown field (the body of a line test is {})"));
    return false;
  }
  if (!ctx_.lines || !ctx_.diagnostics) {
    reply.send(error(503, "line diagnostics are not available (the lines did not start)"));
    return false;
  }
  if (!ctx_.lines->config_of(request.param("id").value_or(""))) {
    reply.send(error(404, "no line " + net::quoted(request.param("id").value_or(""))));
    return false;
  }
  return true;
}

void Api::test_line(HttpRequest& request, HttpReply reply) {
  if (!line_request_ok(request, reply)) return;
  const std::string id(request.param("id").value_or(""));
  const LineConfig* lc = ctx_.lines->config_of(id);
  if (lc->type == LineType::sim) {
    // A simulated line has nothing to ask: its "hardware" is the configured script, read without disturbing
    // a call in progress.
    JsonPtr data(cJSON_CreateObject());
    net::json_add_string(data.get(), "line", id);
    net::json_add_string(data.get(), "type", "sim");
    net::json_add_string(data.get(), "state", "");
    for (const LineHealth& h : ctx_.lines->health())
      if (h.id == id) cJSON_ReplaceItemInObject(data.get(), "state", cJSON_CreateString(h.state.c_str()));
    cJSON_AddItemToObject(data.get(), "script", script_json(lc->sim));
    reply.send(success(std::move(data)));
    return;
  }
  auto held = std::make_shared<HttpReply>(std::move(reply));  // std::function wants a copyable callable
  Status s = ctx_.diagnostics->probe(id, [held, id](Result<hal::LineProbe> r) {
    if (!r) {
      held->send(error(failure_status(r.error()), "line " + id + ": " + r.error().message));
      return;
    }
    JsonPtr data(cJSON_CreateObject());
    net::json_add_string(data.get(), "line", id);
    net::json_add_string(data.get(), "type", "at");
    add_probe(data.get(), *r);
    held->send(success(std::move(data)));
  });
  if (!s) held->send(error(refusal_status(s.error()), s.error().message));
}

void Api::loopback_line(HttpRequest& request, HttpReply reply) {
  if (!line_request_ok(request, reply)) return;
  const std::string id(request.param("id").value_or(""));
  auto held = std::make_shared<HttpReply>(std::move(reply));
  Status s = ctx_.diagnostics->loopback(id, ctx_.config->audio, [held](Result<LoopbackReport> r) {
    if (!r) {
      held->send(error(failure_status(r.error()), r.error().message));
      return;
    }
    JsonPtr data(cJSON_CreateObject());
    net::json_add_string(data.get(), "line", r->line);
    net::json_add_string(data.get(), "device", r->device);
    cJSON_AddNumberToObject(data.get(), "sample_rate", r->sample_rate);
    cJSON_AddBoolToObject(data.get(), "echo_found", r->echo.echo_found);
    if (r->echo.echo_found) {
      cJSON_AddNumberToObject(data.get(), "delay_ms", std::round(r->echo.delay_ms * 10) / 10);
      cJSON_AddNumberToObject(data.get(), "erl_db", std::round(r->echo.erl_db * 10) / 10);
    } else {
      cJSON_AddNullToObject(data.get(), "delay_ms");
      cJSON_AddNullToObject(data.get(), "erl_db");
    }
    cJSON_AddNumberToObject(data.get(), "tail_ms", r->tail_ms);
    cJSON_AddBoolToObject(data.get(), "fits", r->fits);
    cJSON_AddNumberToObject(data.get(), "peak_correlation",
                            std::round(r->echo.peak_correlation * 1000) / 1000);
    net::json_add_string(data.get(), "result",
                         !r->echo.echo_found ? "no echo found"
                         : r->fits           ? "the echo fits the canceller's tail"
                                             : "the echo is later than the canceller's tail");
    cJSON_AddNumberToObject(data.get(), "max_delay_ms", r->max_delay_ms);
    cJSON_AddNumberToObject(data.get(), "captured_ms", r->captured_ms);
    held->send(success(std::move(data)));
  });
  if (!s) held->send(error(refusal_status(s.error()), s.error().message));
}

}  // namespace osvi::daemon
