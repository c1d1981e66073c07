// cli/endpoints.h — the process's own endpoints beside the registry, the
// squash endpoint, the API and the UI: /health/instance, /health/endtoend
// (a round trip to each store, each reported: 200 when both answer, else
// 503 naming the failing one), /metrics (Prometheus text), and the 404 of
// any other path.
#pragma once

#include <boost/asio/awaitable.hpp>

#include "http/offload.h"
#include "http/server.h"
#include "meta/metadata_store.h"
#include "storage/blob_store.h"

namespace wharf::cli {

// Answers `ex` (any path the other handlers did not take).
// `offload` (may be null) runs the health probes' round trips.
boost::asio::awaitable<void> process_endpoint(http::Exchange& ex, meta::MetadataStore& meta, storage::BlobStore& blobs,
                                              http::Offload* offload);

}  // namespace wharf::cli
