// osvi-model-server: a deterministic, scripted stand-in for OpenAI-compatible STT/LLM/TTS and embeddings
// (not a model).
//
// Usage: osvi-model-server [--listen 127.0.0.1:8090 | --port N] [--scenario FILE] [--log FILE] [--quiet]
// Prints "listening on HOST:PORT" once bound (port 0 = ephemeral). See scenario.hpp for the script format
// and docs/model-server.md for the endpoints, faults and control API.
//
// A separate tool, not the daemon: it runs a thread per connection (its requests read by the daemon's own
// parser, net/http_parser.hpp), so a delayed or hanging answer simply sleeps in its own thread.
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "audio_probe.hpp"
#include "osvi/hal/fd.hpp"
#include "osvi/net/http_parser.hpp"
#include "osvi/speech/speech.hpp"
#include "scenario.hpp"
#include "stand_in_embedding.hpp"

namespace osvi::tools {
namespace {

std::atomic<bool> g_stopping{false};
constexpr size_t kMaxBody = 32u << 20;
constexpr int kTtsRate = 24000;

struct JsonDeleter {
  void operator()(cJSON* j) const noexcept { cJSON_Delete(j); }
};
using Json = std::unique_ptr<cJSON, JsonDeleter>;

std::string print(const cJSON* j) {
  std::unique_ptr<char, decltype(&cJSON_free)> s(cJSON_PrintUnformatted(j), &cJSON_free);
  return s ? std::string(s.get()) : std::string("null");
}

std::string now_iso() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

std::string error_json(const std::string& message, const char* type, const char* code = nullptr) {
  Json root(cJSON_CreateObject());
  cJSON* err = cJSON_AddObjectToObject(root.get(), "error");
  cJSON_AddStringToObject(err, "message", message.c_str());
  cJSON_AddStringToObject(err, "type", type);
  cJSON_AddNullToObject(err, "param");
  if (code)
    cJSON_AddStringToObject(err, "code", code);
  else
    cJSON_AddNullToObject(err, "code");
  return print(root.get());
}

// A body produced while it is sent (a TTS render in progress). next() blocks until the next piece; an
// empty piece ends the body, an error drops the connection (chunked encoding left unterminated).
class LiveBody {
 public:
  virtual ~LiveBody() = default;
  virtual Result<std::string> next() = 0;
};

// What a handler decided; the HTTP glue turns it into a response.
struct Reply {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::vector<std::string> pieces;  // sent in order; one piece = a plain body
  bool streamed = false;            // chunked, piece by piece (SSE, audio)
  int gap_ms = 0;                   // pause before every piece but the first
  bool abort_at_end = false;        // "reset": drop the connection after the pieces
  bool hang = false;                // never answer
  int wait_ms = 0;                  // before the first byte, counted from the request's arrival
  std::shared_ptr<LiveBody> live;   // after `pieces` (streamed only): pieces made while sending
  int live_limit = -1;              // how many live pieces to send at most (-1: all)
};

Reply json_reply(unsigned status, std::string body) {
  Reply r;
  r.status = status;
  r.pieces.push_back(std::move(body));
  return r;
}
Reply bad_request(const std::string& message) {
  return json_reply(400, error_json(message, "invalid_request_error"));
}

// {"ok":true}: what the control endpoints answer.
Reply ok_reply() {
  Json root(cJSON_CreateObject());
  cJSON_AddTrueToObject(root.get(), "ok");
  return json_reply(200, print(root.get()));
}

// The body of a "bad_json" fault: `doc` printed and cut in the middle of its last string, as an upstream
// that died mid-answer would leave it. A proper prefix of an object never parses.
std::string truncated_json(const cJSON* doc) {
  const std::string text = print(doc);
  const size_t close = text.find_last_not_of("}]");
  if (close == std::string::npos || close == 0 || text[close] != '"') return text.substr(0, text.size() / 2);
  // The opening quote is the previous one not escaped (preceded by an even number of backslashes).
  size_t open = close;
  for (;;) {
    open = text.rfind('"', open - 1);
    if (open == std::string::npos || open == 0) return text.substr(0, text.size() / 2);
    size_t backslashes = 0;
    while (backslashes < open && text[open - 1 - backslashes] == '\\') ++backslashes;
    if (backslashes % 2 == 0) break;
  }
  return text.substr(0, open + 1 + (close - open - 1) / 2);
}

// {"id":…,"choices":[{<part>:{"content":…}}]}: the start of a chat answer, for truncated_json().
Json chat_stub(const std::string& id, const char* part, const std::string& content) {
  Json root(cJSON_CreateObject());
  cJSON_AddStringToObject(root.get(), "id", id.c_str());
  cJSON* choice = cJSON_CreateObject();
  cJSON_AddItemToArray(cJSON_AddArrayToObject(root.get(), "choices"), choice);
  cJSON_AddStringToObject(cJSON_AddObjectToObject(choice, part), "content", content.c_str());
  return root;
}

// Applies an injected fault to the reply a handler built; `broken` is that stage's truncated JSON.
void apply_fault(const Fault& f, Reply& r, const std::string& broken) {
  if (f.kind == "delay") {
    r.wait_ms += f.delay_ms;
  } else if (f.kind == "http500") {
    r = json_reply(500, error_json("injected fault: http500", "server_error"));
  } else if (f.kind == "bad_json") {
    if (r.content_type == "text/event-stream") {
      r.pieces.resize(std::min<size_t>(r.pieces.size(), 1));
      r.pieces.push_back("data: " + broken + "\n\n");
      r.pieces.push_back("data: [DONE]\n\n");
    } else {
      r = json_reply(200, broken);
    }
  } else if (f.kind == "wrong_content_type") {
    r = Reply{};
    r.content_type = "text/html; charset=utf-8";
    r.pieces.push_back("<html><body><h1>Service temporarily unavailable</h1></body></html>\n");
  } else if (f.kind == "reset") {
    if (r.live) r.live_limit = std::max(0, 2 - static_cast<int>(r.pieces.size()));
    if (!r.streamed && !r.pieces.empty()) {
      const std::string body = r.pieces[0];
      r.pieces = {body.substr(0, body.size() / 2)};
    }
    r.pieces.resize(std::min<size_t>(r.pieces.size(), 2));
    r.streamed = true;
    r.abort_at_end = true;
  } else if (f.kind == "hang") {
    r.hang = true;
  }
}

struct Part {
  std::string filename;
  std::string content_type;
  std::string data;
};

std::string header_param(std::string_view header, std::string_view key) {
  const std::string needle = std::string(key) + "=";
  size_t pos = 0;
  while ((pos = header.find(needle, pos)) != std::string_view::npos) {
    if (pos == 0 || header[pos - 1] == ' ' || header[pos - 1] == ';') break;
    pos += needle.size();
  }
  if (pos == std::string_view::npos) return {};
  pos += needle.size();
  if (pos < header.size() && header[pos] == '"') {
    const size_t end = header.find('"', pos + 1);
    return std::string(header.substr(pos + 1, end == std::string_view::npos ? end : end - pos - 1));
  }
  const size_t end = header.find(';', pos);
  std::string v(header.substr(pos, end == std::string_view::npos ? end : end - pos));
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
  return v;
}

Result<std::map<std::string, Part>> parse_multipart(const std::string& content_type,
                                                    const std::string& body) {
  if (content_type.rfind("multipart/form-data", 0) != 0) return make_error("expected multipart/form-data");
  const std::string boundary = header_param(content_type, "boundary");
  if (boundary.empty()) return make_error("multipart boundary missing");
  const std::string delim = "--" + boundary;
  std::map<std::string, Part> parts;
  size_t pos = body.find(delim);
  if (pos == std::string::npos) return make_error("multipart body has no boundary");
  for (;;) {
    pos += delim.size();
    if (body.compare(pos, 2, "--") == 0) break;
    if (body.compare(pos, 2, "\r\n") != 0) return make_error("malformed multipart boundary line");
    pos += 2;
    const size_t head_end = body.find("\r\n\r\n", pos);
    if (head_end == std::string::npos) return make_error("malformed multipart part headers");
    const std::string headers = body.substr(pos, head_end - pos);
    const size_t data_start = head_end + 4;
    const size_t data_end = body.find("\r\n" + delim, data_start);
    if (data_end == std::string::npos) return make_error("multipart part is not terminated");
    Part part;
    std::string name;
    std::istringstream lines(headers);
    std::string line;
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      std::string lower_line = line;
      for (char& c : lower_line) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower_line.rfind("content-disposition:", 0) == 0) {
        name = header_param(line, "name");
        part.filename = header_param(line, "filename");
      } else if (lower_line.rfind("content-type:", 0) == 0) {
        part.content_type = line.substr(13);
        while (!part.content_type.empty() && part.content_type.front() == ' ') part.content_type.erase(0, 1);
      }
    }
    part.data = body.substr(data_start, data_end - data_start);
    if (!name.empty()) parts[name] = std::move(part);
    pos = data_end + 2;
  }
  return parts;
}

