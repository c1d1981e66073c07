// meta/sql_account_store.h — the AccountStore both SQL backends share: one
// set of tables and queries in the SQL SQLite and PostgreSQL both accept,
// over a toolkit type `Db` (sqlite::Db or pg::Db; see
// sql_metadata_store.h for what it provides, plus Db::UniqueViolation, the
// error a unique constraint raises). The schema stays with the backend.
// Internal to meta/: the factories are in sqlite_store.h and pg_store.h.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "meta/account_store.h"

namespace wharf::meta {

namespace sql_accounts {

inline int64_t now_s() { return core::unix_seconds(); }

// A fresh credential's first generation: random, so that a credential deleted
// and re-created under the same name (and perhaps the same reused row id)
// never matches tokens issued for its predecessor.
inline int64_t first_generation() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard lk(mu);
  return static_cast<int64_t>(rng() >> 12) + 1;  // under 2^53: exact in every JSON reader
}

// Column lists shared by several queries.
#define kAccountCols                                                          \
  "id,name,is_org,email,password_hash,superuser,generation,created,disabled," \
  "uid"
#define kAccountColsA                                                        \
  "a.id,a.name,a.is_org,a.email,a.password_hash,a.superuser,a.generation,a." \
  "created,a.disabled,a.uid"
#define kRobotCols                                                     \
  "r.id,r.owner_id,a.name,r.short_name,r.token_sealed,r.generation,r." \
  "description,r.created"
#define kSubjectName                                                         \
  "CASE p.kind WHEN 1 THEN u.name WHEN 2 THEN t.name ELSE o.name || '+' || " \
  "r.short_name END"
#define kSubjectJoins                                                     \
  "LEFT JOIN accounts u ON p.kind = 1 AND u.id = p.subject_id LEFT JOIN " \
  "teams t ON p.kind = 2 AND "                                            \
  "t.id = p.subject_id LEFT JOIN robots r ON p.kind = 3 AND r.id = "      \
  "p.subject_id LEFT JOIN accounts o ON o.id = r.owner_id"

}  // namespace sql_accounts

template <class Db>
class SqlAccountStore : public AccountStore {
  using Conn = typename Db::Connection;
  using Stmt = typename Db::Statement;
  using UniqueViolation = typename Db::UniqueViolation;

 public:
  // Opens the toolkit's database with `args`; the caller migrates db().
  template <class... A>
  explicit SqlAccountStore(A&&... args) : db_(std::forward<A>(args)...) {}
  Db& db() { return db_; }

