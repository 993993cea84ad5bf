// The output_schema subset: its check at load, reply validation against it, its strict form
// (output_schema.hpp).
#include "osvi/config/output_schema.hpp"

#include <cmath>
#include <set>
#include <string_view>

namespace osvi::daemon {
namespace {

constexpr std::string_view kTypes[] = {"object", "array", "string", "number", "integer", "boolean"};

std::string quote(std::string_view s) {
  std::string q(1, '"');  // built by appends: GCC 12 warns falsely on "\"" + std::string (-Wrestrict)
  q.append(s);
  q += '"';
  return q;
}

const char* kind_of(const cJSON* v) {
  if (cJSON_IsObject(v)) return "an object";
  if (cJSON_IsArray(v)) return "an array";
  if (cJSON_IsString(v)) return "a string";
  if (cJSON_IsNumber(v)) return "a number";
  if (cJSON_IsBool(v)) return "a boolean";
  if (cJSON_IsNull(v)) return "null";
  return "an unknown value";
}

struct Checker {
  std::vector<std::string>* problems;
  int properties = 0;
  void bad(const std::string& path, const std::string& what) { problems->push_back(path + ": " + what); }

  void node(const cJSON* n, const std::string& path, int depth) {
    if (!cJSON_IsObject(n)) return bad(path, std::string("expected a schema object, got ") + kind_of(n));
    if (depth > kMaxSchemaDepth)
      return bad(path, "nested deeper than " + std::to_string(kMaxSchemaDepth) + " levels");
    const cJSON* type = cJSON_GetObjectItemCaseSensitive(n, "type");
    std::string t;
    if (!type) {
      bad(path + ".type", "required key is missing");
    } else if (!cJSON_IsString(type)) {
      bad(path + ".type", std::string("expected a string, got ") + kind_of(type));
    } else {
      t = type->valuestring;
      bool known = false;
      for (auto k : kTypes) known = known || k == t;
      if (!known) {
        bad(path + ".type",
            "expected one of \"object\", \"array\", \"string\", \"number\", \"integer\", \"boolean\", got " +
                quote(t));
        t.clear();
      }
    }
    for (const cJSON* c = n->child; c; c = c->next) {
      const std::string key = c->string ? c->string : "";
      const std::string at = path + "." + key;
      if (key == "type") continue;
      if (key == "description") {
        if (!cJSON_IsString(c)) bad(at, std::string("expected a string, got ") + kind_of(c));
      } else if (key == "enum") {
        if (t == "object" || t == "array")
          bad(at, "only string, number, integer and boolean may have an enum");
        if (!cJSON_IsArray(c) || cJSON_GetArraySize(c) == 0) {
          bad(at, "expected a non-empty array");
        } else {
          for (const cJSON* e = c->child; e; e = e->next) {
            const bool ok = (t == "string" && cJSON_IsString(e)) ||
                            ((t == "number" || t == "integer") && cJSON_IsNumber(e)) ||
                            (t == "boolean" && cJSON_IsBool(e));
            if (!ok && !t.empty()) {
              bad(at, std::string("an enum value of type ") + quote(t) + " cannot be " + kind_of(e));
              break;
            }
          }
        }
      } else if (key == "properties" && t == "object") {
        if (!cJSON_IsObject(c)) {
          bad(at, std::string("expected an object, got ") + kind_of(c));
          continue;
        }
        for (const cJSON* p = c->child; p; p = p->next) {
          if (++properties > kMaxSchemaProperties) {
            bad(at, "more than " + std::to_string(kMaxSchemaProperties) + " properties in the schema");
            return;
          }
          node(p, at + "." + (p->string ? p->string : ""), depth + 1);
        }
      } else if (key == "required" && t == "object") {
        const cJSON* props = cJSON_GetObjectItemCaseSensitive(n, "properties");
        if (!cJSON_IsArray(c)) {
          bad(at, std::string("expected an array of property names, got ") + kind_of(c));
          continue;
        }
        std::set<std::string> seen;
        for (const cJSON* e = c->child; e; e = e->next) {
          if (!cJSON_IsString(e)) {
            bad(at, std::string("expected property names, got ") + kind_of(e));
          } else if (!cJSON_GetObjectItemCaseSensitive(props, e->valuestring)) {
            bad(at, quote(e->valuestring) + " is not one of the properties");
          } else if (!seen.insert(e->valuestring).second) {
            bad(at, "duplicate " + quote(e->valuestring));
          }
        }
      } else if (key == "additionalProperties" && t == "object") {
        if (!cJSON_IsFalse(c)) bad(at, "only false is supported (the model may not add keys)");
      } else if (key == "items" && t == "array") {
        node(c, at, depth + 1);
      } else if (!t.empty() || type == nullptr) {
        bad(at,
            "unknown or unsupported key for a schema of type " + (t.empty() ? std::string("?") : quote(t)) +
                " (supported: type, description, enum, properties, required, additionalProperties, items)");
      }
    }
    if (t == "object" && !cJSON_GetObjectItemCaseSensitive(n, "properties"))
      bad(path + ".properties", "required key is missing for a schema of type \"object\"");
    if (t == "array" && !cJSON_GetObjectItemCaseSensitive(n, "items"))
      bad(path + ".items", "required key is missing for a schema of type \"array\"");
  }