std::string text_of(const cJSON* content) {
  if (cJSON_IsString(content)) return content->valuestring;
  std::string out;
  if (cJSON_IsArray(content)) {
    const cJSON* part = nullptr;
    cJSON_ArrayForEach(part, content) {
      const cJSON* t = cJSON_GetObjectItemCaseSensitive(part, "text");
      if (cJSON_IsString(t)) out += (out.empty() ? "" : " ") + std::string(t->valuestring);
    }
  }
  return out;
}

// Words with their leading space, so the concatenated deltas give back the text exactly.
std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t next = text.find(' ', start + 1);
    if (next == std::string::npos) next = text.size();
    out.push_back(text.substr(start, next - start));
    start = next;
  }
  return out;
}

// Rendered TTS audio (s16le at 24 kHz) by (voice, rate_wpm, input): the stand-in is deterministic, so a
// sentence said again costs no fork and no CPU. Bounded in entries and bytes, least recently used first
// out; an utterance larger than the whole budget is not kept. Thread-safe.
class TtsCache {
 public:
  static constexpr size_t kMaxEntries = 256;
  static constexpr size_t kMaxBytes = 32u << 20;

  static std::string key(const daemon::SpeechOptions& o, const std::string& input) {
    return o.voice + '\n' + std::to_string(o.rate_wpm) + '\n' + input;
  }

  std::shared_ptr<const std::string> get(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second.second);
    return it->second.first;
  }

  void put(const std::string& key, std::string pcm) {
    if (pcm.size() > kMaxBytes) return;
    std::lock_guard lock(mu_);
    if (map_.count(key) != 0) return;  // two misses of one sentence rendered it twice: same bytes
    bytes_ += pcm.size();
    order_.push_front(key);
    map_.emplace(key, std::make_pair(std::make_shared<const std::string>(std::move(pcm)), order_.begin()));
    while (map_.size() > kMaxEntries || bytes_ > kMaxBytes) {
      auto last = map_.find(order_.back());
      bytes_ -= last->second.first->size();
      map_.erase(last);
      order_.pop_back();
    }
  }

 private:
  std::mutex mu_;
  std::list<std::string> order_;  // most recently used first
  std::map<std::string, std::pair<std::shared_ptr<const std::string>, std::list<std::string>::iterator>> map_;
  size_t bytes_ = 0;
};

void append_s16le(const std::vector<int16_t>& samples, std::string& out) {
  const size_t at = out.size();
  out.resize(at + samples.size() * 2);
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto v = static_cast<uint16_t>(samples[i]);
    out[at + 2 * i] = static_cast<char>(v & 0xff);
    out[at + 2 * i + 1] = static_cast<char>(v >> 8);
  }
}

// A TTS answer on a cache miss: whatever the render child has produced goes out (at most chunk_bytes per
// piece) as soon as it is there; the complete audio then goes into the cache.
class RenderBody : public LiveBody {
 public:
  RenderBody(std::unique_ptr<daemon::SpeechStream> stream, size_t chunk_bytes, TtsCache* cache,
             std::string key)
      : stream_(std::move(stream)), chunk_bytes_(chunk_bytes), cache_(cache), key_(std::move(key)) {}

  Result<std::string> next() override {
    while (pending_.size() - taken_ == 0 && !done_) {
      pending_.clear();
      taken_ = 0;
      samples_.clear();
      auto more = stream_->next(samples_);
      if (!more) return more.error();
      done_ = !*more;
      append_s16le(samples_, pending_);
    }
    if (pending_.size() == taken_) {
      if (!cached_ && cache_ != nullptr) cache_->put(key_, std::move(all_));
      cached_ = true;
      return std::string();
    }
    std::string piece = pending_.substr(taken_, chunk_bytes_);
    taken_ += piece.size();
    if (cache_ != nullptr) all_ += piece;
    return piece;
  }

 private:
  std::unique_ptr<daemon::SpeechStream> stream_;
  size_t chunk_bytes_;
  TtsCache* cache_;  // null: the scenario's tts.cache is off
  std::string key_;
  std::vector<int16_t> samples_;
  std::string pending_;  // bytes read from the render, from taken_ on not sent yet
  size_t taken_ = 0;
  std::string all_;  // everything sent, for the cache
  bool done_ = false;
  bool cached_ = false;
};

