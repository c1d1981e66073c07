// cluster/periodic.h — periodic work (session purge, upload expiry, ...) run
// once in the cluster rather than once per replica.
//
// A thread of its own looks at each job about four times per interval (at
// least once a second); a job is run only when this process's claim in the
// metadata store succeeds (MetadataStore::claim_periodic: nobody ran it for
// an interval, by the database's clock). So with N replicas a job still runs
// about once per interval, and when the replica that ran it last dies
// another takes over within about a quarter interval more. On the embedded
// store every claim succeeds (one process). A job that throws is logged by
// the caller's `fn`; a failing claim (the database away) is skipped and
// tried at the next look. /metrics: wharf_periodic_runs_total{job}.
//
// add() before start(); the jobs run one after another on the thread, never
// on an I/O thread. Stopped and joined by the destructor.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "meta/metadata_store.h"

namespace wharf::cluster {

class Periodic {
 public:
  Periodic(meta::MetadataStore& meta, std::string replica) : meta_(meta), replica_(std::move(replica)) {}
  ~Periodic();
  void add(std::string name, std::chrono::seconds interval, std::function<void()> fn);
  void start();

 private:
  struct Job {
    std::string name;
    std::chrono::seconds interval;
    std::function<void()> fn;
    std::chrono::steady_clock::time_point next_look;
  };
  void loop();
  meta::MetadataStore& meta_;
  std::string replica_;
  std::vector<Job> jobs_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace wharf::cluster
