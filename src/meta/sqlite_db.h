// meta/sqlite_db.h — the small SQLite toolkit both SQLite stores share:
// cached prepared statements with positional binding, a connection pool
// (one connection per thread in use; WAL lets readers run beside the single
// writer) and write transactions with BEGIN IMMEDIATE, so two writers never
// deadlock on a lock upgrade. Internal to meta/.
#pragma once

#include <sqlite3.h>

#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace wharf::meta::sqlite {

class Conn;

// A UNIQUE or PRIMARY KEY constraint refused a row.
struct UniqueViolation : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A prepared statement with positional binding; reset on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt& bind(std::string_view v) {
    sqlite3_bind_text(s_, ++i_, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Stmt& bind_blob(std::string_view v) {
    sqlite3_bind_blob(s_, ++i_, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  Stmt& bind(int64_t v) {
    sqlite3_bind_int64(s_, ++i_, v);
    return *this;
  }
  // Steps once: true when a row is available.
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    int ext = sqlite3_extended_errcode(db_);
    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
      throw UniqueViolation(std::string("sqlite: ") + sqlite3_errmsg(db_));
    throw std::runtime_error(std::string("sqlite: ") + sqlite3_errmsg(db_));
  }
  void run() {
    while (step()) {
    }
  }
  std::string text(int col) {
    auto p = static_cast<const char*>(sqlite3_column_blob(s_, col));
    return std::string(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(s_, col)));
  }
  int64_t i64(int col) { return sqlite3_column_int64(s_, col); }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_;
  int i_ = 0;
};

class Conn {
 public:
  explicit Conn(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK)
      throw std::runtime_error("cannot open " + path + ": " + sqlite3_errmsg(db_));
    sqlite3_busy_timeout(db_, 10000);
    exec(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA "
        "foreign_keys=ON;");
  }
  ~Conn() {
    for (auto& [_, s] : cache_) sqlite3_finalize(s);
    sqlite3_close(db_);
  }
  sqlite3* handle() { return db_; }
  // Rows changed by the last INSERT, UPDATE or DELETE on this connection.
  int64_t last_changes() { return sqlite3_changes64(db_); }
  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string m = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error("sqlite: " + m);
    }
  }
  Stmt prepare(const char* sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
        throw std::runtime_error(std::string("sqlite prepare: ") + sqlite3_errmsg(db_) + " in " + sql);
      it = cache_.emplace(sql, s).first;
    }
    return Stmt(db_, it->second);
  }

 private:
  sqlite3* db_ = nullptr;
  std::map<const char*, sqlite3_stmt*> cache_;  // keyed by the literal's address
};

// A pool of connections to one database file.
class Db {
 public:
  using Connection = Conn;
  using Statement = Stmt;
  using UniqueViolation = sqlite::UniqueViolation;
  explicit Db(std::string path) : path_(std::move(path)) {}

  // Runs f(Conn&) on a pooled connection.
  template <class F>
  auto with(F&& f) {
    auto c = acquire();
    struct Back {
      Db* d;
      std::unique_ptr<Conn>& c;
      ~Back() { d->release(std::move(c)); }
    } back{this, c};
    return f(*c);
  }
  // Runs f inside BEGIN IMMEDIATE ... COMMIT; rolls back when f throws.
  template <class F>
  auto write(F&& f) {
    return with([&](Conn& c) { return transaction(c, f); });
  }
  // The same, committed without waiting for the disk (synchronous=NORMAL for
  // this transaction): durable across a process crash, not a power loss. For
  // state a client simply redoes when it is lost, like an upload session it
  // just opened; a later FULL commit makes it durable anyway (one WAL).
  template <class F>
  auto write_relaxed(F&& f) {
    return with([&](Conn& c) {
      c.exec("PRAGMA synchronous=NORMAL");
      struct Restore {
        Conn& c;
        ~Restore() {
          try {
            c.exec("PRAGMA synchronous=FULL");
          } catch (...) {
          }
        }
      } restore{c};
      return transaction(c, f);
    });
  }
  // Applies schema versions beyond the one recorded in `version_table`.
  void migrate(const char* version_table, const std::vector<const char*>& schema) {
    with([&](Conn& c) {
      std::string t = version_table;
      c.exec(("CREATE TABLE IF NOT EXISTS " + t + "(version INTEGER NOT NULL)").c_str());
      c.exec("BEGIN IMMEDIATE");
      try {
        int64_t v = 0;
        {
          std::string q = "SELECT max(version) FROM " + t;
          sqlite3_stmt* s = nullptr;
          sqlite3_prepare_v2(c.handle(), q.c_str(), -1, &s, nullptr);
          if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
          sqlite3_finalize(s);
        }
        for (int64_t i = v; i < static_cast<int64_t>(schema.size()); ++i) {
          c.exec(schema[i]);
          c.exec(("INSERT INTO " + t + "(version) VALUES(" + std::to_string(i + 1) + ")").c_str());
        }
        c.exec("COMMIT");
      } catch (...) {
        c.exec("ROLLBACK");
        throw;
      }
    });
  }

 private:
  template <class F>
  static auto transaction(Conn& c, F& f) {
    c.exec("BEGIN IMMEDIATE");
    try {
      if constexpr (std::is_void_v<decltype(f(c))>) {
        f(c);
        c.exec("COMMIT");
      } else {
        auto r = f(c);
        c.exec("COMMIT");
        return r;
      }
    } catch (...) {
      try {
        c.exec("ROLLBACK");
      } catch (...) {
      }
      throw;
    }
  }
  std::unique_ptr<Conn> acquire() {
    {
      std::lock_guard lk(mu_);
      if (!pool_.empty()) {
        auto c = std::move(pool_.back());
        pool_.pop_back();
        return c;
      }
    }
    return std::make_unique<Conn>(path_);
  }
  void release(std::unique_ptr<Conn> c) {
    std::lock_guard lk(mu_);
    if (pool_.size() < 16) pool_.push_back(std::move(c));
  }
  std::string path_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Conn>> pool_;
};

}  // namespace wharf::meta::sqlite
