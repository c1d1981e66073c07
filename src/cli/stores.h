// cli/stores.h — the one place that builds the stores from the configuration:
// a driver name plus its parameters (storage.<driver>, metadata.<driver>), as
// distribution's driver factory does. Every command opens its stores here,
// so every command checks the driver names the same way.
//
// A new driver is one entry in the tables in stores.cc (and its section in
// core/config.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "meta/account_store.h"
#include "meta/copy.h"
#include "meta/metadata_store.h"
#include "storage/blob_store.h"

namespace wharf::cli {

// Throws std::runtime_error naming the setting and the known drivers when
// the driver is unknown.
std::unique_ptr<storage::BlobStore> open_blob_store(const core::Config& cfg);
// `cached`: behind the in-process cache of tags and manifests
// (cache.metadata_ttl_ms), as the server uses it; the admin commands read
// the store directly.
std::unique_ptr<meta::MetadataStore> open_metadata_store(const core::Config& cfg, bool cached);
std::unique_ptr<meta::AccountStore> open_account_store(const core::Config& cfg);

// Checks both driver names (every command calls it first, whichever stores
// it opens): the error open_*() would give.
void check_drivers(const core::Config& cfg);

// The SQL backend metadata.driver names, for meta::copy_sql.
meta::SqlEndpoint sql_endpoint(const core::Config& cfg);

std::vector<std::string> storage_drivers();
std::vector<std::string> metadata_drivers();

}  // namespace wharf::cli
