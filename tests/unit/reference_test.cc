#include <gtest/gtest.h>

#include "core/reference.h"

using namespace wharf::core;

TEST(Reference, RepositoryNames) {
  for (auto ok : {"a", "library/ubuntu", "a/b/c", "my-repo", "my--repo", "my_repo", "my__repo", "my.repo",
                  "a0/b1.c_d-e"})
    EXPECT_TRUE(valid_repository_name(ok)) << ok;
  for (auto bad : {"", "A", "a/", "/a", "a//b", "-a", "a-", "a___b", "a._b", "a..b", "a/B", "a b", "a:b", "a@b"})
    EXPECT_FALSE(valid_repository_name(bad)) << bad;
  EXPECT_TRUE(valid_repository_name(std::string(255, 'a')));
  EXPECT_FALSE(valid_repository_name(std::string(256, 'a')));
}

TEST(Reference, Tags) {
  for (auto ok : {"latest", "v1.0", "_x", "A-b_c.d", "1"}) EXPECT_TRUE(valid_tag(ok)) << ok;
  for (auto bad : {"", ".x", "-x", "a/b", "a:b", "a@b", "a b"}) EXPECT_FALSE(valid_tag(bad)) << bad;
  EXPECT_TRUE(valid_tag(std::string(128, 'a')));
  EXPECT_FALSE(valid_tag(std::string(129, 'a')));
}
