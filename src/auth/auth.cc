#include "core/clock.h"
#include "auth/auth.h"

#include "http/error_response.h"

#include <openssl/evp.h>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/reference.h"

namespace wharf::auth {

namespace asio = boost::asio;
using core::Error;
using core::ErrorCode;
using meta::Role;
using nlohmann::json;

namespace {

int64_t now_s() { return core::unix_seconds(); }
int64_t now_ms() { return core::unix_millis(); }

std::string ns_of(std::string_view repo) { return std::string(repo.substr(0, repo.find('/'))); }

// "Scheme value" of the Authorization header, scheme case-insensitive.
std::optional<std::string_view> auth_value(const http::Request& req, std::string_view scheme) {
  auto h = req.headers.get("Authorization");
  if (!h || h->size() <= scheme.size() || (*h)[scheme.size()] != ' ') return std::nullopt;
  for (size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>((*h)[i])) != std::tolower(static_cast<unsigned char>(scheme[i])))
      return std::nullopt;
  auto v = h->substr(scheme.size() + 1);
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  return v;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(sep, i);
    if (j == std::string_view::npos) j = s.size();
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string rfc3339(int64_t t) {
  std::time_t tt = t;
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Parses an application/x-www-form-urlencoded body into repeated pairs.
std::vector<std::pair<std::string, std::string>> parse_form(std::string_view body) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& part : split(body, '&')) {
    auto eq = part.find('=');
    out.emplace_back(http::percent_decode(part.substr(0, eq), true),
                     eq == std::string::npos ? "" : http::percent_decode(part.substr(eq + 1), true));
  }
  return out;
}

}  // namespace

Auth::Auth(Options o, meta::AccountStore& accounts, meta::MetadataStore& meta, const ServerKey& key,
           const TokenSigner& signer)
    : opts_(std::move(o)), accounts_(accounts), meta_(meta), key_(key), signer_(signer) {}

void Auth::flush_audit() { audit_log_.flush(); }

Principal Auth::user_principal(const meta::Account& a, Credential via) const {
  Principal p;
  p.kind = Principal::Kind::User;
  p.id = a.id;
  p.name = a.name;
  p.superuser = a.superuser;
  p.generation = a.generation;
  p.via = via;
  return p;
}

// ---------------------------------------------------------------- credentials

Principal Auth::login(const http::Request& req, std::string_view name, std::string_view secret, bool allow_robot) {
  // No account name is longer than NS+NAME (64 + 1 + 64): longer ones fail
  // before they cost a password check or a slot in the failure table.
  if (name.empty() || name.size() > 129 || secret.size() > 4096)
    throw Error(ErrorCode::Unauthorized, "invalid username or password");
  std::string addr = req.client_addr();
  // The limiter's keys, as keyed hashes (login_limiter.h): the pair, and the
  // address alone for the per-address budget (many accounts guessed from one place).
  std::string rate_key = key_.keyed_hash("login\n" + addr + "\n" + std::string(name));
  std::string addr_key = key_.keyed_hash("login-address\n" + addr);
  limiter_.check({rate_key, addr_key});
  std::optional<Principal> who;
  Credential via = Credential::Password;
  if (name.find('+') != std::string_view::npos) {
    via = Credential::RobotToken;
    auto r = accounts_.robot(name);
    std::optional<std::string> tok = r ? key_.open(r->token_sealed) : std::nullopt;
    bool ok = equal_constant_time(tok.value_or(std::string(64, '\1')), secret) && r && tok;
    if (ok && allow_robot) {
      Principal p;
      p.kind = Principal::Kind::Robot;
      p.id = r->id;
      p.name = r->full_name();
      p.generation = r->generation;
      p.via = via;
      who = p;
    } else if (ok) {
      throw Error(ErrorCode::Unauthorized, "robot accounts cannot sign in here; use a user account");
    }
  } else {
    auto a = accounts_.account(name);
    if (a && a->is_org) a.reset();
    std::string cache_key = key_.keyed_hash(std::string(name) + '\0' + std::string(secret));
    bool ok = passwords_.check(cache_key, a ? a->generation : 0, a ? a->password_hash : std::string(), secret);
    if (ok && a->disabled) {
      Principal p = user_principal(*a, via);
      record(p, &req, "login_failed", "", json{{"account", a->name}, {"reason", "disabled"}});
      throw Error(ErrorCode::Unauthorized, "this account is disabled; ask a superuser");
    }
    if (ok) who = user_principal(*a, via);
  }
  if (!who) {
    try {
      limiter_.note_failure(rate_key, opts_.max_failed_logins);
      limiter_.note_failure(addr_key, opts_.max_failed_logins_per_address);
    } catch (const std::exception& e) {
      // The answer is still "wrong password" (and audited); the count is
      // what a store failure costs, said in the log.
      spdlog::warn("counting a failed sign-in failed: {}", e.what());
    }
    // The name as typed may be a secret pasted into the wrong field: an
    // account that exists is named, any other name only by a keyed hash
    // (equal names group together; the log neither shows nor lets anyone
    // search for what was typed).
    Principal nobody;
    json detail;
    bool exists = name.find('+') != std::string_view::npos ? accounts_.robot(name).has_value()
                                                            : accounts_.account(name).has_value();
    if (exists) {
      nobody.name = std::string(name);
      detail = json{{"account", nobody.name}};
    } else {
      detail = json{{"unknown_account", key_.keyed_hash(std::string("login-name\0") + std::string(name)).substr(0, 32)}};
    }
    record(nobody, &req, "login_failed", "", detail);
    throw Error(ErrorCode::Unauthorized, "invalid username or password");
  }
  return *who;
}