  int64_t create_account(const Account& a) override {
    try {
      return db_.write([&](Conn& c) {
        return inserted_id(c.prepare("INSERT INTO "
                                     "accounts(name,is_org,email,password_hash,superuser,"
                                     "generation,created,uid) "
                                     "VALUES(?,?,?,?,?,?,?,?) RETURNING id")
                               .bind(a.name)
                               .bind(int64_t{a.is_org})
                               .bind(a.email)
                               .bind(a.password_hash)
                               .bind(int64_t{a.superuser})
                               .bind(sql_accounts::first_generation())
                               .bind(a.created ? a.created : sql_accounts::now_s())
                               .bind(sql_accounts::first_generation()));
      });
    } catch (const UniqueViolation&) {
      throw Conflict("the name " + a.name + " is already taken");
    }
  }
  std::optional<Account> account(std::string_view name) override {
    return db_.with([&](Conn& c) -> std::optional<Account> {
      auto s = c.prepare("SELECT " kAccountCols " FROM accounts WHERE name = ?");
      s.bind(name);
      if (!s.step()) return std::nullopt;
      return read_account(s);
    });
  }
  std::optional<Account> account_by_id(int64_t id) override {
    return db_.with([&](Conn& c) -> std::optional<Account> {
      auto s = c.prepare("SELECT " kAccountCols " FROM accounts WHERE id = ?");
      s.bind(id);
      if (!s.step()) return std::nullopt;
      return read_account(s);
    });
  }
  std::vector<Account> accounts(bool orgs) override {
    return db_.with([&](Conn& c) {
      std::vector<Account> out;
      auto s = c.prepare("SELECT " kAccountCols " FROM accounts WHERE is_org = ? ORDER BY name");
      s.bind(int64_t{orgs});
      while (s.step()) out.push_back(read_account(s));
      return out;
    });
  }
  size_t user_count() override {
    return db_.with([&](Conn& c) {
      auto s = c.prepare("SELECT count(*) FROM accounts WHERE is_org = 0");
      s.step();
      return static_cast<size_t>(s.i64(0));
    });
  }
  void set_password(int64_t id, std::string_view hash) override {
    db_.write([&](Conn& c) {
      c.prepare(
           "UPDATE accounts SET password_hash = ?, generation = "
           "generation + 1 WHERE id = ?")
          .bind(hash)
          .bind(id)
          .run();
      c.prepare("DELETE FROM sessions WHERE user_id = ?").bind(id).run();
      c.prepare("DELETE FROM api_tokens WHERE user_id = ?").bind(id).run();
    });
  }
  void set_disabled(int64_t id, bool disabled) override {
    db_.write([&](Conn& c) {
      c.prepare(
           "UPDATE accounts SET disabled = ?, generation = generation + 1 "
           "WHERE id = ?")
          .bind(int64_t{disabled})
          .bind(id)
          .run();
      c.prepare("DELETE FROM sessions WHERE user_id = ?").bind(id).run();
      c.prepare("DELETE FROM api_tokens WHERE user_id = ?").bind(id).run();
    });
  }
  void set_email(int64_t id, std::string_view email) override {
    db_.write([&](Conn& c) { c.prepare("UPDATE accounts SET email = ? WHERE id = ?").bind(email).bind(id).run(); });
  }
  bool delete_account(int64_t id) override {
    return db_.write([&](Conn& c) {
      std::string name;
      {
        auto s = c.prepare("SELECT name FROM accounts WHERE id = ?");
        s.bind(id);
        if (!s.step()) return false;
        name = s.text(0);
      }
      // Robots of the namespace, with their memberships and permissions.
      std::vector<int64_t> robots;
      {
        auto s = c.prepare("SELECT id FROM robots WHERE owner_id = ?");
        s.bind(id);
        while (s.step()) robots.push_back(s.i64(0));
      }
      for (int64_t r : robots) forget_subject(c, SubjectKind::Robot, r);
      c.prepare("DELETE FROM robots WHERE owner_id = ?").bind(id).run();
      // Teams of the organization.
      {
        std::vector<int64_t> teams;
        auto s = c.prepare("SELECT id FROM teams WHERE org_id = ?");
        s.bind(id);
        while (s.step()) teams.push_back(s.i64(0));
        for (int64_t t : teams) {
          forget_subject(c, SubjectKind::Team, t);
          c.prepare("DELETE FROM team_members WHERE team_id = ?").bind(t).run();
        }
      }
      c.prepare("DELETE FROM teams WHERE org_id = ?").bind(id).run();
      c.prepare("DELETE FROM default_perms WHERE org_id = ?").bind(id).run();
      forget_subject(c, SubjectKind::User, id);
      c.prepare("DELETE FROM api_tokens WHERE user_id = ?").bind(id).run();
      c.prepare("DELETE FROM sessions WHERE user_id = ?").bind(id).run();
      // Repository settings and permissions of the namespace.
      std::string lo = name + "/", hi = name + "0";  // '0' follows '/'
      c.prepare("DELETE FROM repo_perms WHERE repo >= ? AND repo < ?").bind(lo).bind(hi).run();
      c.prepare("DELETE FROM repo_settings WHERE name >= ? AND name < ?").bind(lo).bind(hi).run();
      c.prepare("DELETE FROM accounts WHERE id = ?").bind(id).run();
      // Its audit events stay (superusers read them), keyed by the account's
      // uid: whoever takes the name next never reads its predecessor's log.
      return true;
    });
  }