class ModelServer {
 public:
  ModelServer(Scenario scenario, std::string log_path, bool quiet)
      : scenario_(std::move(scenario)), log_path_(std::move(log_path)), quiet_(quiet) {
    faults_ = {scenario_.stt.fault, scenario_.llm.fault, scenario_.tts.fault, scenario_.embeddings.fault};
    make_speech();
  }

  Reply handle(const std::string& method, const std::string& url, const std::string& content_type,
               const std::string& body) {
    if (url == "/v1/models") return method == "GET" ? models() : not_allowed();
    if (url == "/v1/audio/transcriptions")
      return method == "POST" ? transcribe(content_type, body) : not_allowed();
    if (url == "/v1/chat/completions") return method == "POST" ? chat(body) : not_allowed();
    if (url == "/v1/audio/speech") return method == "POST" ? speech(body) : not_allowed();
    if (url == "/v1/embeddings") return method == "POST" ? embeddings(body) : not_allowed();
    if (url == "/control/faults") return method == "POST" ? set_fault(body) : not_allowed();
    if (url == "/control/scenario") return method == "POST" ? set_scenario(body) : not_allowed();
    if (url == "/control/log") {
      if (method == "GET") return get_log();
      if (method == "DELETE") {
        std::lock_guard lock(mu_);
        log_.clear();
        return ok_reply();
      }
      return not_allowed();
    }
    return json_reply(404, error_json("no such endpoint: " + url, "invalid_request_error"));
  }

  bool quiet() const { return quiet_; }

 private:
  static Reply not_allowed() {
    return json_reply(405, error_json("method not allowed", "invalid_request_error"));
  }

  // Takes the stage's fault for one request, counting it down.
  Fault take_fault(StageId id, int& latency_ms) {
    std::lock_guard lock(mu_);
    latency_ms = scenario_.stage(id).latency_ms;
    Fault& f = faults_[static_cast<size_t>(id)];
    Fault taken = f;
    if (f.kind != "none" && f.count > 0 && --f.count == 0) f = Fault{};
    return taken;
  }

  void record(cJSON* entry) {
    cJSON_AddStringToObject(entry, "time", now_iso().c_str());
    std::lock_guard lock(mu_);
    cJSON_AddNumberToObject(entry, "seq", static_cast<double>(++log_seq_));
    std::string line = print(entry);
    if (!log_path_.empty()) {
      std::ofstream out(log_path_, std::ios::app);
      out << line << '\n';
    }
    log_.emplace_back(cJSON_Duplicate(entry, true));
  }

  Reply models() {
    Json root(cJSON_CreateObject());
    cJSON_AddStringToObject(root.get(), "object", "list");
    cJSON* data = cJSON_AddArrayToObject(root.get(), "data");
    std::lock_guard lock(mu_);
    std::vector<std::string> names = scenario_.models;
    for (const auto& m : scenario_.embedding_models)
      if (std::find(names.begin(), names.end(), m) == names.end()) names.push_back(m);
    for (const auto& m : names) {
      cJSON* item = cJSON_CreateObject();
      cJSON_AddStringToObject(item, "id", m.c_str());
      cJSON_AddStringToObject(item, "object", "model");
      cJSON_AddNumberToObject(item, "created", 0);
      cJSON_AddStringToObject(item, "owned_by", "osvi-model-server");
      cJSON_AddItemToArray(data, item);
    }
    return json_reply(200, print(root.get()));
  }

  Reply transcribe(const std::string& content_type, const std::string& body) {
    Json entry(cJSON_CreateObject());
    cJSON_AddStringToObject(entry.get(), "endpoint", "/v1/audio/transcriptions");
    auto parts = parse_multipart(content_type, body);
    if (!parts) return reject(entry.get(), parts.error().message);
    auto field = [&](const char* name) {
      auto it = parts->find(name);
      return it == parts->end() ? std::string() : it->second.data;
    };
    cJSON_AddStringToObject(entry.get(), "model", field("model").c_str());
    cJSON_AddStringToObject(entry.get(), "language", field("language").c_str());
    const std::string format = field("response_format").empty() ? "json" : field("response_format");
    cJSON_AddStringToObject(entry.get(), "response_format", format.c_str());
    auto file = parts->find("file");
    if (file == parts->end()) return reject(entry.get(), "multipart field 'file' is missing");
    cJSON* audio = cJSON_AddObjectToObject(entry.get(), "audio");
    cJSON_AddNumberToObject(audio, "bytes", static_cast<double>(file->second.data.size()));
    cJSON_AddStringToObject(audio, "content_type", file->second.content_type.c_str());
    auto info = probe_audio(file->second.data);
    if (!info) return reject(entry.get(), "invalid audio file: " + info.error().message);
    cJSON_AddStringToObject(audio, "format", info->format.c_str());
    cJSON_AddNumberToObject(audio, "duration", info->duration_s);
    cJSON_AddNumberToObject(audio, "rms_dbfs", std::round(info->rms_dbfs * 10) / 10);

    int latency = 0;
    const Fault fault = take_fault(StageId::kStt, latency);
    std::string text = "hello";
    const bool consumes = fault.kind == "none" || fault.kind == "delay";
    {
      // A failed answer does not use up a transcript: the caller's retry gets the same one.
      std::lock_guard lock(mu_);
      if (!scenario_.transcripts.empty()) {
        text = scenario_.transcripts[stt_count_ % scenario_.transcripts.size()];
      }
      if (consumes) ++stt_count_;
    }
    cJSON_AddStringToObject(entry.get(), "fault", fault.kind.c_str());
    cJSON_AddStringToObject(entry.get(), "text", text.c_str());
    record(entry.get());

    Reply r;
    if (format == "text") {
      r = json_reply(200, text);
      r.content_type = "text/plain; charset=utf-8";
    } else {
      Json root(cJSON_CreateObject());
      if (format == "verbose_json") {
        cJSON_AddStringToObject(root.get(), "task", "transcribe");
        cJSON_AddStringToObject(root.get(), "language", field("language").c_str());
      }
      cJSON_AddStringToObject(root.get(), "text", text.c_str());
      cJSON_AddNumberToObject(root.get(), "duration", std::round(info->duration_s * 1000) / 1000);
      r = json_reply(200, print(root.get()));
    }
    r.wait_ms = latency;
    Json stub(cJSON_CreateObject());
    cJSON_AddStringToObject(stub.get(), "text", text.c_str());
    apply_fault(fault, r, truncated_json(stub.get()));
    return r;
  }

