// meta/pg_db.h — the small libpq toolkit both PostgreSQL stores share, shaped
// like sqlite_db.h so the two backends read alike: statements with positional
// binding (`?` or `?N` in the SQL text, rewritten to `$N`), a bounded pool of
// connections, serializable write transactions retried on serialization
// failures, and versioned schema migrations under an advisory lock.
// Internal to meta/.
//
// Values travel in libpq's binary format both ways: strings as bytes (text or
// bytea), integers as int8; so nothing is escaped or parsed as text.
//
// Thread safety: Db is safe for concurrent use; a Conn and the Stmt made from
// it belong to the one thread that holds the connection.
//
// Failures: std::runtime_error naming the SQLSTATE; a unique violation
// (23505) is pg::UniqueViolation, so callers can turn it into meta::Conflict.
#pragma once

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <condition_variable>
#include <exception>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace wharf::meta::pg {

// A database error with its SQLSTATE ("" when the connection failed).
struct Error : std::runtime_error {
  Error(const std::string& what, std::string state) : std::runtime_error(what), sqlstate(std::move(state)) {}
  std::string sqlstate;
  bool serialization() const { return sqlstate == "40001" || sqlstate == "40P01"; }
  bool connection() const { return sqlstate.empty() || sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01"; }
};
struct UniqueViolation : Error {
  using Error::Error;
};

struct Options {
  std::string dsn;       // libpq connection string or URI
  std::string password;  // when not in the dsn (or libpq's PGPASSWORD / ~/.pgpass)
  std::string schema;    // search_path; created when missing ("" : the server's default)
  int pool_size = 16;    // connections at most
  int connect_timeout_seconds = 5;
  int statement_timeout_ms = 30000;
  int acquire_timeout_ms = 10000;  // waiting for a free pooled connection
  std::string application_name = "wharf";  // how the connections show in pg_stat_activity
};

class Conn;

// One statement: binds, then runs on the first step() or run().
class Stmt {
 public:
  Stmt(Conn& c, const std::string& sql) : c_(c), sql_(sql) {}
  Stmt(Stmt&&) = default;
  ~Stmt();
  Stmt& bind(std::string_view v) { return add(v, 25); }       // text
  Stmt& bind_blob(std::string_view v) { return add(v, 17); }  // bytea
  Stmt& bind(int64_t v);
  // True when a(nother) row is available.
  bool step();
  void run();
  std::string text(int col) const;
  int64_t i64(int col) const;
  // Rows the statement changed (INSERT/UPDATE/DELETE).
  int64_t changes() const;

 private:
  Stmt& add(std::string_view v, unsigned oid);
  void exec();
  Conn& c_;
  const std::string& sql_;
  std::vector<std::string> vals_;
  std::vector<unsigned> oids_;
  PGresult* res_ = nullptr;
  int row_ = -1;
};

class Conn {
 public:
  explicit Conn(const Options& o);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  PGconn* handle() { return pg_; }
  void exec(const std::string& sql);
  // A statement; `sql` uses ? or ?N placeholders (rewritten once and kept).
  Stmt prepare(const char* sql);
  bool broken() const { return PQstatus(pg_) != CONNECTION_OK; }
  // Rows changed by the last statement run on this connection.
  int64_t last_changes() const { return last_changes_; }
  void set_last_changes(int64_t n) { last_changes_ = n; }
  // The error of `res` (or of the connection when res is null), as thrown.
  [[noreturn]] void fail(PGresult* res, const std::string& sql);

 private:
  PGconn* pg_ = nullptr;
  int64_t last_changes_ = 0;
  std::map<const char*, std::string> rewritten_;  // by the literal's address; nodes stay put
};

class Db {
 public:
  using Connection = Conn;
  using Statement = Stmt;
  using UniqueViolation = pg::UniqueViolation;
  explicit Db(Options o) : o_(std::move(o)) {}

  // Runs f(Conn&) on a pooled connection, in autocommit. Read-only callers:
  // a connection found broken is replaced and f run once more.
  template <class F>
  auto with(F&& f) {
    for (int attempt = 0;; ++attempt) {
      Timer t("read");
      try {
        return run_on(f);
      } catch (const Error& e) {
        t.failed(e);
        if (!e.connection() || attempt >= 1) throw;
      }
    }
  }
  // Runs f inside a SERIALIZABLE transaction; rolls back when f throws. A
  // serialization failure or deadlock reruns f in a new transaction (a few
  // times, with a short backoff), as does a connection lost before COMMIT
  // was sent; a connection lost during COMMIT leaves the outcome unknown
  // and throws. f must be safe to rerun (it only talks to the database).
  template <class F>
  auto write(F&& f) {
    return transaction(f, false);
  }
  // The same, committed without waiting for the WAL flush
  // (synchronous_commit off): durable unless the database server crashes.
  template <class F>
  auto write_relaxed(F&& f) {
    return transaction(f, true);
  }
  // Applies the versions of `schema` beyond the one recorded in
  // `version_table`, under a session advisory lock (replicas starting
  // together apply each version once). Each version is additive (older
  // binaries keep working on it) unless it is listed in `breaking`. Throws
  // when the database is ahead of `schema` by more than one version, or by
  // one marked breaking: that binary cannot work on it.
  void migrate(const std::string& version_table, const std::vector<const char*>& schema,
               const std::vector<int>& breaking = {});

