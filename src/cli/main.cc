// cli/main.cc — the `wharf` command: `wharf serve` runs the registry.
// Wires the parts together: config -> stores -> registry -> HTTP server, plus
// the small endpoints that belong to the process (health, metrics).
#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <thread>

#include "api/api.h"
#include "auth/auth.h"
#include "auth/crypto.h"
#include "auth/jwt.h"
#include "auth/manage.h"
#include "core/clock.h"
#include "cli/stores.h"
#include "core/config.h"
#include "core/error.h"
#include "core/metrics.h"
#include "http/error_response.h"
#include "http/server.h"
#include "meta/account_store.h"
#include "meta/metadata_store.h"
#include "registry/registry.h"
#include "registry/squash_endpoint.h"
#include "squash/offline.h"
#include "squash/service.h"
#include "storage/blob_store.h"
#include "web/web.h"

namespace asio = boost::asio;
using namespace wharf;

namespace {

void raise_open_file_limit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Process messages (not request lines) in the configured format.
bool g_json_logs = false;
void say(spdlog::level::level_enum lvl, const std::string& msg) {
  if (g_json_logs)
    spdlog::log(lvl, "{}", nlohmann::json{{"level", spdlog::level::to_string_view(lvl).data()}, {"msg", msg}}.dump());
  else
    spdlog::log(lvl, "{}", msg);
}

void log_request(const core::Config& cfg, const http::Exchange& ex, double secs) {
  const auto& rq = ex.request();
  if (cfg.log.format == "json") {
    nlohmann::json j = {{"time", std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()},
                        {"remote", rq.remote_addr}, {"method", rq.method}, {"target", rq.target},
                        {"route", ex.route},        {"status", ex.status}, {"bytes_in", ex.bytes_in},
                        {"bytes_out", ex.bytes_out}, {"duration_ms", secs * 1000.0}};
    spdlog::info("{}", j.dump());
  } else {
    spdlog::info("{} \"{} {}\" {} in={} out={} {:.3f}ms", rq.remote_addr, rq.method, rq.target, ex.status,
                 ex.bytes_in, ex.bytes_out, secs * 1000.0);
  }
}

squash::ServiceOptions squash_options(const core::Config& cfg) {
  squash::ServiceOptions sq;
  sq.default_platform = cfg.squash.default_platform;
  sq.workers = cfg.squash.workers > 0 ? cfg.squash.workers : std::max(1u, std::thread::hardware_concurrency());
  sq.queue_max = static_cast<size_t>(cfg.squash.queue_max);
  sq.cache_max_bytes = cfg.squash.cache_max_bytes;
  sq.limits.max_uncompressed_bytes = cfg.squash.limits.max_uncompressed_bytes;
  sq.limits.max_entries = cfg.squash.limits.max_entries;
  sq.limits.max_pax_bytes = cfg.squash.limits.max_pax_bytes;
  sq.limits.max_path_bytes = cfg.squash.limits.max_path_bytes;
  sq.limits.zstd_window_log_max = cfg.squash.limits.zstd_window_log_max;
  sq.spill_dir = cfg.data_dir + "/uploads";  // on the data disk, not a small /tmp
  sq.checkpoint_spacing = cfg.squash.inflate_checkpoint_bytes;
  sq.memory_budget_bytes = cfg.squash.memory_budget_bytes;
  if (!sq.memory_budget_bytes) {
    uint64_t ram = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    sq.memory_budget_bytes = std::max<uint64_t>(1ull << 30, ram / 4);
  }
  return sq;
}

// `wharf squash prime NAME:TAG|NAME@DIGEST`: builds the cache entry in this
// process against the same stores the server uses (safe while it runs).
int squash_prime(const core::Config& cfg, const std::string& ref, const std::string& platform) {
  auto at = ref.find('@');
  auto colon = ref.rfind(':');
  std::string name, tag;
  if (at != std::string::npos) {
    name = ref.substr(0, at);
    tag = ref.substr(at + 1);
  } else if (colon != std::string::npos && ref.find('/', colon) == std::string::npos) {
    name = ref.substr(0, colon);
    tag = ref.substr(colon + 1);
  } else {
    throw std::runtime_error("give the image as NAME:TAG or NAME@DIGEST");
  }
  auto blobs = cli::open_blob_store(cfg);
  auto meta = cli::open_metadata_store(cfg, false);
  squash::Service svc(squash_options(cfg), *blobs, *meta);
  auto img = svc.resolve(name, tag, platform);
  auto job = svc.acquire(img);
  while (job->state() != squash::Job::State::Done && job->state() != squash::Job::State::Failed)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (job->state() == squash::Job::State::Failed) std::rethrow_exception(job->failure());
  std::cout << "primed " << name << ":" << tag << " (" << img.manifest_digest << "): layer " << job->layer_size()
            << " bytes" << std::endl;
  return 0;
}

// `wharf squash --from SRC --to FILE|-`
int squash_offline_cmd(const core::Config& cfg, const std::string& from, const std::string& to,
                       const std::string& platform, const std::string& tag) {
  squash::OfflineOptions o;
  o.from = from;
  o.platform = platform;
  o.repo_tag = tag;
  o.limits = squash_options(cfg).limits;
  int fd = 1;
  std::string tmp;  // a regular file is written beside its name, then renamed over it
  struct stat st;
  if (to != "-" && ::stat(to.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    // A device or a fifo (--to /dev/null): written in place. Renaming a file
    // over it would replace /dev/null with a regular file.
    fd = ::open(to.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot open " + to);
  } else if (to != "-") {
    tmp = to + ".partial";
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot create " + tmp);
  } else if (isatty(1)) {
    throw std::runtime_error("refusing to write a tar archive to a terminal: use --to FILE or a pipe");
  }
  bool tty = isatty(2);
  auto t0 = std::chrono::steady_clock::now();
  auto last = t0;
  auto progress = [&](uint64_t done, uint64_t total) {
    if (!tty) return;
    auto now = std::chrono::steady_clock::now();
    if (done < total && now - last < std::chrono::milliseconds(200)) return;
    last = now;
    double secs = std::max(1e-3, std::chrono::duration<double>(now - t0).count());
    double rate = done / secs;
    double eta = rate > 0 ? (total - done) / rate : 0;
    int width = 30, fill = total ? static_cast<int>(width * done / total) : width;
    std::fprintf(stderr, "\r[%s%s] %6.1f/%6.1f MiB %7.1f MiB/s ETA %4.0fs", std::string(fill, '#').c_str(),
                 std::string(width - fill, ' ').c_str(), done / 1048576.0, total / 1048576.0, rate / 1048576.0, eta);
    if (done >= total) std::fprintf(stderr, "\n");
  };
  try {
    squash::squash_offline(o, fd, progress);
  } catch (...) {
    if (fd != 1) ::close(fd);
    if (!tmp.empty()) ::unlink(tmp.c_str());
    throw;
  }
  if (!tmp.empty()) {
    if (::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), to.c_str()) != 0)
      throw std::runtime_error("cannot write " + to);
  } else if (fd != 1 && ::close(fd) != 0) {
    throw std::runtime_error("cannot write " + to);
  }
  return 0;
}

// The accounts side of the process: the store and the two server keys.
struct AccountsEnv {
  std::unique_ptr<meta::AccountStore> store;
  std::unique_ptr<auth::ServerKey> key;
  std::unique_ptr<auth::TokenSigner> signer;
};

std::string key_dir(const core::Config& cfg) {
  if (!cfg.auth.key_dir.empty()) return cfg.auth.key_dir;
  if (const char* d = std::getenv("WHARF_KEY_DIR"); d && *d) return d;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.config/wharf";
}

// Opens the account store and loads (or, for the server, creates) the keys.
// Keys must not live inside the data directory: whoever copies the data must
// not get the key that decrypts robot tokens with it.
// `keys`: the server creates missing keys; admin commands that need them
// (robot tokens) require the server's keys; the others load none.
enum class Keys { Create, Require, None };
AccountsEnv open_accounts(const core::Config& cfg, Keys keys) {
  bool create_keys = keys == Keys::Create;
  auth::crypto_init();
  std::filesystem::create_directories(cfg.data_dir);
  AccountsEnv env;
  std::string dir = key_dir(cfg);
  std::string secret_file = cfg.auth.secret_key_file.empty() ? dir + "/secret.key" : cfg.auth.secret_key_file;
  std::string token_file = cfg.auth.token_key_file.empty() ? dir + "/token-key.pem" : cfg.auth.token_key_file;
  auto data = std::filesystem::weakly_canonical(cfg.data_dir).string() + "/";
  for (const auto& f : {secret_file, token_file})
    if (std::filesystem::weakly_canonical(f).string().starts_with(data))
      throw std::runtime_error("key file " + f + " is inside the data directory; keep keys outside it (auth.key_dir)");
  env.store = cli::open_account_store(cfg);
  if (keys == Keys::None) return env;
  std::array<unsigned char, 32> k;
  if (const char* hex = std::getenv("WHARF_SECRET_KEY"); hex && *hex) {
    k = auth::parse_hex_key(hex, "WHARF_SECRET_KEY");
  } else {
    bool created = false;
    k = auth::load_or_create_key_file(secret_file, create_keys, &created);
    if (created) say(spdlog::level::warn, "generated a new robot-token key at " + secret_file + " (back it up)");
  }
  bool created = false;
  std::string pem = auth::load_or_create_ec_key(token_file, create_keys, &created);
  if (created) say(spdlog::level::info, "generated a new token signing key at " + token_file);
  env.key = std::make_unique<auth::ServerKey>(k);
  env.signer = std::make_unique<auth::TokenSigner>(pem, cfg.auth.issuer);
  return env;
}

// Admin commands leave the same audit trail as the API; the actor is the
// operating-system user that ran the command.
void cli_audit(meta::AccountStore& store, const std::string& action, const std::string& repo,
               const std::string& ns, nlohmann::json detail) {
  meta::AuditEvent e;
  e.time_ms = core::unix_millis();
  const char* user = std::getenv("USER");
  e.actor = std::string("cli:") + (user && *user ? user : "?");
  e.actor_kind = "cli";
  e.action = action;
  e.repo = repo;
  e.ns = !ns.empty() ? ns : repo.substr(0, repo.find('/'));
  e.detail = detail.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  store.append_audit({e});
}

// First start: the initial superuser, its password printed once.
void ensure_admin(meta::AccountStore& store) {
  if (store.user_count() > 0) return;
  const char* u = std::getenv("WHARF_ADMIN_USER");
  const char* p = std::getenv("WHARF_ADMIN_PASSWORD");
  std::string user = u && *u ? u : "admin";
  std::string password = p && *p ? p : auth::random_token(24);
  auth::create_user(store, user, "", password, true);
  if (p && *p)
    std::cout << "created superuser " << user << " with the password from WHARF_ADMIN_PASSWORD" << std::endl;
  else
    std::cout << "created superuser " << user << " with password " << password
              << "  (shown once: store it now; change it in the UI or with wharf user passwd)" << std::endl;
}

// `wharf gc`: removes blobs nothing references any more (deleted manifests,
// unlinked blobs, evicted squash entries). Safe while the server runs: only
// blobs last written before the grace period are candidates, and each is
// marked in the metadata store before it is removed, so a commit of the same
// digest racing with the collection waits for it or makes the mark fail
// (MetadataStore::mark_blob_deleting).
int gc(const core::Config& cfg, bool dry_run, int grace_minutes) {
  auto blobs = cli::open_blob_store(cfg);
  auto meta = cli::open_metadata_store(cfg, false);
  int64_t cutoff = core::unix_seconds() - int64_t{grace_minutes} * 60;
  uint64_t total = 0, removed = 0, bytes = 0;
  // One pass over the store: removes (or lists) what nothing references.
  auto sweep = [&](bool count_total) {
    std::vector<storage::BlobStore::BlobInfo> candidates;
    blobs->for_each_blob([&](const storage::BlobStore::BlobInfo& b) {
      if (count_total) ++total;
      if (b.mtime < cutoff && !meta->blob_in_use(b.digest.str())) candidates.push_back(b);
    });
    for (auto& b : candidates) {
      if (dry_run) {
        std::cout << "would remove " << b.digest.str() << " (" << b.size << " bytes)" << std::endl;
        ++removed;
        bytes += b.size;
        continue;
      }
      std::string d = b.digest.str();
      if (meta->mark_blob_deleting(d, cutoff, core::unix_seconds()) != meta::MetadataStore::Mark::Marked) continue;
      blobs->remove(b.digest);
      meta->finish_blob_delete(d);
      ++removed;
      bytes += b.size;
    }
  };
  sweep(true);
  // Squash indexes of layers no longer stored go too, and a second pass takes
  // their index and inflate-state blobs (a layer pushed again is indexed again).
  size_t forgotten = 0;
  for (const auto& l : meta->indexed_layers()) {
    auto d = core::Digest::parse(l);
    if (d && blobs->stat(*d)) continue;
    if (!dry_run) meta->delete_layer_index(l);
    ++forgotten;
  }
  if (forgotten && !dry_run) sweep(false);
  std::cout << (dry_run ? "would remove " : "removed ") << removed << " of " << total << " blobs (" << bytes
            << " bytes); kept " << total - removed;
  if (forgotten) std::cout << "; " << (dry_run ? "would forget " : "forgot ") << forgotten << " squash layer indexes";
  std::cout << std::endl;
  return 0;
}

int serve(core::Config cfg) {
  raise_open_file_limit();
  auto blobs = cli::open_blob_store(cfg);
  auto meta = cli::open_metadata_store(cfg, true);

  squash::Service squasher(squash_options(cfg), *blobs, *meta);
  AccountsEnv acc;
  std::unique_ptr<auth::Auth> authz;
  if (cfg.auth.enabled) {
    acc = open_accounts(cfg, Keys::Create);
    ensure_admin(*acc.store);
    auth::Options ao{cfg.auth, cfg.external_url};
    authz = std::make_unique<auth::Auth>(ao, *acc.store, *meta, *acc.key, *acc.signer);
  }
  registry::SquashEndpoint squash_endpoint({cfg.squash.repo_host, cfg.external_url, authz.get()}, squasher);
  std::unique_ptr<api::Api> mgmt;
  if (authz) mgmt = std::make_unique<api::Api>(api::Options{cfg.external_url}, *authz, *meta, &squasher);

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
    auto listed = [&](const std::vector<std::string>& v, const std::string& x) {
      return std::find(v.begin(), v.end(), x) != v.end();
    };
    std::string ns = repo.substr(0, repo.find('/'));
    // The repository's own setting (management API / UI), else the config lists.
    bool per_repo = false;
    if (acc.store)
      if (auto s = acc.store->repo_settings(repo)) per_repo = s->auto_prime;
    if (!per_repo && !cfg.squash.auto_prime.all && !listed(cfg.squash.auto_prime.namespaces, ns) &&
        !listed(cfg.squash.auto_prime.repositories, repo))
      return;
    try {
      squasher.acquire(squasher.resolve(repo, tag, ""));  // builds in the background
      core::Metrics::global().add("wharf_squash_auto_primes_total");
    } catch (const std::exception& e) {  // an artifact, a full queue...: the push itself succeeded
      say(spdlog::level::info, fmt::format("auto-prime of {}:{} skipped: {}", repo, tag, e.what()));
    }
  };
  ro.access = authz.get();
  ro.delete_enabled = cfg.delete_.enabled;
  ro.max_manifest_bytes = cfg.limits.max_manifest_bytes;
  ro.external_url = cfg.external_url;
  ro.page_size_max = cfg.limits.page_size_max;
  ro.sparse_manifests = cfg.manifests.allow_sparse;
  ro.max_tags_per_push = cfg.manifests.max_tags_per_push;
  ro.upload_expiry_seconds = cfg.uploads.expiry_seconds;
  registry::Registry reg(ro, *blobs, *meta);

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
    http::Response r;
    r.headers.add("Content-Type", "application/json");
    if (path == "/health/instance") {
      ex.route = "health";
      r.body = R"({"status":"ok"})";
    } else if (path == "/health/endtoend") {
      ex.route = "health";
      try {
        meta->probe();
        blobs->probe();
        r.body = R"({"status":"ok","metadata":"ok","storage":"ok"})";
      } catch (const std::exception& e) {
        r.status = 503;
        r.body = nlohmann::json{{"status", "failing"}, {"error", e.what()}}.dump();
      }
    } else if (path == "/metrics") {
      ex.route = "metrics";
      r.headers.set("Content-Type", "text/plain; version=0.0.4");
      r.body = core::Metrics::global().render();
    } else {
      ex.route = "not_found";
      r = http::error_response(core::Error(core::ErrorCode::NotFound, "no such endpoint", path));
    }
    co_await ex.send(r);
  };

  http::Server server(so, handler);
  server.bind();
  if (acc.store)
    server.every(std::chrono::seconds(600), [&acc] {
      try {
        acc.store->purge_sessions(std::chrono::duration_cast<std::chrono::seconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count());
      } catch (const std::exception& e) {
        say(spdlog::level::warn, std::string("purging expired sessions failed: ") + e.what());
      }
    });
  server.every(std::chrono::seconds(std::max(1, cfg.uploads.purge_interval_seconds)), [&reg] {
    if (size_t n = reg.purge_expired_uploads()) say(spdlog::level::info, fmt::format("removed {} expired upload sessions", n));
  });
  std::string scheme = cfg.tls.cert.empty() ? "http" : "https";
  say(spdlog::level::info, fmt::format("wharf listening on {}://{} (data in {}, {} threads)", scheme, cfg.listen,
                                       std::filesystem::absolute(cfg.data_dir).string(), so.threads));
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

}  // namespace