  Reply reject(cJSON* entry, const std::string& message) {
    cJSON_AddStringToObject(entry, "error", message.c_str());
    record(entry);
    return bad_request(message);
  }

  Reply chat(const std::string& body) {
    Json entry(cJSON_CreateObject());
    cJSON_AddStringToObject(entry.get(), "endpoint", "/v1/chat/completions");
    Json doc(cJSON_ParseWithLength(body.data(), body.size()));
    if (!doc || !cJSON_IsObject(doc.get())) return reject(entry.get(), "body is not a JSON object");
    const cJSON* model = cJSON_GetObjectItemCaseSensitive(doc.get(), "model");
    const cJSON* messages = cJSON_GetObjectItemCaseSensitive(doc.get(), "messages");
    const bool stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc.get(), "stream"));
    const std::string model_name = cJSON_IsString(model) ? model->valuestring : "osvi-sim";
    cJSON_AddStringToObject(entry.get(), "model", model_name.c_str());
    cJSON_AddBoolToObject(entry.get(), "stream", stream);
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
      return reject(entry.get(), "messages must be a non-empty array");
    }
    cJSON_AddItemToObject(entry.get(), "messages", cJSON_Duplicate(messages, 1));
    if (const cJSON* tools = cJSON_GetObjectItemCaseSensitive(doc.get(), "tools")) {
      cJSON_AddItemToObject(entry.get(), "tools", cJSON_Duplicate(tools, 1));
    }
    // Structured output asked for (the post-call analysis): logged verbatim so tests see what was sent.
    if (const cJSON* format = cJSON_GetObjectItemCaseSensitive(doc.get(), "response_format")) {
      cJSON_AddItemToObject(entry.get(), "response_format", cJSON_Duplicate(format, 1));
    }
    int user_turns = 0;
    std::string last_user, last_role, all_text;
    const cJSON* m = nullptr;
    cJSON_ArrayForEach(m, messages) {
      const cJSON* role = cJSON_GetObjectItemCaseSensitive(m, "role");
      if (!cJSON_IsString(role)) return reject(entry.get(), "every message needs a string role");
      last_role = role->valuestring;
      all_text += text_of(cJSON_GetObjectItemCaseSensitive(m, "content"));
      all_text += '\n';
      if (last_role == "user") {
        ++user_turns;
        last_user = text_of(cJSON_GetObjectItemCaseSensitive(m, "content"));
      }
    }
    int latency = 0;
    const Fault fault = take_fault(StageId::kLlm, latency);
    ChatReply reply;
    int gap = 0;
    size_t n = 0;
    {
      std::lock_guard lock(mu_);
      reply = choose_reply(scenario_, last_role, last_user, user_turns, all_text);
      gap = scenario_.chunk_delay_ms;
      n = ++chat_count_;
    }
    cJSON_AddStringToObject(entry.get(), "fault", fault.kind.c_str());
    cJSON_AddStringToObject(entry.get(), "reply", reply.text.c_str());
    cJSON* names = cJSON_AddArrayToObject(entry.get(), "tool_calls");
    for (const auto& c : reply.tool_calls) cJSON_AddItemToArray(names, cJSON_CreateString(c.name.c_str()));
    record(entry.get());

    const std::string id = "chatcmpl-osvi-" + std::to_string(n);
    const auto created = static_cast<double>(std::time(nullptr));
    const char* finish = reply.tool_calls.empty() ? "stop" : "tool_calls";
    auto call_id = [&](size_t i) { return "call_osvi_" + std::to_string(n) + "_" + std::to_string(i); };
    Reply r;
    r.wait_ms = latency;
    if (!stream) {
      Json root(cJSON_CreateObject());
      cJSON_AddStringToObject(root.get(), "id", id.c_str());
      cJSON_AddStringToObject(root.get(), "object", "chat.completion");
      cJSON_AddNumberToObject(root.get(), "created", created);
      cJSON_AddStringToObject(root.get(), "model", model_name.c_str());
      cJSON* choice = cJSON_CreateObject();
      cJSON_AddItemToArray(cJSON_AddArrayToObject(root.get(), "choices"), choice);
      cJSON_AddNumberToObject(choice, "index", 0);
      cJSON* msg = cJSON_AddObjectToObject(choice, "message");
      cJSON_AddStringToObject(msg, "role", "assistant");
      if (reply.text.empty()) {
        cJSON_AddNullToObject(msg, "content");
      } else {
        cJSON_AddStringToObject(msg, "content", reply.text.c_str());
      }
      if (!reply.tool_calls.empty()) {
        cJSON* calls = cJSON_AddArrayToObject(msg, "tool_calls");
        for (size_t i = 0; i < reply.tool_calls.size(); ++i) {
          cJSON* c = cJSON_CreateObject();
          cJSON_AddStringToObject(c, "id", call_id(i).c_str());
          cJSON_AddStringToObject(c, "type", "function");
          cJSON* fn = cJSON_AddObjectToObject(c, "function");
          cJSON_AddStringToObject(fn, "name", reply.tool_calls[i].name.c_str());
          cJSON_AddStringToObject(fn, "arguments", reply.tool_calls[i].arguments.c_str());
          cJSON_AddItemToArray(calls, c);
        }
      }
      cJSON_AddStringToObject(choice, "finish_reason", finish);
      cJSON* usage = cJSON_AddObjectToObject(root.get(), "usage");
      const auto words = static_cast<double>(split_words(reply.text).size());
      cJSON_AddNumberToObject(usage, "prompt_tokens", static_cast<double>(body.size() / 4));
      cJSON_AddNumberToObject(usage, "completion_tokens", words);
      cJSON_AddNumberToObject(usage, "total_tokens", static_cast<double>(body.size() / 4) + words);
      r.pieces.push_back(print(root.get()));
      apply_fault(fault, r, truncated_json(chat_stub(id, "message", reply.text).get()));
      return r;
    }
    r.content_type = "text/event-stream";
    r.streamed = true;
    r.gap_ms = gap;
    auto chunk = [&](cJSON* delta, const char* finish_reason) {
      Json root(cJSON_CreateObject());
      cJSON_AddStringToObject(root.get(), "id", id.c_str());
      cJSON_AddStringToObject(root.get(), "object", "chat.completion.chunk");
      cJSON_AddNumberToObject(root.get(), "created", created);
      cJSON_AddStringToObject(root.get(), "model", model_name.c_str());
      cJSON* choice = cJSON_CreateObject();
      cJSON_AddItemToArray(cJSON_AddArrayToObject(root.get(), "choices"), choice);
      cJSON_AddNumberToObject(choice, "index", 0);
      cJSON_AddItemToObject(choice, "delta", delta);
      if (finish_reason) {
        cJSON_AddStringToObject(choice, "finish_reason", finish_reason);
      } else {
        cJSON_AddNullToObject(choice, "finish_reason");
      }
      r.pieces.push_back("data: " + print(root.get()) + "\n\n");
    };
    cJSON* first = cJSON_CreateObject();
    cJSON_AddStringToObject(first, "role", "assistant");
    cJSON_AddStringToObject(first, "content", "");
    chunk(first, nullptr);
    for (const auto& word : split_words(reply.text)) {
      cJSON* d = cJSON_CreateObject();
      cJSON_AddStringToObject(d, "content", word.c_str());
      chunk(d, nullptr);
    }
    for (size_t i = 0; i < reply.tool_calls.size(); ++i) {
      const auto& call = reply.tool_calls[i];
      const size_t half = call.arguments.size() / 2;
      for (int step = 0; step < 3; ++step) {
        cJSON* d = cJSON_CreateObject();
        cJSON* c = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(d, "tool_calls"), c);
        cJSON_AddNumberToObject(c, "index", static_cast<double>(i));
        cJSON* fn = nullptr;
        if (step == 0) {
          cJSON_AddStringToObject(c, "id", call_id(i).c_str());
          cJSON_AddStringToObject(c, "type", "function");
          fn = cJSON_AddObjectToObject(c, "function");
          cJSON_AddStringToObject(fn, "name", call.name.c_str());
          cJSON_AddStringToObject(fn, "arguments", "");
        } else {
          fn = cJSON_AddObjectToObject(c, "function");
          const std::string piece = step == 1 ? call.arguments.substr(0, half) : call.arguments.substr(half);
          cJSON_AddStringToObject(fn, "arguments", piece.c_str());
        }
        chunk(d, nullptr);
      }
    }
    chunk(cJSON_CreateObject(), finish);
    r.pieces.push_back("data: [DONE]\n\n");
    apply_fault(fault, r, truncated_json(chat_stub(id, "delta", "Hello").get()));
    return r;
  }

  Reply speech(const std::string& body) {
    Json entry(cJSON_CreateObject());
    cJSON_AddStringToObject(entry.get(), "endpoint", "/v1/audio/speech");
    Json doc(cJSON_ParseWithLength(body.data(), body.size()));
    if (!doc || !cJSON_IsObject(doc.get())) return reject(entry.get(), "body is not a JSON object");
    const cJSON* input = cJSON_GetObjectItemCaseSensitive(doc.get(), "input");
    const cJSON* voice = cJSON_GetObjectItemCaseSensitive(doc.get(), "voice");
    const cJSON* model = cJSON_GetObjectItemCaseSensitive(doc.get(), "model");
    const cJSON* fmt = cJSON_GetObjectItemCaseSensitive(doc.get(), "response_format");
    const std::string format = cJSON_IsString(fmt) ? fmt->valuestring : "pcm";
    cJSON_AddStringToObject(entry.get(), "model", cJSON_IsString(model) ? model->valuestring : "");
    cJSON_AddStringToObject(entry.get(), "voice", cJSON_IsString(voice) ? voice->valuestring : "");
    cJSON_AddStringToObject(entry.get(), "response_format", format.c_str());
    if (!cJSON_IsString(input) || input->valuestring[0] == '\0') {
      return reject(entry.get(), "input must be a non-empty string");
    }
    cJSON_AddStringToObject(entry.get(), "input", input->valuestring);
    if (format != "pcm" && format != "wav") {
      return reject(entry.get(), "unsupported response_format '" + format +
                                     "': osvi-model-server renders pcm (s16le mono 24 kHz) or wav");
    }
    int latency = 0;
    const Fault fault = take_fault(StageId::kTts, latency);
    cJSON_AddStringToObject(entry.get(), "fault", fault.kind.c_str());
    std::shared_ptr<daemon::Speech> synth;
    size_t chunk_bytes = 4800;
    bool use_cache = true;
    {
      std::lock_guard lock(mu_);
      synth = speech_;
      chunk_bytes = static_cast<size_t>(scenario_.tts_chunk_bytes);
      use_cache = scenario_.tts_cache;
    }
    if (!synth) {
      record(entry.get());
      return json_reply(
          500, error_json("speech synthesis unavailable (espeak-ng failed to start)", "server_error"));
    }
    const std::string text = input->valuestring;
    const std::string key = TtsCache::key(synth->options(), text);
    Reply r;
    r.wait_ms = latency;  // from the request's arrival: the render below overlaps it
    r.streamed = true;
    r.content_type = format == "wav" ? "audio/wav" : "audio/pcm";
    // These faults replace the answer: no audio is made for them.
    const bool replaced = fault.kind == "http500" || fault.kind == "bad_json" ||
                          fault.kind == "wrong_content_type" || fault.kind == "hang";
    if (!replaced) {
      std::shared_ptr<const std::string> pcm = use_cache ? cache_.get(key) : nullptr;
      cJSON_AddStringToObject(entry.get(), "cache", !use_cache ? "off" : pcm ? "hit" : "miss");
      if (!pcm && format == "wav") {
        // The WAV header carries the length, so a WAV miss renders the whole sentence before its first
        // byte (still during the latency wait); pcm is the streaming format, as with OpenAI's service.
        auto whole = synth->render(text, kTtsRate);
        if (!whole) return render_failed(entry.get(), whole.error().message);
        std::string bytes;
        append_s16le(*whole, bytes);
        if (use_cache) cache_.put(key, bytes);
        pcm = std::make_shared<const std::string>(std::move(bytes));
      }
      if (pcm) {
        cJSON_AddNumberToObject(entry.get(), "samples", static_cast<double>(pcm->size() / 2));
        if (format == "wav") r.pieces.push_back(wav_header(pcm->size()));
        for (size_t off = 0; off < pcm->size(); off += chunk_bytes)
          r.pieces.push_back(pcm->substr(off, chunk_bytes));
      } else {
        auto stream = synth->start(text, kTtsRate);
        if (!stream) return render_failed(entry.get(), stream.error().message);
        r.live =
            std::make_shared<RenderBody>(std::move(*stream), chunk_bytes, use_cache ? &cache_ : nullptr, key);
      }
    }
    record(entry.get());
    Json stub(cJSON_CreateObject());
    cJSON_AddStringToObject(stub.get(), "audio", "UklGRiQAAABXQVZF");  // base64 of a WAV header's start
    apply_fault(fault, r, truncated_json(stub.get()));
    return r;
  }

  Reply render_failed(cJSON* entry, const std::string& message) {
    cJSON_AddStringToObject(entry, "error", message.c_str());
    record(entry);
    return json_reply(500, error_json(message, "server_error"));
  }

  // OpenAI's embeddings: {model, input: string | [string], encoding_format?, dimensions?} → one stand-in
  // vector per input (stand_in_embedding.hpp), in input order, with usage counted in words.
  Reply embeddings(const std::string& body) {
    Json entry(cJSON_CreateObject());
    cJSON_AddStringToObject(entry.get(), "endpoint", "/v1/embeddings");
    Json doc(cJSON_ParseWithLength(body.data(), body.size()));
    if (!doc || !cJSON_IsObject(doc.get())) return reject(entry.get(), "body is not a JSON object");
    const cJSON* model = cJSON_GetObjectItemCaseSensitive(doc.get(), "model");
    if (!cJSON_IsString(model) || model->valuestring[0] == '\0')
      return reject(entry.get(), "model must be a non-empty string");
    const std::string model_name = model->valuestring;
    cJSON_AddStringToObject(entry.get(), "model", model_name.c_str());
    int dimensions = 0;
    std::vector<std::string> served;
    {
      std::lock_guard lock(mu_);
      dimensions = scenario_.embedding_dimensions;
      served = scenario_.embedding_models;
    }
    if (!served.empty() && std::find(served.begin(), served.end(), model_name) == served.end()) {
      cJSON_AddStringToObject(entry.get(), "error", "model not found");
      record(entry.get());
      return json_reply(404, error_json("The model `" + model_name + "` does not exist",
                                        "invalid_request_error", "model_not_found"));
    }
    const cJSON* input = cJSON_GetObjectItemCaseSensitive(doc.get(), "input");
    std::vector<std::string> inputs;
    if (cJSON_IsString(input)) {
      inputs.emplace_back(input->valuestring);
    } else if (cJSON_IsArray(input)) {
      const cJSON* item = nullptr;
      cJSON_ArrayForEach(item, input) {
        if (!cJSON_IsString(item)) {
          // Token arrays ([1, 2, 3] or [[1, 2], [3]]) need the model's tokenizer, which a stand-in has not.
          return reject(entry.get(),
                        cJSON_IsNumber(item) || cJSON_IsArray(item)
                            ? "token-array inputs are not supported by osvi-model-server: send text"
                            : "input must be a string or an array of strings");
        }
        inputs.emplace_back(item->valuestring);
      }
    } else {
      return reject(entry.get(), "input must be a string or an array of strings");
    }
    if (inputs.empty()) return reject(entry.get(), "input must not be an empty array");
    if (inputs.size() > 2048) return reject(entry.get(), "input holds more than 2048 texts");
    for (size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i].empty())
        return reject(entry.get(), "input[" + std::to_string(i) + "] is an empty string");
    cJSON_AddNumberToObject(entry.get(), "inputs", static_cast<double>(inputs.size()));
    if (const cJSON* fmt = cJSON_GetObjectItemCaseSensitive(doc.get(), "encoding_format")) {
      if (!cJSON_IsString(fmt) || std::string_view(fmt->valuestring) != "float")
        return reject(entry.get(), "encoding_format: osvi-model-server answers \"float\" only");
    }
    if (const cJSON* dims = cJSON_GetObjectItemCaseSensitive(doc.get(), "dimensions")) {
      if (!cJSON_IsNumber(dims) || dims->valuedouble < 1 || dims->valuedouble > kMaxStandInDimensions ||
          dims->valuedouble != std::floor(dims->valuedouble)) {
        return reject(entry.get(),
                      "dimensions must be an integer 1.." + std::to_string(kMaxStandInDimensions));
      }
      dimensions = dims->valueint;
    }
    cJSON_AddNumberToObject(entry.get(), "dimensions", dimensions);
    int latency = 0;
    const Fault fault = take_fault(StageId::kEmbeddings, latency);
    cJSON_AddStringToObject(entry.get(), "fault", fault.kind.c_str());
    record(entry.get());

    Json root(cJSON_CreateObject());
    cJSON_AddStringToObject(root.get(), "object", "list");
    cJSON* data = cJSON_AddArrayToObject(root.get(), "data");
    size_t tokens = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const std::vector<float> v = stand_in_embedding(inputs[i], static_cast<unsigned>(dimensions));
      tokens += stand_in_tokens(inputs[i]);
      cJSON* item = cJSON_CreateObject();
      cJSON_AddStringToObject(item, "object", "embedding");
      cJSON_AddNumberToObject(item, "index", static_cast<double>(i));
      cJSON* values = cJSON_AddArrayToObject(item, "embedding");
      for (const float x : v) cJSON_AddItemToArray(values, cJSON_CreateNumber(static_cast<double>(x)));
      cJSON_AddItemToArray(data, item);
    }
    cJSON_AddStringToObject(root.get(), "model", model_name.c_str());
    cJSON* usage = cJSON_AddObjectToObject(root.get(), "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", static_cast<double>(tokens));
    cJSON_AddNumberToObject(usage, "total_tokens", static_cast<double>(tokens));
    Reply r = json_reply(200, print(root.get()));
    r.wait_ms = latency;
    Json stub(cJSON_CreateObject());
    cJSON_AddStringToObject(stub.get(), "object", "list");
    cJSON_AddStringToObject(stub.get(), "model", model_name.c_str());
    apply_fault(fault, r, truncated_json(stub.get()));
    return r;
  }

  static std::string wav_header(size_t data_bytes) {
    std::string h(44, '\0');
    auto put32 = [&](size_t at, uint32_t v) {
      for (int i = 0; i < 4; ++i) h[at + static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
    };
    auto put16 = [&](size_t at, uint16_t v) {
      h[at] = static_cast<char>(v & 0xff);
      h[at + 1] = static_cast<char>(v >> 8);
    };
    std::memcpy(h.data(), "RIFF", 4);
    put32(4, static_cast<uint32_t>(36 + data_bytes));
    std::memcpy(h.data() + 8, "WAVEfmt ", 8);
    put32(16, 16);
    put16(20, 1);
    put16(22, 1);
    put32(24, kTtsRate);
    put32(28, kTtsRate * 2);
    put16(32, 2);
    put16(34, 16);
    std::memcpy(h.data() + 36, "data", 4);
    put32(40, static_cast<uint32_t>(data_bytes));
    return h;
  }

  Reply set_fault(const std::string& body) {
    auto req = parse_fault_request(body);
    if (!req) return bad_request(req.error().message);
    std::lock_guard lock(mu_);
    faults_[static_cast<size_t>(req->first)] = req->second;
    return ok_reply();
  }

  Reply set_scenario(const std::string& body) {
    auto s = parse_scenario(body);
    if (!s) return bad_request(s.error().message);
    std::lock_guard lock(mu_);
    scenario_ = std::move(*s);
    faults_ = {scenario_.stt.fault, scenario_.llm.fault, scenario_.tts.fault, scenario_.embeddings.fault};
    stt_count_ = 0;
    make_speech();
    return ok_reply();
  }

  Reply get_log() {
    std::lock_guard lock(mu_);
    Json all(cJSON_CreateArray());
    for (const Json& entry : log_) cJSON_AddItemReferenceToArray(all.get(), entry.get());
    return json_reply(200, print(all.get()));
  }

  // Called with mu_ held (or from the constructor); a voice espeak lacks leaves TTS answering 500.
  void make_speech() {
    if (speech_ && speech_->options().voice == scenario_.tts_voice &&
        speech_->options().rate_wpm == scenario_.tts_rate_wpm) {
      return;
    }
    daemon::SpeechOptions o;
    o.voice = scenario_.tts_voice;
    o.rate_wpm = scenario_.tts_rate_wpm;
    auto s = daemon::Speech::create(o);
    if (!s) {
      std::fprintf(stderr, "osvi-model-server: tts disabled: %s\n", s.error().message.c_str());
      speech_.reset();
      return;
    }
    speech_ = std::shared_ptr<daemon::Speech>(std::move(*s));
  }

  std::mutex mu_;
  Scenario scenario_;
  std::array<Fault, 4> faults_;
  std::shared_ptr<daemon::Speech> speech_;
  TtsCache cache_;
  size_t stt_count_ = 0;
  size_t chat_count_ = 0;
  uint64_t log_seq_ = 0;
  std::vector<Json> log_;
  std::string log_path_;
  bool quiet_;
};

