// The configuration loader: nested sections, the older spellings kept as
// aliases, and errors that name the key.
#include <gtest/gtest.h>

#include "core/config.h"

using namespace wharf::core;

namespace {
std::string error_of(const std::string& yaml) {
  try {
    parse_config(yaml, "test.yaml");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Config, EmptyIsTheEmbeddedDefault) {
  Config c = parse_config("", "test.yaml");
  EXPECT_EQ(c.storage.driver, "filesystem");
  EXPECT_TRUE(c.storage.filesystem.drop_committed);
  EXPECT_EQ(c.metadata.driver, "sqlite");
  EXPECT_EQ(c.timeouts.send_seconds, 60);
  EXPECT_EQ(c.squash.limits.max_entries, 2'000'000u);
}

TEST(Config, NestedSectionsAndDriverParameters) {
  Config c = parse_config(R"(
listen: 127.0.0.1:6000
timeouts: {send_seconds: 7}
squash: {workers: 3, limits: {max_entries: 10}, auto_prime: {namespaces: [acme]}}
storage: {driver: filesystem, filesystem: {drop_committed: false}}
metadata: {driver: sqlite, sqlite: {path: /x/w.db}}
delete: {enabled: false}
)",
                          "test.yaml");
  EXPECT_EQ(c.listen, "127.0.0.1:6000");
  EXPECT_EQ(c.timeouts.send_seconds, 7);
  EXPECT_EQ(c.timeouts.header_seconds, 30);  // untouched keys keep their defaults
  EXPECT_EQ(c.squash.workers, 3);
  EXPECT_EQ(c.squash.limits.max_entries, 10u);
  EXPECT_EQ(c.squash.auto_prime.namespaces, std::vector<std::string>{"acme"});
  EXPECT_FALSE(c.storage.filesystem.drop_committed);
  EXPECT_EQ(c.metadata.sqlite.path, "/x/w.db");
  EXPECT_FALSE(c.delete_.enabled);
}

TEST(Config, OlderSpellingBesideTheDriverStillWorks) {
  Config c = parse_config("storage: {driver: filesystem, drop_committed: false}\n", "test.yaml");
  EXPECT_FALSE(c.storage.filesystem.drop_committed);
}

TEST(Config, UnknownKeysAndBadValuesNameTheKey) {
  EXPECT_NE(error_of("bogus: 1\n").find("unknown configuration key bogus"), std::string::npos);
  EXPECT_NE(error_of("squash: {limits: {max_entriez: 1}}\n").find("unknown configuration key squash.limits.max_entriez"),
            std::string::npos);
  EXPECT_NE(error_of("storage: {filesystem: {drop: true}}\n").find("storage.filesystem.drop"), std::string::npos);
  EXPECT_NE(error_of("timeouts: {send_seconds: soon}\n").find("timeouts.send_seconds"), std::string::npos);
  EXPECT_NE(error_of("timeouts: 5\n").find("timeouts: expected a mapping"), std::string::npos);
  EXPECT_NE(error_of("log: {format: xml}\n").find("log.format"), std::string::npos);
  EXPECT_NE(error_of("squash: {limits: {max_path_bytes: 70000}}\n").find("max_path_bytes"), std::string::npos);
  EXPECT_NE(error_of("listen: [\n").find("test.yaml"), std::string::npos);
}
