// Replica-to-replica request signatures (cluster/peer.h): a signature made
// with the shared secret verifies for exactly the request it was made for,
// within the allowed clock skew, and for no other secret.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "cluster/peer.h"

using wharf::cluster::PeerAuth;

namespace {
const std::string kSecret(40, 's');
}

TEST(PeerAuth, VerifiesTheSignedRequestOnly) {
  PeerAuth a(kSecret);
  int64_t now = 1'800'000'000;
  auto sig = a.sign("GET", "/c1/squash/ns/app/v1?platform=linux/amd64", "reg.example.com", now);
  EXPECT_TRUE(a.verify(sig, "GET", "/c1/squash/ns/app/v1?platform=linux/amd64", "reg.example.com", now + 5));
  EXPECT_FALSE(a.verify(sig, "GET", "/c1/squash/ns/app/v2?platform=linux/amd64", "reg.example.com", now))
      << "another target";
  EXPECT_FALSE(a.verify(sig, "GET", "/c1/squash/ns/app/v1?platform=linux/amd64", "evil.example.com", now))
      << "another RepoTags host";
  EXPECT_FALSE(a.verify(sig, "HEAD", "/c1/squash/ns/app/v1?platform=linux/amd64", "reg.example.com", now))
      << "another method";
  EXPECT_FALSE(PeerAuth(std::string(40, 't')).verify(sig, "GET", "/c1/squash/ns/app/v1?platform=linux/amd64",
                                                     "reg.example.com", now))
      << "another secret";
  EXPECT_FALSE(a.verify(sig, "GET", "/c1/squash/ns/app/v1?platform=linux/amd64", "reg.example.com",
                        now + PeerAuth::kMaxSkewSeconds + 1))
      << "too old";
  EXPECT_FALSE(a.verify(sig, "GET", "/c1/squash/ns/app/v1?platform=linux/amd64", "reg.example.com",
                        now - PeerAuth::kMaxSkewSeconds - 1))
      << "from the future";
  std::string tampered = sig;
  tampered.back() = tampered.back() == '0' ? '1' : '0';
  EXPECT_FALSE(a.verify(tampered, "GET", "/c1/squash/ns/app/v1?platform=linux/amd64", "reg.example.com", now));
  for (std::string bad : {"", ".", "x.abc", "123", "1800000000.", "-5.00"})
    EXPECT_FALSE(a.verify(bad, "GET", "/", "", now)) << bad;
}

TEST(PeerAuth, SecretFileMustHoldEnoughBytes) {
  std::string path = ::testing::TempDir() + "/wharf-cluster-secret";
  {
    std::ofstream(path) << "short\n";
  }
  try {
    PeerAuth::from_file(path);
    ADD_FAILURE() << "a 5-byte secret was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("at least 32"), std::string::npos) << e.what();
  }
  {
    std::ofstream(path) << kSecret << "\n";
  }
  PeerAuth a = PeerAuth::from_file(path);
  EXPECT_TRUE(a.verify(PeerAuth(kSecret).sign("GET", "/x", "", 100), "GET", "/x", "", 100))
      << "the trailing newline is not part of the secret";
  std::remove(path.c_str());
  EXPECT_THROW(PeerAuth::from_file(path), std::runtime_error);
}
