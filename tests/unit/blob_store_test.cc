// The shared BlobStore driver suite: every driver must pass it. Today the
// filesystem driver; the S3 driver joins with the same suite.
#include <gtest/gtest.h>

#include <chrono>

#include <filesystem>

#include "storage/fs_blob_store.h"
#include "storage/async_writer.h"
#include "storage/blob_store.h"

using namespace wharf;

namespace {

class BlobStoreSuite : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("wharf-bs-" + std::to_string(::getpid()) + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    store_ = storage::make_fs_blob_store(dir_.string());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static std::string read_all(storage::BlobReader& r) {
    std::string out;
    char buf[7];  // small on purpose: exercises partial reads
    while (size_t n = r.read(buf, sizeof buf)) out.append(buf, n);
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<storage::BlobStore> store_;
};

TEST_P(BlobStoreSuite, PutStatOpenRemove) {
  auto d = core::sha256_of("hello world");
  EXPECT_FALSE(store_->stat(d));
  EXPECT_EQ(store_->open(d), nullptr);
  store_->put(d, "hello world");
  EXPECT_EQ(store_->stat(d).value(), 11u);
  auto r = store_->open(d, 6);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->remaining(), 5u);
  EXPECT_EQ(read_all(*r), "world");
  store_->remove(d);
  EXPECT_FALSE(store_->stat(d));
  store_->remove(d);  // absent: not an error
}

TEST_P(BlobStoreSuite, UploadAppendCommit) {
  store_->create_upload("u1");
  EXPECT_EQ(store_->upload_size("u1").value(), 0u);
  {
    auto w = store_->append_upload("u1");
    w->write("abc", 3);
    w->close();
  }
  {
    auto w = store_->append_upload("u1");  // a later request resumes at the end
    w->write("def", 3);
    w->close();
  }
  EXPECT_EQ(store_->upload_size("u1").value(), 6u);
  auto r = store_->read_upload("u1", 2);
  EXPECT_EQ(read_all(*r), "cdef");
  auto d = core::sha256_of("abcdef");
  EXPECT_FALSE(store_->stat(d));  // not visible before commit
  store_->commit_upload("u1", d);
  EXPECT_EQ(store_->stat(d).value(), 6u);
  EXPECT_FALSE(store_->upload_size("u1"));
  auto b = store_->open(d);
  EXPECT_EQ(read_all(*b), "abcdef");
}

TEST_P(BlobStoreSuite, CommitOfExistingBlobReplacesItWithTheStagedCopy) {
  auto d = core::sha256_of("x");
  store_->put(d, "x");
  store_->create_upload("u2");
  auto w = store_->append_upload("u2");
  w->write("x", 1);
  w->close();
  store_->commit_upload("u2", d);
  EXPECT_FALSE(store_->upload_size("u2"));
  EXPECT_EQ(store_->stat(d).value(), 1u);
}

// wharf gc: collect() removes only old, unused blobs, and never loses a blob
// committed again while it is being collected.
TEST_P(BlobStoreSuite, CollectRemovesOnlyOldUnusedBlobsAndRacesSafely) {
  auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto d = core::sha256_of("old bytes");
  store_->put(d, "old bytes");
  int seen = 0;
  store_->for_each_blob([&](const storage::BlobStore::BlobInfo& b) {
    if (b.digest == d) ++seen;
  });
  EXPECT_EQ(seen, 1);
  // Committed just now: kept, whatever still_used says.
  EXPECT_FALSE(store_->collect(d, now - 60, [] { return false; }));
  EXPECT_TRUE(store_->stat(d));
  // Old enough but still used: kept and intact.
  EXPECT_FALSE(store_->collect(d, now + 60, [] { return true; }));
  auto r = store_->open(d);
  ASSERT_TRUE(r);
  EXPECT_EQ(read_all(*r), "old bytes");
  // The same digest committed again while the collection runs: the new copy survives.
  bool raced = false;
  EXPECT_TRUE(store_->collect(d, now + 60, [&] {
    store_->create_upload("again");
    auto w = store_->append_upload("again");
    w->write("old bytes", 9);
    w->close();
    store_->commit_upload("again", d);
    raced = true;
    return false;
  }));
  EXPECT_TRUE(raced);
  r = store_->open(d);
  ASSERT_TRUE(r) << "a blob committed during collect() was lost";
  EXPECT_EQ(read_all(*r), "old bytes");
  // Old and unused: removed.
  EXPECT_TRUE(store_->collect(d, now + 60, [] { return false; }));
  EXPECT_FALSE(store_->stat(d));
  EXPECT_FALSE(store_->collect(d, now + 60, [] { return false; }));  // already gone
}

TEST_P(BlobStoreSuite, DeleteUploadAndProbe) {
  store_->create_upload("u3");
  store_->delete_upload("u3");
  EXPECT_FALSE(store_->upload_size("u3"));
  store_->delete_upload("u3");
  EXPECT_NO_THROW(store_->probe());
}

TEST_P(BlobStoreSuite, RejectsUploadIdsThatCouldEscape) {
  EXPECT_ANY_THROW(store_->create_upload("../etc"));
  EXPECT_ANY_THROW(store_->create_upload("a/b"));
}

// Pushes write through AsyncWriter with bypass_cache (O_DIRECT on the
// filesystem driver for aligned pieces): whatever the alignment of the
// offset a request resumes at and of the body's length, the staged bytes and
// the hash are exactly what was pushed (the unaligned pieces go through the
// page cache). Run on the suite's directory (ext4 here) and on /dev/shm (tmpfs).
TEST_P(BlobStoreSuite, BypassingTheCacheKeepsEveryByteWhateverTheAlignment) {
  std::vector<std::filesystem::path> roots{dir_};
  if (std::filesystem::is_directory("/dev/shm")) roots.push_back("/dev/shm" / dir_.filename());
  for (const auto& root : roots) {
    SCOPED_TRACE(root.string());
    auto store = storage::make_fs_blob_store(root.string());
    std::string want;
    auto push = [&](const std::string& id, size_t len, char seed) {
      auto w = store->append_upload(id);
      w->bypass_cache();
      core::Hasher h(core::DigestAlgorithm::Sha256);
      std::string sent;
      {
        storage::AsyncWriter aw(*w, h);
        while (sent.size() < len) {
          storage::Buffer b = aw.take();
          size_t n = std::min(len - sent.size(), b.size());
          for (size_t i = 0; i < n; ++i) b.data()[i] = static_cast<char>(seed + (sent.size() + i) * 7 % 251);
          sent.append(b.data(), n);
          aw.push(std::move(b), n);
        }
        aw.finish();
      }
      w->close();
      EXPECT_EQ(h.finish(), core::sha256_of(sent));
      return sent;
    };
    store->create_upload("a");
    want = push("a", 3 * storage::Buffer::kSize + 777, 1);  // aligned start, odd tail
    EXPECT_EQ(read_all(*store->read_upload("a", 0)), want);
    store->create_upload("b");
    want = push("b", 1000, 2);                          // a first PATCH of odd length ...
    want += push("b", 2 * storage::Buffer::kSize + 3096, 3);  // ... then buffers at an odd offset, up to 4 KiB-aligned
    want += push("b", storage::Buffer::kSize + 4096, 4);      // and whole buffers at an aligned offset
    EXPECT_EQ(store->upload_size("b").value(), want.size());
    EXPECT_EQ(read_all(*store->read_upload("b", 0)), want);
    auto d = core::sha256_of(want);
    store->commit_upload("b", d);
    EXPECT_EQ(read_all(*store->open(d)), want);
    if (root != dir_) std::filesystem::remove_all(root);
  }
}

INSTANTIATE_TEST_SUITE_P(Drivers, BlobStoreSuite, ::testing::Values("filesystem"));

}  // namespace
