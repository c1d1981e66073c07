#include "squash/policy.h"

#include <unistd.h>

#include <algorithm>
#include <thread>

namespace wharf::squash {

ServiceOptions service_options(const core::SquashConfig& cfg, const std::string& data_dir) {
  ServiceOptions sq;
  sq.default_platform = cfg.default_platform;
  sq.workers = cfg.workers > 0 ? static_cast<unsigned>(cfg.workers) : std::max(1u, std::thread::hardware_concurrency());
  sq.queue_max = static_cast<size_t>(cfg.queue_max);
  sq.cache_max_bytes = cfg.cache_max_bytes;
  sq.limits = cfg.limits;
  sq.spill_dir = data_dir + "/uploads";
  sq.checkpoint_spacing = cfg.inflate_checkpoint_bytes;
  sq.memory_budget_bytes = cfg.memory_budget_bytes;
  if (!sq.memory_budget_bytes) {
    uint64_t ram = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    sq.memory_budget_bytes = std::max<uint64_t>(1ull << 30, ram / 4);
  }
  return sq;
}

bool auto_prime_wanted(const core::AutoPrimeConfig& cfg, const std::string& repo, bool repo_setting) {
  auto listed = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  std::string ns = repo.substr(0, repo.find('/'));
  return repo_setting || cfg.all || listed(cfg.namespaces, ns) || listed(cfg.repositories, repo);
}

}  // namespace wharf::squash
