// meta/pg_store.h — the PostgreSQL backends of the metadata and account
// stores (target wharf_meta_pg), for several wharf processes sharing one
// database. The interfaces are metadata_store.h and account_store.h.
#pragma once

#include <memory>

#include "meta/account_store.h"
#include "meta/metadata_store.h"
#include "meta/pg_db.h"

namespace wharf::meta {

// Connects (o.pool_size connections at most, opened as needed) and applies
// the schema's migrations under an advisory lock. Throws std::runtime_error
// naming the problem when the server cannot be reached or its schema is
// newer than this binary can work with.
std::unique_ptr<MetadataStore> make_pg_store(const pg::Options& o);

// Same database (and schema) as the metadata store is fine: the tables and
// their schema version are separate.
std::unique_ptr<AccountStore> make_pg_accounts(const pg::Options& o);

}  // namespace wharf::meta