std::optional<Principal> Auth::basic(const http::Request& req, bool allow_robot) {
  auto v = auth_value(req, "Basic");
  if (!v) return std::nullopt;
  std::string decoded = base64_decode(*v, false);
  auto colon = decoded.find(':');
  if (colon == std::string::npos) throw Error(ErrorCode::Unauthorized, "malformed Basic credentials");
  return login(req, std::string_view(decoded).substr(0, colon), std::string_view(decoded).substr(colon + 1), allow_robot);
}

std::optional<Principal> Auth::api_token(std::string_view token) {
  if (!token.starts_with("wharf_pat_")) return std::nullopt;
  auto t = accounts_.api_token_by_hash(key_.keyed_hash(token));
  if (!t) return std::nullopt;
  auto a = accounts_.account_by_id(t->user_id);
  if (!a || a->disabled) return std::nullopt;
  int64_t now = now_s();
  if (now - t->last_used > 60) accounts_.touch_api_token(t->id, now);
  return user_principal(*a, Credential::ApiToken);
}

bool Auth::generation_current(const Principal& p) {
  if (p.kind == Principal::Kind::User) {
    auto a = accounts_.account_by_id(p.id);
    return a && !a->disabled && a->generation == p.generation && a->name == p.name;
  }
  if (p.kind == Principal::Kind::Robot) {
    auto r = accounts_.robot_by_id(p.id);
    return r && r->generation == p.generation && r->full_name() == p.name;
  }
  return true;
}

std::optional<RegistryTokens::Verified> Auth::bearer(const http::Request& req, bool& presented, std::string& why) {
  auto v = auth_value(req, "Bearer");
  presented = v.has_value();
  if (!v) {
    why = "authentication required";
    return std::nullopt;
  }
  auto out = tokens_.verify_access(std::string(*v), why);
  if (!out) return std::nullopt;
  if (!generation_current(out->who)) {
    why = "token revoked: the credential it was issued for changed";
    return std::nullopt;
  }
  return out;
}

bool Auth::token_allows(const json& access, std::string_view type, std::string_view name, std::string_view action) {
  if (!access.is_array()) return false;
  for (auto& a : access) {
    if (!a.is_object() || a.value("type", "") != type || a.value("name", "") != name) continue;
    for (auto& act : a.value("actions", json::array()))
      if (act.is_string() && (act.get<std::string>() == action || act.get<std::string>() == "*")) return true;
  }
  return false;
}

void Auth::challenge(const http::Request& req, std::string_view scope, bool insufficient, std::string_view message) {
  std::string base = http::base_url(req, opts_.external_url);
  std::string h = "Bearer realm=\"" + base + "/v2/auth\",service=\"" + opts_.service + "\"";
  if (!scope.empty()) h += ",scope=\"" + std::string(scope) + "\"";
  if (insufficient) h += ",error=\"insufficient_scope\"";
  throw Error(ErrorCode::Unauthorized, std::string(message)).with_header("WWW-Authenticate", h);
}

// ---------------------------------------------------------------- decisions

