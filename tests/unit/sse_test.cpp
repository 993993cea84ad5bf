// SseParser: identical events for every chunking, every line-ending style, comments, BOM and the line guard.
#include "osvi/net/sse.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace osvi::net {
namespace {

const std::string kStream =
    ": keep-alive comment\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n"
    "\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n"
    "\n"
    "id: 7\n"
    "event: delta\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n"
    "\n"
    "data: line one\n"
    "data:line two\n"
    "data\n"
    "\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

std::vector<SseEvent> expected() {
  return {
      {"", R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})", ""},
      {"", R"({"choices":[{"index":0,"delta":{"content":"Hel"}}]})", ""},
      {"delta", R"({"choices":[{"index":0,"delta":{"content":"lo"}}]})", "7"},
      {"", "line one\nline two\n", "7"},
      {"", R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})", "7"},
      {"", "[DONE]", "7"},
  };
}

std::string with_endings(const std::string& s, const std::string& eol) {
  std::string out;
  for (char c : s) {
    if (c == '\n')
      out += eol;
    else
      out += c;
  }
  return out;
}

std::vector<SseEvent> parse_whole(const std::string& s) {
  SseParser p;
  std::vector<SseEvent> out;
  EXPECT_TRUE(p.feed(s, out).ok());
  return out;
}

TEST(Sse, WholeStream) {
  EXPECT_EQ(parse_whole(kStream), expected());
}

TEST(Sse, EverySplitPointGivesTheSameEvents) {
  for (const char* eol : {"\n", "\r\n", "\r"}) {
    const std::string s = with_endings(kStream, eol);
    for (size_t i = 0; i <= s.size(); ++i) {
      for (size_t j = i; j <= s.size(); j += 7) {  // three pieces: covers CR | LF across any boundary
        SseParser p;
        std::vector<SseEvent> out;
        ASSERT_TRUE(p.feed(std::string_view(s).substr(0, i), out).ok());
        ASSERT_TRUE(p.feed(std::string_view(s).substr(i, j - i), out).ok());
        ASSERT_TRUE(p.feed(std::string_view(s).substr(j), out).ok());
        ASSERT_EQ(out, expected()) << "eol " << int(eol[0]) << " split at " << i << "," << j;
      }
    }
  }
}

TEST(Sse, OneByteAtATime) {
  const std::string s = with_endings(kStream, "\r\n");
  SseParser p;
  std::vector<SseEvent> out;
  for (char c : s) ASSERT_TRUE(p.feed(std::string_view(&c, 1), out).ok());
  EXPECT_EQ(out, expected());
}

TEST(Sse, MixedLineEndings) {
  SseParser p;
  std::vector<SseEvent> out;
  ASSERT_TRUE(p.feed("data: a\rdata: b\r\ndata: c\n\r\n", out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, "a\nb\nc");
}

TEST(Sse, CrAtChunkEndThenLfIsOneTerminator) {
  SseParser p;
  std::vector<SseEvent> out;
  ASSERT_TRUE(p.feed("data: x\r", out).ok());
  ASSERT_TRUE(p.feed("\ndata: y\r", out).ok());
  EXPECT_TRUE(out.empty());  // a lone LF after the CR must not count as the blank line
  ASSERT_TRUE(p.feed("\n\r\n", out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, "x\ny");
}

TEST(Sse, CommentsAndUnknownFieldsAreIgnored) {
  auto out = parse_whole(":\n: ping\nretry: 100\nfoo: bar\n\n:x\ndata: real\n\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, "real");
}

TEST(Sse, EventWithoutDataIsNotDispatched) {
  auto out = parse_whole("event: ping\n\ndata: d\n\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].event, "");  // the event type does not leak into the next event
}

TEST(Sse, FieldWithoutColonAndSpaceRules) {
  auto out = parse_whole("data\n\ndata:  two spaces\n\n");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].data, "");
  EXPECT_EQ(out[1].data, " two spaces");  // only one space after the colon is dropped
}

TEST(Sse, ByteOrderMarkAtStartIsDroppedEvenWhenSplit) {
  SseParser p;
  std::vector<SseEvent> out;
  ASSERT_TRUE(p.feed("\xEF", out).ok());
  ASSERT_TRUE(p.feed("\xBB", out).ok());
  ASSERT_TRUE(p.feed("\xBF"
                     "data: a\n\n",
                     out)
                  .ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, "a");
  // Not a BOM: bytes that started like one are kept.
  SseParser q;
  out.clear();
  ASSERT_TRUE(q.feed("\xEF", out).ok());
  ASSERT_TRUE(q.feed("data: b\n\n", out).ok());
  EXPECT_TRUE(out.empty());  // the line's field name is "\xEF" "data": unknown, ignored
  SseParser r;
  ASSERT_TRUE(r.feed("\xEF\xBB\xBF\xEF\xBB\xBF"
                     "data: c\n\n",
                     out)
                  .ok());
  EXPECT_TRUE(out.empty());  // only one BOM is dropped
}

TEST(Sse, IncompleteEventAtEndIsNotDispatched) {
  auto out = parse_whole("data: a\n\ndata: b\n");
  ASSERT_EQ(out.size(), 1u);
}

TEST(Sse, LongLineGuard) {
  SseParser p(64);
  std::vector<SseEvent> out;
  ASSERT_TRUE(p.feed("data: " + std::string(58, 'x') + "\n\n", out).ok());  // exactly 64: allowed
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(p.feed("data: " + std::string(30, 'y'), out).ok());
  Status st = p.feed(std::string(30, 'y'), out);  // 66 bytes without a terminator, over two chunks
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(p.feed("\n\n", out).ok());  // stays failed
  EXPECT_EQ(out.size(), 1u);
  p.reset();
  EXPECT_TRUE(p.feed("data: ok\n\n", out).ok());
  EXPECT_EQ(out.size(), 2u);
}

}  // namespace
}  // namespace osvi::net
