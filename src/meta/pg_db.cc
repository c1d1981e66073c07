#include "meta/pg_db.h"

#include <sys/select.h>

#include <cerrno>

#include "core/metrics.h"

#include <arpa/inet.h>
#include <endian.h>

#include <cstring>
#include <random>
#include <thread>

namespace wharf::meta::pg {

namespace {

// `?` and `?N` placeholders to `$N` (outside quoted literals).
std::string rewrite(const char* sql) {
  std::string out;
  int next = 0;
  bool quoted = false;
  for (const char* p = sql; *p; ++p) {
    if (*p == '\'') quoted = !quoted;
    if (*p != '?' || quoted) {
      out += *p;
      continue;
    }
    if (p[1] >= '0' && p[1] <= '9') {
      out += '$';
      while (p[1] >= '0' && p[1] <= '9') out += *++p;
    } else {
      out += '$' + std::to_string(++next);
    }
  }
  return out;
}

std::string quote_ident(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

// A connection string with our session settings added (libpq takes the last
// value of a repeated keyword; a URI cannot be extended, so it is expanded).
std::string quote_value(const std::string& s) {
  std::string v;
  for (char c : s) v += (c == '\'' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return "'" + v + "'";
}

std::string conninfo(const Options& o) {
  std::string opts =
      "-c statement_timeout=" + std::to_string(o.statement_timeout_ms) +
      " -c idle_in_transaction_session_timeout=" + std::to_string(std::max(o.statement_timeout_ms, 60000));
  std::string base = o.dsn;
  if (base.rfind("postgres://", 0) == 0 || base.rfind("postgresql://", 0) == 0) {
    char* err = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(base.c_str(), &err);
    if (!parsed) {
      std::string m = err ? err : "invalid";
      PQfreemem(err);
      throw std::runtime_error("metadata.postgres.dsn: " + m);
    }
    base.clear();
    for (auto* p = parsed; p->keyword; ++p) {
      if (!p->val) continue;
      base += std::string(p->keyword) + "=" + quote_value(p->val) + " ";
    }
    PQconninfoFree(parsed);
  }
  if (!o.password.empty()) base += " password=" + quote_value(o.password);
  return base + " connect_timeout=" + std::to_string(o.connect_timeout_seconds) +
         " keepalives=1 keepalives_idle=30 keepalives_interval=10 "
         "keepalives_count=3 options='" +
         opts + "' application_name=" + quote_value(o.application_name);
}

}  // namespace

Stmt::~Stmt() {
  if (res_) PQclear(res_);
}

Stmt& Stmt::add(std::string_view v, unsigned oid) {
  vals_.emplace_back(v);
  oids_.push_back(oid);
  return *this;
}

Stmt& Stmt::bind(int64_t v) {
  uint64_t be = htobe64(static_cast<uint64_t>(v));
  return add(std::string_view(reinterpret_cast<const char*>(&be), 8), 20);
}

void Stmt::exec() {
  std::vector<const char*> vals(vals_.size());
  std::vector<int> lens(vals_.size()), fmts(vals_.size(), 1);
  for (size_t i = 0; i < vals_.size(); ++i) {
    vals[i] = vals_[i].data();
    lens[i] = static_cast<int>(vals_[i].size());
  }
  res_ = PQexecParams(c_.handle(), sql_.c_str(), static_cast<int>(vals_.size()), oids_.data(), vals.data(), lens.data(),
                      fmts.data(), 1);
  auto st = res_ ? PQresultStatus(res_) : PGRES_FATAL_ERROR;
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    PGresult* r = res_;
    res_ = nullptr;
    c_.fail(r, sql_);
  }
  c_.set_last_changes(changes());
}

bool Stmt::step() {
  if (!res_) exec();
  return ++row_ < PQntuples(res_);
}

void Stmt::run() {
  if (!res_) exec();
}

std::string Stmt::text(int col) const {
  if (PQgetisnull(res_, row_, col)) return {};
  return std::string(PQgetvalue(res_, row_, col), static_cast<size_t>(PQgetlength(res_, row_, col)));
}

int64_t Stmt::i64(int col) const {
  if (PQgetisnull(res_, row_, col)) return 0;
  const char* p = PQgetvalue(res_, row_, col);
  switch (PQftype(res_, col)) {
    case 20: {  // int8
      uint64_t v;
      std::memcpy(&v, p, 8);
      return static_cast<int64_t>(be64toh(v));
    }
    case 23: {  // int4
      uint32_t v;
      std::memcpy(&v, p, 4);
      return static_cast<int32_t>(ntohl(v));
    }
    case 21: {  // int2
      uint16_t v;
      std::memcpy(&v, p, 2);
      return static_cast<int16_t>(ntohs(v));
    }
    case 16:  // bool
      return p[0] != 0;
    default:
      throw std::runtime_error("postgres: column " + std::to_string(col) + " is not an integer in " + sql_);
  }
}

int64_t Stmt::changes() const {
  const char* n = res_ ? PQcmdTuples(res_) : "";
  return *n ? std::stoll(n) : 0;
}

Conn::Conn(const Options& o) {
  pg_ = PQconnectdb(conninfo(o).c_str());
  if (PQstatus(pg_) != CONNECTION_OK) {
    std::string m = PQerrorMessage(pg_);
    PQfinish(pg_);
    pg_ = nullptr;
    while (!m.empty() && m.back() == '\n') m.pop_back();
    throw Error("postgres: cannot connect: " + m, "");
  }
  exec("SET client_min_messages = warning");
  if (!o.schema.empty()) {
    try {
      exec("CREATE SCHEMA IF NOT EXISTS " + quote_ident(o.schema));
    } catch (const UniqueViolation&) {  // created by another connection at the same moment
    }
    exec("SET search_path = " + quote_ident(o.schema));
  }
}

Conn::~Conn() {
  if (pg_) PQfinish(pg_);
}

void Conn::fail(PGresult* res, const std::string& sql) {
  std::string state, msg;
  if (res) {
    const char* s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    state = s ? s : "";
    msg = PQresultErrorMessage(res);
    PQclear(res);
  }
  if (msg.empty()) msg = PQerrorMessage(pg_);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  if (broken()) state = "";  // the connection is gone, whatever the last result said
  std::string what = "postgres: " + msg + (state.empty() ? "" : " [" + state + "]");
  if (state == "23505") throw UniqueViolation(what, state);
  (void)sql;
  throw Error(what, state);
}

void Conn::exec(const std::string& sql) {
  PGresult* r = PQexec(pg_, sql.c_str());
  auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(r, sql);
  PQclear(r);
}

Stmt Conn::prepare(const char* sql) {
  auto it = rewritten_.find(sql);
  if (it == rewritten_.end()) it = rewritten_.emplace(sql, rewrite(sql)).first;
  return Stmt(*this, it->second);
}

Db::Timer::Timer(const char* op) : op_(op), t0_(std::chrono::steady_clock::now()) {}

Db::Timer::~Timer() {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0_).count();
  auto& m = core::Metrics::global();
  if (!outcome_) outcome_ = std::uncaught_exceptions() > exceptions_ ? "error" : "ok";
  m.add("wharf_backend_requests_total", 1,
        std::string("backend=\"postgres\",operation=\"") + op_ + "\",outcome=\"" + outcome_ + "\"");
  m.add("wharf_backend_request_microseconds_total", static_cast<uint64_t>(us),
        std::string("backend=\"postgres\",operation=\"") + op_ + "\"");
}

void Db::Timer::failed(const Error& e) {
  outcome_ = e.serialization() ? "serialization_failure" : e.connection() ? "connection_error" : "error";
}

void Db::backoff(int attempt) {
  thread_local std::mt19937 rng{std::random_device{}()};
  int ms = std::min(200, 5 << attempt);
  std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(ms / 2, ms)(rng)));
}