Role Auth::role(const Principal& p, std::string_view repo) { return policy_.role(p, repo); }
std::vector<Role> Auth::roles(const Principal& p, const std::vector<std::string>& sorted_names) {
  return policy_.roles(p, sorted_names);
}
bool Auth::can_create(const Principal& p, std::string_view ns) { return policy_.can_create(p, ns); }
bool Auth::namespace_admin(const Principal& p, std::string_view ns) { return policy_.namespace_admin(p, ns); }

bool Auth::create_repository(const Principal& creator, std::string_view repo, std::optional<bool> is_public,
                             std::string_view description, bool grant_creator) {
  std::string name(repo);
  if (repository_known(name)) return false;
  meta::RepoSettings s;
  s.name = name;
  s.is_public = is_public.value_or(opts_.new_repos_public);
  s.description = std::string(description);
  std::vector<meta::Permission> grants;
  std::string ns = ns_of(repo);
  if (auto owner = accounts_.account(ns); owner && owner->is_org) grants = accounts_.default_permissions(owner->id);
  if (!grant_creator) {
  } else if (creator.kind == Principal::Kind::Robot)
    grants.push_back({meta::SubjectKind::Robot, creator.id, creator.name, Role::Write, name});
  else if (creator.kind == Principal::Kind::User && !namespace_admin(creator, ns))
    grants.push_back({meta::SubjectKind::User, creator.id, creator.name, Role::Admin, name});
  bool created = accounts_.create_repo(s, grants);
  {
    std::lock_guard lk(mu_);
    if (known_repos_.size() > 100000) known_repos_.clear();
    known_repos_.insert(name);
  }
  if (created) record(creator, nullptr, "create_repository", repo, json{{"public", s.is_public}});
  return created;
}

bool Auth::repository_known(std::string_view repo) {
  std::lock_guard lk(mu_);
  return known_repos_.count(std::string(repo)) > 0;
}

void Auth::forget_repository(std::string_view repo) {
  std::lock_guard lk(mu_);
  known_repos_.erase(std::string(repo));
}

json Auth::grant(const Principal& p, const std::vector<std::string>& scopes) {
  json access = json::array();
  for (auto& scope : scopes) {
    auto first = scope.find(':');
    auto last = scope.rfind(':');
    if (first == std::string::npos || last == first) continue;  // malformed scopes are ignored
    std::string type = scope.substr(0, first), name = scope.substr(first + 1, last - first - 1);
    auto wanted = split(std::string_view(scope).substr(last + 1), ',');
    std::vector<std::string> granted;
    if (type == "registry" && name == "catalog") {
      for (auto& a : wanted)
        if (a == "*") granted.push_back("*");
    } else if (type == "repository" && core::valid_repository_name(name)) {
      Role r = role(p, name);
      std::optional<bool> exists;
      auto may_push = [&] {
        if (r >= Role::Write) return true;
        if (!exists) exists = accounts_.repo_settings(name).has_value() || meta_.repository_exists(name);
        return !*exists && can_create(p, ns_of(name));
      };
      for (auto& a : wanted) {
        bool ok = (a == "pull" && r >= Role::Read) || (a == "push" && may_push()) ||
                  (a == "delete" && r >= Role::Write) || (a == "*" && r >= Role::Admin);
        if (ok && std::find(granted.begin(), granted.end(), a) == granted.end()) granted.push_back(a);
      }
    }
    if (granted.empty()) continue;
    bool merged = false;
    for (auto& e : access)
      if (e["type"] == type && e["name"] == name) {
        for (auto& a : granted)
          if (std::find(e["actions"].begin(), e["actions"].end(), a) == e["actions"].end()) e["actions"].push_back(a);
        merged = true;
      }
    if (!merged) access.push_back(json{{"type", type}, {"name", name}, {"actions", granted}});
  }
  return access;
}

// ---------------------------------------------------------------- AccessControl

void Auth::require(const http::Request& req, std::string_view repo, std::string_view action) {
  bool presented = false;
  std::string why;
  auto v = bearer(req, presented, why);
  std::string scope;
  if (!repo.empty())
    scope = "repository:" + std::string(repo) + ":" + (action == "push" ? "pull,push" : std::string(action));
  if (!v) challenge(req, scope, false, why);
  if (repo.empty()) return;
  if (!token_allows(v->access, "repository", repo, action))
    challenge(req, scope, true, "the token does not grant " + std::string(action) + " on " + std::string(repo));
}