  // A top-level schema (simple's, or a case's): an object node.
  net::JsonPtr top(const cJSON* n, const std::string& path) {
    const size_t before = problems->size();
    node(n, path, 1);
    if (problems->size() != before) return nullptr;
    const cJSON* type = cJSON_GetObjectItemCaseSensitive(n, "type");
    if (std::string_view(type->valuestring) != "object") {
      bad(path + ".type",
          "the top of an output schema must be of type \"object\", got " + quote(type->valuestring));
      return nullptr;
    }
    return net::JsonPtr(cJSON_Duplicate(n, 1));
  }
};

bool is_case_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == ' '))
      return false;
  }
  return true;
}

}  // namespace

OutputSchema parse_output_schema(const cJSON* node, const std::string& path,
                                 std::vector<std::string>* problems) {
  OutputSchema out;
  Checker ck{problems};
  if (!cJSON_IsObject(node)) {
    ck.bad(path, std::string("expected an object, got ") + kind_of(node));
    return out;
  }
  const cJSON* mode = cJSON_GetObjectItemCaseSensitive(node, "mode");
  if (!mode) {  // the schema itself: simple
    if ((out.schema = ck.top(node, path))) out.mode = OutputSchema::Mode::simple;
    return out;
  }
  const size_t before = problems->size();
  const std::string m = cJSON_IsString(mode) ? mode->valuestring : "";
  if (m != "simple" && m != "conditional") {
    ck.bad(path + ".mode", "expected \"simple\" or \"conditional\"");
    return out;
  }
  for (const cJSON* c = node->child; c; c = c->next) {
    const std::string key = c->string ? c->string : "";
    if (key == "mode" || (m == "simple" && key == "schema") || (m == "conditional" && key == "when"))
      continue;
    ck.bad(path + "." + key, "unknown key for mode " + quote(m) +
                                 (m == "simple" ? " (expected: schema)" : " (expected: when)"));
  }
  if (m == "simple") {
    const cJSON* schema = cJSON_GetObjectItemCaseSensitive(node, "schema");
    if (!schema) {
      ck.bad(path + ".schema", "required key is missing");
      return out;
    }
    net::JsonPtr s = ck.top(schema, path + ".schema");
    if (s && problems->size() == before) {
      out.schema = std::move(s);
      out.mode = OutputSchema::Mode::simple;
    }
    return out;
  }
  const cJSON* when = cJSON_GetObjectItemCaseSensitive(node, "when");
  if (!cJSON_IsArray(when) || cJSON_GetArraySize(when) == 0) {
    ck.bad(path + ".when", "expected a non-empty array of {\"if\", \"description\", \"schema\"}");
    return out;
  }
  std::set<std::string> names;
  size_t i = 0;
  for (const cJSON* w = when->child; w; w = w->next, ++i) {
    const std::string at = path + ".when[" + std::to_string(i) + "]";
    if (i >= kMaxConditionalCases) {
      ck.bad(path + ".when", "more than " + std::to_string(kMaxConditionalCases) + " cases");
      break;
    }
    if (!cJSON_IsObject(w)) {
      ck.bad(at, std::string("expected an object, got ") + kind_of(w));
      continue;
    }
    OutputSchema::Case c;
    for (const cJSON* k = w->child; k; k = k->next) {
      const std::string key = k->string ? k->string : "";
      if (key != "if" && key != "description" && key != "schema")
        ck.bad(at + "." + key, "unknown key (expected: if, description, schema)");
    }
    const cJSON* name = cJSON_GetObjectItemCaseSensitive(w, "if");
    if (!cJSON_IsString(name) || !is_case_name(name->valuestring)) {
      ck.bad(at + ".if", "required: a case name of 1-64 letters, digits, '_', '-' or spaces");
    } else if (!names.insert(name->valuestring).second) {
      ck.bad(at + ".if", "duplicate case " + quote(name->valuestring));
    } else {
      c.name = name->valuestring;
    }
    if (const cJSON* d = cJSON_GetObjectItemCaseSensitive(w, "description")) {
      if (cJSON_IsString(d))
        c.description = d->valuestring;
      else
        ck.bad(at + ".description", std::string("expected a string, got ") + kind_of(d));
    }
    const cJSON* schema = cJSON_GetObjectItemCaseSensitive(w, "schema");
    if (!schema)
      ck.bad(at + ".schema", "required key is missing");
    else
      c.schema = ck.top(schema, at + ".schema");
    out.cases.push_back(std::move(c));
  }
  if (problems->size() != before) {
    out.cases.clear();
    return out;
  }
  out.mode = OutputSchema::Mode::conditional;
  return out;
}