  int64_t create_team(const Team& t) override {
    try {
      return db_.write([&](Conn& c) {
        return inserted_id(c.prepare("INSERT INTO teams(org_id,name,role,description) "
                                     "VALUES(?,?,?,?) RETURNING id")
                               .bind(t.org_id)
                               .bind(t.name)
                               .bind(static_cast<int64_t>(t.role))
                               .bind(t.description));
      });
    } catch (const UniqueViolation&) {
      throw Conflict("a team named " + t.name + " already exists");
    }
  }
  std::optional<Team> team(int64_t org_id, std::string_view name) override {
    return db_.with([&](Conn& c) -> std::optional<Team> {
      auto s = c.prepare(
          "SELECT id,org_id,name,role,description FROM teams "
          "WHERE org_id = ? AND name = ?");
      s.bind(org_id).bind(name);
      if (!s.step()) return std::nullopt;
      return read_team(s);
    });
  }
  std::vector<Team> teams(int64_t org_id) override {
    return db_.with([&](Conn& c) {
      std::vector<Team> out;
      auto s = c.prepare(
          "SELECT id,org_id,name,role,description FROM teams "
          "WHERE org_id = ? ORDER BY name");
      s.bind(org_id);
      while (s.step()) out.push_back(read_team(s));
      return out;
    });
  }
  void update_team(const Team& t) override {
    db_.write([&](Conn& c) {
      c.prepare("UPDATE teams SET role = ?, description = ? WHERE id = ?")
          .bind(static_cast<int64_t>(t.role))
          .bind(t.description)
          .bind(t.id)
          .run();
    });
  }
  bool delete_team(int64_t team_id) override {
    return db_.write([&](Conn& c) {
      forget_subject(c, SubjectKind::Team, team_id);
      c.prepare("DELETE FROM team_members WHERE team_id = ?").bind(team_id).run();
      c.prepare("DELETE FROM teams WHERE id = ?").bind(team_id).run();
      return c.last_changes() > 0;
    });
  }
  void add_team_member(int64_t team_id, SubjectKind kind, int64_t id) override {
    db_.write([&](Conn& c) {
      c.prepare(
           "INSERT INTO team_members(team_id,kind,member_id) "
           "VALUES(?,?,?) ON CONFLICT DO NOTHING")
          .bind(team_id)
          .bind(static_cast<int64_t>(kind))
          .bind(id)
          .run();
    });
  }
  bool remove_team_member(int64_t team_id, SubjectKind kind, int64_t id) override {
    return db_.write([&](Conn& c) {
      c.prepare(
           "DELETE FROM team_members WHERE team_id = ? AND kind = ? AND "
           "member_id = ?")
          .bind(team_id)
          .bind(static_cast<int64_t>(kind))
          .bind(id)
          .run();
      return c.last_changes() > 0;
    });
  }
  std::vector<Member> team_members(int64_t team_id) override {
    return db_.with([&](Conn& c) {
      std::vector<Member> out;
      auto s = c.prepare(
          "SELECT m.kind, m.member_id, CASE m.kind WHEN 1 THEN "
          "a.name ELSE o.name || '+' || r.short_name END "
          "FROM team_members m LEFT JOIN accounts a ON m.kind = 1 "
          "AND a.id = m.member_id "
          "LEFT JOIN robots r ON m.kind = 3 AND r.id = m.member_id "
          "LEFT JOIN accounts o ON o.id = r.owner_id "
          "WHERE m.team_id = ? ORDER BY 3");
      s.bind(team_id);
      while (s.step()) out.push_back({static_cast<SubjectKind>(s.i64(0)), s.i64(1), s.text(2)});
      return out;
    });
  }
  std::optional<TeamRole> team_role(int64_t org_id, SubjectKind kind, int64_t id) override {
    return db_.with([&](Conn& c) -> std::optional<TeamRole> {
      auto s = c.prepare(
          "SELECT max(t.role) FROM teams t JOIN team_members m ON "
          "m.team_id = t.id "
          "WHERE t.org_id = ? AND m.kind = ? AND m.member_id = ?");
      s.bind(org_id).bind(static_cast<int64_t>(kind)).bind(id);
      if (!s.step() || s.i64(0) == 0) return std::nullopt;
      return static_cast<TeamRole>(s.i64(0));
    });
  }
  std::vector<Account> organizations_of(SubjectKind kind, int64_t id) override {
    return db_.with([&](Conn& c) {
      std::vector<Account> out;
      auto s = c.prepare("SELECT DISTINCT " kAccountColsA
                         " FROM accounts a JOIN teams t ON t.org_id = a.id "
                         "JOIN team_members m ON m.team_id = t.id WHERE m.kind "
                         "= ? AND m.member_id = ? ORDER BY a.name");
      s.bind(static_cast<int64_t>(kind)).bind(id);
      while (s.step()) out.push_back(read_account(s));
      return out;
    });
  }