// ---- HTTP/1.1 glue: one thread per connection on blocking calls; requests read by net/http_parser.hpp -----

struct Stream {
  std::vector<std::string> pieces;
  int gap_ms = 0;
  bool abort_at_end = false;
  std::shared_ptr<LiveBody> live;  // pulled from once `pieces` are sent
  int live_left = -1;
};

bool client_gone(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// Sleeps until the deadline (forever when ms < 0), the server stops, or the client hangs up (fd >= 0).
bool wait_for(int fd, int ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!g_stopping.load()) {
    const auto now = std::chrono::steady_clock::now();
    if (ms >= 0 && now >= deadline) return true;
    if (client_gone(fd)) return false;
    // Polls every 10 ms, but never sleeps past the deadline: the latency is the scenario's to the ms.
    std::this_thread::sleep_for(ms < 0 ? std::chrono::steady_clock::duration(std::chrono::milliseconds(10))
                                       : std::min<std::chrono::steady_clock::duration>(
                                             std::chrono::milliseconds(10), deadline - now));
  }
  return false;
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Appends what the socket has to `buf`, waiting in 100 ms steps so a stop is noticed. False at the end.
bool recv_more(int fd, std::string& buf) {
  while (!g_stopping.load()) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) == 0) continue;
    char chunk[16384];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf.append(chunk, static_cast<size_t>(n));
    return true;
  }
  return false;
}

