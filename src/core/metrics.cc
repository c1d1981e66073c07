#include "core/metrics.h"

#include <sstream>

namespace wharf::core {

Metrics& Metrics::global() {
  static Metrics m;
  return m;
}

namespace {
std::string series(const std::string& name, const std::string& labels) {
  return labels.empty() ? name : name + "{" + labels + "}";
}
}  // namespace

void Metrics::request(const std::string& route, const std::string& method, int status, double seconds, uint64_t in,
                      uint64_t out) {
  std::string l = "route=\"" + route + "\",method=\"" + method + "\",status=\"" + std::to_string(status) + "\"";
  std::lock_guard lk(mu_);
  counters_[series("wharf_http_requests_total", l)] += 1;
  counters_["wharf_http_bytes_in_total"] += in;
  counters_["wharf_http_bytes_out_total"] += out;
  auto& d = durations_[route];
  d.first += seconds;
  d.second += 1;
}

void Metrics::add(const std::string& name, uint64_t v, const std::string& labels) {
  std::lock_guard lk(mu_);
  counters_[series(name, labels)] += v;
}

uint64_t Metrics::value(const std::string& name, const std::string& labels) const {
  std::lock_guard lk(mu_);
  auto it = counters_.find(series(name, labels));
  return it == counters_.end() ? 0 : it->second;
}

std::string Metrics::render() const {
  std::ostringstream o;
  std::lock_guard lk(mu_);
  std::string last;
  for (auto& [k, v] : counters_) {
    std::string name = k.substr(0, k.find('{'));
    if (name != last) {
      o << "# TYPE " << name << " counter\n";
      last = name;
    }
    o << k << ' ' << v << '\n';
  }
  o << "# TYPE wharf_http_request_duration_seconds summary\n";
  for (auto& [route, d] : durations_) {
    o << "wharf_http_request_duration_seconds_sum{route=\"" << route << "\"} " << d.first << '\n';
    o << "wharf_http_request_duration_seconds_count{route=\"" << route << "\"} " << d.second << '\n';
  }
  return o.str();
}

}  // namespace wharf::core
