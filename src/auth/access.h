// auth/access.h — what the protocol handlers (/v2/, /c1/squash) ask of
// access control. Implemented by auth::Auth; a null AccessControl means an
// open registry (auth.enabled: false).
//
// Contracts:
// - /v2/ accepts only registry tokens (Bearer JWTs from /v2/auth). A request
//   without one, or whose token lacks the action, gets core::Error
//   Unauthorized (401) carrying `WWW-Authenticate: Bearer realm=..,
//   service=.., scope="repository:NAME:ACTIONS"` (plus
//   error="insufficient_scope" when a token was presented), whether or not
//   the repository exists.
// - Direct endpoints (/c1/squash) accept Basic (user:password, robot:token)
//   and Bearer registry tokens: no or bad credentials → 401, a repository the
//   caller cannot read → 404 NAME_UNKNOWN (existing or not), read but not the
//   action → 403 DENIED.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace wharf::auth {

class AccessControl {
 public:
  virtual ~AccessControl() = default;

  // /v2/: throws unless the request's token grants `action` ("pull", "push",
  // "delete") on `repo`; an empty `repo` asks only for a valid token (GET /v2/).
  // Decides only: writes nothing.
  virtual void require(const http::Request& req, std::string_view repo, std::string_view action) = 0;
  // After require() granted a push on `repo`: a repository that has no
  // settings yet gets them (private by default, the organization's default
  // permissions applied), once.
  virtual void prepare_push(const http::Request& req, std::string_view repo) = 0;
  // Which repositories the caller of an already-authorized /v2/ request may
  // read (its token grants pull, or its role does): for filtering _catalog
  // and choosing mount sources. Authenticates once; the predicate serves this
  // request only. Nobody (a missing or invalid token) reads nothing. The
  // predicate answers for many repositories at once (names sorted; one
  // answer each), with a few queries per namespace, not per repository.
  using Readable = std::function<std::vector<bool>(const std::vector<std::string>& sorted_names)>;
  virtual Readable reader(const http::Request& req) = 0;

  // Who was let in by require_direct().
  struct Caller {
    std::string name;  // "" for anonymous
    std::string kind;  // "user", "robot", "anonymous"
  };
  // Direct endpoints: checks the credentials and the permission (see above).
  virtual Caller require_direct(const http::Request& req, std::string_view repo, std::string_view action) = 0;

  // Records an audit event on behalf of `caller` (from require_direct), or,
  // when null, of the request's registry token holder.
  virtual void audit(const http::Request& req, const Caller* caller, std::string_view action, std::string_view repo,
                     const nlohmann::json& detail) = 0;
};

}  // namespace wharf::auth
