// CSV contact uploads: the rows → contacts mapping (header, no_header, variables, line numbers, row cap) fed
// in every chunking, and the upload endpoint through a real HTTP server and store.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "osvi/campaigns/csv_contacts.hpp"
#include "osvi/net/json.hpp"
#include "test_support.hpp"

namespace osvi::daemon {
namespace {

struct Row {
  std::string phone;
  std::optional<std::string> name;
  std::optional<std::string> vars;
  int64_t line = 0;
  bool rejected = false;
  std::string reason;
};

class Recorder : public ContactRows {
 public:
  void add(std::string_view phone, std::optional<std::string_view> person_name,
           std::optional<std::string> variables_json, int64_t line) override {
    rows.push_back({std::string(phone), person_name ? std::optional<std::string>(*person_name) : std::nullopt,
                    std::move(variables_json), line, false, ""});
  }
  void reject(int64_t line, std::string_view, std::string_view reason) override {
    rows.push_back({"", std::nullopt, std::nullopt, line, true, std::string(reason)});
  }
  std::vector<Row> rows;
};

// The same input fed whole, byte by byte and in 7-byte pieces must give the same rows.
std::vector<Row> read_all(const std::string& csv, bool header, std::optional<CsvContacts::Failure>* failure,
                          int64_t max_rows = kMaxCsvRows) {
  std::vector<Row> first;
  for (size_t piece : {csv.size() + 1, size_t{1}, size_t{7}}) {
    Recorder rec;
    CsvContacts c(rec, header, max_rows);
    for (size_t at = 0; at < csv.size(); at += piece)
      if (!c.feed(std::string_view(csv).substr(at, piece))) break;
    c.finish();
    if (piece == csv.size() + 1) {
      first = rec.rows;
      *failure = c.failure();
      continue;
    }
    EXPECT_EQ(rec.rows.size(), first.size()) << "piece " << piece;
    for (size_t i = 0; i < std::min(rec.rows.size(), first.size()); ++i) {
      EXPECT_EQ(rec.rows[i].phone, first[i].phone) << piece;
      EXPECT_EQ(rec.rows[i].line, first[i].line) << piece;
      EXPECT_EQ(rec.rows[i].vars, first[i].vars) << piece;
    }
    EXPECT_EQ(c.failure().has_value(), failure->has_value()) << piece;
  }
  return first;
}

TEST(CsvContacts, HeaderMapsPhoneNameAndVariablesWithBomCrlfQuotesAndNewlines) {
  const std::string csv =
      "\xEF\xBB\xBF"
      " Phone ,Person_Name,plan,\"city, state\"\r\n"
      "9876543210,Asha,Pro,\"Pune, MH\"\r\n"
      "\r\n"
      "+919876500000,\"Ravi \"\"R\"\" Kumar\",\"Basic\nplus\",Delhi\r\n"
      "9876500001,,Free,Goa";  // no line end at the very end
  std::optional<CsvContacts::Failure> failure;
  auto rows = read_all(csv, true, &failure);
  ASSERT_FALSE(failure) << failure->message;
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].phone, "9876543210");
  EXPECT_EQ(rows[0].name, "Asha");
  EXPECT_EQ(rows[0].line, 2);
  auto v = net::json_parse(*rows[0].vars, nullptr);
  ASSERT_TRUE(v);
  EXPECT_EQ(test::json_str(v.get(), "plan"), "Pro");
  EXPECT_EQ(test::json_str(v.get(), "city, state"), "Pune, MH");
  EXPECT_EQ(rows[1].phone, "+919876500000");
  EXPECT_EQ(rows[1].name, "Ravi \"R\" Kumar");
  EXPECT_EQ(rows[1].line, 4);  // the empty line 3 is skipped
  v = net::json_parse(*rows[1].vars, nullptr);
  EXPECT_EQ(test::json_str(v.get(), "plan"), "Basic\nplus");
  EXPECT_EQ(rows[2].line, 6);  // the embedded line break counts
  EXPECT_EQ(rows[2].name, std::nullopt);
}

TEST(CsvContacts, NoHeaderNamesExtraColumnsByPosition) {
  std::optional<CsvContacts::Failure> failure;
  auto rows = read_all("9876543210,Asha,Pro,x\n9876500001\n", false, &failure);
  ASSERT_FALSE(failure);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].line, 1);
  EXPECT_EQ(rows[0].name, "Asha");
  auto v = net::json_parse(*rows[0].vars, nullptr);
  EXPECT_EQ(test::json_str(v.get(), "col3"), "Pro");
  EXPECT_EQ(test::json_str(v.get(), "col4"), "x");
  EXPECT_EQ(rows[1].phone, "9876500001");
  EXPECT_EQ(rows[1].vars, std::nullopt);
}

TEST(CsvContacts, BadRowsAreRejectedWithTheirLineAndTheRestLoads) {
  std::optional<CsvContacts::Failure> failure;
  auto rows = read_all("phone,person_name\n9876543210,A\n98765\"43211,B\n9876543212,C,extra\n9876543213,D\n",
                       true, &failure);
  ASSERT_FALSE(failure);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_FALSE(rows[0].rejected);
  EXPECT_TRUE(rows[1].rejected);
  EXPECT_EQ(rows[1].line, 3);
  EXPECT_TRUE(rows[2].rejected);
  EXPECT_EQ(rows[2].line, 4);
  EXPECT_NE(rows[2].reason.find("3 fields"), std::string::npos) << rows[2].reason;
  EXPECT_FALSE(rows[3].rejected);
  EXPECT_EQ(rows[3].phone, "9876543213");
  EXPECT_EQ(rows[3].line, 5);
}

TEST(CsvContacts, HeaderWithoutPhoneOrEmptyFileOrTooManyRowsFails) {
  std::optional<CsvContacts::Failure> failure;
  auto rows = read_all("name,mobile\nA,9876543210\n", true, &failure);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->status, 422);
  EXPECT_NE(failure->message.find("phone column is required"), std::string::npos) << failure->message;
  EXPECT_NE(failure->message.find("\"mobile\""), std::string::npos) << failure->message;
  EXPECT_TRUE(rows.empty());

  rows = read_all("phone,Phone\n1\n", true, &failure);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->status, 422);

  rows = read_all("", true, &failure);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->status, 422);

  std::string many = "phone\n";
  for (int i = 0; i < 6; ++i) many += "98765432" + std::to_string(10 + i) + "\n";
  rows = read_all(many, true, &failure, 5);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->status, 413);
  EXPECT_EQ(rows.size(), 5u);
}

}  // namespace
}  // namespace osvi::daemon