  int64_t create_robot(const Robot& r) override {
    try {
      return db_.write([&](Conn& c) {
        return inserted_id(c.prepare("INSERT INTO "
                                     "robots(owner_id,short_name,token_sealed,"
                                     "generation,description,created) "
                                     "VALUES(?,?,?,?,?,?) RETURNING id")
                               .bind(r.owner_id)
                               .bind(r.short_name)
                               .bind_blob(r.token_sealed)
                               .bind(sql_accounts::first_generation())
                               .bind(r.description)
                               .bind(sql_accounts::now_s()));
      });
    } catch (const UniqueViolation&) {
      throw Conflict("a robot named " + r.full_name() + " already exists");
    }
  }
  std::optional<Robot> robot(std::string_view full_name) override {
    auto plus = full_name.find('+');
    if (plus == std::string_view::npos) return std::nullopt;
    return db_.with([&](Conn& c) -> std::optional<Robot> {
      auto s = c.prepare("SELECT " kRobotCols
                         " FROM robots r JOIN accounts a ON a.id = r.owner_id "
                         "WHERE a.name = ? AND r.short_name = ?");
      s.bind(full_name.substr(0, plus)).bind(full_name.substr(plus + 1));
      if (!s.step()) return std::nullopt;
      return read_robot(s);
    });
  }
  std::optional<Robot> robot_by_id(int64_t id) override {
    return db_.with([&](Conn& c) -> std::optional<Robot> {
      auto s = c.prepare("SELECT " kRobotCols " FROM robots r JOIN accounts a ON a.id = r.owner_id WHERE r.id = ?");
      s.bind(id);
      if (!s.step()) return std::nullopt;
      return read_robot(s);
    });
  }
  std::vector<Robot> robots(int64_t owner_id) override {
    return db_.with([&](Conn& c) {
      std::vector<Robot> out;
      auto s = c.prepare("SELECT " kRobotCols
                         " FROM robots r JOIN accounts a ON a.id = r.owner_id "
                         "WHERE r.owner_id = ? ORDER BY r.short_name");
      s.bind(owner_id);
      while (s.step()) out.push_back(read_robot(s));
      return out;
    });
  }
  void set_robot_token(int64_t id, std::string_view sealed) override {
    db_.write([&](Conn& c) {
      c.prepare(
           "UPDATE robots SET token_sealed = ?, generation = generation + "
           "1 WHERE id = ?")
          .bind_blob(sealed)
          .bind(id)
          .run();
    });
  }
  bool delete_robot(int64_t id) override {
    return db_.write([&](Conn& c) {
      forget_subject(c, SubjectKind::Robot, id);
      c.prepare("DELETE FROM robots WHERE id = ?").bind(id).run();
      return c.last_changes() > 0;
    });
  }

