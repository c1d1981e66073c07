// meta/sqlite_store.h — the SQLite backends of the metadata and account
// stores (the embedded default; target wharf_meta_sqlite). The interfaces
// are metadata_store.h and account_store.h (target wharf_meta).
#pragma once

#include <memory>
#include <string>

#include "meta/account_store.h"
#include "meta/metadata_store.h"

namespace wharf::meta {

// SQLite backend (WAL, synchronous=FULL) in the file `path`; migrates the
// schema on open.
std::unique_ptr<MetadataStore> make_sqlite_store(const std::string& path);

// SQLite backend in the file `path` (the same file as the metadata store is
// fine: the tables and their schema version are separate).
std::unique_ptr<AccountStore> make_sqlite_accounts(const std::string& path);

}  // namespace wharf::meta
