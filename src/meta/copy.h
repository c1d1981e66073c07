// meta/copy.h — copies every row of one SQL backend's metadata and account
// tables into another (SQLite to PostgreSQL, or any pair), for `wharf
// migrate`. Rows keep their ids, generations and uids, so permissions,
// sealed robot tokens, sessions and issued registry tokens mean the same
// afterwards. Upload sessions and blob states are not copied (a client
// starts an unfinished upload again).
//
// Each table of the target is replaced in one transaction (emptied, then
// filled), so a copy run again — after an interruption, or as the final pass
// with the old registry stopped — leaves the target equal to the source.
// Both stores' schemas must exist (open them with their factories first).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "meta/pg_db.h"

namespace wharf::meta {

// One SQL backend: a SQLite file, or a PostgreSQL server.
struct SqlEndpoint {
  std::string sqlite_path;          // when pg is empty
  std::optional<pg::Options> pg;
};

struct CopyProgress {
  std::string table;
  uint64_t rows = 0;  // copied so far in this table
};

// Returns the number of rows copied. `progress` is called every few
// thousand rows and at the end of each table. Throws std::runtime_error.
uint64_t copy_sql(const SqlEndpoint& from, const SqlEndpoint& to,
                  const std::function<void(const CopyProgress&)>& progress = {});

}  // namespace wharf::meta
