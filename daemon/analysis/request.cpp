// One call's analysis request and the check of its reply (request.hpp).
#include "osvi/analysis/request.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <set>

#include "osvi/net/text.hpp"

namespace osvi::daemon::analysis {
namespace {

using net::JsonPtr;

std::string lower_trimmed(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return net::ascii_lower(s);
}

const char* kind_of(const cJSON* v) {
  if (!v) return "nothing";
  if (cJSON_IsObject(v)) return "an object";
  if (cJSON_IsArray(v)) return "an array";
  if (cJSON_IsString(v)) return "a string";
  if (cJSON_IsNumber(v)) return "a number";
  if (cJSON_IsBool(v)) return "a boolean";
  if (cJSON_IsNull(v)) return "null";
  return "an unknown value";
}

bool leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}
int days_in_month(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

bool digits(std::string_view s, size_t at, size_t n, int* out) {
  int v = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

bool is_date(std::string_view s) {
  int y = 0, m = 0, d = 0;
  return s.size() == 10 && s[4] == '-' && s[7] == '-' && digits(s, 0, 4, &y) && digits(s, 5, 2, &m) &&
         digits(s, 8, 2, &d) && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

std::string two(int v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d", v);
  return buf;
}

const char* kWeekdays[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};

// A field's schema: nullable, since the call may not say.
cJSON* field_schema(const Field& f) {
  cJSON* s = cJSON_CreateObject();
  cJSON* types = cJSON_AddArrayToObject(s, "type");
  const char* t = f.type == FieldType::number    ? "number"
                  : f.type == FieldType::boolean ? "boolean"
                                                 : "string";
  cJSON_AddItemToArray(types, cJSON_CreateString(t));
  cJSON_AddItemToArray(types, cJSON_CreateString("null"));
  std::string desc = f.hint;
  if (f.type == FieldType::date) desc += std::string(desc.empty() ? "" : " ") + "(a date, YYYY-MM-DD)";
  if (!desc.empty()) net::json_add_string(s, "description", desc);
  return s;
}

cJSON* closed_object(cJSON* parent, const char* name) {
  cJSON* o = cJSON_AddObjectToObject(parent, name);
  cJSON_AddStringToObject(o, "type", "object");
  return o;
}

void finish_object(cJSON* o, cJSON* props) {
  cJSON* req = cJSON_AddArrayToObject(o, "required");
  for (const cJSON* p = props->child; p; p = p->next)
    cJSON_AddItemToArray(req, cJSON_CreateString(p->string));
  cJSON_AddFalseToObject(o, "additionalProperties");
}

// The structured_output part of the reply's schema.
JsonPtr structured_schema(const OutputSchema& out) {
  if (out.mode == OutputSchema::Mode::simple) return strict_schema(out.schema.get());
  JsonPtr any(cJSON_CreateObject());
  cJSON* options = cJSON_AddArrayToObject(any.get(), "anyOf");
  for (const OutputSchema::Case& c : out.cases) {
    cJSON* o = cJSON_CreateObject();
    cJSON_AddItemToArray(options, o);
    cJSON_AddStringToObject(o, "type", "object");
    cJSON* props = cJSON_AddObjectToObject(o, "properties");
    cJSON* name = cJSON_AddObjectToObject(props, "case");
    cJSON_AddStringToObject(name, "type", "string");
    cJSON* e = cJSON_AddArrayToObject(name, "enum");
    cJSON_AddItemToArray(e, cJSON_CreateString(c.name.c_str()));
    cJSON_AddItemToObject(props, "output", strict_schema(c.schema.get()).release());
    finish_object(o, props);
  }
  return any;
}

std::string transcript_text(const std::vector<TranscriptTurn>& turns) {
  std::vector<std::string> lines;
  size_t total = 0;
  for (const TranscriptTurn& t : turns) {
    if (t.role == "tool") continue;  // the box's own notes, not what was said
    std::string text = t.text.size() > kMaxTurnChars ? t.text.substr(0, kMaxTurnChars) + " [...]" : t.text;
    lines.push_back(t.role + ": " + text);
    total += lines.back().size() + 1;
  }
  if (total > kMaxTranscriptChars) {  // keep the start and the end, cut the middle
    size_t head = 0, head_chars = 0;
    while (head < lines.size() && head_chars + lines[head].size() < kMaxTranscriptChars / 2)
      head_chars += lines[head++].size() + 1;
    size_t tail = lines.size(), tail_chars = 0;
    while (tail > head && tail_chars + lines[tail - 1].size() < kMaxTranscriptChars / 2)
      tail_chars += lines[--tail].size() + 1;
    std::vector<std::string> cut(lines.begin(), lines.begin() + static_cast<ptrdiff_t>(head));
    cut.push_back("[... " + std::to_string(tail - head) + " turns left out ...]");
    cut.insert(cut.end(), lines.begin() + static_cast<ptrdiff_t>(tail), lines.end());
    lines = std::move(cut);
  }
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

}  // namespace

FieldType type_of_output_format(std::string_view output_format) {
  const std::string f = lower_trimmed(output_format);
  for (const char* b : {"yes/no", "yes or no", "boolean", "bool", "true/false"})
    if (f == b) return FieldType::boolean;
  for (const char* n : {"number", "numeric", "integer", "int", "decimal", "float", "amount"})
    if (f == n) return FieldType::number;
  if (f == "date" || f == "yyyy-mm-dd") return FieldType::date;
  return FieldType::text;
}

std::vector<Field> merge_fields(const std::vector<ExtractionField>& agent,
                                const std::optional<std::string>& call_extraction_json) {
  std::vector<Field> out;
  for (const ExtractionField& f : agent) out.push_back({f.key, f.type, f.hint, f.required, false});
  if (!call_extraction_json || call_extraction_json->empty()) return out;
  std::string why;
  JsonPtr doc = net::json_parse(*call_extraction_json, &why);
  if (!cJSON_IsArray(doc.get())) return out;
  for (const cJSON* item = doc->child; item; item = item->next) {
    const cJSON* key = cJSON_GetObjectItemCaseSensitive(item, "key");
    if (!cJSON_IsString(key) || key->valuestring[0] == '\0') continue;
    Field f;
    f.key = key->valuestring;
    f.from_call = true;
    const cJSON* desc = cJSON_GetObjectItemCaseSensitive(item, "description");
    if (cJSON_IsString(desc)) f.hint = desc->valuestring;
    const cJSON* format = cJSON_GetObjectItemCaseSensitive(item, "output_format");
    if (cJSON_IsString(format)) {
      f.type = type_of_output_format(format->valuestring);
      if (f.type == FieldType::text && format->valuestring[0] != '\0')
        f.hint += std::string(f.hint.empty() ? "" : " ") + "(format: " + format->valuestring + ")";
    }
    f.required = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item, "required"));
    auto same = std::find_if(out.begin(), out.end(), [&](const Field& o) { return o.key == f.key; });
    if (same != out.end())
      *same = std::move(f);
    else
      out.push_back(std::move(f));
  }
  return out;
}

Prepared build_request(const Input& in) {
  const AnalysisConfig& a = in.agent->analysis;
  Prepared p;
  p.schema.reset(cJSON_CreateObject());
  cJSON* root = p.schema.get();
  cJSON_AddStringToObject(root, "type", "object");
  cJSON* props = cJSON_AddObjectToObject(root, "properties");
  cJSON_AddStringToObject(cJSON_AddObjectToObject(props, "summary"), "type", "string");
  {
    cJSON* data = closed_object(props, "data");
    cJSON* dp = cJSON_AddObjectToObject(data, "properties");
    for (const Field& f : in.fields) cJSON_AddItemToObject(dp, f.key.c_str(), field_schema(f));
    finish_object(data, dp);
  }
  if (!a.tags.empty()) {
    cJSON* tags = cJSON_AddObjectToObject(props, "tags");
    cJSON_AddStringToObject(tags, "type", "array");
    cJSON* items = cJSON_AddObjectToObject(tags, "items");
    cJSON_AddStringToObject(items, "type", "string");
    cJSON* e = cJSON_AddArrayToObject(items, "enum");
    for (const CallTag& t : a.tags) cJSON_AddItemToArray(e, cJSON_CreateString(t.name.c_str()));
  }
  {
    cJSON* cb = closed_object(props, "callback");
    cJSON* cp = cJSON_AddObjectToObject(cb, "properties");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(cp, "required"), "type", "boolean");
    for (const char* k : {"requested_text", "local_time"}) {
      cJSON* types = cJSON_AddArrayToObject(cJSON_AddObjectToObject(cp, k), "type");
      cJSON_AddItemToArray(types, cJSON_CreateString("string"));
      cJSON_AddItemToArray(types, cJSON_CreateString("null"));
    }
    finish_object(cb, cp);
  }
  if (in.output && in.output->mode != OutputSchema::Mode::none)
    cJSON_AddItemToObject(props, "structured_output", structured_schema(*in.output).release());
  {
    cJSON* oo = closed_object(props, "opt_out");
    cJSON* op = cJSON_AddObjectToObject(oo, "properties");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(op, "requested"), "type", "boolean");
    finish_object(oo, op);
  }
  finish_object(root, props);