int main(int argc, char** argv) {
  // Allocations of 1 MiB and more (a squash's inflate chunks, copy buffers)
  // get pages of their own that go back to the system when freed. glibc's
  // default threshold rises to the largest block freed so far, after which
  // such blocks come from per-thread arenas that keep them: peak RSS climbed
  // 48 -> 66 -> 72 MB over three squashes of a 1 GB image, against 45-49 MB
  // with a fixed threshold, at the same speed (BENCHMARKS.md, 2026-11-27).
  // Reused big buffers are pooled where they are used (storage::Buffer).
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
  auto logger = spdlog::stderr_logger_mt("wharf");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  CLI::App app{"wharf — a container image registry with squashed image downloads"};
  app.require_subcommand(1);
  std::string config_path, listen, data_dir, log_format;
  auto* serve_cmd = app.add_subcommand("serve", "run the registry");
  serve_cmd->add_option("--config", config_path, "YAML configuration file");
  serve_cmd->add_option("--listen", listen, "ADDR:PORT to listen on (default 127.0.0.1:5000)");
  serve_cmd->add_option("--data-dir", data_dir, "directory for blobs and the SQLite database");
  serve_cmd->add_option("--log-format", log_format, "text or json")->check(CLI::IsMember({"text", "json"}));
  bool no_auth = false;
  serve_cmd->add_flag("--no-auth", no_auth, "open registry without accounts (auth.enabled: false)");

  // Account administration; works while the server runs (same store).
  auto common = [&](CLI::App* c) {
    c->add_option("--config", config_path, "YAML configuration file");
    c->add_option("--data-dir", data_dir, "data directory of the registry");
  };
  std::string a_name, a_email, a_owner, a_role, a_robot, a_user, a_team;
  bool a_superuser = false, a_pw_stdin = false;
  auto* user_cmd = app.add_subcommand("user", "manage users");
  auto* user_create = user_cmd->add_subcommand("create", "create a user");
  user_create->add_option("name", a_name)->required();
  user_create->add_option("--email", a_email);
  user_create->add_flag("--password-stdin", a_pw_stdin, "read the password from standard input")->required();
  user_create->add_flag("--superuser", a_superuser);
  common(user_create);
  auto* user_passwd = user_cmd->add_subcommand("passwd", "set a user's password (invalidates their tokens)");
  user_passwd->add_option("name", a_name)->required();
  user_passwd->add_flag("--password-stdin", a_pw_stdin)->required();
  common(user_passwd);
  auto* user_disable = user_cmd->add_subcommand("disable", "disable a user (ends their sessions and tokens at once)");
  user_disable->add_option("name", a_name)->required();
  common(user_disable);
  auto* user_enable = user_cmd->add_subcommand("enable", "enable a disabled user again");
  user_enable->add_option("name", a_name)->required();
  common(user_enable);
  auto* user_delete = user_cmd->add_subcommand("delete", "delete a user (refused while their namespace has repositories)");
  user_delete->add_option("name", a_name)->required();
  common(user_delete);
  auto* org_cmd = app.add_subcommand("org", "manage organizations");
  auto* org_create = org_cmd->add_subcommand("create", "create an organization");
  org_create->add_option("name", a_name)->required();
  org_create->add_option("--owner", a_owner, "user who becomes its first admin")->required();
  org_create->add_option("--email", a_email);
  common(org_create);
  auto* robot_cmd = app.add_subcommand("robot", "manage robot accounts");
  auto* robot_create = robot_cmd->add_subcommand("create", "create NS+NAME and print its token");
  robot_create->add_option("name", a_name)->required();
  common(robot_create);
  auto* robot_tok = robot_cmd->add_subcommand("token", "print the token of NS+NAME");
  robot_tok->add_option("name", a_name)->required();
  bool a_regen = false;
  robot_tok->add_flag("--regenerate", a_regen, "replace the token (the old one stops working at once)");
  common(robot_tok);
  auto* perm_cmd = app.add_subcommand("perm", "manage repository permissions");
  auto* perm_grant = perm_cmd->add_subcommand("grant", "grant a role on NS/REPO");
  perm_grant->add_option("repo", a_name)->required();
  auto* g = perm_grant->add_option_group("subject");
  g->add_option("--robot", a_robot);
  g->add_option("--user", a_user);
  g->add_option("--team", a_team);
  g->require_option(1);
  perm_grant->add_option("--role", a_role)->required()->check(CLI::IsMember({"read", "write", "admin", "none"}));
  common(perm_grant);
  bool gc_dry = false;
  int gc_grace = 60;
  auto* gc_cmd = app.add_subcommand("gc", "remove blobs nothing references (safe while the server runs)");
  gc_cmd->add_flag("--dry-run", gc_dry, "list what would be removed");
  gc_cmd->add_option("--grace-minutes", gc_grace, "only blobs committed longer ago than this (default 60)")
      ->check(CLI::NonNegativeNumber);
  common(gc_cmd);
  user_cmd->require_subcommand(1);
  org_cmd->require_subcommand(1);
  robot_cmd->require_subcommand(1);
  perm_cmd->require_subcommand(1);

  auto* squash_cmd = app.add_subcommand("squash", "flatten an image on disk (--from/--to), or prime the cache (prime)");
  std::string from, to = "-", platform, tag, prime_ref;
  squash_cmd->add_option("--from", from, "oci:DIR[:TAG] or docker-archive:FILE");
  squash_cmd->add_option("--to", to, "output file, or - for stdout (default)");
  squash_cmd->add_option("--platform", platform, "os/arch[/variant] for multi-platform images");
  squash_cmd->add_option("--tag", tag, "RepoTags entry for the archive (name:tag)");
  squash_cmd->add_option("--config", config_path, "YAML configuration file (limits)");
  auto* prime_cmd = squash_cmd->add_subcommand("prime", "build the squash cache entry of NAME:TAG ahead of use");
  prime_cmd->add_option("image", prime_ref, "NAME:TAG or NAME@DIGEST")->required();
  prime_cmd->add_option("--config", config_path, "YAML configuration file");
  prime_cmd->add_option("--data-dir", data_dir, "data directory of the registry");
  prime_cmd->add_option("--platform", platform, "os/arch[/variant]");
  CLI11_PARSE(app, argc, argv);

  try {
    core::Config cfg = config_path.empty() ? core::Config{} : core::load_config(config_path);
    if (!listen.empty()) cfg.listen = listen;
    if (!data_dir.empty()) cfg.data_dir = data_dir;
    if (!log_format.empty()) cfg.log.format = log_format;
    if (cfg.log.format == "json") {
      spdlog::set_pattern("%v");
      g_json_logs = true;
    }
    if (no_auth) cfg.auth.enabled = false;
    cli::check_drivers(cfg);
    if (*serve_cmd) return serve(cfg);
    if (*gc_cmd) return gc(cfg, gc_dry, gc_grace);
    auto read_password = [] {
      std::string pw;
      std::getline(std::cin, pw);
      if (!pw.empty() && pw.back() == '\r') pw.pop_back();
      return pw;
    };
    try {
      if (*user_create) {
        auto env = open_accounts(cfg, Keys::None);
        auth::create_user(*env.store, a_name, a_email, read_password(), a_superuser);
        cli_audit(*env.store, "user_create", "", a_name, {{"superuser", a_superuser}});
        std::cout << "created user " << a_name << (a_superuser ? " (superuser)" : "") << std::endl;
        return 0;
      }
      if (*user_passwd) {
        auto env = open_accounts(cfg, Keys::None);
        auto a = env.store->account(a_name);
        if (!a || a->is_org) throw std::runtime_error("no such user " + a_name);
        std::string pw = read_password();
        if (pw.size() < 8) throw std::runtime_error("the password must have at least 8 characters");
        env.store->set_password(a->id, auth::hash_password(pw));
        cli_audit(*env.store, "password_change", "", a_name, nlohmann::json::object());
        std::cout << "password of " << a_name << " changed; its tokens and sessions are invalid now" << std::endl;
        return 0;
      }
      if (*user_disable || *user_enable) {
        auto env = open_accounts(cfg, Keys::None);
        bool disable = user_disable->parsed();
        auth::set_user_disabled(*env.store, a_name, disable);
        cli_audit(*env.store, disable ? "user_disable" : "user_enable", "", a_name, {{"user", a_name}});
        std::cout << "user " << a_name << (disable ? " disabled; their sessions and tokens no longer work" : " enabled")
                  << std::endl;
        return 0;
      }
      if (*user_delete) {
        auto env = open_accounts(cfg, Keys::None);
        auto meta_store = cli::open_metadata_store(cfg, false);
        auth::delete_user(*env.store, a_name, [&](std::string_view ns) {
          auto first = meta_store->list_repositories(std::string(ns) + "/", 1);
          return !first.empty() && first[0].starts_with(std::string(ns) + "/");
        });
        cli_audit(*env.store, "user_delete", "", "", {{"user", a_name}});
        std::cout << "user " << a_name << " deleted" << std::endl;
        return 0;
      }
      if (*org_create) {
        auto env = open_accounts(cfg, Keys::None);
        auth::create_org(*env.store, a_name, a_owner, a_email);
        cli_audit(*env.store, "org_create", "", a_name, {{"owner", a_owner}});
        std::cout << "created organization " << a_name << " (admin: " << a_owner << ")" << std::endl;
        return 0;
      }
      if (*robot_create) {
        auto env = open_accounts(cfg, Keys::Require);
        std::cout << auth::create_robot(*env.store, *env.key, a_name) << std::endl;
        cli_audit(*env.store, "robot_create", "", a_name.substr(0, a_name.find('+')), {{"robot", a_name}});
        return 0;
      }
      if (*robot_tok) {
        auto env = open_accounts(cfg, Keys::Require);
        std::cout << (a_regen ? auth::regenerate_robot_token(*env.store, *env.key, a_name)
                              : auth::robot_token(*env.store, *env.key, a_name))
                  << std::endl;
        cli_audit(*env.store, a_regen ? "robot_regenerate" : "robot_token_view", "", a_name.substr(0, a_name.find('+')),
                  {{"robot", a_name}});
        return 0;
      }
      if (*perm_grant) {
        auto env = open_accounts(cfg, Keys::None);
        auto kind = !a_robot.empty() ? meta::SubjectKind::Robot
                    : !a_user.empty() ? meta::SubjectKind::User
                                      : meta::SubjectKind::Team;
        std::string who = !a_robot.empty() ? a_robot : !a_user.empty() ? a_user : a_team;
        auth::grant(*env.store, a_name, kind, who, *meta::parse_role(a_role));
        cli_audit(*env.store, "permission", a_name, "",
                  {{"kind", meta::subject_kind_name(kind)}, {"name", who}, {"role", a_role}});
        std::cout << "granted " << a_role << " on " << a_name << " to " << meta::subject_kind_name(kind) << " " << who
                  << std::endl;
        return 0;
      }
    } catch (const core::Error& e) {
      std::string msg = e.what();
      if (!e.detail().empty()) msg += ": " + e.detail();
      throw std::runtime_error(msg);
    }
    if (*prime_cmd) return squash_prime(cfg, prime_ref, platform);
    if (*squash_cmd) {
      if (from.empty()) throw std::runtime_error("wharf squash needs --from (or the prime subcommand)");
      return squash_offline_cmd(cfg, from, to, platform, tag);
    }
  } catch (const std::exception& e) {
    say(spdlog::level::err, e.what());
    return 1;
  }
  return 0;
}