 private:
  template <class F>
  auto run_on(F&& f) {
    auto c = acquire();
    struct Back {
      Db* d;
      std::unique_ptr<Conn>& c;
      ~Back() { d->release(std::move(c)); }
    } back{this, c};
    return f(*c);
  }
  template <class F>
  auto transaction(F& f, bool relaxed) {
    for (int attempt = 0;; ++attempt) {
      bool committing = false;
      Timer t("write");
      try {
        return run_on([&](Conn& c) {
          c.exec(relaxed ? "BEGIN ISOLATION LEVEL SERIALIZABLE; SET LOCAL "
                           "synchronous_commit = off"
                         : "BEGIN ISOLATION LEVEL SERIALIZABLE");
          try {
            if constexpr (std::is_void_v<decltype(f(c))>) {
              f(c);
              committing = true;
              c.exec("COMMIT");
            } else {
              auto r = f(c);
              committing = true;
              c.exec("COMMIT");
              return r;
            }
          } catch (...) {
            if (!c.broken()) {
              try {
                c.exec("ROLLBACK");
              } catch (...) {
              }
            }
            throw;
          }
        });
      } catch (const Error& e) {
        t.failed(e);
        bool again = e.serialization() || (e.connection() && !committing);
        if (!again || attempt >= 8) throw;
        backoff(attempt);
      }
    }
  }
  static void backoff(int attempt);
  // Counts one call in /metrics (wharf_backend_requests_total{backend="postgres",
  // operation="read"|"write",outcome=...} and its latency) when it ends.
  class Timer {
   public:
    explicit Timer(const char* op);
    ~Timer();
    void failed(const Error& e);

   private:
    const char* op_;
    const char* outcome_ = nullptr;  // set by failed(); else ok, or error when an exception leaves the call
    int exceptions_ = std::uncaught_exceptions();
    std::chrono::steady_clock::time_point t0_;
  };
  std::unique_ptr<Conn> acquire();
  void release(std::unique_ptr<Conn> c);

  Options o_;
  std::mutex mu_;  // guards pool_ and open_
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> pool_;  // idle connections
  int open_ = 0;                             // connections in use or idle
};

// Session-level advisory locks taken on a connection of their own, for holds
// that must end when their process dies: the server drops a dead client's
// connection, and its locks with it. Locks are named by text, scoped to the
// connection's schema (current_schema()), and are not exclusive within this
// process (a session may take its own lock again: callers exclude those).
// Thread safety: safe for concurrent use (one mutex around the connection).
class Locks {
 public:
  explicit Locks(Options o) : o_(std::move(o)) {}
  // Takes the lock `name` unless another session holds it; on success, the
  // generation of the connection it was taken on (see held()).
  std::optional<uint64_t> try_lock(std::string_view name);
  // Releases it, when it is still held (a lock of an older generation went
  // with its connection).
  void unlock(std::string_view name, uint64_t generation);
  // Whether the lock taken on `generation` is still held: that connection is
  // still the current one and answers (one round trip).
  bool held(uint64_t generation);

 private:
  Conn& conn();  // REQUIRES: mu_ held. Connects (a new generation) when there is none or it broke.
  Options o_;
  std::mutex mu_;
  std::unique_ptr<Conn> conn_;  // guarded by mu_
  uint64_t gen_ = 0;            // guarded by mu_: bumped at every (re)connect
};

// LISTENs on `channel` on a connection of its own, on a thread of its own,
// and calls fn(payload) for each notification (on that thread). fn("") means
// "notifications may have been missed": called when the connection breaks
// and after each reconnection but the first; while the server is away it
// tries again every second. Stops and joins on destruction (within ~0.2 s).
class Listener {
 public:
  Listener(Options o, std::string channel, std::function<void(const std::string&)> fn);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

 private:
  void run();
  Options o_;
  std::string channel_;
  std::function<void(const std::string&)> fn_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace wharf::meta::pg