struct Incoming {
  net::http::RequestHead head;
  std::string body;
  bool too_large = false;
};

// Reads the next request from `buf` and the socket. nullopt at the connection's end; an error to answer.
std::optional<net::http::ParseError> read_request(int fd, std::string& buf, Incoming& req, bool& ended) {
  ended = false;
  net::http::HeadScanner scanner;
  size_t head_len = 0;
  while (true) {
    const auto scan = scanner.scan(buf);
    if (scan.error) return scan.error;
    if ((head_len = scan.end)) break;
    if (!recv_more(fd, buf)) {
      ended = true;
      return std::nullopt;
    }
  }
  if (auto bad = net::http::parse_head(std::string_view(buf).substr(0, head_len), req.head)) return bad;
  buf.erase(0, head_len);
  const auto take = [&](std::string_view piece) {
    if (req.too_large || req.body.size() + piece.size() > kMaxBody) {
      req.too_large = true;
      req.body.clear();
    } else {
      req.body.append(piece);
    }
  };
  if (req.head.expect_continue && buf.empty() && !send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n")) {
    ended = true;
    return std::nullopt;
  }
  if (req.head.framing == net::http::BodyFraming::length) {
    uint64_t left = req.head.content_length;
    while (left > 0) {
      if (buf.empty() && !recv_more(fd, buf)) {
        ended = true;
        return std::nullopt;
      }
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
      take(std::string_view(buf).substr(0, n));
      buf.erase(0, n);
      left -= n;
    }
  } else if (req.head.framing == net::http::BodyFraming::chunked) {
    net::http::ChunkedDecoder decoder;
    while (!decoder.done()) {
      if (buf.empty() && !recv_more(fd, buf)) {
        ended = true;
        return std::nullopt;
      }
      const auto step = decoder.feed(buf);
      if (step.error) return step.error;
      take(step.data);
      buf.erase(0, step.consumed);
    }
  }
  return std::nullopt;
}

