// meta/account_store.h — who may do what: accounts (users and organizations,
// one namespace each), teams, robot accounts, repository settings and
// permissions, personal API tokens, browser sessions and the audit log.
//
// Storage only: the rules that turn these rows into a decision (who is an
// admin of what, which token grants which scope) live in auth/.
//
// Contracts every backend keeps:
// - Each method is one transaction; once it returns the change is durable and
//   visible to every process sharing the store.
// - Safe to call concurrently from several threads and processes.
// - Secrets arrive already hashed or sealed (auth/crypto.h); nothing here
//   ever sees a plaintext password or token.
// - Names are unique across users and organizations (they share namespaces).
// Methods throw std::runtime_error when the database fails, and
// meta::Conflict when a unique name is already taken.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace wharf::meta {

struct Conflict : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Ordered: a higher role includes the lower ones.
enum class Role : int { None = 0, Read = 1, Write = 2, Admin = 3 };
std::string_view role_name(Role r);           // "none", "read", "write", "admin"
std::optional<Role> parse_role(std::string_view s);

// Team roles inside an organization (Quay's): member < creator < admin.
enum class TeamRole : int { Member = 1, Creator = 2, Admin = 3 };
std::string_view team_role_name(TeamRole r);  // "member", "creator", "admin"
std::optional<TeamRole> parse_team_role(std::string_view s);

// What a permission row or team membership names.
enum class SubjectKind : int { User = 1, Team = 2, Robot = 3 };
std::string_view subject_kind_name(SubjectKind k);  // "user", "team", "robot"

struct Account {  // a user or an organization
  int64_t id = 0;
  std::string name;
  bool is_org = false;
  std::string email;
  std::string password_hash;  // users: argon2id string; organizations: empty
  bool superuser = false;
  int64_t generation = 1;     // random at creation, bumped whenever the password changes
  int64_t created = 0;        // unix seconds
  bool disabled = false;      // users: may not sign in; no session, token or registry token of theirs works
  int64_t uid = 0;            // identity: random at creation, never reused (a name can be)
};

struct Robot {
  int64_t id = 0;
  int64_t owner_id = 0;     // the account whose namespace it belongs to
  std::string ns;           // that account's name
  std::string short_name;   // "deployer" in "acme+deployer"
  std::string token_sealed; // the token, encrypted with the server key
  int64_t generation = 1;   // random at creation, bumped when the token is regenerated
  std::string description;
  int64_t created = 0;
  std::string full_name() const { return ns + "+" + short_name; }
};

struct Team {
  int64_t id = 0;
  int64_t org_id = 0;
  std::string name;
  TeamRole role = TeamRole::Member;
  std::string description;
};

struct Member {  // of a team
  SubjectKind kind = SubjectKind::User;  // User or Robot
  int64_t id = 0;
  std::string name;  // user name or robot full name
};

struct RepoSettings {
  std::string name;  // "ns/repo"
  bool is_public = false;
  std::string description;
  bool auto_prime = false;
  int64_t created = 0;
  int64_t uid = 0;  // identity: random when the row is created, kept by updates
};

// What one subject may do with a repository, from the rows alone.
struct RepoAccess {
  std::string name;
  bool is_public = false;
  Role role = Role::None;  // the highest grant, direct or through teams
};

struct Permission {
  SubjectKind kind = SubjectKind::User;
  int64_t subject_id = 0;
  std::string subject;  // user name, team name or robot full name
  Role role = Role::None;
  std::string repo;     // filled by permissions_of()
};

struct ApiToken {
  int64_t id = 0;
  int64_t user_id = 0;
  std::string name;
  std::string token_hash;  // keyed hash; the token itself is shown once
  int64_t created = 0;
  int64_t last_used = 0;
};

struct Session {
  std::string id_hash;  // keyed hash of the cookie value
  int64_t user_id = 0;
  std::string csrf;     // per-session CSRF token (not a credential by itself)
  int64_t generation = 0;
  int64_t expires = 0;  // unix seconds
};

struct AuditEvent {
  int64_t id = 0;
  int64_t time_ms = 0;
  std::string actor;       // user name, robot full name, or "" for anonymous
  std::string actor_kind;  // "user", "robot", "anonymous", "system"
  std::string action;      // "login", "login_failed", "token_grant", "push", "delete", "permission", "squash_pull", ...
  std::string ns;
  std::string repo;
  std::string detail;      // JSON object text
  std::string address;     // client address
};

struct AuditQuery {
  std::string ns;     // empty: any
  std::string repo;   // empty: any
  int64_t before_id = 0;  // paging: events with id < before_id (0: newest)
  size_t limit = 100;
};

class AccountStore {
 public:
  virtual ~AccountStore() = default;

  // Accounts. create_account returns the new id; throws Conflict when taken.
  virtual int64_t create_account(const Account& a) = 0;
  virtual std::optional<Account> account(std::string_view name) = 0;
  virtual std::optional<Account> account_by_id(int64_t id) = 0;
  // Users (orgs=false) or organizations (orgs=true), by name.
  virtual std::vector<Account> accounts(bool orgs) = 0;
  virtual size_t user_count() = 0;
  // Stores a new password hash, bumps the generation, and ends the user's
  // sessions and personal API tokens.
  virtual void set_password(int64_t id, std::string_view hash) = 0;
  virtual void set_email(int64_t id, std::string_view email) = 0;
  // Disables or enables a user; either way bumps the generation (issued
  // registry and refresh tokens stop working) and ends the user's sessions
  // and personal API tokens.
  virtual void set_disabled(int64_t id, bool disabled) = 0;
  // Removes the account with its teams, robots, tokens, sessions,
  // memberships and every permission naming them or its repositories.
  virtual bool delete_account(int64_t id) = 0;