std::unique_ptr<Conn> Db::acquire() {
  {
    std::unique_lock lk(mu_);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(o_.acquire_timeout_ms);
    for (;;) {
      if (!pool_.empty()) {
        auto c = std::move(pool_.back());
        pool_.pop_back();
        if (!c->broken()) return c;
        --open_;  // a connection that died while idle is replaced below
        continue;
      }
      if (open_ < std::max(1, o_.pool_size)) break;
      if (cv_.wait_until(lk, deadline) == std::cv_status::timeout && pool_.empty() && open_ >= o_.pool_size)
        throw Error(
            "postgres: no free connection in the pool "
            "(metadata.postgres.pool_size = " +
                std::to_string(o_.pool_size) + ") within " + std::to_string(o_.acquire_timeout_ms) + " ms",
            "53300");
    }
    ++open_;
  }
  try {
    return std::make_unique<Conn>(o_);
  } catch (...) {
    std::lock_guard lk(mu_);
    --open_;
    cv_.notify_one();
    throw;
  }
}

void Db::release(std::unique_ptr<Conn> c) {
  std::lock_guard lk(mu_);
  // A broken connection, or one left inside a transaction, is dropped.
  if (c->broken() || PQtransactionStatus(c->handle()) != PQTRANS_IDLE) {
    --open_;
  } else {
    pool_.push_back(std::move(c));
  }
  cv_.notify_one();
}

