#include "core/clock.h"
#include "api/api.h"

#include "http/error_response.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "auth/manage.h"
#include "core/error.h"
#include "core/reference.h"
#include "image/platform.h"
#include "image/stored.h"

namespace wharf::api {

namespace asio = boost::asio;
using auth::Principal;
using core::Error;
using core::ErrorCode;
using meta::Role;
using nlohmann::json;

namespace {

int64_t now_s() { return core::unix_seconds(); }

std::vector<std::string> segments(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (true) {
    size_t j = s.find('/', i);
    out.emplace_back(s.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  return out;
}

std::string ns_of(std::string_view repo) { return std::string(repo.substr(0, repo.find('/'))); }

std::optional<std::string> cookie(const http::Request& req, std::string_view name) {
  for (auto h : req.headers.all("Cookie")) {
    while (!h.empty()) {
      auto semi = h.find(';');
      auto part = h.substr(0, semi);
      while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
      auto eq = part.find('=');
      if (eq != std::string_view::npos && part.substr(0, eq) == name) return std::string(part.substr(eq + 1));
      if (semi == std::string_view::npos) break;
      h.remove_prefix(semi + 1);
    }
  }
  return std::nullopt;
}

std::string str(const json& body, const char* key, std::string_view def = {}) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::string(def);
  if (!it->is_string()) throw Error(ErrorCode::BadRequest, std::string(key) + " must be a string");
  return it->get<std::string>();
}

meta::SubjectKind parse_kind(std::string_view k) {
  if (k == "user") return meta::SubjectKind::User;
  if (k == "team") return meta::SubjectKind::Team;
  if (k == "robot") return meta::SubjectKind::Robot;
  throw Error(ErrorCode::NotFound, "permission kind must be user, team or robot", std::string(k));
}

Role parse_role_or_throw(const std::string& r) {
  auto role = meta::parse_role(r);
  if (!role || *role == Role::None) throw Error(ErrorCode::BadRequest, "role must be read, write or admin", r);
  return *role;
}

json audit_json(const meta::AuditEvent& e) {
  return json{{"id", e.id},
              {"time", e.time_ms / 1000.0},
              {"actor", e.actor},
              {"actor_kind", e.actor_kind},
              {"action", e.action},
              {"namespace", e.ns},
              {"repository", e.repo},
              {"detail", json::parse(e.detail, nullptr, false)},
              {"address", e.address}};
}

}  // namespace

struct Api::Impl {
  Options opts;
  auth::Auth& auth;
  meta::AccountStore& acc;
  meta::MetadataStore& meta;
  squash::Service* squash;

  // One request's context.
  struct Call {
    const http::Request& req;
    std::string method;
    json body;
    Principal who;
    bool via_session = false;
    std::string csrf;
    http::Response res;
  };

  Impl(Options o, auth::Auth& a, meta::MetadataStore& m, squash::Service* s)
      : opts(std::move(o)), auth(a), acc(a.accounts()), meta(m), squash(s) {}