std::string head_of(unsigned status, const std::string& content_type, const std::string& framing,
                    bool close) {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " +
                  net::http::reason_phrase(static_cast<int>(status)) + "\r\nContent-Type: " + content_type +
                  "\r\n";
  if (content_type == "text/event-stream") h += "Cache-Control: no-cache\r\n";
  h += framing;
  if (close) h += "Connection: close\r\n";
  return h + "\r\n";
}

// Sends a streamed body piece by piece; false when the connection must end without the last chunk.
bool send_stream(int fd, Stream& s, bool chunked) {
  auto send_piece = [&](const std::string& piece) {
    if (piece.empty()) return true;
    if (!chunked) return send_all(fd, piece);
    char size[24];
    const int n = std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
    return send_all(fd, std::string_view(size, static_cast<size_t>(n))) && send_all(fd, piece) &&
           send_all(fd, "\r\n");
  };
  size_t sent = 0;  // a gap comes before every piece but the first
  for (const std::string& piece : s.pieces) {
    if (sent++ > 0 && s.gap_ms > 0 && !wait_for(-1, s.gap_ms)) return false;
    if (!send_piece(piece)) return false;
  }
  while (s.live && s.live_left != 0) {
    auto piece = s.live->next();  // blocks this connection's thread until the render has more
    if (!piece) return false;
    if (piece->empty()) break;
    if (sent++ > 0 && s.gap_ms > 0 && !wait_for(-1, s.gap_ms)) return false;
    if (!send_piece(*piece)) return false;
    if (s.live_left > 0) --s.live_left;
  }
  if (s.abort_at_end) return false;
  return !chunked || send_all(fd, "0\r\n\r\n");
}