void Db::migrate(const std::string& version_table, const std::vector<const char*>& schema,
                 const std::vector<int>& breaking) {
  run_on([&](Conn& c) {
    // A lock per version table, held for the session: replicas starting
    // together wait for the first to finish.
    std::string key = "hashtext('wharf:' || current_schema() || '." + version_table + "')";
    c.exec("SELECT pg_advisory_lock(" + key + ")");
    struct Unlock {
      Conn& c;
      std::string key;
      ~Unlock() {
        try {
          c.exec("SELECT pg_advisory_unlock(" + key + ")");
        } catch (...) {
        }
      }
    } unlock{c, key};
    c.exec("CREATE TABLE IF NOT EXISTS " + version_table +
           "(version BIGINT PRIMARY KEY, breaking BOOLEAN NOT NULL, applied "
           "BIGINT NOT NULL)");
    int64_t have = 0;
    std::vector<int64_t> ahead_breaking;
    {
      std::string q = "SELECT version, breaking FROM " + version_table + " ORDER BY version";
      PGresult* r = PQexecParams(c.handle(), q.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0);
      if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) c.fail(r, q);
      for (int i = 0; i < PQntuples(r); ++i) {
        int64_t v = std::stoll(PQgetvalue(r, i, 0));
        have = std::max(have, v);
        if (v > static_cast<int64_t>(schema.size()) && PQgetvalue(r, i, 1)[0] == 't') ahead_breaking.push_back(v);
      }
      PQclear(r);
    }
    int64_t known = static_cast<int64_t>(schema.size());
    if (have > known) {
      if (have > known + 1 || !ahead_breaking.empty())
        throw std::runtime_error("the database schema (" + version_table + ") is at version " + std::to_string(have) +
                                 ", this wharf knows versions up to " + std::to_string(known) +
                                 (ahead_breaking.empty() ? " (more than one additive version behind)"
                                                         : " and version " + std::to_string(ahead_breaking[0]) +
                                                               " is marked incompatible with older releases") +
                                 ": upgrade this wharf to the release that wrote the schema");
      return;  // one additive version ahead: a rolling upgrade in progress
    }
    for (int64_t i = have; i < known; ++i) {
      bool brk = false;
      for (int b : breaking) brk = brk || b == i + 1;
      c.exec("BEGIN");
      try {
        c.exec(schema[i]);
        c.exec("INSERT INTO " + version_table + "(version, breaking, applied) VALUES(" + std::to_string(i + 1) + ", " +
               (brk ? "true" : "false") + ", extract(epoch from now())::bigint)");
        c.exec("COMMIT");
      } catch (...) {
        if (!c.broken()) c.exec("ROLLBACK");
        throw;
      }
    }
  });
}