  // ------------------------------------------------------------ responses
  static void reply(Call& c, int status, const json& body) {
    c.res.status = status;
    c.res.headers.set("Content-Type", "application/json");
    c.res.body = status == 204 ? std::string() : body.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  static void no_store(Call& c) { c.res.headers.set("Cache-Control", "no-store"); }

  // ------------------------------------------------------------ callers
  void authenticate(Call& c) {
    const auto& req = c.req;
    if (auto h = req.headers.get("Authorization")) {
      auto scheme_is = [&](std::string_view s) {  // RFC 7235: the scheme is case-insensitive
        if (h->size() <= s.size() || (*h)[s.size()] != ' ') return false;
        for (size_t i = 0; i < s.size(); ++i)
          if (std::tolower(static_cast<unsigned char>((*h)[i])) != s[i]) return false;
        return true;
      };
      if (scheme_is("basic")) {
        c.who = *auth.basic(req, true);
      } else if (scheme_is("bearer")) {
        auto tok = h->substr(7);
        auto p = auth.api_token(tok);
        if (!p)
          throw Error(ErrorCode::Unauthorized,
                      tok.starts_with("wharf_pat_")
                          ? "unknown or deleted personal API token"
                          : "registry tokens are not accepted by the management API; use a password or a personal API token");
        c.who = *p;
      } else {
        throw Error(ErrorCode::Unauthorized, "use Basic user:password or a Bearer personal API token");
      }
      if (c.who.kind == Principal::Kind::Robot)
        throw Error(ErrorCode::Denied, "robot accounts cannot use the management API; use a user account");
      return;
    }
    if (auto sid = cookie(req, "wharf_session")) {
      auto s = acc.session(auth.key().keyed_hash(*sid));
      if (!s || s->expires < now_s()) return;  // anonymous; the UI signs in again
      auto a = acc.account_by_id(s->user_id);
      if (!a || a->disabled || a->generation != s->generation) return;
      c.who = auth.user_principal(*a, auth::Credential::Session);
      c.via_session = true;
      c.csrf = s->csrf;
    }
  }

  // Refuses cross-site state changes; cookie callers need the CSRF token.
  void check_state_change(Call& c) {
    if (c.method == "GET" || c.method == "HEAD") return;
    const auto& req = c.req;
    if (auto site = req.headers.get("Sec-Fetch-Site"); site && *site != "same-origin" && *site != "none")
      throw Error(ErrorCode::Denied, "cross-site requests may not change anything");
    if (auto origin = req.headers.get("Origin")) {  // "null" (opaque origins) is cross-site too
      std::string base = http::base_url(req, opts.external_url);
      if (base.empty() || *origin != base) throw Error(ErrorCode::Denied, "the request's Origin is not this registry");
    }
    if (c.via_session) {
      auto t = req.headers.get("X-CSRF-Token");
      if (!t || !auth::equal_constant_time(*t, c.csrf))
        throw Error(ErrorCode::Denied, "missing or wrong X-CSRF-Token; reload the page and try again");
    }
  }

  void need_user(const Call& c) {
    if (c.who.anonymous())
      throw Error(ErrorCode::Unauthorized, "sign in first (Basic user:password or a personal API token)");
  }

  bool repo_exists(const std::string& repo) {
    return acc.repo_settings(repo).has_value() || meta.repository_exists(repo);
  }

  // The caller's role on `repo`, requiring at least `need`: a repository
  // they cannot read is a 404, one they may not change a 403.
  Role require_repo(const Call& c, const std::string& repo, Role need) {
    Role r = repo_exists(repo) ? auth.role(c.who, repo) : Role::None;
    if (r < Role::Read) {
      if (c.who.anonymous()) need_user(c);
      throw Error(ErrorCode::NameUnknown, "repository not found, or you may not read it", repo);
    }
    if (r < need)
      throw Error(ErrorCode::Denied, std::string("this needs ") + std::string(meta::role_name(need)) +
                                         " permission on " + repo + "; you have " + std::string(meta::role_name(r)));
    return r;
  }

  meta::Account require_namespace(const std::string& ns) {
    auto a = acc.account(ns);
    if (!a) throw Error(ErrorCode::NameUnknown, "no such namespace", ns);
    return *a;
  }
  void require_ns_admin(const Call& c, const std::string& ns) {
    need_user(c);
    require_namespace(ns);
    if (!auth.namespace_admin(c.who, ns))
      throw Error(ErrorCode::Denied, "only administrators of " + ns + " may do this");
  }
  meta::Account require_org(const std::string& org) {
    auto a = acc.account(org);
    if (!a || !a->is_org) throw Error(ErrorCode::NameUnknown, "no such organization", org);
    return *a;
  }
  bool org_member(const Call& c, const meta::Account& org) {
    return c.who.superuser || acc.team_role(org.id, c.who.subject(), c.who.id).has_value();
  }

  void record(const Call& c, std::string_view action, std::string_view repo, json detail) {
    auth.record(c.who, &c.req, action, repo, detail);
  }

  // ------------------------------------------------------------ dispatch
  // The route table (api.h, README.md): the first route whose method and
  // pattern match takes the request; a path some route matches with another
  // method is 405, any other 404. Pattern segments: a literal; {x}, one
  // non-empty segment passed to the handler in order; {x+}, one or more
  // non-empty segments joined by '/' (a repository name). Routes with more
  // literal segments after a {x+} come first, so ".../tag/{tag}" is a tag of
  // a repository rather than a repository named ".../tag/x" (as in Quay).
  // A pattern ending in "/?" matches with and without the trailing slash.
  using Params = std::vector<std::string>;
  struct Route {
    std::string_view method;
    std::string_view pattern;
    void (*handle)(Impl&, Call&, const Params&);
    bool anonymous = false;  // served before the caller must be a user
  };
  static const std::vector<Route>& routes() {
    using P = const Params&;
    static const std::vector<Route> table = {
        {"POST", "signin", [](Impl& a, Call& c, P) { a.signin(c); }, true},
        {"GET", "session", [](Impl& a, Call& c, P) { a.session(c); }, true},
        {"GET", "config", [](Impl& a, Call& c, P) { a.config(c); }, true},
        {"POST", "signout", [](Impl& a, Call& c, P) { a.signout(c); }, true},
        // the caller's own account
        {"GET", "user/?", [](Impl& a, Call& c, P) { a.current_user(c); }},
        {"PUT", "user/password", [](Impl& a, Call& c, P) { a.change_password(c); }},
        {"GET", "user/tokens", [](Impl& a, Call& c, P) { a.list_tokens(c); }},
        {"POST", "user/tokens", [](Impl& a, Call& c, P) { a.create_token(c); }},
        {"DELETE", "user/tokens/{id}", [](Impl& a, Call& c, P p) { a.delete_token(c, p[0]); }},
        {"GET", "user/logs", [](Impl& a, Call& c, P) { a.logs(c, c.who.name, "", c.who.name); }},
        // robots of a namespace (user/robots and organization/{org}/robots are aliases, see dispatch)
        {"GET", "namespace/{ns}/robots/?", [](Impl& a, Call& c, P p) { a.robots_list(c, p[0]); }},
        {"PUT", "namespace/{ns}/robots/{robot}", [](Impl& a, Call& c, P p) { a.robot_create(c, p[0], p[1]); }},
        {"GET", "namespace/{ns}/robots/{robot}", [](Impl& a, Call& c, P p) { a.robot_get(c, p[0], p[1]); }},
        {"DELETE", "namespace/{ns}/robots/{robot}", [](Impl& a, Call& c, P p) { a.robot_delete(c, p[0], p[1]); }},
        {"POST", "namespace/{ns}/robots/{robot}/regenerate", [](Impl& a, Call& c, P p) { a.robot_regenerate(c, p[0], p[1]); }},
        {"GET", "namespace/{ns}/robots/{robot}/permissions", [](Impl& a, Call& c, P p) { a.robot_permissions(c, p[0], p[1]); }},
        // superusers
        {"GET", "superuser/logs", [](Impl& a, Call& c, P) { a.superuser_logs(c); }},
        {"GET", "superuser/users", [](Impl& a, Call& c, P) { a.superuser_list_users(c); }},
        {"PUT", "superuser/users/{user}", [](Impl& a, Call& c, P p) { a.superuser_set_enabled(c, p[0]); }},
        {"DELETE", "superuser/users/{user}", [](Impl& a, Call& c, P p) { a.superuser_delete_user(c, p[0]); }},
        // organizations
        {"POST", "organization/?", [](Impl& a, Call& c, P) { a.create_org(c); }},
        {"GET", "organization/{org}/?", [](Impl& a, Call& c, P p) { a.org_get(c, p[0]); }},
        {"DELETE", "organization/{org}/?", [](Impl& a, Call& c, P p) { a.org_delete(c, p[0]); }},
        {"GET", "organization/{org}/members", [](Impl& a, Call& c, P p) { a.org_members(c, p[0]); }},
        {"GET", "organization/{org}/teams", [](Impl& a, Call& c, P p) { a.org_teams(c, p[0]); }},
        {"GET", "organization/{org}/logs", [](Impl& a, Call& c, P p) { a.org_logs(c, p[0]); }},
        {"PUT", "organization/{org}/team/{team}", [](Impl& a, Call& c, P p) { a.team_put(c, p[0], p[1]); }},
        {"DELETE", "organization/{org}/team/{team}", [](Impl& a, Call& c, P p) { a.team_delete(c, p[0], p[1]); }},
        {"GET", "organization/{org}/team/{team}/members", [](Impl& a, Call& c, P p) { a.team_members(c, p[0], p[1]); }},
        {"PUT", "organization/{org}/team/{team}/members/{member}", [](Impl& a, Call& c, P p) { a.team_member_set(c, p[0], p[1], p[2]); }},
        {"DELETE", "organization/{org}/team/{team}/members/{member}", [](Impl& a, Call& c, P p) { a.team_member_set(c, p[0], p[1], p[2]); }},
        {"GET", "organization/{org}/prototypes", [](Impl& a, Call& c, P p) { a.prototypes(c, p[0]); }},
        {"PUT", "organization/{org}/prototypes/{kind}/{name}", [](Impl& a, Call& c, P p) { a.prototype_set(c, p[0], p[1], p[2]); }},
        {"DELETE", "organization/{org}/prototypes/{kind}/{name}", [](Impl& a, Call& c, P p) { a.prototype_set(c, p[0], p[1], p[2]); }},
        // repositories: {repo+} is namespace/name
        {"POST", "repository/?", [](Impl& a, Call& c, P) { a.create_repo(c); }},
        {"GET", "repository/?", [](Impl& a, Call& c, P) { a.list_repos(c); }},
        {"POST", "repository/{repo+}/tag/{tag}/prime", [](Impl& a, Call& c, P p) { a.prime_tag(c, p[0], p[1]); }},
        {"GET", "repository/{repo+}/tag/", [](Impl& a, Call& c, P p) { a.list_tags(c, p[0]); }},
        {"DELETE", "repository/{repo+}/tag/{tag}", [](Impl& a, Call& c, P p) { a.delete_tag(c, p[0], p[1]); }},
        {"GET", "repository/{repo+}/permissions/", [](Impl& a, Call& c, P p) { a.repo_permissions(c, p[0]); }},
        {"PUT", "repository/{repo+}/permissions/{kind}/{name}", [](Impl& a, Call& c, P p) { a.repo_permission_set(c, p[0], p[1], p[2]); }},
        {"DELETE", "repository/{repo+}/permissions/{kind}/{name}", [](Impl& a, Call& c, P p) { a.repo_permission_set(c, p[0], p[1], p[2]); }},
        {"POST", "repository/{repo+}/changevisibility", [](Impl& a, Call& c, P p) { a.change_visibility(c, p[0]); }},
        {"GET", "repository/{repo+}/logs", [](Impl& a, Call& c, P p) { a.repo_logs(c, p[0]); }},
        {"GET", "repository/{repo+}/?", [](Impl& a, Call& c, P p) { a.repo_get(c, p[0]); }},
        {"PUT", "repository/{repo+}/?", [](Impl& a, Call& c, P p) { a.repo_put(c, p[0]); }},
        {"DELETE", "repository/{repo+}/?", [](Impl& a, Call& c, P p) { a.repo_delete(c, p[0]); }},
    };
    return table;
  }

  // Matches `path` (its segments) against `pattern`; fills `params`.
  static bool match(std::string_view pattern, const std::vector<std::string>& path, Params& params) {
    bool slash_optional = pattern.ends_with("/?");
    if (slash_optional) pattern.remove_suffix(2);
    auto pat = segments(pattern);
    auto try_match = [&](size_t n) {
      params.clear();
      size_t plus = pat.size();
      for (size_t i = 0; i < pat.size(); ++i)
        if (pat[i].ends_with("+}")) plus = i;
      size_t tail = plus == pat.size() ? 0 : pat.size() - plus - 1;
      if (plus == pat.size() ? n != pat.size() : n < pat.size()) return false;
      auto one = [&](const std::string& p, const std::string& s) {
        if (p.starts_with("{")) {
          if (s.empty()) return false;
          params.push_back(s);
          return true;
        }
        return p == s;
      };
      for (size_t i = 0; i < std::min(plus, pat.size()); ++i)
        if (!one(pat[i], path[i])) return false;
      if (plus == pat.size()) return true;
      std::string joined;
      for (size_t i = plus; i < n - tail; ++i) {
        if (path[i].empty()) return false;
        joined += (i > plus ? "/" : "") + path[i];
      }
      params.push_back(joined);
      for (size_t i = 0; i < tail; ++i)
        if (!one(pat[plus + 1 + i], path[n - tail + i])) return false;
      return true;
    };
    if (try_match(path.size())) return true;
    return slash_optional && path.size() > 1 && path.back().empty() && try_match(path.size() - 1);
  }

  void dispatch(Call& c, const std::string& rest) {
    auto seg = segments(rest);
    // Aliases, as Quay has them: the caller's own robots (user/robots/...)
    // and an organization's (organization/{org}/robots/...) are a namespace's.
    if (seg.size() >= 2 && seg[0] == "user" && seg[1] == "robots") {
      seg[0] = "namespace";
      seg[1] = c.who.name;  // empty for an anonymous caller: matches nothing, answered 401 below
      seg.insert(seg.begin() + 2, "robots");
    } else if (seg.size() >= 3 && seg[0] == "organization" && seg[2] == "robots") {
      seg[0] = "namespace";
    }
    Params params;
    bool path_known = false;
    for (const auto& r : routes()) {
      if (!match(r.pattern, seg, params)) continue;
      path_known = true;
      if (r.method != c.method) continue;
      if (!r.anonymous) need_user(c);
      return r.handle(*this, c, params);
    }
    if (path_known) {
      need_user(c);
      throw Error(ErrorCode::Unsupported, "method not allowed");
    }
    need_user(c);
    throw Error(ErrorCode::NotFound, "no such API endpoint", std::string(c.method) + " /api/v1/" + rest);
  }

  void session(Call& c) {  // whether the browser is signed in (200 either way)
    if (c.who.anonymous()) return reply(c, 200, json{{"signed_in", false}});
    no_store(c);
    reply(c, 200, json{{"signed_in", true}, {"username", c.who.name}, {"superuser", c.who.superuser},
                       {"csrf_token", c.csrf}});
  }
  void config(Call& c) {  // what the UI needs before signing in
    reply(c, 200, json{{"external_url", opts.external_url}, {"service", auth.options().service}});
  }
  void superuser_logs(Call& c) {
    if (!c.who.superuser) throw Error(ErrorCode::Denied, "only superusers may read the whole audit log");
    logs(c, "", "", "");
  }

  // ------------------------------------------------------------ superuser: users
  void need_superuser(Call& c) {
    if (!c.who.superuser) throw Error(ErrorCode::Denied, "only superusers may manage users");
  }
  void superuser_list_users(Call& c) {
    need_superuser(c);
    json users = json::array();
    for (const auto& a : acc.accounts(false))
      users.push_back(json{{"username", a.name}, {"email", a.email}, {"superuser", a.superuser},
                           {"enabled", !a.disabled}, {"created", a.created}});
    reply(c, 200, json{{"users", users}});
  }
  void not_themselves(Call& c, const std::string& name) {
    if (name == c.who.name) throw Error(ErrorCode::BadRequest, "superusers cannot disable or delete themselves", name);
  }
  // PUT superuser/users/NAME {"enabled": bool}
  void superuser_set_enabled(Call& c, const std::string& name) {
    need_superuser(c);
    not_themselves(c, name);
    if (!c.body.is_object() || !c.body.contains("enabled") || !c.body["enabled"].is_boolean())
      throw Error(ErrorCode::BadRequest, "give {\"enabled\": true|false}");
    bool enabled = c.body["enabled"].get<bool>();
    auth::set_user_disabled(acc, name, !enabled);
    record(c, enabled ? "user_enable" : "user_disable", "", json{{"user", name}, {"namespace", name}});
    reply(c, 200, json{{"username", name}, {"enabled", enabled}});
  }
  // DELETE superuser/users/NAME (409 while their namespace has repositories)
  void superuser_delete_user(Call& c, const std::string& name) {
    need_superuser(c);
    not_themselves(c, name);
    auth.flush_audit();  // events of the user so far are recorded under their identity
    auth::delete_user(acc, name, [&](std::string_view ns) { return has_repositories(std::string(ns)); });
    record(c, "user_delete", "", json{{"user", name}});
    reply(c, 204, nullptr);
  }

  // ------------------------------------------------------------ sessions
  void signin(Call& c) {
    std::string user = str(c.body, "username"), pw = str(c.body, "password");
    if (user.empty() || pw.empty()) throw Error(ErrorCode::BadRequest, "give username and password");
    Principal p = auth.login(c.req, user, pw, false);
    meta::Session s;
    std::string sid = auth::random_b64(32);
    s.id_hash = auth.key().keyed_hash(sid);
    s.user_id = p.id;
    s.csrf = auth::random_b64(24);
    s.generation = p.generation;
    s.expires = now_s() + auth.options().session_ttl_seconds;
    acc.create_session(s);
    bool secure = c.req.tls || http::base_url(c.req, opts.external_url).starts_with("https://");
    c.res.headers.add("Set-Cookie", "wharf_session=" + sid + "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                                        std::to_string(auth.options().session_ttl_seconds) + (secure ? "; Secure" : ""));
    no_store(c);
    c.who = p;
    record(c, "login", "", json{{"credential", "password"}, {"via", "ui"}, {"namespace", p.name}});
    reply(c, 200, json{{"username", p.name}, {"superuser", p.superuser}, {"csrf_token", s.csrf}});
  }
  void signout(Call& c) {
    if (auto sid = cookie(c.req, "wharf_session")) acc.delete_session(auth.key().keyed_hash(*sid));
    c.res.headers.add("Set-Cookie", "wharf_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    reply(c, 204, nullptr);
  }

  // ------------------------------------------------------------ user
  void current_user(Call& c) {
    auto a = acc.account_by_id(c.who.id);
    json orgs = json::array();
    for (auto& o : acc.organizations_of(meta::SubjectKind::User, c.who.id)) orgs.push_back(o.name);
    json out = {{"username", c.who.name},
                {"email", a ? a->email : ""},
                {"superuser", c.who.superuser},
                {"organizations", orgs}};
    if (c.via_session) {
      out["csrf_token"] = c.csrf;
      no_store(c);
    }
    reply(c, 200, out);
  }
  void change_password(Call& c) {
    std::string cur = str(c.body, "current_password"), next = str(c.body, "new_password");
    auth.login(c.req, c.who.name, cur, false);
    if (next.size() < 8) throw Error(ErrorCode::BadRequest, "the new password must have at least 8 characters");
    acc.set_password(c.who.id, auth::hash_password(next));
    record(c, "password_change", "", json{{"namespace", c.who.name}});
    reply(c, 204, nullptr);
  }
  void list_tokens(Call& c) {
    json out = json::array();
    for (auto& t : acc.api_tokens(c.who.id))
      out.push_back({{"id", t.id}, {"name", t.name}, {"created", t.created}, {"last_used", t.last_used}});
    reply(c, 200, json{{"tokens", out}});
  }
  void create_token(Call& c) {
    std::string name = str(c.body, "name");
    if (name.empty() || name.size() > 100) throw Error(ErrorCode::BadRequest, "give the token a name (1-100 characters)");
    std::string token = "wharf_pat_" + auth::random_b64(32);
    int64_t id = acc.create_api_token({0, c.who.id, name, auth.key().keyed_hash(token), 0, 0});
    record(c, "api_token_create", "", json{{"name", name}, {"namespace", c.who.name}});
    no_store(c);
    reply(c, 201, json{{"id", id}, {"name", name}, {"token", token}});
  }
  void delete_token(Call& c, const std::string& id) {
    int64_t n = 0;
    try {
      n = std::stoll(id);
    } catch (...) {
      throw Error(ErrorCode::NotFound, "no such token", id);
    }
    if (!acc.delete_api_token(c.who.id, n)) throw Error(ErrorCode::NotFound, "no such token", id);
    record(c, "api_token_delete", "", json{{"id", n}, {"namespace", c.who.name}});
    reply(c, 204, nullptr);
  }

  // ------------------------------------------------------------ robots
  // seg[at] is the short name (if any); seg[at+1] an action.
  // Robots of namespace `ns`: every call needs a namespace admin.
  meta::Account robot_scope(Call& c, const std::string& ns) {
    require_ns_admin(c, ns);
    return require_namespace(ns);
  }
  void robots_list(Call& c, const std::string& ns) {
    auto owner = robot_scope(c, ns);
    json out = json::array();
    for (auto& r : acc.robots(owner.id)) {
      json perms = json::array();
      for (auto& p : acc.permissions_of(meta::SubjectKind::Robot, r.id))
        perms.push_back({{"repository", p.repo}, {"role", meta::role_name(p.role)}});
      out.push_back({{"name", r.full_name()}, {"description", r.description}, {"created", r.created},
                     {"permissions", perms}});
    }
    reply(c, 200, json{{"robots", out}});
  }
  void robot_create(Call& c, const std::string& ns, const std::string& short_name) {
    robot_scope(c, ns);
    std::string full = ns + "+" + short_name;
    std::string token = auth::create_robot(acc, auth.key(), full, str(c.body, "description"));
    record(c, "robot_create", "", json{{"robot", full}, {"namespace", ns}});
    no_store(c);
    reply(c, 201, json{{"name", full}, {"token", token}});
  }
  meta::Robot existing_robot(Call& c, const std::string& ns, const std::string& short_name) {
    robot_scope(c, ns);
    std::string full = ns + "+" + short_name;
    auto robot = acc.robot(full);
    if (!robot) throw Error(ErrorCode::NameUnknown, "no such robot account", full);
    return *robot;
  }
  void robot_get(Call& c, const std::string& ns, const std::string& short_name) {
    auto robot = existing_robot(c, ns, short_name);
    std::string full = ns + "+" + short_name;
    std::string token = auth::robot_token(acc, auth.key(), full);
    record(c, "robot_token_view", "", json{{"robot", full}, {"namespace", ns}});
    no_store(c);
    reply(c, 200, json{{"name", full}, {"description", robot.description}, {"created", robot.created}, {"token", token}});
  }
  void robot_delete(Call& c, const std::string& ns, const std::string& short_name) {
    auto robot = existing_robot(c, ns, short_name);
    acc.delete_robot(robot.id);
    record(c, "robot_delete", "", json{{"robot", ns + "+" + short_name}, {"namespace", ns}});
    reply(c, 204, nullptr);
  }
  void robot_regenerate(Call& c, const std::string& ns, const std::string& short_name) {
    existing_robot(c, ns, short_name);
    std::string full = ns + "+" + short_name;
    std::string token = auth::regenerate_robot_token(acc, auth.key(), full);
    record(c, "robot_regenerate", "", json{{"robot", full}, {"namespace", ns}});
    no_store(c);
    reply(c, 200, json{{"name", full}, {"token", token}});
  }
  void robot_permissions(Call& c, const std::string& ns, const std::string& short_name) {
    auto robot = existing_robot(c, ns, short_name);
    json perms = json::array();
    for (auto& p : acc.permissions_of(meta::SubjectKind::Robot, robot.id))
      perms.push_back({{"repository", p.repo}, {"role", meta::role_name(p.role)}});
    reply(c, 200, json{{"permissions", perms}});
  }

  // ------------------------------------------------------------ organizations
  void create_org(Call& c) {
    std::string name = str(c.body, "name");
    // Repositories already under that name (pushed before accounts, or by a
    // superuser) would fall to the new organization's owners: only a
    // superuser may adopt them.
    if (!c.who.superuser && (has_repositories(name) || !acc.list_repo_settings(name, "", 1).empty()))
      throw Error(ErrorCode::Conflict, "repositories named " + name + "/... already exist; ask a superuser to create this organization", name);
    auth::create_org(acc, name, c.who.name, str(c.body, "email"));
    record(c, "org_create", "", json{{"namespace", name}});
    reply(c, 201, json{{"name", name}});
  }

  json team_json(const meta::Team& t) {
    return json{{"name", t.name},
                {"role", meta::team_role_name(t.role)},
                {"description", t.description},
                {"members", acc.team_members(t.id).size()}};
  }

  // An organization and what its caller may do there.
  struct OrgScope {
    meta::Account org;
    bool admin = false;
  };
  OrgScope org_scope(Call& c, const std::string& name) {
    OrgScope o{require_org(name)};
    o.admin = auth.namespace_admin(c.who, o.org.name);
    return o;
  }
  OrgScope org_admin(Call& c, const std::string& name) {
    auto o = org_scope(c, name);
    if (!o.admin) throw Error(ErrorCode::Denied, "only administrators of " + o.org.name + " may do this");
    return o;
  }
  OrgScope org_member_scope(Call& c, const std::string& name) {
    auto o = org_scope(c, name);
    if (!org_member(c, o.org)) throw Error(ErrorCode::NameUnknown, "no such organization", o.org.name);
    return o;
  }
  void org_get(Call& c, const std::string& name) {
    auto o = org_member_scope(c, name);
    json teams = json::array();
    for (auto& t : acc.teams(o.org.id)) teams.push_back(team_json(t));
    reply(c, 200, json{{"name", o.org.name}, {"email", o.org.email}, {"is_admin", o.admin}, {"teams", teams}});
  }
  void org_delete(Call& c, const std::string& name) {
    auto o = org_admin(c, name);
    delete_namespace_repos(o.org.name);
    auth.flush_audit();  // queued events of the organization move out of its namespace with it
    acc.delete_account(o.org.id);
    // Outside the namespace: whoever takes the name next must not read it (superusers do).
    record(c, "org_delete", "", json{{"organization", o.org.name}, {"id", o.org.id}});
    reply(c, 204, nullptr);
  }
  void org_members(Call& c, const std::string& name) {
    auto o = org_admin(c, name);
    std::map<std::string, json> members;
    for (auto& t : acc.teams(o.org.id))
      for (auto& mem : acc.team_members(t.id)) {
        auto& e = members[mem.name];
        if (e.is_null()) e = {{"name", mem.name}, {"kind", meta::subject_kind_name(mem.kind)}, {"teams", json::array()}};
        e["teams"].push_back(t.name);
      }
    json out = json::array();
    for (auto& [_, v] : members) out.push_back(v);
    reply(c, 200, json{{"members", out}});
  }
  void org_teams(Call& c, const std::string& name) {
    auto o = org_member_scope(c, name);
    json teams = json::array();
    for (auto& t : acc.teams(o.org.id)) teams.push_back(team_json(t));
    reply(c, 200, json{{"teams", teams}});
  }
  void org_logs(Call& c, const std::string& name) {
    auto o = org_admin(c, name);
    logs(c, o.org.name, "", o.org.name);
  }
  void team_put(Call& c, const std::string& name, const std::string& tname) {
    auto o = org_admin(c, name);
    auto team = acc.team(o.org.id, tname);
    auto role = meta::parse_team_role(str(c.body, "role", team ? meta::team_role_name(team->role) : "member"));
    if (!role) throw Error(ErrorCode::BadRequest, "team role must be member, creator or admin");
    if (!auth::valid_account_name(tname))
      throw Error(ErrorCode::BadRequest, "a team name is 2-64 characters: lower-case letters, digits, _ and -");
    if (team) {
      team->role = *role;
      if (c.body.contains("description")) team->description = str(c.body, "description");
      acc.update_team(*team);
    } else {
      acc.create_team({0, o.org.id, tname, *role, str(c.body, "description")});
      team = acc.team(o.org.id, tname);
    }
    record(c, "team_change", "", json{{"namespace", o.org.name}, {"team", tname}, {"role", meta::team_role_name(*role)}});
    reply(c, 200, team_json(*team));
  }
  meta::Team existing_team(const OrgScope& o, const std::string& tname) {
    auto team = acc.team(o.org.id, tname);
    if (!team) throw Error(ErrorCode::NameUnknown, "no such team", tname);
    return *team;
  }
  void team_delete(Call& c, const std::string& name, const std::string& tname) {
    auto o = org_scope(c, name);
    auto team = existing_team(o, tname);
    if (!o.admin) throw Error(ErrorCode::Denied, "only administrators of " + o.org.name + " may do this");
    if (team.name == "owners") throw Error(ErrorCode::BadRequest, "the owners team cannot be deleted");
    acc.delete_team(team.id);
    record(c, "team_delete", "", json{{"namespace", o.org.name}, {"team", tname}});
    reply(c, 204, nullptr);
  }
  void team_members(Call& c, const std::string& name, const std::string& tname) {
    auto o = org_scope(c, name);
    auto team = existing_team(o, tname);
    if (!org_member(c, o.org)) throw Error(ErrorCode::NameUnknown, "no such organization", o.org.name);
    json out = json::array();
    for (auto& mem : acc.team_members(team.id)) out.push_back({{"name", mem.name}, {"kind", meta::subject_kind_name(mem.kind)}});
    reply(c, 200, json{{"members", out}});
  }
  // PUT adds `who` (a user, or ns+robot) to the team, DELETE removes them.
  void team_member_set(Call& c, const std::string& name, const std::string& tname, const std::string& who) {
    auto o = org_scope(c, name);
    auto team = existing_team(o, tname);
    if (!o.admin) throw Error(ErrorCode::Denied, "only administrators of " + o.org.name + " may do this");
    bool add = c.method == "PUT";
    auto kind = who.find('+') != std::string::npos ? meta::SubjectKind::Robot : meta::SubjectKind::User;
    int64_t id = auth::subject_id(acc, o.org.name, kind, who);
    if (add) {
      acc.add_team_member(team.id, kind, id);
    } else {
      if (team.name == "owners" && team.role == meta::TeamRole::Admin && acc.team_members(team.id).size() <= 1)
        throw Error(ErrorCode::BadRequest, "an organization keeps at least one owner");
      if (!acc.remove_team_member(team.id, kind, id)) throw Error(ErrorCode::NameUnknown, who + " is not on team " + tname);
    }
    record(c, add ? "team_member_add" : "team_member_remove", "",
           json{{"namespace", o.org.name}, {"team", tname}, {"member", who}});
    reply(c, add ? 200 : 204, json{{"name", who}});
  }
  void prototypes(Call& c, const std::string& name) {
    auto o = org_admin(c, name);
    json out = json::array();
    for (auto& p : acc.default_permissions(o.org.id))
      out.push_back({{"kind", meta::subject_kind_name(p.kind)}, {"name", p.subject}, {"role", meta::role_name(p.role)}});
    reply(c, 200, json{{"prototypes", out}});
  }
  // PUT sets a default permission for new repositories, DELETE removes it.
  void prototype_set(Call& c, const std::string& name, const std::string& kind_name, const std::string& who) {
    auto o = org_admin(c, name);
    auto kind = parse_kind(kind_name);
    int64_t id = auth::subject_id(acc, o.org.name, kind, who);
    Role role = c.method == "PUT" ? parse_role_or_throw(str(c.body, "role")) : Role::None;
    acc.set_default_permission(o.org.id, kind, id, role);
    record(c, "default_permission", "",
           json{{"namespace", o.org.name}, {"kind", kind_name}, {"name", who}, {"role", meta::role_name(role)}});
    reply(c, c.method == "PUT" ? 200 : 204, json{{"kind", kind_name}, {"name", who}, {"role", meta::role_name(role)}});
  }

  bool has_repositories(const std::string& ns) {
    auto first = meta.list_repositories(ns + "/", 1);
    return !first.empty() && first.front().starts_with(ns + "/");
  }

  void delete_namespace_repos(const std::string& ns) {
    std::string after = ns + "/";
    while (true) {
      auto page = meta.list_repositories(after, 500);
      bool done = false;
      for (auto& r : page) {
        if (!r.starts_with(ns + "/")) {
          done = true;
          break;
        }
        meta.delete_repository(r);
        auth.forget_repository(r);
        after = r;
      }
      if (done || page.size() < 500) break;
    }
    for (std::string cursor;;) {  // in pages: a namespace may hold any number of repositories
      auto page = acc.list_repo_settings(ns, cursor, 500);
      for (auto& s : page) {
        acc.delete_repo(s.name);
        auth.forget_repository(s.name);
        cursor = s.name;
      }
      if (page.size() < 500) break;
    }
  }

  // ------------------------------------------------------------ repositories
  json repo_json(const std::string& name, const std::optional<meta::RepoSettings>& s) {
    return repo_json(name, s, meta.tag_summary(name));
  }
  json repo_json(const std::string& name, const std::optional<meta::RepoSettings>& s,
                 const meta::MetadataStore::TagSummary& tags) {
    int64_t last = std::max(s ? s->created : 0, tags.last_updated);
    auto slash = name.find('/');
    return json{{"namespace", name.substr(0, slash)},
                {"name", slash == std::string::npos ? name : name.substr(slash + 1)},
                {"is_public", s && s->is_public},
                {"description", s ? s->description : ""},
                {"last_modified", last},
                {"tag_count", tags.count}};
  }

  void create_repo(Call& c) {
    std::string ns = str(c.body, "namespace"), name = str(c.body, "repository");
    std::string vis = str(c.body, "visibility", "private");
    if (vis != "public" && vis != "private") throw Error(ErrorCode::BadRequest, "visibility must be public or private");
    std::string full = ns + "/" + name;
    if (ns.empty() || name.empty() || !core::valid_repository_name(full))
      throw Error(ErrorCode::NameInvalid,
                  "a repository name is lower-case letters, digits and separators (. _ - /)", full);
    require_namespace(ns);
    if (!auth.can_create(c.who, ns)) throw Error(ErrorCode::Denied, "you may not create repositories in " + ns);
    if (repo_exists(full)) throw Error(ErrorCode::Conflict, "the repository already exists", full);
    auth.create_repository(c.who, full, vis == "public", str(c.body, "description"));
    reply(c, 201, repo_json(full, acc.repo_settings(full)));
  }

  void list_repos(Call& c) {
    auto ns = c.req.param("namespace").value_or("");
    if (ns.empty()) throw Error(ErrorCode::BadRequest, "give ?namespace=NAME");
    auto q = c.req.param("q").value_or("");
    size_t limit = 50;
    if (auto l = c.req.param("limit")) limit = std::clamp<size_t>(std::strtoul(l->c_str(), nullptr, 10), 1, 500);
    std::string after = c.req.param("next_page").value_or("");
    // Names from both sides, merged in order: settings rows (created by the
    // API or a push) and stored repositories (pushed before accounts
    // existed), read in chunks; a chunk's roles are one batch, and the
    // page's tag counts one range query. Queries per page, not per name.
    constexpr size_t kChunk = 500;
    std::string prefix = ns + "/", cursor = std::max(after, prefix);
    std::vector<std::pair<std::string, std::optional<meta::RepoSettings>>> page;
    bool more = false;
    for (bool settings_done = false, repos_done = false; !more && !(settings_done && repos_done);) {
      std::map<std::string, std::optional<meta::RepoSettings>> chunk;
      std::string bound;  // names up to here are complete from both sides; empty: no bound
      if (!settings_done) {
        auto rows = acc.list_repo_settings(ns, cursor, kChunk);
        settings_done = rows.size() < kChunk;
        if (!settings_done) bound = rows.back().name;
        for (auto& s : rows) chunk[s.name] = std::move(s);
      }
      if (!repos_done) {
        auto names = meta.list_repositories(cursor, kChunk);
        repos_done = names.size() < kChunk || !names.back().starts_with(prefix);
        if (!repos_done && (bound.empty() || names.back() < bound)) bound = names.back();
        for (auto& r : names)
          if (r.starts_with(prefix)) chunk.try_emplace(r);
      }
      std::vector<std::string> candidates;
      for (auto& [name, s] : chunk) {
        if (!bound.empty() && name > bound) break;
        if (q.empty() || name.find(q) != std::string::npos) candidates.push_back(name);
      }
      auto roles = auth.roles(c.who, candidates);
      for (size_t i = 0; i < candidates.size(); ++i) {
        if (roles[i] < Role::Read) continue;
        if (page.size() == limit) {
          more = true;
          break;
        }
        page.emplace_back(candidates[i], std::move(chunk[candidates[i]]));
      }
      if (bound.empty()) break;
      cursor = bound;
    }
    auto tags = page.empty() ? std::map<std::string, meta::MetadataStore::TagSummary>{}
                             : meta.tag_summaries(page.front().first, page.back().first);
    json out = json::array();
    for (auto& [name, s] : page) {
      auto t = tags.find(name);
      out.push_back(repo_json(name, s, t == tags.end() ? meta::MetadataStore::TagSummary{} : t->second));
    }
    std::string next = more ? page.back().first : "";
    json res = {{"repositories", out}};
    if (!next.empty()) res["next_page"] = next;
    reply(c, 200, res);
  }

  void prime_tag(Call& c, const std::string& repo, const std::string& tag) {
    require_repo(c, repo, Role::Write);
    if (!squash) throw Error(ErrorCode::Unsupported, "squashed downloads are not available");
    auto img = squash->resolve(repo, tag, c.req.param("platform").value_or(""));
    auto job = squash->acquire(img).job;  // none: another replica builds it
    record(c, "squash_prime", repo, json{{"reference", tag}});
    reply(c, 202, json{{"manifest", img.manifest_digest},
                       {"status", job && job->state() == squash::Job::State::Done ? "cached" : "building"}});
  }
  void repo_permissions(Call& c, const std::string& repo) {
    require_repo(c, repo, Role::Admin);
    json out = json::array();
    for (auto& p : acc.permissions(repo))
      out.push_back({{"kind", meta::subject_kind_name(p.kind)}, {"name", p.subject}, {"role", meta::role_name(p.role)}});
    reply(c, 200, json{{"permissions", out}});
  }
  // PUT grants `who` a role on the repository, DELETE takes it away.
  void repo_permission_set(Call& c, const std::string& repo, const std::string& kind_name, const std::string& who) {
    require_repo(c, repo, Role::Admin);
    auto kind = parse_kind(kind_name);
    Role role = c.method == "PUT" ? parse_role_or_throw(str(c.body, "role")) : Role::None;
    auth::grant(acc, repo, kind, who, role);
    record(c, "permission", repo, json{{"kind", kind_name}, {"name", who}, {"role", meta::role_name(role)}});
    reply(c, c.method == "PUT" ? 200 : 204, json{{"kind", kind_name}, {"name", who}, {"role", meta::role_name(role)}});
  }
  void change_visibility(Call& c, const std::string& repo) {
    require_repo(c, repo, Role::Admin);
    std::string vis = str(c.body, "visibility");
    if (vis != "public" && vis != "private") throw Error(ErrorCode::BadRequest, "visibility must be public or private");
    auto s = settings_or_default(repo);
    s.is_public = vis == "public";
    acc.put_repo_settings(s);
    record(c, "visibility", repo, json{{"visibility", vis}});
    reply(c, 200, repo_json(repo, s));
  }
  void repo_logs(Call& c, const std::string& repo) {
    require_repo(c, repo, Role::Admin);
    logs(c, "", repo, ns_of(repo));
  }
  void repo_get(Call& c, const std::string& repo) {
    Role r = require_repo(c, repo, Role::Read);
    auto s = acc.repo_settings(repo);
    json out = repo_json(repo, s);
    out["auto_prime"] = s && s->auto_prime;
    out["can_write"] = r >= Role::Write;
    out["can_admin"] = r >= Role::Admin;
    out["namespace_admin"] = auth.namespace_admin(c.who, ns_of(repo));
    reply(c, 200, out);
  }
  void repo_put(Call& c, const std::string& repo) {
    require_repo(c, repo, Role::Admin);
    auto s = settings_or_default(repo);
    if (c.body.contains("description")) s.description = str(c.body, "description");
    if (c.body.contains("auto_prime")) {
      if (!c.body["auto_prime"].is_boolean()) throw Error(ErrorCode::BadRequest, "auto_prime must be true or false");
      s.auto_prime = c.body["auto_prime"].get<bool>();
    }
    if (s.description.size() > 64 * 1024) throw Error(ErrorCode::BadRequest, "the description is limited to 64 KiB");
    acc.put_repo_settings(s);
    record(c, "repository_change", repo, json{{"auto_prime", s.auto_prime}});
    auto out = repo_json(repo, s);
    out["auto_prime"] = s.auto_prime;
    reply(c, 200, out);
  }
  void repo_delete(Call& c, const std::string& repo) {
    require_repo(c, repo, Role::Admin);
    auth.flush_audit();  // its events so far are recorded under this repository's identity
    meta.delete_repository(repo);
    acc.delete_repo(repo);
    auth.forget_repository(repo);
    record(c, "repository_delete", repo, json::object());
    reply(c, 204, nullptr);
  }

  meta::RepoSettings settings_or_default(const std::string& repo) {
    if (auto s = acc.repo_settings(repo)) return *s;
    meta::RepoSettings s;
    s.name = repo;
    s.is_public = false;
    s.created = now_s();
    return s;
  }

  void list_tags(Call& c, const std::string& repo) {
    require_repo(c, repo, Role::Read);
    auto tags = meta.tag_records(repo);
    auto filter = c.req.param("filter").value_or("");
    if (!filter.empty())
      std::erase_if(tags, [&](const meta::TagRecord& t) { return t.name.find(filter) == std::string::npos; });
    auto sort = c.req.param("sort").value_or("name");
    if (sort == "-name")
      std::reverse(tags.begin(), tags.end());
    else if (sort == "last_modified" || sort == "-last_modified") {
      bool desc = sort[0] == '-';
      std::stable_sort(tags.begin(), tags.end(), [&](const auto& a, const auto& b) {
        return desc ? a.updated > b.updated : a.updated < b.updated;
      });
    } else if (sort != "name") {
      throw Error(ErrorCode::BadRequest, "sort must be name, -name, last_modified or -last_modified");
    }
    size_t limit = 50, page = 1;
    if (auto l = c.req.param("limit")) limit = std::clamp<size_t>(std::strtoul(l->c_str(), nullptr, 10), 1, 500);
    if (auto p = c.req.param("page")) page = std::max<size_t>(1, std::strtoul(p->c_str(), nullptr, 10));
    json out = json::array();
    size_t start = (page - 1) * limit;
    for (size_t i = start; i < tags.size() && i < start + limit; ++i) out.push_back(tag_json(repo, tags[i]));
    reply(c, 200, json{{"tags", out}, {"page", page}, {"limit", limit}, {"total", tags.size()},
                       {"has_additional", start + limit < tags.size()}});
  }

  json tag_json(const std::string& repo, const meta::TagRecord& t) {
    json out = {{"name", t.name}, {"manifest_digest", t.digest}, {"last_modified", t.updated}};
    auto m = meta.get_manifest(repo, t.digest);
    json platforms = json::array();
    json size = nullptr;
    json annotations = json::object();
    if (m) {
      out["media_type"] = m->media_type;
      auto s = image::summarize(m->body);
      for (auto& p : s.platforms) platforms.push_back(p);
      if (s.size) size = *s.size;
      annotations = std::move(s.annotations);
    }
    out["size"] = size;
    out["platforms"] = platforms;
    out["annotations"] = annotations;
    bool cached = false;
    json labels = json::object();
    if (squash) {
      try {
        auto img = squash->resolve(repo, t.name, "");  // the default platform's image
        cached = squash->cached(img).has_value();
        labels = image::config_labels(img.config);
      } catch (const std::exception&) {  // an artifact, a missing platform: not squashable, so not cached
      }
    }
    out["labels"] = labels;
    out["squash_cached"] = cached;
    return out;
  }

  void delete_tag(Call& c, const std::string& repo, const std::string& tag) {
    require_repo(c, repo, Role::Write);
    if (!meta.delete_tag(repo, tag)) throw Error(ErrorCode::NotFound, "no such tag", tag);
    record(c, "delete", repo, json{{"reference", tag}, {"via", "api"}});
    reply(c, 204, nullptr);
  }

  // ------------------------------------------------------------ audit log
  void logs(Call& c, const std::string& ns, const std::string& repo, const std::string& label) {
    auth.flush_audit();
    meta::AuditQuery q;
    q.ns = ns;
    q.repo = repo;
    if (auto b = c.req.param("before")) q.before_id = std::strtoll(b->c_str(), nullptr, 10);
    if (auto l = c.req.param("limit")) q.limit = std::clamp<size_t>(std::strtoul(l->c_str(), nullptr, 10), 1, 1000);
    json out = json::array();
    auto events = acc.audit(q);
    for (auto& e : events) out.push_back(audit_json(e));
    json res = {{"logs", out}, {"scope", label}};
    if (events.size() == q.limit) res["next_before"] = events.back().id;
    reply(c, 200, res);
  }
};

Api::Api(Options o, auth::Auth& auth, meta::MetadataStore& meta, squash::Service* squash)
    : impl_(std::make_unique<Impl>(std::move(o), auth, meta, squash)) {}
Api::~Api() = default;

asio::awaitable<void> Api::handle(http::Exchange& ex) {
  ex.route = "api";
  const auto& req = ex.request();
  Impl::Call c{req, req.method, json::object(), Principal{}, false, "", http::Response{}};
  std::optional<Error> err;
  try {
    if (req.method == "POST" || req.method == "PUT" || req.method == "DELETE") {
      std::string body;
      std::vector<char> buf(16 * 1024);
      while (size_t n = co_await ex.read_body(buf)) {
        if (body.size() + n > (1u << 20)) throw Error(ErrorCode::BadRequest, "request body larger than 1 MiB");
        body.append(buf.data(), n);
      }
      if (!body.empty()) {
        c.body = json::parse(body, nullptr, false);
        if (!c.body.is_object()) throw Error(ErrorCode::BadRequest, "the request body must be a JSON object");
      }
    }
    std::string rest = req.path.substr(std::string_view("/api/v1/").size());
    co_await http::run_on(impl_->opts.offload, [&] {
      impl_->authenticate(c);
      impl_->check_state_change(c);
      if (impl_->opts.read_only && req.method != "GET" && req.method != "HEAD" && rest != "signin" &&
          rest != "signout")
        throw Error(ErrorCode::Unsupported,
                    "this registry is read-only for maintenance (read_only: true): nothing can be changed now");
      impl_->dispatch(c, rest);
    });
  } catch (const Error& e) {
    err = e;
  } catch (const boost::system::system_error&) {
    throw;
  } catch (const std::exception& e) {
    spdlog::error("api {} {}: {}", req.method, req.path, e.what());
    err = Error(ErrorCode::Internal, "internal server error");
  }
  if (err) c.res = http::error_response(*err);
  // JSON is never to be sniffed into something a browser would render or run.
  c.res.headers.set("X-Content-Type-Options", "nosniff");
  co_await ex.send(c.res);
}

}  // namespace wharf::api
