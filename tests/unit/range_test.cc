#include <gtest/gtest.h>

#include "http/message.h"

using namespace wharf::http;

TEST(Range, Forms) {
  ByteRange r;
  ASSERT_EQ(parse_range("bytes=0-9", 100, r), RangeResult::Ok);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, 9u);
  ASSERT_EQ(parse_range("bytes=90-", 100, r), RangeResult::Ok);
  EXPECT_EQ(r.length(), 10u);
  ASSERT_EQ(parse_range("bytes=-5", 100, r), RangeResult::Ok);
  EXPECT_EQ(r.first, 95u);
  ASSERT_EQ(parse_range("bytes=-500", 100, r), RangeResult::Ok);
  EXPECT_EQ(r.first, 0u);
  ASSERT_EQ(parse_range("bytes=50-5000", 100, r), RangeResult::Ok);
  EXPECT_EQ(r.last, 99u);
}

TEST(Range, Unsatisfiable) {
  ByteRange r;
  EXPECT_EQ(parse_range("bytes=100-", 100, r), RangeResult::Unsatisfiable);
  EXPECT_EQ(parse_range("bytes=200-300", 100, r), RangeResult::Unsatisfiable);
  EXPECT_EQ(parse_range("bytes=-0", 100, r), RangeResult::Unsatisfiable);
  EXPECT_EQ(parse_range("bytes=0-", 0, r), RangeResult::Unsatisfiable);
}

// Last before first: 416, as the distribution spec's conformance tests expect
// ("range 500-0"), not the whole blob RFC 9110 would allow.
TEST(Range, LastBeforeFirstIsUnsatisfiable) {
  ByteRange r;
  EXPECT_EQ(parse_range("bytes=5-1", 100, r), RangeResult::Unsatisfiable);
  EXPECT_EQ(parse_range("bytes=500-0", 2048, r), RangeResult::Unsatisfiable);
}

TEST(Range, IgnoredForms) {
  ByteRange r;
  EXPECT_EQ(parse_range("items=0-1", 100, r), RangeResult::None);
  EXPECT_EQ(parse_range("bytes=0-1,5-6", 100, r), RangeResult::None);
  EXPECT_EQ(parse_range("bytes=x-1", 100, r), RangeResult::None);
}

TEST(Query, DecodesParameters) {
  Request q;
  q.query = "from=ns%2Fpx&mount=sha256%3Aab&n=2&a+b=c+d&flag";
  EXPECT_EQ(q.param("from").value(), "ns/px");
  EXPECT_EQ(q.param("mount").value(), "sha256:ab");
  EXPECT_EQ(q.param("a b").value(), "c d");
  EXPECT_EQ(q.param("flag").value(), "");
  EXPECT_FALSE(q.param("missing"));
}

TEST(Headers, CaseInsensitiveAndRepeated) {
  Headers h;
  h.add("Accept", "a");
  h.add("accept", "b");
  EXPECT_EQ(h.all("ACCEPT").size(), 2u);
  h.set("Accept", "c");
  ASSERT_EQ(h.all("accept").size(), 1u);
  EXPECT_EQ(*h.get("accept"), "c");
}