// ---- Locks -----------------------------------------------------------------

namespace {
const char* const kLockKey = "hashtext('wharf:' || current_schema()), hashtext(?1)";
}

Conn& Locks::conn() {
  if (!conn_ || conn_->broken()) {
    conn_.reset();
    auto c = std::make_unique<Conn>(o_);
    // The server drops this session, and the locks with it, once the holder's
    // host stops answering: within ~15 s, not the OS default of two hours
    // (a host that died without closing its connections).
    c->exec("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3");
    conn_ = std::move(c);
    ++gen_;
  }
  return *conn_;
}

std::optional<uint64_t> Locks::try_lock(std::string_view name) {
  static const std::string sql = std::string("SELECT pg_try_advisory_lock(") + kLockKey + ")::int::int8";
  std::lock_guard lk(mu_);
  for (int attempt = 0;; ++attempt) {
    try {
      auto st = conn().prepare(sql.c_str());
      st.bind(name);
      if (!st.step()) throw Error("postgres: pg_try_advisory_lock gave no row", "");
      if (!st.i64(0)) return std::nullopt;
      return gen_;
    } catch (const Error& e) {
      // A connection found dead (the server restarted): its locks are gone
      // with it; connect again once.
      if (!e.connection() || attempt >= 1) throw;
      conn_.reset();
    }
  }
}

void Locks::unlock(std::string_view name, uint64_t generation) {
  static const std::string sql = std::string("SELECT pg_advisory_unlock(") + kLockKey + ")";
  std::lock_guard lk(mu_);
  if (generation != gen_ || !conn_ || conn_->broken()) return;
  try {
    auto st = conn_->prepare(sql.c_str());
    st.bind(name);
    st.run();
  } catch (const Error&) {
    conn_.reset();  // the next lock connects again; what it held went with it
  }
}

bool Locks::held(uint64_t generation) {
  std::lock_guard lk(mu_);
  if (generation != gen_ || !conn_ || conn_->broken()) return false;
  try {
    conn_->exec("SELECT 1");
    return true;
  } catch (const Error&) {
    conn_.reset();
    return false;
  }
}

Listener::Listener(Options o, std::string channel, std::function<void(const std::string&)> fn)
    : o_(std::move(o)), channel_(std::move(channel)), fn_(std::move(fn)) {
  thread_ = std::thread([this] { run(); });
}

Listener::~Listener() {
  stop_ = true;
  thread_.join();
}

void Listener::run() {
  bool first = true;
  while (!stop_) {
    std::unique_ptr<Conn> c;
    try {
      c = std::make_unique<Conn>(o_);
      c->exec("LISTEN " + quote_ident(channel_));
    } catch (const std::exception&) {
      for (int i = 0; i < 5 && !stop_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    if (!first) fn_("");  // what changed while nobody listened is unknown
    first = false;
    int fd = PQsocket(c->handle());
    while (!stop_) {
      fd_set in;
      FD_ZERO(&in);
      FD_SET(fd, &in);
      timeval tv{0, 200 * 1000};
      int r = ::select(fd + 1, &in, nullptr, nullptr, &tv);
      if (r < 0 && errno != EINTR) break;
      if (r <= 0) continue;
      if (!PQconsumeInput(c->handle())) break;  // the connection broke
      while (PGnotify* n = PQnotifies(c->handle())) {
        std::string payload = n->extra ? n->extra : "";
        PQfreemem(n);
        if (!payload.empty()) fn_(payload);
      }
    }
    if (!stop_) fn_("");
  }
}

}  // namespace wharf::meta::pg
