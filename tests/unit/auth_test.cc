// Accounts and tokens below the HTTP layer: the AccountStore contract (on
// SQLite), the token signer's algorithm pinning and claim checks, sealed
// robot tokens and the permission rules of auth::Auth.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <filesystem>

#include "meta/sqlite_store.h"
#include "auth/auth.h"
#include "auth/crypto.h"
#include "auth/jwt.h"
#include "auth/manage.h"
#include "core/error.h"

using namespace wharf;
using nlohmann::json;

namespace {

std::string b64url(std::string_view s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(s.data()),
                          static_cast<int>(s.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::string new_pem() {
  auto dir = std::filesystem::temp_directory_path() / ("wharf-key-" + std::to_string(::getpid()) + "-" +
                                                       std::to_string(std::rand()));
  auto pem = auth::load_or_create_ec_key((dir / "k.pem").string(), true);
  std::filesystem::remove_all(dir);
  return pem;
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auth::crypto_init();
    path_ = std::filesystem::temp_directory_path() / ("wharf-auth-" + std::to_string(::getpid()) + ".db");
    std::filesystem::remove(path_);
    meta_ = meta::make_sqlite_store(path_.string());
    acc_ = meta::make_sqlite_accounts(path_.string());
    std::array<unsigned char, 32> k{};
    k[0] = 7;
    key_ = std::make_unique<auth::ServerKey>(k);
    signer_ = std::make_unique<auth::TokenSigner>(new_pem(), "wharf");
    auth_ = std::make_unique<auth::Auth>(auth::Options{}, *acc_, *meta_, *key_, *signer_);
  }
  void TearDown() override {
    auth_.reset();
    acc_.reset();
    meta_.reset();
    for (auto s : {"", "-wal", "-shm"}) std::filesystem::remove(path_.string() + s);
  }
  auth::Principal user(const std::string& name) {
    return auth_->user_principal(*acc_->account(name), auth::Credential::Password);
  }
  auth::Principal robot(const std::string& full) {
    auto r = acc_->robot(full);
    auth::Principal p;
    p.kind = auth::Principal::Kind::Robot;
    p.id = r->id;
    p.name = r->full_name();
    p.generation = r->generation;
    return p;
  }
  std::filesystem::path path_;
  std::unique_ptr<meta::MetadataStore> meta_;
  std::unique_ptr<meta::AccountStore> acc_;
  std::unique_ptr<auth::ServerKey> key_;
  std::unique_ptr<auth::TokenSigner> signer_;
  std::unique_ptr<auth::Auth> auth_;
};

TEST_F(AuthTest, PasswordsAreArgon2idAndVerify) {
  auto h = auth::hash_password("correct horse");
  EXPECT_TRUE(h.starts_with("$argon2id$"));
  EXPECT_TRUE(auth::verify_password(h, "correct horse"));
  EXPECT_FALSE(auth::verify_password(h, "correct horsE"));
  EXPECT_FALSE(auth::verify_password("", "x"));
}

TEST_F(AuthTest, RobotTokensAreSealedNotStoredInPlaintext) {
  auth::create_user(*acc_, "alice", "", "password1", false);
  std::string token = auth::create_robot(*acc_, *key_, "alice+ci");
  EXPECT_EQ(token.size(), 64u);
  auto r = acc_->robot("alice+ci");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->token_sealed.find(token), std::string::npos);
  EXPECT_EQ(auth::robot_token(*acc_, *key_, "alice+ci"), token);
  // Another server key cannot open it.
  std::array<unsigned char, 32> other{};
  other[0] = 8;
  EXPECT_FALSE(auth::ServerKey(other).open(r->token_sealed));
  // Regenerating bumps the generation and changes the token.
  std::string t2 = auth::regenerate_robot_token(*acc_, *key_, "alice+ci");
  EXPECT_NE(t2, token);
  EXPECT_EQ(acc_->robot("alice+ci")->generation, r->generation + 1);
}

TEST_F(AuthTest, SignerPinsEs256AndChecksClaims) {
  std::string why;
  std::string good = signer_->sign(json{{"aud", "wharf"}, {"sub", "alice"}}, 60);
  auto claims = signer_->verify(good, "wharf", why);
  ASSERT_TRUE(claims) << why;
  EXPECT_EQ((*claims)["sub"], "alice");
  EXPECT_FALSE(signer_->verify(good, "other-service", why));
  EXPECT_FALSE(signer_->verify(signer_->sign(json{{"aud", "wharf"}}, -5), "wharf", why));
  EXPECT_EQ(why, "token expired");
  // Another key, same issuer.
  auth::TokenSigner other(new_pem(), "wharf");
  EXPECT_FALSE(signer_->verify(other.sign(json{{"aud", "wharf"}}, 60), "wharf", why));
  // alg none.
  std::string payload = b64url(json{{"iss", "wharf"}, {"aud", "wharf"}, {"exp", 4102444800}}.dump());
  EXPECT_FALSE(signer_->verify(b64url(R"({"alg":"none","typ":"JWT"})") + "." + payload + ".", "wharf", why));
  // HS256 keyed with anything (e.g. the public key text) is refused before any MAC check.
  std::string head = b64url(R"({"alg":"HS256","typ":"JWT"})");
  unsigned char mac[32];
  unsigned len = 0;
  std::string input = head + "." + payload;
  HMAC(EVP_sha256(), "k", 1, reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  EXPECT_FALSE(signer_->verify(input + "." + b64url({reinterpret_cast<char*>(mac), len}), "wharf", why));
  EXPECT_EQ(why, "token algorithm is not ES256");
  // A claim changed after signing.
  auto dot1 = good.find('.'), dot2 = good.rfind('.');
  std::string forged_payload = b64url(json{{"iss", "wharf"}, {"aud", "wharf"}, {"sub", "admin"}, {"exp", 4102444800}}.dump());
  EXPECT_FALSE(signer_->verify(good.substr(0, dot1) + "." + forged_payload + good.substr(dot2), "wharf", why));
}

TEST_F(AuthTest, RolesFollowNamespacesTeamsAndPermissions) {
  auth::create_user(*acc_, "alice", "", "password1", false);
  auth::create_user(*acc_, "bob", "", "password2", false);
  auth::create_user(*acc_, "carol", "", "password3", false);
  auth::create_user(*acc_, "root", "", "password4", true);
  auth::create_org(*acc_, "acme", "alice");
  auto org = acc_->account("acme");
  int64_t devs = acc_->create_team({0, org->id, "devs", meta::TeamRole::Member, ""});
  acc_->add_team_member(devs, meta::SubjectKind::User, acc_->account("bob")->id);
  auth::create_robot(*acc_, *key_, "acme+ci");
  auth::create_robot(*acc_, *key_, "alice+own");

  ASSERT_TRUE(auth_->create_repository(user("alice"), "acme/web"));
  EXPECT_EQ(auth_->role(user("alice"), "acme/web"), meta::Role::Admin);  // org admin via owners
  EXPECT_EQ(auth_->role(user("bob"), "acme/web"), meta::Role::None);     // private, no grant
  EXPECT_EQ(auth_->role(user("root"), "acme/web"), meta::Role::Admin);   // superuser
  auth::grant(*acc_, "acme/web", meta::SubjectKind::Team, "devs", meta::Role::Write);
  EXPECT_EQ(auth_->role(user("bob"), "acme/web"), meta::Role::Write);
  EXPECT_EQ(auth_->role(robot("acme+ci"), "acme/web"), meta::Role::None);
  auth::grant(*acc_, "acme/web", meta::SubjectKind::Robot, "acme+ci", meta::Role::Read);
  EXPECT_EQ(auth_->role(robot("acme+ci"), "acme/web"), meta::Role::Read);
  // A robot of another namespace cannot be granted here.
  EXPECT_THROW(auth::grant(*acc_, "acme/web", meta::SubjectKind::Robot, "alice+own", meta::Role::Read), core::Error);
  // Public: everybody reads, nobody writes for it.
  auto s = *acc_->repo_settings("acme/web");
  s.is_public = true;
  acc_->put_repo_settings(s);
  EXPECT_EQ(auth_->role(user("carol"), "acme/web"), meta::Role::Read);
  EXPECT_EQ(auth_->role(auth::Principal{}, "acme/web"), meta::Role::Read);
  // Creation rights: own namespace, org creators and admins.
  EXPECT_TRUE(auth_->can_create(user("carol"), "carol"));
  EXPECT_FALSE(auth_->can_create(user("carol"), "acme"));
  EXPECT_FALSE(auth_->can_create(user("bob"), "acme"));
  auto t = *acc_->team(org->id, "devs");
  t.role = meta::TeamRole::Creator;
  acc_->update_team(t);
  EXPECT_TRUE(auth_->can_create(user("bob"), "acme"));
  // A creator who is not an org admin becomes admin of what they create.
  ASSERT_TRUE(auth_->create_repository(user("bob"), "acme/bobs"));
  EXPECT_EQ(auth_->role(user("bob"), "acme/bobs"), meta::Role::Admin);
}

TEST_F(AuthTest, BatchedRolesEqualRoleForEveryCallerAndRepository) {
  auth::create_user(*acc_, "alice", "", "password1", false);
  auth::create_user(*acc_, "bob", "", "password2", false);
  auth::create_user(*acc_, "root", "", "password4", true);
  auth::create_org(*acc_, "acme", "alice");
  auth::create_org(*acc_, "zorg", "bob");
  auto org = acc_->account("acme");
  int64_t devs = acc_->create_team({0, org->id, "devs", meta::TeamRole::Member, ""});
  acc_->add_team_member(devs, meta::SubjectKind::User, acc_->account("bob")->id);
  auth::create_robot(*acc_, *key_, "acme+ci");
  for (auto r : {"acme/a", "acme/b", "acme/c/deep", "alice/x"}) ASSERT_TRUE(auth_->create_repository(user("alice"), r));
  for (auto r : {"bob/y", "zorg/z"}) ASSERT_TRUE(auth_->create_repository(user("bob"), r));
  auth::grant(*acc_, "acme/b", meta::SubjectKind::Team, "devs", meta::Role::Write);
  auth::grant(*acc_, "acme/c/deep", meta::SubjectKind::Robot, "acme+ci", meta::Role::Read);
  auth::grant(*acc_, "acme/c/deep", meta::SubjectKind::User, "bob", meta::Role::Admin);
  auto s = *acc_->repo_settings("acme/a");
  s.is_public = true;
  acc_->put_repo_settings(s);
  // Sorted, with names that have no settings row at all (pushed before accounts).
  std::vector<std::string> names = {"acme/a", "acme/b", "acme/c/deep", "acme/legacy", "alice/x", "bob/y", "zorg/z"};
  std::vector<auth::Principal> callers = {user("alice"), user("bob"), user("root"), robot("acme+ci"), auth::Principal{}};
  for (const auto& p : callers) {
    auto batch = auth_->roles(p, names);
    ASSERT_EQ(batch.size(), names.size());
    for (size_t i = 0; i < names.size(); ++i)
      EXPECT_EQ(batch[i], auth_->role(p, names[i])) << p.name << " on " << names[i];
  }
  EXPECT_EQ(auth_->roles(user("bob"), names)[1], meta::Role::Write);  // the check above is not all None
  EXPECT_EQ(auth_->roles(auth::Principal{}, names)[0], meta::Role::Read);
  EXPECT_TRUE(auth_->roles(user("bob"), {}).empty());
}

TEST_F(AuthTest, DefaultPermissionsApplyToNewRepositories) {
  auth::create_user(*acc_, "alice", "", "password1", false);
  auth::create_org(*acc_, "acme", "alice");
  auth::create_robot(*acc_, *key_, "acme+reader");
  auto org = acc_->account("acme");
  acc_->set_default_permission(org->id, meta::SubjectKind::Robot, acc_->robot("acme+reader")->id, meta::Role::Read);
  ASSERT_TRUE(auth_->create_repository(user("alice"), "acme/new"));
  EXPECT_EQ(auth_->role(robot("acme+reader"), "acme/new"), meta::Role::Read);
}

TEST_F(AuthTest, DeletingAnOrganizationRemovesItsRobotsTeamsAndGrants) {
  auth::create_user(*acc_, "alice", "", "password1", false);
  auth::create_org(*acc_, "acme", "alice");
  auth::create_robot(*acc_, *key_, "acme+ci");
  ASSERT_TRUE(auth_->create_repository(user("alice"), "acme/web"));
  auth::grant(*acc_, "acme/web", meta::SubjectKind::Robot, "acme+ci", meta::Role::Read);
  ASSERT_TRUE(acc_->delete_account(acc_->account("acme")->id));
  EXPECT_FALSE(acc_->robot("acme+ci"));
  EXPECT_FALSE(acc_->repo_settings("acme/web"));
  EXPECT_TRUE(acc_->permissions("acme/web").empty());
  EXPECT_TRUE(acc_->organizations_of(meta::SubjectKind::User, acc_->account("alice")->id).empty());
}

TEST_F(AuthTest, NamesAreUniqueAcrossUsersAndOrganizations) {
  auth::create_user(*acc_, "alice", "", "password1", false);
  EXPECT_THROW(auth::create_org(*acc_, "alice", "alice"), core::Error);
  EXPECT_THROW(auth::create_user(*acc_, "Alice", "", "password1", false), core::Error);  // invalid name
  EXPECT_THROW(auth::create_user(*acc_, "bob", "", "short", false), core::Error);
}

}  // namespace