  // The instructions: what each part means; the schema itself travels as response_format (or below).
  const LocalTime& now = in.call_end_local;
  std::string sys =
      "You analyse a finished phone call between an AI agent (\"agent\") and a person (\"user\"). Answer "
      "with "
      "one JSON object and nothing else.\n"
      "- summary: a short summary of the call.";
  if (!a.prompt.empty()) sys += " " + a.prompt;
  sys += "\n- data: the values below as the call states them; null when the call does not say.";
  for (const Field& f : in.fields) {
    sys += "\n  - " + f.key + " (" + std::string(to_string(f.type)) +
           (f.type == FieldType::date      ? ", YYYY-MM-DD"
            : f.type == FieldType::boolean ? ", true or false"
                                           : "") +
           (f.required ? ", required" : "") + ")" + (f.hint.empty() ? "" : ": " + f.hint);
  }
  if (!a.tags.empty()) {
    sys += "\n- tags: every tag that applies to the call, from this list only (an empty array when none):";
    for (const CallTag& t : a.tags) sys += " " + t.name + ";";
  }
  sys +=
      "\n- callback: required is true when the person asked to be called back later; requested_text is their "
      "words; local_time is when, as YYYY-MM-DDTHH:MM in the person's local time (time zone " +
      in.zone + "), null when they named no time. The call ended on " + kWeekdays[now.weekday % 7] + " " +
      std::to_string(now.year) + "-" + two(now.month) + "-" + two(now.day) + " at " +
      two(now.minute_of_day / 60) + ":" + two(now.minute_of_day % 60) + " in that zone.";
  if (!a.callback_detection.prompt.empty()) sys += " " + a.callback_detection.prompt;
  if (in.output && in.output->mode == OutputSchema::Mode::simple) {
    sys += "\n- structured_output: fill it from the call as its schema describes.";
  } else if (in.output && in.output->mode == OutputSchema::Mode::conditional) {
    sys +=
        "\n- structured_output: choose the one case that applies, as {\"case\": name, \"output\": {...}} "
        "with "
        "that case's fields:";
    for (const OutputSchema::Case& c : in.output->cases)
      sys += "\n  - " + c.name + (c.description.empty() ? "" : ": " + c.description);
  }
  sys += "\n- opt_out: requested is true when the person asked not to be called again.";
  if (in.agent->analysis.llm.provider == "anthropic") {
    sys += "\nThe JSON object must match this JSON Schema:\n" + net::json_print(root);
  } else {
    JsonPtr format(cJSON_CreateObject());
    cJSON_AddStringToObject(format.get(), "type", "json_schema");
    cJSON* js = cJSON_AddObjectToObject(format.get(), "json_schema");
    cJSON_AddStringToObject(js, "name", "call_analysis");
    cJSON_AddTrueToObject(js, "strict");
    cJSON_AddItemToObject(js, "schema", cJSON_Duplicate(root, 1));
    p.response_format_json = net::json_print(format.get());
  }
  p.messages.push_back({"system", std::move(sys), {}, {}});
  p.messages.push_back({"user", "The call's transcript:\n" + transcript_text(*in.transcript), {}, {}});
  return p;
}

