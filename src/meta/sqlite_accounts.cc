// SQLite AccountStore: its schema (own tables and schema version,
// account_schema_version), and sql_account_store.h's queries on
// sqlite_db.h's connections.
#include <vector>

#include "meta/sql_account_store.h"
#include "meta/sqlite_db.h"
#include "meta/sqlite_store.h"

namespace wharf::meta {

namespace {

const std::vector<const char*> kAccountSchema = {
    // version 1
    R"SQL(
CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, is_org INTEGER NOT NULL,
                      email TEXT NOT NULL, password_hash TEXT NOT NULL, superuser INTEGER NOT NULL,
                      generation INTEGER NOT NULL, created INTEGER NOT NULL);
CREATE TABLE teams(id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL, name TEXT NOT NULL, role INTEGER NOT NULL,
                   description TEXT NOT NULL, UNIQUE(org_id, name));
CREATE TABLE team_members(team_id INTEGER NOT NULL, kind INTEGER NOT NULL, member_id INTEGER NOT NULL,
                          PRIMARY KEY(team_id, kind, member_id)) WITHOUT ROWID;
CREATE INDEX team_members_member ON team_members(kind, member_id);
CREATE TABLE robots(id INTEGER PRIMARY KEY, owner_id INTEGER NOT NULL, short_name TEXT NOT NULL,
                    token_sealed BLOB NOT NULL, generation INTEGER NOT NULL, description TEXT NOT NULL,
                    created INTEGER NOT NULL, UNIQUE(owner_id, short_name));
CREATE TABLE repo_settings(name TEXT PRIMARY KEY, is_public INTEGER NOT NULL, description TEXT NOT NULL,
                           auto_prime INTEGER NOT NULL, created INTEGER NOT NULL);
CREATE TABLE repo_perms(repo TEXT NOT NULL, kind INTEGER NOT NULL, subject_id INTEGER NOT NULL, role INTEGER NOT NULL,
                        PRIMARY KEY(repo, kind, subject_id)) WITHOUT ROWID;
CREATE INDEX repo_perms_subject ON repo_perms(kind, subject_id);
CREATE TABLE default_perms(org_id INTEGER NOT NULL, kind INTEGER NOT NULL, subject_id INTEGER NOT NULL,
                           role INTEGER NOT NULL, PRIMARY KEY(org_id, kind, subject_id)) WITHOUT ROWID;
CREATE TABLE api_tokens(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, name TEXT NOT NULL,
                        token_hash TEXT UNIQUE NOT NULL, created INTEGER NOT NULL, last_used INTEGER NOT NULL);
CREATE TABLE sessions(id_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL, csrf TEXT NOT NULL,
                      generation INTEGER NOT NULL, expires INTEGER NOT NULL);
CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, actor TEXT NOT NULL,
                   actor_kind TEXT NOT NULL, action TEXT NOT NULL, ns TEXT NOT NULL, repo TEXT NOT NULL,
                   detail TEXT NOT NULL, address TEXT NOT NULL);
CREATE INDEX audit_ns ON audit(ns, id);
CREATE INDEX audit_repo ON audit(repo, id);
)SQL",
    // version 2: disabled users; identities (uid) of accounts and repositories,
    // recorded with each audit event so a name taken again never shows its
    // predecessor's events. Existing rows get random uids; existing events
    // take the uids of the names as they stand now.
    R"SQL(
ALTER TABLE accounts ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN uid INTEGER NOT NULL DEFAULT 0;
UPDATE accounts SET uid = abs(random() % 9007199254740990) + 1;
CREATE UNIQUE INDEX accounts_uid ON accounts(uid);
ALTER TABLE repo_settings ADD COLUMN uid INTEGER NOT NULL DEFAULT 0;
UPDATE repo_settings SET uid = abs(random() % 9007199254740990) + 1;
ALTER TABLE audit ADD COLUMN ns_uid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit ADD COLUMN repo_uid INTEGER NOT NULL DEFAULT 0;
UPDATE audit SET ns_uid = COALESCE((SELECT uid FROM accounts WHERE name = audit.ns), 0);
UPDATE audit SET repo_uid = COALESCE((SELECT uid FROM repo_settings WHERE name = audit.repo), 0) WHERE repo != '';
)SQL",
    // version 3: failed sign-ins and the blocks they caused (the login limiter's, shared by every process)
    R"SQL(
CREATE TABLE login_failures(key TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX login_failures_key ON login_failures(key, at);
CREATE INDEX login_failures_at ON login_failures(at);
CREATE TABLE login_blocks(key TEXT PRIMARY KEY, until INTEGER NOT NULL);
)SQL",
};

}  // namespace

std::unique_ptr<AccountStore> make_sqlite_accounts(const std::string& path) {
  auto s = std::make_unique<SqlAccountStore<sqlite::Db>>(path);
  s->db().migrate("account_schema_version", kAccountSchema);
  return s;
}

}  // namespace wharf::meta
