// `wharf serve`: wires the configuration, the stores, the registry, the
// squash service, auth and the management API into one HTTP server.
#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>

#include "api/api.h"
#include "auth/auth.h"
#include "cli/accounts.h"
#include "cli/commands.h"
#include "cli/endpoints.h"
#include "cli/log.h"
#include "cli/stores.h"
#include "cluster/peer.h"
#include "cluster/periodic.h"
#include "gc/collector.h"
#include "core/metrics.h"
#include "http/error_response.h"
#include "http/server.h"
#include "registry/registry.h"
#include "registry/squash_endpoint.h"
#include "squash/policy.h"
#include "squash/service.h"
#include "web/web.h"

namespace wharf::cli {

namespace asio = boost::asio;

namespace {

void raise_open_file_limit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// The HTTP server's options from the configuration: http/ knows nothing of
// wharf's configuration, so its sections are mapped here, in one place.
http::ServerOptions server_options(const core::Config& cfg) {
  http::ServerOptions so;
  so.listen = cfg.listen;
  so.tls_cert = cfg.tls.cert;
  so.tls_key = cfg.tls.key;
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  so.threads = cfg.threads > 0 ? cfg.threads : static_cast<int>(std::max(4u, 2 * cores));
  so.header_timeout = std::chrono::seconds(cfg.timeouts.header_seconds);
  so.body_timeout = std::chrono::seconds(cfg.timeouts.body_seconds);
  so.send_timeout = std::chrono::seconds(cfg.timeouts.send_seconds);
  so.idle_timeout = std::chrono::seconds(cfg.timeouts.idle_seconds);
  so.max_connections = cfg.limits.max_connections;
  if (!so.max_connections) {
    // Each connection may hold a file too (a blob, a squash entry): half the descriptors are left for those.
    struct rlimit rl;
    so.max_connections = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur / 2 : 16384;
  }
  so.max_connections_per_client = cfg.limits.max_connections_per_client;
  so.drain_timeout = std::chrono::seconds(cfg.timeouts.drain_seconds);
  return so;
}

// Replicas share nothing but PostgreSQL and the object store: a replica on
// the embedded backends would silently serve its own registry.
void check_cluster(const core::Config& cfg) {
  if (cfg.cluster.advertise.empty()) {
    if (!cfg.cluster.replica_id.empty() || !cfg.cluster.secret_file.empty())
      throw std::runtime_error("cluster: replica_id or secret_file is set without cluster.advertise (the host:port "
                               "other replicas reach this one at); set it to run as a replica");
    return;
  }
  std::string embedded;
  if (cfg.metadata.driver == "sqlite") embedded = "metadata.driver is sqlite";
  if (cfg.storage.driver == "filesystem")
    embedded += (embedded.empty() ? "" : " and ") + std::string("storage.driver is filesystem");
  if (!embedded.empty())
    throw std::runtime_error("cluster.advertise is set (this process is to be a replica) but " + embedded +
                             ": replicas share nothing but a PostgreSQL database and an S3 bucket; set "
                             "metadata.driver: postgres and storage.driver: s3 (docs/deployment.md)");
  if (cfg.cluster.secret_file.empty())
    throw std::runtime_error("cluster.advertise is set but cluster.secret_file is not: replicas sign their requests "
                             "to each other with a secret they share (e.g. openssl rand -hex 32 > FILE)");
  if (cfg.cluster.advertise.find(':') == std::string::npos || cfg.cluster.advertise.find('/') != std::string::npos)
    throw std::runtime_error("cluster.advertise: give host:port (as the other replicas reach this one), not \"" +
                             cfg.cluster.advertise + "\"");
}

}  // namespace

int serve(core::Config cfg) {
  raise_open_file_limit();
  check_cluster(cfg);
  const bool replica = !cfg.cluster.advertise.empty();
  const std::string replica_id = cfg.cluster.replica_id.empty() ? cfg.cluster.advertise : cfg.cluster.replica_id;
  std::optional<cluster::PeerAuth> peers;
  if (replica) peers = cluster::PeerAuth::from_file(cfg.cluster.secret_file);
  auto blobs = open_blob_store(cfg);
  auto meta = open_metadata_store(cfg, true);

  // Store calls of request handlers run here, off the I/O threads, when a
  // backend is remote (a network round trip each); inline on the embedded ones.
  bool remote = cfg.storage.driver != "filesystem" || cfg.metadata.driver != "sqlite";
  http::Offload offload(cfg.backend_threads > 0 ? static_cast<unsigned>(cfg.backend_threads) : remote ? 32u : 0u);
  http::Offload* pool = offload.enabled() ? &offload : nullptr;

  squash::ServiceOptions sq = squash::service_options(cfg.squash, cfg.data_dir);
  sq.replica = replica_id;
  sq.advertise = cfg.cluster.advertise;
  squash::Service squasher(sq, *blobs, *meta);
  AccountsEnv acc;
  std::unique_ptr<auth::Auth> authz;
  if (cfg.auth.enabled) {
    acc = open_accounts(cfg, Keys::Create);
    ensure_admin(*acc.store);
    auth::Options ao{cfg.auth, cfg.external_url, pool};
    authz = std::make_unique<auth::Auth>(ao, *acc.store, *meta, *acc.key, *acc.signer);
  }
  registry::SquashEndpoint squash_endpoint(
      {cfg.squash.repo_host, cfg.external_url, authz.get(), pool, cfg.read_only, peers ? &*peers : nullptr}, squasher);
  std::unique_ptr<api::Api> mgmt;
  if (authz)
    mgmt = std::make_unique<api::Api>(api::Options{cfg.external_url, pool, cfg.read_only}, *authz, *meta, &squasher);

  registry::Options ro;
  ro.on_manifest_deleted = [&squasher](const std::string& d) { squasher.forget_manifest(d); };
  // Layers are indexed while they are pushed, and what that missed once the manifest is.
  struct PushIndexing : registry::UploadObserver {
    squash::Service& s;
    explicit PushIndexing(squash::Service& sv) : s(sv) {}
    void appended(const std::string& id, uint64_t off, const char* p, size_t n) override {
      s.upload_appended(id, off, p, n);
    }
    void committed(const std::string& id, const std::string& d, uint64_t size) override {
      s.upload_committed(id, d, size);
    }
    void dropped(const std::string& id) override { s.upload_dropped(id); }
  } push_indexing(squasher);
  if (cfg.squash.index_on_push) {
    ro.upload_observer = &push_indexing;
    ro.on_manifest_pushed = [&squasher](const std::string& repo, const std::string& digest) {
      squasher.index_in_background(repo, digest);
    };
  }
  ro.on_tag_pushed = [&squasher, &cfg, &acc](const std::string& repo, const std::string& tag) {
    bool per_repo = false;
    if (acc.store)
      if (auto s = acc.store->repo_settings(repo)) per_repo = s->auto_prime;
    if (!squash::auto_prime_wanted(cfg.squash.auto_prime, repo, per_repo)) return;
    try {
      squasher.acquire(squasher.resolve(repo, tag, ""));  // builds in the background (or another replica does)
      core::Metrics::global().add("wharf_squash_auto_primes_total");
    } catch (const std::exception& e) {  // an artifact, a full queue...: the push itself succeeded
      say(spdlog::level::info, fmt::format("auto-prime of {}:{} skipped: {}", repo, tag, e.what()));
    }
  };
  ro.access = authz.get();
  ro.delete_ = cfg.delete_;
  ro.read_only = cfg.read_only;
  ro.manifests = cfg.manifests;
  ro.uploads = cfg.uploads;
  ro.limits = cfg.limits;
  ro.external_url = cfg.external_url;
  ro.offload = pool;
  registry::Registry reg(ro, *blobs, *meta);

  http::ServerOptions so = server_options(cfg);
  so.error_response = http::server_error_response;
  so.trusted_proxies = cfg.trusted_proxies;
  so.on_complete = [&cfg](const http::Exchange& ex, std::chrono::steady_clock::duration d) {
    double secs = std::chrono::duration<double>(d).count();
    core::Metrics::global().request(ex.route, ex.request().method, ex.status, secs, ex.bytes_in, ex.bytes_out);
    if (cfg.log.requests) log_request(cfg, ex, secs);
  };

  auto handler = [&](http::Exchange& ex) -> asio::awaitable<void> {
    const auto& path = ex.request().path;
    if (authz && path == "/v2/auth") co_return co_await authz->handle_token(ex);
    if (path == "/v2" || path.starts_with("/v2/")) {
      ex.common_headers.add("Docker-Distribution-API-Version", "registry/2.0");
      co_return co_await reg.handle(ex);
    }
    if (path.starts_with("/c1/squash/")) co_return co_await squash_endpoint.handle(ex);
    if (mgmt && path.starts_with("/api/v1/")) co_return co_await mgmt->handle(ex);
    if (mgmt && web::is_ui_path(path)) co_return co_await web::handle(ex);
    co_await process_endpoint(ex, *meta, *blobs, pool);
  };

  http::Server server(so, handler);
  server.bind();
  // Periodic work, once in the cluster (on the embedded stores: here).
  cluster::Periodic periodic(*meta, replica_id.empty() ? "local" : replica_id);
  if (acc.store)
    periodic.add("purge-sessions", std::chrono::seconds(600), [&acc, &cfg] {
      try {
        int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
        acc.store->purge_sessions(now);
        // failed sign-ins that no longer count, blocks that ended
        acc.store->purge_login_failures(now - std::max(cfg.auth.failed_login_window_seconds, 1));
      } catch (const std::exception& e) {
        say(spdlog::level::warn, std::string("purging expired sessions and old failed logins failed: ") + e.what());
      }
    });
  periodic.add("expire-uploads", std::chrono::seconds(std::max(1, cfg.uploads.purge_interval_seconds)), [&reg] {
    try {
      if (size_t n = reg.purge_expired_uploads()) say(spdlog::level::info, fmt::format("removed {} expired upload sessions", n));
    } catch (const std::exception& e) {
      say(spdlog::level::warn, std::string("expiring abandoned uploads failed: ") + e.what());
    }
  });
  if (cfg.gc.interval_seconds > 0 && !cfg.read_only)
    periodic.add("gc", std::chrono::seconds(cfg.gc.interval_seconds), [&] {
      try {
        gc::Options o;
        o.grace_seconds = int64_t{std::max(cfg.gc.grace_minutes, 0)} * 60;
        auto r = gc::collect(*blobs, *meta, o);
        say(spdlog::level::info, fmt::format("gc: reviewed {} blobs ({} bytes), removed {} ({} bytes), kept {}",
                                             r.reviewed, r.reviewed_bytes, r.removed, r.removed_bytes, r.kept));
      } catch (const std::exception& e) {
        say(spdlog::level::warn, std::string("gc failed (what it removed stays removed; the next run goes on): ") +
                                     e.what());
      }
    });
  periodic.start();
  if (replica)
    say(spdlog::level::info, fmt::format("replica {} (advertised to the other replicas as {})", replica_id,
                                         cfg.cluster.advertise));
  std::string scheme = cfg.tls.cert.empty() ? "http" : "https";
  say(spdlog::level::info, fmt::format("wharf listening on {}://{} (data in {}, {} threads)", scheme, cfg.listen,
                                       std::filesystem::absolute(cfg.data_dir).string(), so.threads));
  if (cfg.read_only)
    say(spdlog::level::warn, "READ-ONLY (read_only: true): pushes, deletes, squash builds and account changes are refused");
  if (!authz) {
    say(spdlog::level::warn,
        fmt::format("NO AUTHENTICATION (auth.enabled: false): anyone who can reach {} can push, pull and delete",
                    cfg.listen));
    std::cout << "wharf is ready: " << scheme << "://" << cfg.listen << "/v2/  (open registry, no login needed)"
              << std::endl;
  } else {
    std::cout << "wharf is ready: " << scheme << "://" << cfg.listen
              << "/  (sign in as a user; docker login " << cfg.listen << ")" << std::endl;
  }
  server.run();
  say(spdlog::level::info, "wharf stopped");
  return 0;
}

}  // namespace wharf::cli