OutputSchema parse_output_schema_text(const std::string& json_text, std::vector<std::string>* problems) {
  if (json_text.empty()) return {};
  std::string why;
  net::JsonPtr doc = net::json_parse(json_text, &why);
  if (!doc) {
    problems->push_back("output_schema: not JSON (" + why + ")");
    return {};
  }
  return parse_output_schema(doc.get(), "output_schema", problems);
}

bool validate_against_schema(const cJSON* node, cJSON* value, const std::string& path,
                             std::vector<std::string>* errors) {
  const size_t before = errors->size();
  const std::string_view t = cJSON_GetObjectItemCaseSensitive(node, "type")->valuestring;
  bool ok = false;
  if (t == "object")
    ok = cJSON_IsObject(value);
  else if (t == "array")
    ok = cJSON_IsArray(value);
  else if (t == "string")
    ok = cJSON_IsString(value);
  else if (t == "number")
    ok = cJSON_IsNumber(value) && std::isfinite(value->valuedouble);
  else if (t == "integer")
    ok = cJSON_IsNumber(value) && std::isfinite(value->valuedouble) &&
         std::floor(value->valuedouble) == value->valuedouble;
  else if (t == "boolean")
    ok = cJSON_IsBool(value);
  if (!ok) {
    errors->push_back(path + ": expected " + std::string(t) + ", got " + kind_of(value));
    return false;
  }
  if (const cJSON* e = cJSON_GetObjectItemCaseSensitive(node, "enum")) {
    bool found = false;
    for (const cJSON* x = e->child; x && !found; x = x->next) found = cJSON_Compare(x, value, 1) != 0;
    if (!found) errors->push_back(path + ": not one of the enum values");
  }
  if (t == "object") {
    const cJSON* props = cJSON_GetObjectItemCaseSensitive(node, "properties");
    const cJSON* req = cJSON_GetObjectItemCaseSensitive(node, "required");
    auto required = [&](const char* name) {
      for (const cJSON* r = req ? req->child : nullptr; r; r = r->next)
        if (std::string_view(r->valuestring) == name) return true;
      return false;
    };
    for (cJSON* c = value->child; c;) {
      cJSON* next = c->next;
      const char* name = c->string ? c->string : "";
      const cJSON* sub = cJSON_GetObjectItemCaseSensitive(props, name);
      if (!sub) {
        errors->push_back(path + "." + name + ": not a property of the schema");
      } else if (cJSON_IsNull(c) && !required(name)) {
        cJSON_Delete(cJSON_DetachItemViaPointer(value, c));  // an optional value the model did not find
      } else {
        validate_against_schema(sub, c, path + "." + name, errors);
      }
      c = next;
    }
    for (const cJSON* r = req ? req->child : nullptr; r; r = r->next) {
      if (!cJSON_GetObjectItemCaseSensitive(value, r->valuestring))
        errors->push_back(path + "." + r->valuestring + ": required but missing");
    }
  } else if (t == "array") {
    const cJSON* items = cJSON_GetObjectItemCaseSensitive(node, "items");
    int i = 0;
    for (cJSON* c = value->child; c; c = c->next, ++i)
      validate_against_schema(items, c, path + "[" + std::to_string(i) + "]", errors);
  }
  return errors->size() == before;
}

