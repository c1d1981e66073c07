#include "cluster/periodic.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/metrics.h"

namespace wharf::cluster {

Periodic::~Periodic() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Periodic::add(std::string name, std::chrono::seconds interval, std::function<void()> fn) {
  interval = std::max(interval, std::chrono::seconds(1));
  jobs_.push_back({std::move(name), interval, std::move(fn), std::chrono::steady_clock::now()});
}

void Periodic::start() { thread_ = std::thread([this] { loop(); }); }

void Periodic::loop() {
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    auto wake = now + std::chrono::hours(1);
    for (auto& j : jobs_) {
      if (j.next_look <= now) {
        j.next_look = now + std::max<std::chrono::steady_clock::duration>(j.interval / 4, std::chrono::seconds(1));
        bool mine = false;
        try {
          mine = meta_.claim_periodic(j.name, std::chrono::duration_cast<std::chrono::milliseconds>(j.interval).count(),
                                      replica_);
        } catch (const std::exception& e) {
          spdlog::warn("periodic {}: cannot claim its run: {}", j.name, e.what());
        }
        if (mine) {
          core::Metrics::global().add("wharf_periodic_runs_total", 1, "job=\"" + j.name + "\"");
          j.fn();
        }
      }
      wake = std::min(wake, j.next_look);
    }
    std::unique_lock lk(mu_);
    if (cv_.wait_until(lk, wake, [&] { return stopping_; })) return;
  }
}

}  // namespace wharf::cluster
