// http/offload.h — runs blocking work (a database round trip, an object
// store request) on a bounded pool of worker threads while the coroutine
// that asked waits, so the I/O threads keep serving other connections.
//
//   auto size = co_await offload.run([&] { return meta.linked_blob_size(repo, d); });
//
// The coroutine resumes on its own executor with the result, or the
// exception the work threw. An Offload made with threads = 0 runs the work
// inline on the calling thread (the embedded backends: a SQLite read or a
// local file is cheaper than the hop). Thread-safe; the pool is joined on
// destruction, which waits for work in flight.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>
#include <type_traits>

namespace wharf::http {

class Offload {
 public:
  explicit Offload(unsigned threads) {
    if (threads) pool_ = std::make_unique<boost::asio::thread_pool>(threads);
  }
  ~Offload() {
    if (pool_) pool_->join();
  }
  Offload(const Offload&) = delete;
  Offload& operator=(const Offload&) = delete;

  bool enabled() const { return pool_ != nullptr; }

  // Runs f on the pool without waiting for it (inline without a pool): for
  // work that must not block an I/O thread and that nobody waits for.
  template <class F>
  void post(F f) {
    if (!pool_) {
      f();
      return;
    }
    boost::asio::post(*pool_, std::move(f));
  }

  template <class F>
  boost::asio::awaitable<std::invoke_result_t<F&>> run(F f) {
    using R = std::invoke_result_t<F&>;
    if (!pool_) co_return f();
    co_return co_await boost::asio::co_spawn(
        pool_->get_executor(), [&f]() -> boost::asio::awaitable<R> { co_return f(); }, boost::asio::use_awaitable);
  }

 private:
  std::unique_ptr<boost::asio::thread_pool> pool_;
};

// `offload->run(f)`, or `f()` inline when there is no Offload (null).
template <class F>
boost::asio::awaitable<std::invoke_result_t<F&>> run_on(Offload* offload, F f) {
  if (!offload) co_return f();
  co_return co_await offload->run(std::move(f));
}

}  // namespace wharf::http