  std::optional<RepoSettings> repo_settings(std::string_view repo) override {
    return db_.with([&](Conn& c) -> std::optional<RepoSettings> {
      auto s = c.prepare(
          "SELECT name,is_public,description,auto_prime,created,uid "
          "FROM repo_settings WHERE name = ?");
      s.bind(repo);
      if (!s.step()) return std::nullopt;
      return read_settings(s);
    });
  }
  void put_repo_settings(const RepoSettings& r) override {
    db_.write([&](Conn& c) { upsert_settings(c, r, true); });
  }
  bool create_repo(const RepoSettings& r, const std::vector<Permission>& grants) override {
    return db_.write([&](Conn& c) {
      upsert_settings(c, r, false);
      if (c.last_changes() == 0) return false;
      for (auto& g : grants) put_perm(c, r.name, g.kind, g.subject_id, g.role);
      return true;
    });
  }
  bool delete_repo(std::string_view repo) override {
    return db_.write([&](Conn& c) {
      c.prepare("DELETE FROM repo_perms WHERE repo = ?").bind(repo).run();
      c.prepare("DELETE FROM repo_settings WHERE name = ?").bind(repo).run();
      return c.last_changes() > 0;
    });
  }
  std::vector<RepoSettings> list_repo_settings(std::string_view ns, std::string_view after, size_t limit) override {
    return db_.with([&](Conn& c) {
      std::vector<RepoSettings> out;
      std::string lo = std::string(ns) + "/", hi = std::string(ns) + "0";
      auto s = c.prepare(
          "SELECT name,is_public,description,auto_prime,created,uid FROM "
          "repo_settings "
          "WHERE name >= ? AND name < ? AND name > ? ORDER BY name LIMIT ?");
      s.bind(lo).bind(hi).bind(after).bind(static_cast<int64_t>(limit));
      while (s.step()) out.push_back(read_settings(s));
      return out;
    });
  }

  void set_permission(std::string_view repo, SubjectKind kind, int64_t subject_id, Role role) override {
    db_.write([&](Conn& c) { put_perm(c, repo, kind, subject_id, role); });
  }
  std::vector<Permission> permissions(std::string_view repo) override {
    return db_.with([&](Conn& c) {
      std::vector<Permission> out;
      auto s = c.prepare("SELECT p.kind, p.subject_id, " kSubjectName
                         ", p.role, p.repo FROM repo_perms p " kSubjectJoins " WHERE p.repo = ? ORDER BY p.kind, 3");
      s.bind(repo);
      while (s.step()) out.push_back(read_perm(s));
      return out;
    });
  }
  std::vector<Permission> permissions_of(SubjectKind kind, int64_t subject_id) override {
    return db_.with([&](Conn& c) {
      std::vector<Permission> out;
      auto s =
          c.prepare("SELECT p.kind, p.subject_id, " kSubjectName ", p.role, p.repo FROM repo_perms p " kSubjectJoins
                    " WHERE p.kind = ? AND p.subject_id = ? ORDER BY p.repo");
      s.bind(static_cast<int64_t>(kind)).bind(subject_id);
      while (s.step()) out.push_back(read_perm(s));
      return out;
    });
  }
  Role explicit_role(std::string_view repo, SubjectKind kind, int64_t id) override {
    auto rows = repo_access(repo, repo, kind, id);  // the same grants, of one name
    return rows.empty() ? Role::None : rows.front().role;
  }

  std::vector<RepoAccess> repo_access(std::string_view first, std::string_view last, SubjectKind kind,
                                      int64_t id) override {
    return db_.with([&](Conn& c) {
      std::vector<RepoAccess> out;
      auto s = c.prepare(
          "SELECT name, max(pub), max(role) FROM ("
          "SELECT name, is_public AS pub, 0 AS role FROM repo_settings WHERE name >= ?1 AND name <= ?2 "
          "UNION ALL SELECT repo, 0, role FROM repo_perms WHERE repo >= ?1 AND repo <= ?2 AND "
          "((kind = ?3 AND subject_id = ?4) OR "
          "(kind = 2 AND subject_id IN (SELECT team_id FROM team_members WHERE kind = ?3 AND member_id = ?4)))"
          ") AS x GROUP BY name ORDER BY name");
      s.bind(first).bind(last).bind(static_cast<int64_t>(kind)).bind(id);
      while (s.step()) out.push_back({s.text(0), s.i64(1) != 0, static_cast<Role>(s.i64(2))});
      return out;
    });
  }

