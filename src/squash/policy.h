// squash/policy.h — the squash service's settings and rules taken from the
// configuration (squash: in the YAML): the service's options, and which
// pushed tags are primed ahead of use.
#pragma once

#include <string>

#include "core/config.h"
#include "squash/service.h"

namespace wharf::squash {

// The service's options from the configuration: workers 0 means one per
// core, memory_budget_bytes 0 a quarter of RAM (at least 1 GiB); spilled
// data goes under `data_dir` (on the data disk, not a small /tmp).
ServiceOptions service_options(const core::SquashConfig& cfg, const std::string& data_dir);

// Whether a tag pushed to `repo` is primed (its squash built at once): the
// repository's own setting (`repo_setting`, from the management API / UI),
// else the configuration's lists (squash.auto_prime).
bool auto_prime_wanted(const core::AutoPrimeConfig& cfg, const std::string& repo, bool repo_setting);

}  // namespace wharf::squash
