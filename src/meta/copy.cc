#include "meta/copy.h"

#include <deque>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "meta/pg_db.h"
#include "meta/sqlite_db.h"

namespace wharf::meta {

namespace {

// A column: its name and how its values travel (i: integer, t: text, b: bytes).
struct Table {
  const char* name;
  std::vector<std::pair<const char*, char>> cols;
  bool identity;  // has an `id` identity column whose sequence follows the copied ids
};

// Every table both backends have, in an order that needs no deferred checks.
const std::vector<Table> kTables = {
    {"repositories", {{"id", 'i'}, {"name", 't'}, {"created", 'i'}}, true},
    {"repo_blobs", {{"repo_id", 'i'}, {"digest", 't'}, {"size", 'i'}}, false},
    {"manifests",
     {{"repo_id", 'i'},
      {"digest", 't'},
      {"media_type", 't'},
      {"body", 'b'},
      {"artifact_type", 't'},
      {"subject", 't'},
      {"annotations", 't'},
      {"created", 'i'}},
     false},
    {"manifest_refs", {{"repo_id", 'i'}, {"manifest", 't'}, {"ref", 't'}}, false},
    {"tags", {{"repo_id", 'i'}, {"name", 't'}, {"digest", 't'}, {"updated", 'i'}}, false},
    {"squash_cache",
     {{"key", 't'},
      {"manifest_digest", 't'},
      {"layer_digest", 't'},
      {"layer_size", 'i'},
      {"layer_dir", 't'},
      {"config", 'b'},
      {"created", 'i'},
      {"last_used", 'i'},
      {"gz_digest", 't'},
      {"gz_size", 'i'},
      {"layer_crc", 'i'}},
     false},
    {"layer_index",
     {{"layer_digest", 't'}, {"format", 'i'}, {"index_digest", 't'}, {"entries", 'i'}, {"states_digest", 't'}},
     false},
    {"accounts",
     {{"id", 'i'},
      {"name", 't'},
      {"is_org", 'i'},
      {"email", 't'},
      {"password_hash", 't'},
      {"superuser", 'i'},
      {"generation", 'i'},
      {"created", 'i'},
      {"disabled", 'i'},
      {"uid", 'i'}},
     true},
    {"teams", {{"id", 'i'}, {"org_id", 'i'}, {"name", 't'}, {"role", 'i'}, {"description", 't'}}, true},
    {"team_members", {{"team_id", 'i'}, {"kind", 'i'}, {"member_id", 'i'}}, false},
    {"robots",
     {{"id", 'i'},
      {"owner_id", 'i'},
      {"short_name", 't'},
      {"token_sealed", 'b'},
      {"generation", 'i'},
      {"description", 't'},
      {"created", 'i'}},
     true},
    {"repo_settings",
     {{"name", 't'}, {"is_public", 'i'}, {"description", 't'}, {"auto_prime", 'i'}, {"created", 'i'}, {"uid", 'i'}},
     false},
    {"repo_perms", {{"repo", 't'}, {"kind", 'i'}, {"subject_id", 'i'}, {"role", 'i'}}, false},
    {"default_perms", {{"org_id", 'i'}, {"kind", 'i'}, {"subject_id", 'i'}, {"role", 'i'}}, false},
    {"api_tokens",
     {{"id", 'i'}, {"user_id", 'i'}, {"name", 't'}, {"token_hash", 't'}, {"created", 'i'}, {"last_used", 'i'}},
     true},
    {"sessions", {{"id_hash", 't'}, {"user_id", 'i'}, {"csrf", 't'}, {"generation", 'i'}, {"expires", 'i'}}, false},
    {"audit",
     {{"id", 'i'},
      {"time_ms", 'i'},
      {"actor", 't'},
      {"actor_kind", 't'},
      {"action", 't'},
      {"ns", 't'},
      {"repo", 't'},
      {"detail", 't'},
      {"address", 't'},
      {"ns_uid", 'i'},
      {"repo_uid", 'i'}},
     true},
};

using Value = std::variant<int64_t, std::string>;
using Row = std::vector<Value>;

std::string select_sql(const Table& t) {
  std::string cols;
  for (const auto& [c, _] : t.cols) cols += (cols.empty() ? "" : ",") + std::string(c);
  return "SELECT " + cols + " FROM " + t.name;
}

std::string insert_sql(const Table& t) {
  std::string cols, qs;
  for (const auto& [c, _] : t.cols) {
    cols += (cols.empty() ? "" : ",") + std::string(c);
    qs += qs.empty() ? "?" : ",?";
  }
  return std::string("INSERT INTO ") + t.name + "(" + cols + ") VALUES(" + qs + ")";
}

// Reads every row of `t` through toolkit `Db`.
// SQL texts for the whole copy: the toolkits cache prepared statements by
// the text's address, so no text may be freed (and its address reused by
// another) while a connection lives.
using Texts = std::deque<std::string>;

template <class Db>
std::vector<Row> read_rows(Db& db, const Table& t, Texts& texts) {
  const std::string& sql = texts.emplace_back(select_sql(t));
  return db.with([&](typename Db::Connection& c) {
    std::vector<Row> rows;
    auto s = c.prepare(sql.c_str());
    while (s.step()) {
      Row r;
      for (size_t i = 0; i < t.cols.size(); ++i) {
        if (t.cols[i].second == 'i')
          r.emplace_back(s.i64(static_cast<int>(i)));
        else
          r.emplace_back(s.text(static_cast<int>(i)));
      }
      rows.push_back(std::move(r));
    }
    return rows;
  });
}

// Replaces the rows of `t` with `rows`, in one transaction.
template <class Db>
void write_rows(Db& db, const Table& t, const std::vector<Row>& rows, bool pg, Texts& texts) {
  const std::string& del = texts.emplace_back(std::string("DELETE FROM ") + t.name);
  const std::string& ins = texts.emplace_back(insert_sql(t));
  const std::string& q = texts.emplace_back(std::string("SELECT setval(pg_get_serial_sequence('") + t.name +
                                            "', 'id'), coalesce((SELECT max(id) FROM " + t.name + "), 0) + 1, false)");
  db.write([&](typename Db::Connection& c) {
    c.prepare(del.c_str()).run();
    for (const auto& r : rows) {
      auto s = c.prepare(ins.c_str());
      for (size_t i = 0; i < r.size(); ++i) {
        if (t.cols[i].second == 'i')
          s.bind(std::get<int64_t>(r[i]));
        else if (t.cols[i].second == 'b')
          s.bind_blob(std::get<std::string>(r[i]));
        else
          s.bind(std::string_view(std::get<std::string>(r[i])));
      }
      s.run();
    }
    if (pg && t.identity) c.prepare(q.c_str()).step();
  });
}

template <class Src, class Dst>
uint64_t copy_all(Src& src, Dst& dst, bool dst_pg, const std::function<void(const CopyProgress&)>& progress) {
  uint64_t total = 0;
  Texts texts;  // outlives every prepare(): none happens after copy_all returns
  for (const auto& t : kTables) {
    auto rows = read_rows(src, t, texts);
    write_rows(dst, t, rows, dst_pg, texts);
    total += rows.size();
    if (progress) progress({t.name, rows.size()});
  }
  return total;
}

}  // namespace

uint64_t copy_sql(const SqlEndpoint& from, const SqlEndpoint& to,
                  const std::function<void(const CopyProgress&)>& progress) {
  auto run = [&](auto& src) -> uint64_t {
    if (to.pg) {
      auto o = *to.pg;
      o.pool_size = 1;
      pg::Db dst(o);
      return copy_all(src, dst, true, progress);
    }
    sqlite::Db dst(to.sqlite_path);
    return copy_all(src, dst, false, progress);
  };
  if (from.pg) {
    auto o = *from.pg;
    o.pool_size = 1;
    pg::Db src(o);
    return run(src);
  }
  sqlite::Db src(from.sqlite_path);
  return run(src);
}

}  // namespace wharf::meta
