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

// An upload's digest state is saved with its session and restored by another
// process: hashing on from a restored state gives the digest of the whole
// stream, wherever it was cut (inside a block, at a block edge, at 0).
TEST(Hasher, SavedStateContinuesTheHashExactly) {
  std::string data(10000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 251);
  for (auto a : {DigestAlgorithm::Sha256, DigestAlgorithm::Sha512}) {
    for (size_t cut : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{127}, size_t{128}, size_t{5000}, data.size()}) {
      Hasher h(a);
      h.update(data.data(), cut);
      std::string saved = h.save();
      auto r = Hasher::restore(saved);
      ASSERT_TRUE(r) << cut;
      EXPECT_EQ(r->algorithm(), a);
      r->update(data.data() + cut, data.size() - cut);
      EXPECT_EQ(r->finish(), digest_of(a, data)) << "cut at " << cut;
    }
  }
}

TEST(Hasher, RestoreRefusesWhatIsNotASavedState) {
  Hasher h;
  h.update("abc");
  std::string saved = h.save();
  EXPECT_FALSE(Hasher::restore(""));
  EXPECT_FALSE(Hasher::restore("not a state"));
  EXPECT_FALSE(Hasher::restore(saved.substr(0, saved.size() - 1)));  // truncated
  EXPECT_FALSE(Hasher::restore(saved + "x"));                         // trailing bytes
  std::string bad = saved;
  bad[bad.size() - 8] = '\x7f';  // num beyond the block
  EXPECT_FALSE(Hasher::restore(bad));
}