std::vector<net::ChatMessage> repair_messages(const Prepared& first, std::string_view reply,
                                              std::string_view error) {
  std::vector<net::ChatMessage> m = first.messages;
  m.push_back({"assistant", std::string(reply), {}, {}});
  m.push_back({"user",
               "That reply is not usable: " + std::string(error) +
                   ". Answer again with only the corrected JSON object, matching the schema.",
               {},
               {}});
  return m;
}

Result<Outcome> check_reply(std::string_view text, const Input& in) {
  // Tolerate a Markdown fence or words around the object: take the outermost braces.
  const size_t open = text.find('{');
  const size_t close = text.rfind('}');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open)
    return make_error("the reply holds no JSON object", -EBADMSG);
  std::string why;
  JsonPtr doc = net::json_parse(text.substr(open, close - open + 1), &why);
  if (!doc) return make_error("the reply is not valid JSON: " + why, -EBADMSG);
  const cJSON* root = doc.get();
  if (!cJSON_IsObject(root)) return make_error("the reply is not a JSON object", -EBADMSG);
  auto member = [&](const cJSON* o, const char* k) { return cJSON_GetObjectItemCaseSensitive(o, k); };
  auto bad = [](const std::string& what) { return make_error(what, -EBADMSG); };

  Outcome out;
  const cJSON* summary = member(root, "summary");
  if (!cJSON_IsString(summary))
    return bad(std::string("summary: expected a string, got ") + kind_of(summary));
  out.summary = summary->valuestring;
  const cJSON* data = member(root, "data");
  if (!cJSON_IsObject(data)) return bad(std::string("data: expected an object, got ") + kind_of(data));
  const cJSON* tags = member(root, "tags");
  if (tags && !cJSON_IsArray(tags) && !cJSON_IsNull(tags))
    return bad(std::string("tags: expected an array, got ") + kind_of(tags));
  if (!tags && !in.agent->analysis.tags.empty()) return bad("tags: required but missing");
  const cJSON* callback = member(root, "callback");
  if (!cJSON_IsObject(callback) || !cJSON_IsBool(member(callback, "required")))
    return bad("callback: expected an object with a boolean \"required\"");
  const cJSON* opt_out = member(root, "opt_out");
  if (!cJSON_IsObject(opt_out) || !cJSON_IsBool(member(opt_out, "requested")))
    return bad("opt_out: expected an object with a boolean \"requested\"");
  const bool want_structured = in.output && in.output->mode != OutputSchema::Mode::none;
  const cJSON* structured = member(root, "structured_output");
  if (want_structured && !cJSON_IsObject(structured))
    return bad(std::string("structured_output: expected an object, got ") + kind_of(structured));

  // The envelope is right: each value is checked on its own, a wrong one dropped and noted.
  out.data.reset(cJSON_CreateObject());
  for (const cJSON* v = data->child; v; v = v->next) {
    const std::string key = v->string ? v->string : "";
    auto f = std::find_if(in.fields.begin(), in.fields.end(), [&](const Field& x) { return x.key == key; });
    if (f == in.fields.end()) {
      out.dropped.push_back({"data." + key, "not a requested field"});
      continue;
    }
    if (cJSON_IsNull(v)) continue;
    bool ok = false;
    switch (f->type) {
      case FieldType::text:
        ok = cJSON_IsString(v);
        break;
      case FieldType::number:
        ok = cJSON_IsNumber(v) && std::isfinite(v->valuedouble);
        break;
      case FieldType::boolean:
        ok = cJSON_IsBool(v);
        break;
      case FieldType::date:
        ok = cJSON_IsString(v) && is_date(v->valuestring);
        break;
    }
    if (!ok) {
      out.dropped.push_back(
          {"data." + key, "expected " + std::string(to_string(f->type)) +
                              (f->type == FieldType::date ? " (YYYY-MM-DD)" : "") + ", got " +
                              (cJSON_IsString(v) ? "\"" + std::string(v->valuestring).substr(0, 40) + "\""
                                                 : std::string(kind_of(v)))});
      continue;
    }
    cJSON_AddItemToObject(out.data.get(), key.c_str(), cJSON_Duplicate(v, 1));
  }
  for (const Field& f : in.fields)
    if (f.required && !cJSON_GetObjectItemCaseSensitive(out.data.get(), f.key.c_str()))
      out.missing.push_back(f.key);

  if (cJSON_IsArray(tags)) {
    int i = 0;
    for (const cJSON* t = tags->child; t; t = t->next, ++i) {
      const std::string at = "tags[" + std::to_string(i) + "]";
      const auto& list = in.agent->analysis.tags;
      if (!cJSON_IsString(t) || std::none_of(list.begin(), list.end(),
                                             [&](const CallTag& c) { return c.name == t->valuestring; })) {
        out.dropped.push_back({at, "not one of the agent's tags"});
      } else if (std::find(out.tags.begin(), out.tags.end(), t->valuestring) == out.tags.end()) {
        out.tags.emplace_back(t->valuestring);
      }
    }
  }

  out.callback_required = cJSON_IsTrue(member(callback, "required"));
  if (const cJSON* rt = member(callback, "requested_text"); cJSON_IsString(rt) && rt->valuestring[0] != '\0')
    out.callback_text = std::string(rt->valuestring).substr(0, 500);
  if (const cJSON* lt = member(callback, "local_time"); lt && !cJSON_IsNull(lt)) {
    if (cJSON_IsString(lt) && parse_local_minute(lt->valuestring))
      out.callback_local = std::string(lt->valuestring);
    else
      out.dropped.push_back({"callback.local_time", "expected YYYY-MM-DDTHH:MM"});
  }

  if (want_structured) {
    JsonPtr value(cJSON_Duplicate(structured, 1));
    std::vector<std::string> errors;
    if (in.output->mode == OutputSchema::Mode::simple) {
      validate_against_schema(in.output->schema.get(), value.get(), "structured_output", &errors);
    } else {
      const cJSON* name = member(value.get(), "case");
      auto c = std::find_if(
          in.output->cases.begin(), in.output->cases.end(),
          [&](const OutputSchema::Case& x) { return cJSON_IsString(name) && x.name == name->valuestring; });
      cJSON* output = cJSON_GetObjectItemCaseSensitive(value.get(), "output");
      if (c == in.output->cases.end())
        errors.push_back("structured_output.case: not one of the cases");
      else if (!output)
        errors.push_back("structured_output.output: required but missing");
      else
        validate_against_schema(c->schema.get(), output, "structured_output.output", &errors);
      for (const cJSON* k = value->child; k; k = k->next) {
        if (std::string_view(k->string) != "case" && std::string_view(k->string) != "output")
          errors.push_back(std::string("structured_output.") + k->string + ": not a property of the schema");
      }
    }
    if (errors.empty()) {
      out.structured = std::move(value);
    } else {
      std::string reason;
      for (size_t i = 0; i < errors.size() && i < 5; ++i) reason += (i ? "; " : "") + errors[i];
      out.dropped.push_back({"structured_output", reason});
    }
  }
  out.opt_out = cJSON_IsTrue(member(opt_out, "requested"));
  return out;
}

std::optional<LocalDateTime> parse_local_minute(std::string_view s) {
  LocalDateTime t;
  if (s.size() != 16 || s[10] != 'T' || s[13] != ':' || !is_date(s.substr(0, 10))) return std::nullopt;
  if (!digits(s, 0, 4, &t.year) || !digits(s, 5, 2, &t.month) || !digits(s, 8, 2, &t.day) ||
      !digits(s, 11, 2, &t.hour) || !digits(s, 14, 2, &t.minute))
    return std::nullopt;
  if (t.hour > 23 || t.minute > 59) return std::nullopt;
  return t;
}

std::string iso_in_zone(const TimeZone& zone, int64_t utc_ms) {
  const LocalTime l = zone.local(utc_ms);
  const int off = l.utc_offset_s / 60;
  const int a = off < 0 ? -off : off;
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", l.year, l.month, l.day,
                l.minute_of_day / 60, l.minute_of_day % 60, l.second, off < 0 ? '-' : '+', a / 60, a % 60);
  return buf;
}

}  // namespace osvi::daemon::analysis
