// api/api.h — the management REST API under /api/v1/ (JSON, Quay-like paths):
// sign-in sessions, the current user and personal API tokens, organizations
// with teams and default permissions, robot accounts, repositories (create,
// list, settings, visibility, delete), tags, repository permissions and the
// audit log. The route table is in api.cc (and README.md beside it).
//
// Contracts:
// - Callers: Basic user:password, `Bearer wharf_pat_...` personal API tokens,
//   or the `wharf_session` cookie from POST /api/v1/signin. Robots and
//   registry JWTs are refused. A 401 never carries `WWW-Authenticate: Basic`
//   (browsers would cache and replay the credentials).
// - Cookie-authenticated state changes need `X-CSRF-Token` (the session's
//   token); any state change whose `Origin` or `Sec-Fetch-Site` shows another
//   site is refused.
// - A repository the caller cannot read is a 404 whether it exists or not; a
//   reader asking to change it gets 403.
// - Responses carrying a token are `Cache-Control: no-store`; errors are the
//   registry's JSON error format with a message a person can act on.
#pragma once

#include <boost/asio/awaitable.hpp>

#include "auth/auth.h"
#include "http/offload.h"
#include "http/server.h"
#include "meta/account_store.h"
#include "meta/metadata_store.h"
#include "squash/service.h"

namespace wharf::api {

struct Options {
  std::string external_url;
  // Where each request's store calls run, off the I/O threads; null: inline.
  http::Offload* offload = nullptr;
  // read_only: every change but signing in and out is refused (405).
  bool read_only = false;
};

class Api {
 public:
  // `squash` may be null (tags then report squash_cached: false).
  Api(Options o, auth::Auth& auth, meta::MetadataStore& meta, squash::Service* squash);
  ~Api();
  // Answers a request whose path starts with /api/v1/.
  boost::asio::awaitable<void> handle(http::Exchange& ex);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wharf::api
