// Configuration: the top-level "knowledge" section, documents the box loads from files (format, header).
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>

#include "osvi/config/config.hpp"
#include "osvi/net/text.hpp"
#include "reader.hpp"
#include "sections.hpp"

namespace osvi::daemon::config_detail {

void parse_knowledge_base(ObjectReader r, KnowledgeBaseConfig& k) {
  std::map<std::string, std::string> names;  // name -> path of its first entry
  for (const Item& item : r.array("documents")) {
    ObjectReader d(item, &r.problems());
    if (!d.valid()) continue;
    KnowledgeDocumentConfig doc;
    doc.name = d.required_str("name", 1, kKnowledgeMaxNameChars);
    if (!doc.name.empty()) {
      if (auto [it, inserted] = names.emplace(doc.name, item.path); !inserted)
        d.error("name", "duplicate " + quote(doc.name) + " (first at " + it->second + ")");
    }
    doc.path = d.required_str("path");
    doc.format =
        d.choice("format", std::string("txt"), {{"txt", std::string("txt")}, {"csv", std::string("csv")}});
    if (doc.format == "csv") {
      doc.header = d.boolean("header", doc.header);
    } else {
      d.forbid("header", "only allowed when format is \"csv\"");
    }
    // Checked here so --check-config and a reload refuse a missing file; the knowledge service reads it.
    if (!doc.path.empty()) {
      struct stat st {};
      if (doc.path.front() != '/') {
        d.error("path", "expected an absolute path, got " + quote(doc.path));
      } else if (::stat(doc.path.c_str(), &st) != 0) {
        d.error("path", quote(doc.path) + ": " + std::strerror(errno));
      } else if (!S_ISREG(st.st_mode)) {
        d.error("path", quote(doc.path) + ": not a regular file");
      } else if (static_cast<size_t>(st.st_size) > kKnowledgeMaxDocumentBytes) {
        d.error("path", quote(doc.path) + ": " + std::to_string(st.st_size) + " bytes, more than the " +
                            std::to_string(kKnowledgeMaxDocumentBytes / (1024 * 1024)) + " MiB limit");
      }
    }
    d.finish();
    k.documents.push_back(std::move(doc));
  }
}

}  // namespace osvi::daemon::config_detail