  void set_default_permission(int64_t org_id, SubjectKind kind, int64_t subject_id, Role role) override {
    db_.write([&](Conn& c) {
      if (role == Role::None) {
        c.prepare(
             "DELETE FROM default_perms WHERE org_id = ? AND kind = ? AND "
             "subject_id = ?")
            .bind(org_id)
            .bind(static_cast<int64_t>(kind))
            .bind(subject_id)
            .run();
        return;
      }
      c.prepare(
           "INSERT INTO default_perms(org_id,kind,subject_id,role) "
           "VALUES(?,?,?,?) "
           "ON CONFLICT(org_id,kind,subject_id) DO UPDATE SET role = "
           "excluded.role")
          .bind(org_id)
          .bind(static_cast<int64_t>(kind))
          .bind(subject_id)
          .bind(static_cast<int64_t>(role))
          .run();
    });
  }
  std::vector<Permission> default_permissions(int64_t org_id) override {
    return db_.with([&](Conn& c) {
      std::vector<Permission> out;
      auto s = c.prepare("SELECT p.kind, p.subject_id, " kSubjectName ", p.role, '' FROM default_perms p " kSubjectJoins
                         " WHERE p.org_id = ? ORDER BY p.kind, 3");
      s.bind(org_id);
      while (s.step()) out.push_back(read_perm(s));
      return out;
    });
  }

  int64_t create_api_token(const ApiToken& t) override {
    return db_.write([&](Conn& c) {
      return inserted_id(c.prepare("INSERT INTO "
                                   "api_tokens(user_id,name,token_hash,created,"
                                   "last_used) VALUES(?,?,?,?,0) RETURNING id")
                             .bind(t.user_id)
                             .bind(t.name)
                             .bind(t.token_hash)
                             .bind(sql_accounts::now_s()));
    });
  }
  std::optional<ApiToken> api_token_by_hash(std::string_view h) override {
    return db_.with([&](Conn& c) -> std::optional<ApiToken> {
      auto s = c.prepare(
          "SELECT id,user_id,name,token_hash,created,last_used "
          "FROM api_tokens WHERE token_hash = ?");
      s.bind(h);
      if (!s.step()) return std::nullopt;
      return ApiToken{s.i64(0), s.i64(1), s.text(2), s.text(3), s.i64(4), s.i64(5)};
    });
  }
  std::vector<ApiToken> api_tokens(int64_t user_id) override {
    return db_.with([&](Conn& c) {
      std::vector<ApiToken> out;
      auto s = c.prepare(
          "SELECT id,user_id,name,'',created,last_used FROM "
          "api_tokens WHERE user_id = ? ORDER BY id");
      s.bind(user_id);
      while (s.step()) out.push_back({s.i64(0), s.i64(1), s.text(2), s.text(3), s.i64(4), s.i64(5)});
      return out;
    });
  }
  bool delete_api_token(int64_t user_id, int64_t id) override {
    return db_.write([&](Conn& c) {
      c.prepare("DELETE FROM api_tokens WHERE user_id = ? AND id = ?").bind(user_id).bind(id).run();
      return c.last_changes() > 0;
    });
  }
  void touch_api_token(int64_t id, int64_t now) override {
    db_.write([&](Conn& c) { c.prepare("UPDATE api_tokens SET last_used = ? WHERE id = ?").bind(now).bind(id).run(); });
  }

  void create_session(const Session& s) override {
    db_.write([&](Conn& c) {
      c.prepare(
           "INSERT INTO sessions(id_hash,user_id,csrf,generation,expires) "
           "VALUES(?,?,?,?,?)")
          .bind(s.id_hash)
          .bind(s.user_id)
          .bind(s.csrf)
          .bind(s.generation)
          .bind(s.expires)
          .run();
    });
  }
  std::optional<Session> session(std::string_view id_hash) override {
    return db_.with([&](Conn& c) -> std::optional<Session> {
      auto s = c.prepare(
          "SELECT id_hash,user_id,csrf,generation,expires FROM "
          "sessions WHERE id_hash = ?");
      s.bind(id_hash);
      if (!s.step()) return std::nullopt;
      return Session{s.text(0), s.i64(1), s.text(2), s.i64(3), s.i64(4)};
    });
  }
  void delete_session(std::string_view id_hash) override {
    db_.write([&](Conn& c) { c.prepare("DELETE FROM sessions WHERE id_hash = ?").bind(id_hash).run(); });
  }
  size_t purge_sessions(int64_t now) override {
    return db_.write([&](Conn& c) {
      c.prepare("DELETE FROM sessions WHERE expires < ?").bind(now).run();
      return static_cast<size_t>(c.last_changes());
    });
  }