net::JsonPtr strict_schema(const cJSON* node) {
  net::JsonPtr out(cJSON_Duplicate(node, 1));
  const std::string_view t = cJSON_GetObjectItemCaseSensitive(node, "type")->valuestring;
  if (t == "object") {
    const cJSON* props = cJSON_GetObjectItemCaseSensitive(node, "properties");
    const cJSON* req = cJSON_GetObjectItemCaseSensitive(node, "required");
    cJSON* strict_props = cJSON_CreateObject();
    cJSON* all = cJSON_CreateArray();
    for (const cJSON* p = props ? props->child : nullptr; p; p = p->next) {
      bool is_required = false;
      for (const cJSON* r = req ? req->child : nullptr; r; r = r->next)
        is_required = is_required || std::string_view(r->valuestring) == p->string;
      net::JsonPtr sub = strict_schema(p);
      if (!is_required) {  // optional: the strict form lists it as required, and null stands for absent
        const cJSON* ty = cJSON_GetObjectItemCaseSensitive(sub.get(), "type");
        cJSON* pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(ty->valuestring));
        cJSON_AddItemToArray(pair, cJSON_CreateString("null"));
        cJSON_ReplaceItemInObjectCaseSensitive(sub.get(), "type", pair);
        if (cJSON* e = cJSON_GetObjectItemCaseSensitive(sub.get(), "enum"))
          cJSON_AddItemToArray(e, cJSON_CreateNull());
      }
      cJSON_AddItemToArray(all, cJSON_CreateString(p->string));
      cJSON_AddItemToObject(strict_props, p->string, sub.release());
    }
    cJSON_ReplaceItemInObjectCaseSensitive(out.get(), "properties", strict_props);
    cJSON_DeleteItemFromObjectCaseSensitive(out.get(), "required");
    cJSON_AddItemToObject(out.get(), "required", all);
    cJSON_DeleteItemFromObjectCaseSensitive(out.get(), "additionalProperties");
    cJSON_AddFalseToObject(out.get(), "additionalProperties");
  } else if (t == "array") {
    cJSON* items = cJSON_GetObjectItemCaseSensitive(out.get(), "items");
    cJSON_ReplaceItemInObjectCaseSensitive(out.get(), "items", strict_schema(items).release());
  }
  return out;
}

}  // namespace osvi::daemon