void Auth::prepare_push(const http::Request& req, std::string_view repo) {
  if (repository_known(repo)) return;  // once per repository and process
  bool presented = false;
  std::string why;
  auto v = bearer(req, presented, why);  // the token require() verified: from the cache
  if (!v) return;
  // A repository with content but no settings predates accounts: it gets
  // private default settings, and the pusher gains nothing beyond write.
  bool legacy = meta_.repository_exists(repo);
  create_repository(v->who, repo, legacy ? std::optional<bool>(false) : std::nullopt, {}, !legacy);
}

AccessControl::Readable Auth::reader(const http::Request& req) {
  bool presented = false;
  std::string why;
  auto v = bearer(req, presented, why);
  if (!v) return [](const std::vector<std::string>& names) { return std::vector<bool>(names.size(), false); };
  Principal p = v->who;
  if (p.kind == Principal::Kind::User)
    if (auto a = accounts_.account_by_id(p.id)) p.superuser = a->superuser;
  return [this, p, access = v->access](const std::vector<std::string>& names) {
    std::vector<bool> out(names.size());
    std::vector<std::string> rest;  // those the token alone does not grant
    for (size_t i = 0; i < names.size(); ++i)
      if (!(out[i] = token_allows(access, "repository", names[i], "pull"))) rest.push_back(names[i]);
    auto roles = policy_.roles(p, rest);
    for (size_t i = 0, k = 0; i < names.size(); ++i)
      if (!out[i]) out[i] = roles[k++] >= Role::Read;
    return out;
  };
}

AccessControl::Caller Auth::require_direct(const http::Request& req, std::string_view repo, std::string_view action) {
  bool write = action != "pull";
  if (auth_value(req, "Bearer")) {
    bool presented = false;
    std::string why;
    auto v = bearer(req, presented, why);
    if (!v) throw Error(ErrorCode::Unauthorized, why);
    if (!token_allows(v->access, "repository", repo, "pull"))
      throw Error(ErrorCode::NameUnknown, "repository not found, or you may not read it", std::string(repo));
    if (write && !token_allows(v->access, "repository", repo, "push"))
      throw Error(ErrorCode::Denied, "you may read this repository but not change it", std::string(repo));
    return {v->who.name, v->who.kind_name()};
  }
  Principal p;
  if (auto b = basic(req, true)) p = *b;
  Role r = role(p, repo);
  if (r < Role::Read) {
    if (p.anonymous())
      throw Error(ErrorCode::Unauthorized,
                  "authentication required: pass a user or robot account with curl -u 'NAME:SECRET'");
    throw Error(ErrorCode::NameUnknown, "repository not found, or you may not read it", std::string(repo));
  }
  if (write && r < Role::Write)
    throw Error(ErrorCode::Denied, "you may read this repository but not change it", std::string(repo));
  return {p.name, p.kind_name()};
}

void Auth::audit(const http::Request& req, const Caller* caller, std::string_view action, std::string_view repo,
                 const json& detail) {
  Principal p;
  if (caller) {
    p.name = caller->name;
    p.kind = caller->kind == "robot"  ? Principal::Kind::Robot
             : caller->kind == "user" ? Principal::Kind::User
                                      : Principal::Kind::Anonymous;
  } else {
    bool presented = false;
    std::string why;
    if (auto v = bearer(req, presented, why)) p = v->who;
  }
  record(p, &req, action, repo, detail);
}

void Auth::record(const Principal& p, const http::Request* req, std::string_view action, std::string_view repo,
                  const json& detail) {
  meta::AuditEvent e;
  e.time_ms = now_ms();
  e.actor = p.name;
  e.actor_kind = p.anonymous() && !p.name.empty() ? "unknown" : p.kind_name();
  e.action = std::string(action);
  e.repo = std::string(repo);
  e.ns = repo.empty() ? std::string() : ns_of(repo);
  if (e.ns.empty() && detail.is_object() && detail.contains("namespace") && detail["namespace"].is_string())
    e.ns = detail["namespace"].get<std::string>();
  e.detail = detail.is_null() ? "{}" : detail.dump(-1, ' ', false, json::error_handler_t::replace);
  if (req) e.address = req->client_addr();
  audit_log_.append(std::move(e));
}

// ---------------------------------------------------------------- /v2/auth