  int note_login_failure(std::string_view key, int64_t now, int64_t since) override {
    return db_.write([&](Conn& c) {
      c.prepare("DELETE FROM login_failures WHERE key = ? AND at < ?").bind(key).bind(since).run();
      c.prepare("INSERT INTO login_failures(key, at) VALUES(?, ?)").bind(key).bind(now).run();
      auto st = c.prepare("SELECT count(*) FROM login_failures WHERE key = ?");
      st.bind(key);
      st.step();
      return static_cast<int>(st.i64(0));
    });
  }
  void block_login(std::string_view key, int64_t until) override {
    db_.write([&](Conn& c) {
      c.prepare("DELETE FROM login_failures WHERE key = ?").bind(key).run();  // counted afresh after the block
      c.prepare(
           "INSERT INTO login_blocks(key, until) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET until = "
           "CASE WHEN login_blocks.until > ?2 THEN login_blocks.until ELSE ?2 END")
          .bind(key)
          .bind(until)
          .run();
    });
  }
  int64_t login_blocked_until(const std::vector<std::string>& keys, int64_t now) override {
    return db_.with([&](Conn& c) {
      int64_t latest = 0;
      for (const auto& k : keys) {
        auto st = c.prepare("SELECT until FROM login_blocks WHERE key = ? AND until > ?");
        st.bind(k).bind(now);
        if (st.step()) latest = std::max(latest, st.i64(0));
      }
      return latest;
    });
  }
  size_t purge_login_failures(int64_t before) override {
    return db_.write([&](Conn& c) {
      c.prepare("DELETE FROM login_failures WHERE at < ?").bind(before).run();
      size_t n = static_cast<size_t>(c.last_changes());
      c.prepare("DELETE FROM login_blocks WHERE until <= ?").bind(before).run();
      return n + static_cast<size_t>(c.last_changes());
    });
  }

  void append_audit(const std::vector<AuditEvent>& events) override {
    if (events.empty()) return;
    db_.write([&](Conn& c) {
      // The namespace's and repository's identities as they stand now.
      for (auto& e : events)
        c.prepare(
             "INSERT INTO "
             "audit(time_ms,actor,actor_kind,action,ns,repo,detail,"
             "address,ns_uid,repo_uid) "
             "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,COALESCE((SELECT uid FROM "
             "accounts WHERE name = ?5), 0),"
             "CASE WHEN ?6 = '' THEN 0 ELSE COALESCE((SELECT uid FROM "
             "repo_settings WHERE name = ?6), 0) END)")
            .bind(e.time_ms)
            .bind(e.actor)
            .bind(e.actor_kind)
            .bind(e.action)
            .bind(e.ns)
            .bind(e.repo)
            .bind(e.detail.empty() ? std::string_view("{}") : std::string_view(e.detail))
            .bind(e.address)
            .run();
    });
  }
  std::vector<AuditEvent> audit(const AuditQuery& q) override {
    return db_.with([&](Conn& c) {
      std::vector<AuditEvent> out;
      auto s = c.prepare(
          "SELECT id,time_ms,actor,actor_kind,action,ns,repo,detail,address "
          "FROM audit "
          "WHERE (?1 = '' OR (ns = ?1 AND ns_uid = COALESCE((SELECT uid FROM "
          "accounts WHERE name = ?1), 0))) "
          "AND (?2 = '' OR (repo = ?2 AND repo_uid = COALESCE((SELECT uid FROM "
          "repo_settings WHERE name = ?2), 0))) "
          "AND (?3 = 0 OR id < ?3) ORDER BY id DESC LIMIT ?4");
      s.bind(q.ns).bind(q.repo).bind(q.before_id).bind(static_cast<int64_t>(q.limit));
      while (s.step())
        out.push_back(
            {s.i64(0), s.i64(1), s.text(2), s.text(3), s.text(4), s.text(5), s.text(6), s.text(7), s.text(8)});
      return out;
    });
  }