  // Teams of organization `org_id`.
  virtual int64_t create_team(const Team& t) = 0;
  virtual std::optional<Team> team(int64_t org_id, std::string_view name) = 0;
  virtual std::vector<Team> teams(int64_t org_id) = 0;
  virtual void update_team(const Team& t) = 0;
  virtual bool delete_team(int64_t team_id) = 0;
  virtual void add_team_member(int64_t team_id, SubjectKind kind, int64_t id) = 0;
  virtual bool remove_team_member(int64_t team_id, SubjectKind kind, int64_t id) = 0;
  virtual std::vector<Member> team_members(int64_t team_id) = 0;
  // The highest role of the teams of `org_id` that (kind, id) belongs to.
  virtual std::optional<TeamRole> team_role(int64_t org_id, SubjectKind kind, int64_t id) = 0;
  // Organizations in which (kind, id) is on some team.
  virtual std::vector<Account> organizations_of(SubjectKind kind, int64_t id) = 0;

  // Robots.
  virtual int64_t create_robot(const Robot& r) = 0;
  virtual std::optional<Robot> robot(std::string_view full_name) = 0;
  virtual std::optional<Robot> robot_by_id(int64_t id) = 0;
  virtual std::vector<Robot> robots(int64_t owner_id) = 0;
  // Stores a new sealed token and bumps the generation.
  virtual void set_robot_token(int64_t id, std::string_view sealed) = 0;
  virtual bool delete_robot(int64_t id) = 0;

  // Repository settings (a row exists once the repository was created by a
  // push or the API; images pushed before accounts existed have none).
  virtual std::optional<RepoSettings> repo_settings(std::string_view repo) = 0;
  // Inserts or replaces.
  virtual void put_repo_settings(const RepoSettings& s) = 0;
  // Inserts `s` when no row exists and then grants `grants`, atomically.
  // Returns false (changing nothing) when the repository already had a row.
  virtual bool create_repo(const RepoSettings& s, const std::vector<Permission>& grants) = 0;
  // Removes the settings row and every permission on the repository.
  virtual bool delete_repo(std::string_view repo) = 0;
  // Settings rows of namespace `ns` ("ns/..."), by name, strictly after `after`.
  virtual std::vector<RepoSettings> list_repo_settings(std::string_view ns, std::string_view after, size_t limit) = 0;

  // Permissions. Role::None removes the row.
  virtual void set_permission(std::string_view repo, SubjectKind kind, int64_t subject_id, Role role) = 0;
  virtual std::vector<Permission> permissions(std::string_view repo) = 0;
  // Every repository permission of one subject (for "what may this robot read").
  virtual std::vector<Permission> permissions_of(SubjectKind kind, int64_t subject_id) = 0;
  // The highest role `repo` grants (kind, id) directly or through its teams.
  virtual Role explicit_role(std::string_view repo, SubjectKind kind, int64_t id) = 0;
  // For every repository named `first` to `last` (inclusive, byte order)
  // with a settings row or a grant to (kind, id): whether it is public and
  // explicit_role(), by name, in one round trip (lists of repositories).
  virtual std::vector<RepoAccess> repo_access(std::string_view first, std::string_view last, SubjectKind kind,
                                              int64_t id) = 0;

  // Default permissions of an organization, applied to its new repositories.
  virtual void set_default_permission(int64_t org_id, SubjectKind kind, int64_t subject_id, Role role) = 0;
  virtual std::vector<Permission> default_permissions(int64_t org_id) = 0;

  // Personal API tokens.
  virtual int64_t create_api_token(const ApiToken& t) = 0;
  virtual std::optional<ApiToken> api_token_by_hash(std::string_view token_hash) = 0;
  virtual std::vector<ApiToken> api_tokens(int64_t user_id) = 0;
  virtual bool delete_api_token(int64_t user_id, int64_t id) = 0;
  virtual void touch_api_token(int64_t id, int64_t now) = 0;

  // Browser sessions.
  virtual void create_session(const Session& s) = 0;
  virtual std::optional<Session> session(std::string_view id_hash) = 0;
  virtual void delete_session(std::string_view id_hash) = 0;
  virtual size_t purge_sessions(int64_t now) = 0;

  // Audit log.
  // Appends events in one transaction, in order. Each is recorded with the
  // identities (uid) its namespace and repository have at that moment.
  virtual void append_audit(const std::vector<AuditEvent>& events) = 0;
  // Newest first. Filtering by namespace or repository returns only events
  // of the account or repository that has that name now (its uid), never
  // those of a deleted predecessor of the same name.
  virtual std::vector<AuditEvent> audit(const AuditQuery& q) = 0;

  // Failed sign-ins, counted where every process sharing the store sees them
  // (so a guesser gains nothing by spreading guesses over replicas). Keys are
  // the limiter's ("address\naccount", or an address).
  // Records a failure under `key` at `now`; returns the failures recorded
  // under it at or after `since`, this one included (older ones are dropped).
  virtual int note_login_failure(std::string_view key, int64_t now, int64_t since) = 0;
  // Blocks `key` until `until` (a later block already there stays) and
  // forgets its failures (they are counted afresh).
  virtual void block_login(std::string_view key, int64_t until) = 0;
  // The latest block of any of `keys` that lasts beyond `now` (0: none).
  virtual int64_t login_blocked_until(const std::vector<std::string>& keys, int64_t now) = 0;
  // Drops failures before `before` and blocks that ended by then; returns how many rows went.
  virtual size_t purge_login_failures(int64_t before) = 0;
};

}  // namespace wharf::meta
