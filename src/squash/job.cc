#include "squash/job.h"

#include <tuple>

#include "core/digest.h"

namespace wharf::squash {

std::shared_ptr<Job> Job::cached(Image img, storage::BlobStore& blobs, uint64_t layer_size, std::string layer_digest,
                                 std::string config, std::optional<Gzip> gzip) {
  auto j = std::make_shared<Job>(std::move(img), blobs);
  j->state_ = State::Done;
  j->layer_size_ = layer_size;
  j->available_ = layer_size;
  j->written_ = layer_size;
  j->layer_digest_ = std::move(layer_digest);
  j->config_ = std::move(config);
  j->gzip_ = std::move(gzip);
  return j;
}

// ---- the build's state changes ----

void Job::start_planning() {
  std::lock_guard lk(mu_);
  state_ = State::Planning;
}

void Job::start_writing(std::string staging_id, uint64_t layer_size) {
  std::lock_guard lk(mu_);
  staging_id_ = std::move(staging_id);
  layer_size_ = layer_size;
  state_ = State::Writing;
}

uint64_t Job::published(std::shared_ptr<const storage::Buffer> buf, size_t n) {
  std::lock_guard lk(mu_);
  uint64_t at = available_.load();
  recent_.push_back({at, n, std::move(buf)});
  available_ = at + n;
  trim_recent();
  return at + n;
}

void Job::written(uint64_t total) {
  std::lock_guard lk(mu_);
  written_ = total;
  trim_recent();
}

void Job::layer_complete(std::string config, std::string layer_digest) {
  std::lock_guard lk(mu_);
  config_ = std::move(config);
  layer_digest_ = std::move(layer_digest);
}

void Job::done() {
  std::lock_guard lk(mu_);
  state_ = State::Done;
  written_ = layer_size_;
  recent_.clear();  // readers go on from the committed blob
}

void Job::fail(std::exception_ptr err) {
  std::lock_guard lk(mu_);
  failure_ = std::move(err);
  state_ = State::Failed;
  recent_.clear();
}

void Job::notify() {
  changes_.fetch_add(1);
  std::lock_guard lk(mu_);
  for (auto& [_, cb] : subs_) cb();
}

// ---- readers ----

Job::State Job::state() const {
  std::lock_guard lk(mu_);
  return state_;
}
uint64_t Job::layer_size() const {
  std::lock_guard lk(mu_);
  return layer_size_;
}
uint64_t Job::disk_end() const {
  std::lock_guard lk(mu_);
  return std::min(written_, recent_.empty() ? available_.load() : recent_.front().offset);
}
std::optional<Job::Recent> Job::recent(uint64_t offset) const {
  std::lock_guard lk(mu_);
  if (recent_.empty() || offset < recent_.front().offset) return std::nullopt;
  // Pieces are whole buffers but the last: find the one holding `offset`.
  for (auto it = recent_.rbegin(); it != recent_.rend(); ++it)
    if (offset >= it->offset && offset < it->offset + it->size)
      return Recent{it->buf, it->buf->data() + (offset - it->offset), static_cast<size_t>(it->offset + it->size - offset)};
  return std::nullopt;
}
std::string Job::config() const {
  std::lock_guard lk(mu_);
  return config_;
}
std::exception_ptr Job::failure() const {
  std::lock_guard lk(mu_);
  return failure_;
}
std::optional<Job::Gzip> Job::gzip() const {
  std::lock_guard lk(mu_);
  return gzip_;
}

void Job::trim_recent() {
  uint64_t slowest = available_;
  for (const auto& [_, at] : readers_) slowest = std::min(slowest, at);
  while (!recent_.empty()) {
    const Piece& p = recent_.front();
    const bool on_disk = p.offset + p.size <= written_;
    const bool wanted = p.offset + p.size > slowest && recent_.size() <= kRecentPieces;
    if (!on_disk || wanted) break;
    recent_.pop_front();
  }
}
int Job::attach(uint64_t at) {
  std::lock_guard lk(mu_);
  readers_[++next_reader_] = at;
  return next_reader_;
}
void Job::advance(int reader, uint64_t at) {
  std::lock_guard lk(mu_);
  readers_[reader] = at;
  trim_recent();
}
void Job::detach(int reader) {
  std::lock_guard lk(mu_);
  readers_.erase(reader);
  trim_recent();
}

std::unique_ptr<storage::BlobReader> Job::open_at(uint64_t offset) {
  // Files are opened outside the lock. While Writing the layer is the staging
  // upload until the commit renames it to the blob named by the layer digest,
  // which is set before the commit starts: if the upload is gone, the digest
  // read after that is set and names the file.
  auto look = [&] {
    std::lock_guard lk(mu_);
    return std::tuple{state_, staging_id_, layer_digest_};
  };
  auto [st, staging, layer] = look();
  std::unique_ptr<storage::BlobReader> r;
  if (st == State::Writing) {
    r = staging_store_->read_upload(staging, offset);
    if (!r) std::tie(st, staging, layer) = look();
  }
  if (!r && (st == State::Writing || st == State::Done) && !layer.empty())
    r = blobs_->open(*core::Digest::parse(layer), offset);
  if (st == State::Failed) throw std::runtime_error("squash build failed");
  if (!r) throw std::runtime_error("squash layer is missing from storage");
  return r;
}

std::unique_ptr<storage::BlobReader> Job::open_gzip(uint64_t offset) {
  std::string digest;
  {
    std::lock_guard lk(mu_);
    if (!gzip_) return nullptr;
    digest = gzip_->digest;
  }
  return blobs_->open(*core::Digest::parse(digest), offset);  // outside the lock: may be a network round trip
}

int Job::subscribe(std::function<void()> cb) {
  std::lock_guard lk(mu_);
  subs_[++next_sub_] = std::move(cb);
  return next_sub_;
}
void Job::unsubscribe(int id) {
  std::lock_guard lk(mu_);
  subs_.erase(id);
}

}  // namespace wharf::squash