 private:
  // The id an INSERT ... RETURNING id gave.
  static int64_t inserted_id(Stmt& s) {
    s.step();
    return s.i64(0);
  }
  static Account read_account(Stmt& s) {
    return Account{s.i64(0),      s.text(1), s.i64(2) != 0, s.text(3),     s.text(4),
                   s.i64(5) != 0, s.i64(6),  s.i64(7),      s.i64(8) != 0, s.i64(9)};
  }
  static Team read_team(Stmt& s) {
    return Team{s.i64(0), s.i64(1), s.text(2), static_cast<TeamRole>(s.i64(3)), s.text(4)};
  }
  static Robot read_robot(Stmt& s) {
    return Robot{s.i64(0), s.i64(1), s.text(2), s.text(3), s.text(4), s.i64(5), s.text(6), s.i64(7)};
  }
  static RepoSettings read_settings(Stmt& s) {
    return RepoSettings{s.text(0), s.i64(1) != 0, s.text(2), s.i64(3) != 0, s.i64(4), s.i64(5)};
  }
  static Permission read_perm(Stmt& s) {
    return Permission{static_cast<SubjectKind>(s.i64(0)), s.i64(1), s.text(2), static_cast<Role>(s.i64(3)), s.text(4)};
  }
  static void upsert_settings(Conn& c, const RepoSettings& r, bool replace) {
    // An update keeps the row's uid (its identity); a new row gets a fresh one.
    c.prepare(replace ? "INSERT INTO "
                        "repo_settings(name,is_public,description,auto_prime,"
                        "created,uid) "
                        "VALUES(?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET "
                        "is_public = excluded.is_public, "
                        "description = excluded.description, auto_prime = "
                        "excluded.auto_prime, created = excluded.created"
                      : "INSERT INTO "
                        "repo_settings(name,is_public,description,auto_prime,"
                        "created,uid) "
                        "VALUES(?,?,?,?,?,?) ON CONFLICT DO NOTHING")
        .bind(r.name)
        .bind(int64_t{r.is_public})
        .bind(r.description)
        .bind(int64_t{r.auto_prime})
        .bind(r.created ? r.created : sql_accounts::now_s())
        .bind(sql_accounts::first_generation())
        .run();
  }
  static void put_perm(Conn& c, std::string_view repo, SubjectKind kind, int64_t id, Role role) {
    if (role == Role::None) {
      c.prepare(
           "DELETE FROM repo_perms WHERE repo = ? AND kind = ? AND "
           "subject_id = ?")
          .bind(repo)
          .bind(static_cast<int64_t>(kind))
          .bind(id)
          .run();
      return;
    }
    c.prepare(
         "INSERT INTO repo_perms(repo,kind,subject_id,role) VALUES(?,?,?,?) "
         "ON CONFLICT(repo,kind,subject_id) DO UPDATE SET role = excluded.role")
        .bind(repo)
        .bind(static_cast<int64_t>(kind))
        .bind(id)
        .bind(static_cast<int64_t>(role))
        .run();
  }
  // Removes every permission, default permission and membership naming the
  // subject.
  static void forget_subject(Conn& c, SubjectKind kind, int64_t id) {
    auto k = static_cast<int64_t>(kind);
    c.prepare("DELETE FROM repo_perms WHERE kind = ? AND subject_id = ?").bind(k).bind(id).run();
    c.prepare("DELETE FROM default_perms WHERE kind = ? AND subject_id = ?").bind(k).bind(id).run();
    if (kind != SubjectKind::Team)
      c.prepare("DELETE FROM team_members WHERE kind = ? AND member_id = ?").bind(k).bind(id).run();
  }

  Db db_;
};

}  // namespace wharf::meta
