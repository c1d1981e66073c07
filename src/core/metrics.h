// core/metrics.h — process-wide counters rendered in the Prometheus text
// format at /metrics. Thread-safe; cheap enough for every request (one mutex
// per labelled update, atomics for plain counters).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace wharf::core {

class Metrics {
 public:
  static Metrics& global();

  void request(const std::string& route, const std::string& method, int status, double seconds, uint64_t in,
               uint64_t out);
  // A named counter (e.g. "wharf_uploads_completed_total") with optional labels text ("kind=\"x\"").
  void add(const std::string& name, uint64_t v = 1, const std::string& labels = "");
  uint64_t value(const std::string& name, const std::string& labels = "") const;
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> counters_;  // "name{labels}" -> value
  std::map<std::string, std::pair<double, uint64_t>> durations_;  // route -> (sum, count)
};

}  // namespace wharf::core