// One connection: requests answered in order until the client closes, asks to, or the server stops.
void serve_connection(ModelServer* server, int fd) {
  hal::UniqueFd owner(fd);
  std::string buf;
  while (!g_stopping.load()) {
    Incoming req;
    bool ended = false;
    const std::optional<net::http::ParseError> bad = read_request(fd, buf, req, ended);
    if (ended) return;
    if (bad) {
      const std::string body = error_json(bad->message, "invalid_request_error");
      send_all(fd, head_of(static_cast<unsigned>(bad->status), "application/json",
                           "Content-Length: " + std::to_string(body.size()) + "\r\n", true) +
                       body);
      return;
    }
    // The stage's latency runs from here, so the handler's work (decoding the upload, starting the render)
    // overlaps it: first byte at max(latency, work), as a real service that is busy elsewhere.
    const auto arrival = std::chrono::steady_clock::now();
    const std::string& method = req.head.method;
    const std::string& url = req.head.path;
    Reply reply;
    if (req.too_large) {
      reply = json_reply(413, error_json("request body larger than 32 MiB", "invalid_request_error"));
    } else {
      std::string ct;
      for (const auto& [k, v] : req.head.headers)
        if (strcasecmp(k.c_str(), "Content-Type") == 0) ct = v;
      reply = server->handle(method, url, ct, req.body);
    }
    if (!server->quiet()) {
      std::fprintf(stderr, "%s %s -> %u%s\n", method.c_str(), url.c_str(), reply.status,
                   reply.hang ? " (hang)" : "");
    }
    if (reply.hang) {
      wait_for(fd, -1);
      return;
    }
    if (reply.wait_ms > 0) {
      const auto spent =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - arrival);
      const int left = reply.wait_ms - static_cast<int>(spent.count());
      if (left > 0 && !wait_for(fd, left)) return;
    }
    const bool keep = req.head.keep_alive && !req.too_large;
    const bool head_only = method == "HEAD";
    if (reply.streamed) {
      const bool chunked = req.head.minor == 1;
      Stream s{std::move(reply.pieces), reply.gap_ms, reply.abort_at_end, std::move(reply.live),
               reply.live_limit};
      if (!send_all(fd, head_of(reply.status, reply.content_type,
                                chunked ? "Transfer-Encoding: chunked\r\n" : "", !keep || !chunked)))
        return;
      if (head_only) continue;
      if (!send_stream(fd, s, chunked) || !keep || !chunked) return;
    } else {
      const std::string body = reply.pieces.empty() ? std::string() : reply.pieces[0];
      const std::string head = head_of(reply.status, reply.content_type,
                                       "Content-Length: " + std::to_string(body.size()) + "\r\n", !keep);
      if (!send_all(fd, head) || (!head_only && !send_all(fd, body)) || !keep) return;
    }
  }
}

int usage(int code) {
  std::fprintf(
      code ? stderr : stdout,
      "usage: osvi-model-server [--listen HOST:PORT | --port PORT] [--scenario FILE] [--log FILE] "
      "[--quiet]\n"
      "A deterministic, scripted stand-in for OpenAI-compatible STT/LLM/TTS and embeddings services (not a "
      "model).\n"
      "Defaults: --listen 127.0.0.1:8090; port 0 picks a free port. Prints \"listening on HOST:PORT\".\n");
  return code;
}

int run(int argc, char** argv) {
  std::string host = "127.0.0.1", scenario_path, log_path;
  int port = 8090;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--help" || a == "-h") return usage(0);
    if (a == "--quiet") {
      quiet = true;
      continue;
    }
    const char* v = next();
    if (v == nullptr) return usage(2);
    if (a == "--listen") {
      const std::string s = v;
      const size_t colon = s.rfind(':');
      if (colon == std::string::npos) return usage(2);
      host = s.substr(0, colon);
      port = std::atoi(s.c_str() + colon + 1);
    } else if (a == "--port") {
      port = std::atoi(v);
    } else if (a == "--scenario") {
      scenario_path = v;
    } else if (a == "--log") {
      log_path = v;
    } else {
      return usage(2);
    }
  }
  Scenario scenario;
  if (!scenario_path.empty()) {
    std::ifstream in(scenario_path);
    if (!in) {
      std::fprintf(stderr, "osvi-model-server: cannot read %s\n", scenario_path.c_str());
      return 1;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    auto s = parse_scenario(ss.str());
    if (!s) {
      std::fprintf(stderr, "osvi-model-server: %s: %s\n", scenario_path.c_str(), s.error().message.c_str());
      return 1;
    }
    scenario = std::move(*s);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (port < 0 || port > 65535 || ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "osvi-model-server: --listen needs an IPv4 address and a port 0..65535\n");
    return 2;
  }
  hal::UniqueFd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(sock.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (sock.get() < 0 || ::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(sock.get(), 64) != 0) {
    std::fprintf(stderr, "osvi-model-server: cannot listen on %s:%d: %s\n", host.c_str(), port,
                 std::strerror(errno));
    return 1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(sock.get(), reinterpret_cast<sockaddr*>(&addr), &len);

  // Threads inherit the mask: only the main thread takes the stop signals, through sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  ModelServer server(std::move(scenario), log_path, quiet);
  std::printf("listening on %s:%u\n", host.c_str(), static_cast<unsigned>(ntohs(addr.sin_port)));
  std::fflush(stdout);
  // Connections are accepted on a thread of their own; each is served by its own thread, joined at the stop.
  struct Worker {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::list<Worker> workers;
  std::thread acceptor([&] {
    while (!g_stopping.load()) {
      pollfd p{sock.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const int fd = ::accept4(sock.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      // Streamed answers are many small writes (SSE tokens, PCM chunks): without TCP_NODELAY each waits for
      // the ACK of the last one, i.e. the client's delayed ACK (~40 ms on Linux), which no real service adds.
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      workers.remove_if([](Worker& w) {
        if (!w.done.load()) return false;
        w.thread.join();
        return true;
      });
      Worker& w = workers.emplace_back();
      w.thread = std::thread([&server, fd, &w] {
        serve_connection(&server, fd);
        w.done.store(true);
      });
    }
  });
  int sig = 0;
  sigwait(&stop_signals, &sig);
  g_stopping.store(true);  // releases delayed and hanging answers so the connection threads can be joined
  acceptor.join();
  for (Worker& w : workers) w.thread.join();
  return 0;
}

}  // namespace
}  // namespace osvi::tools

int main(int argc, char** argv) {
  return osvi::tools::run(argc, argv);
}
