#include <gtest/gtest.h>

#include "core/digest.h"

using namespace wharf::core;

TEST(Digest, KnownVectors) {
  EXPECT_EQ(sha256_of("").str(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_of("abc").str(), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(digest_of(DigestAlgorithm::Sha512, "abc").str(),
            "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd"
            "454d4423643ce80e2a9ac94fa54ca49f");
}

TEST(Digest, IncrementalEqualsOneShot) {
  Hasher h;
  h.update("a");
  h.update("bc");
  EXPECT_EQ(h.finish(), sha256_of("abc"));
}

TEST(Digest, ParseAcceptsOnlyCanonicalForms) {
  std::string hex64(64, 'a');
  EXPECT_TRUE(Digest::parse("sha256:" + hex64));
  EXPECT_FALSE(Digest::parse("sha256:" + std::string(63, 'a')));      // short
  EXPECT_FALSE(Digest::parse("sha256:" + std::string(64, 'A')));      // uppercase
  EXPECT_FALSE(Digest::parse("sha256:" + std::string(63, 'a') + "g"));
  EXPECT_TRUE(Digest::parse("sha512:" + std::string(128, '0')));
  EXPECT_FALSE(Digest::parse("md5:" + std::string(32, '0')));
  EXPECT_FALSE(Digest::parse("sha256" + hex64));
}

TEST(Digest, GeneralGrammar) {
  EXPECT_TRUE(Digest::grammar_ok("md5:abc"));
  EXPECT_TRUE(Digest::grammar_ok("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"));
  EXPECT_FALSE(Digest::grammar_ok(":abc"));
  EXPECT_FALSE(Digest::grammar_ok("sha256:"));
  EXPECT_FALSE(Digest::grammar_ok("SHA256:abc"));
  EXPECT_FALSE(Digest::grammar_ok("sha256:ab/c"));
  EXPECT_FALSE(Digest::grammar_ok("a++b:abc"));
}