asio::awaitable<void> Auth::handle_token(http::Exchange& ex) {
  ex.route = "token";
  const auto& req = ex.request();
  http::Response r;
  r.headers.add("Cache-Control", "no-store");
  r.headers.add("Pragma", "no-cache");
  std::optional<Error> err;
  try {
    if (req.method != "GET" && req.method != "POST") throw Error(ErrorCode::Unsupported, "use GET or POST");
    std::string body;
    if (req.method == "POST") {
      std::vector<char> buf(16 * 1024);
      while (size_t n = co_await ex.read_body(buf)) {
        if (body.size() + n > 64 * 1024) throw Error(ErrorCode::BadRequest, "token request body too large");
        body.append(buf.data(), n);
      }
    }
    r.body = co_await http::run_on(opts_.offload, [&] { return token_response(req, body); });
    r.headers.add("Content-Type", "application/json");
  } catch (const Error& e) {
    err = e;
  }
  if (err) {
    http::Response er = http::error_response(*err);
    for (const auto& [k, v] : r.headers.items())  // Cache-Control: no-store, set before
      if (k != "Content-Type") er.headers.add(k, v);
    r = std::move(er);
  }
  co_await ex.send(r);
}

std::string Auth::token_response(const http::Request& req, const std::string& body) {
  {
    std::vector<std::string> scopes;
    std::string service;
    Principal p;
    bool want_refresh = false;
    std::string credential = "anonymous";
    if (auth_value(req, "Bearer"))
      throw Error(ErrorCode::Unauthorized,
                  "a registry token cannot be exchanged for another; use a password, robot token or refresh token");
    if (req.method == "GET") {
      for (auto& s : req.params("scope"))
        for (auto& one : split(s, ' ')) scopes.push_back(one);
      service = req.param("service").value_or("");
      if (auto b = basic(req, true)) {
        p = *b;
        credential = p.kind == Principal::Kind::Robot ? "robot_token" : "password";
        want_refresh = req.param("offline_token").value_or("") == "true";
      }
      auto account = req.param("account");
      if (account && !account->empty() && !p.anonymous() && *account != p.name)
        throw Error(ErrorCode::Unauthorized, "the account parameter does not match the credentials");
    } else {
      std::string grant_type, username, password, refresh, access_type;
      for (auto& [k, v] : parse_form(body)) {
        if (k == "scope")
          for (auto& one : split(v, ' ')) scopes.push_back(one);
        else if (k == "service") service = v;
        else if (k == "grant_type") grant_type = v;
        else if (k == "username") username = v;
        else if (k == "password") password = v;
        else if (k == "refresh_token") refresh = v;
        else if (k == "access_type") access_type = v;
      }
      if (grant_type == "password") {
        if (username.empty()) throw Error(ErrorCode::BadRequest, "grant_type=password needs username and password");
        p = login(req, username, password, true);
        credential = p.kind == Principal::Kind::Robot ? "robot_token" : "password";
        want_refresh = access_type == "offline";
      } else if (grant_type == "refresh_token") {
        std::string why;
        auto who = tokens_.verify_refresh(refresh, why);
        if (!who) throw Error(ErrorCode::Unauthorized, why);
        p = *who;
        if (!generation_current(p))
          throw Error(ErrorCode::Unauthorized, "refresh token revoked: the credential it was issued for changed");
        if (p.kind == Principal::Kind::User)
          if (auto a = accounts_.account_by_id(p.id)) p.superuser = a->superuser;
        credential = "refresh_token";
      } else {
        throw Error(ErrorCode::BadRequest, "grant_type must be password or refresh_token");
      }
    }
    if (scopes.size() > 64) throw Error(ErrorCode::BadRequest, "at most 64 scopes per token request");
    if (!service.empty() && service != opts_.service)
      throw Error(ErrorCode::BadRequest, "this token service issues tokens for service \"" + opts_.service + "\"");
    json access = grant(p, scopes);
    std::string token = tokens_.issue(p, access, false);
    int64_t now = now_s();
    json out = {{"token", token},
                {"access_token", token},
                {"expires_in", opts_.token_ttl_seconds},
                {"issued_at", rfc3339(now)}};
    if (want_refresh && !p.anonymous()) out["refresh_token"] = tokens_.issue(p, json::array(), true);
    if (!p.anonymous()) {
      std::string repo;
      for (auto& a : access)
        if (a["type"] == "repository") {
          repo = a["name"];
          break;
        }
      record(p, &req, "token_grant", repo, json{{"credential", credential}, {"access", access}});
    }
    return out.dump();
  }
}

}  // namespace wharf::auth
