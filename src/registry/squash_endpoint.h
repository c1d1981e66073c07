// registry/squash_endpoint.h — the HTTP face of squashed downloads:
//   GET|HEAD /c1/squash/<name>/<tag>        GET|HEAD /c1/squash/<name>@<digest>
//   POST     /c1/squash/<name>/<tag>/prime  (build the cache entry ahead of use)
// with ?platform=os/arch[/variant]. The body is a `docker save` archive with
// an exact Content-Length from the first request on; uncached images stream
// while they are built (squash::Service), cached ones are served with
// sendfile and support Range. Errors before the first body byte are JSON in
// the registry's error format; a build that fails later truncates the body.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>

#include "auth/access.h"
#include "cluster/peer.h"
#include "http/offload.h"
#include "http/server.h"
#include "squash/service.h"

namespace wharf::registry {

struct SquashOptions {
  std::string repo_host;     // host for RepoTags; empty: from the request
  std::string external_url;  // like Registry's
  // Read permission for GET/HEAD, write for prime; null: open registry.
  auth::AccessControl* access = nullptr;
  // Where store calls run (resolving the image, the access check, reads of
  // a cached entry from an object store), off the I/O threads; null: inline.
  http::Offload* offload = nullptr;
  // read_only: cached entries are served; builds (a prime, an uncached GET)
  // are refused, as they would write the cache.
  bool read_only = false;
  // Replicas: the shared secret that signs relayed requests (null: this
  // process neither relays nor accepts relayed requests). A GET for an
  // image another replica is building is relayed from that replica's
  // advertised address (its stream, as it is built); a relayed request is
  // served as its client's replica asked (authorized and audited there) and
  // never relayed again.
  const cluster::PeerAuth* peers = nullptr;
};

class SquashEndpoint {
 public:
  SquashEndpoint(SquashOptions opts, squash::Service& service) : opts_(std::move(opts)), svc_(service) {}
  // Answers a request whose path starts with /c1/squash/.
  boost::asio::awaitable<void> handle(http::Exchange& ex);

 private:
  // GET or HEAD of an image: resolves it and sets the headers every mode
  // shares, then answers in one of three modes.
  // `relay_host`: set for a request relayed by another replica, the RepoTags
  // host that replica worked out for its client.
  boost::asio::awaitable<void> serve(http::Exchange& ex, const std::string& name, const std::string& ref,
                                     bool by_digest, const std::optional<std::string>& relay_host);
  struct Reply;
  // HEAD: the exact length, planned without building when not cached.
  boost::asio::awaitable<void> serve_head(http::Exchange& ex, Reply& rep);
  // A cache hit: the whole representation from segments, with Range. False
  // (nothing sent) when gzip is wanted and its cached piece is not there yet.
  boost::asio::awaitable<bool> serve_cached(http::Exchange& ex, Reply& rep, squash::Job& job);
  // Following a build as it grows (or gzip compressed on the fly).
  boost::asio::awaitable<void> serve_following(http::Exchange& ex, Reply& rep, const std::shared_ptr<squash::Job>& job);
  // Another replica builds the image (`builder`, its advertised address):
  // its answer passed on as it arrives. False when it could not be reached
  // or answered that it does not build it (nothing sent: the caller asks for
  // the lease again); a failure after the first byte truncates the body.
  boost::asio::awaitable<bool> relay(http::Exchange& ex, const std::string& builder, const std::string& host);
  SquashOptions opts_;
  squash::Service& svc_;
};

}  // namespace wharf::registry
