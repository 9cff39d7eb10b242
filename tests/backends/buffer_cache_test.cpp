// The CPU backend's cache of free activation blocks: blocks come back by size and are handed
// out again, and cached_bytes (reported in the server's /metrics, and taken off the live heap
// by the load test's leak check) follows what the caches hold.
#include "backends/cpu/buffer_cache.h"

#include <gtest/gtest.h>

namespace unicorn::cpu {
namespace {

TEST(BufferCache, CachedBytesFollowTheFreeBlocks) {
  const size_t before = BufferCache::cached_bytes();
  {
    BufferCache cache(size_t(1) << 20);
    const void* first = nullptr;
    {
      Tensor t = cache.zeros(DType::F32, {1000});  // 4000 bytes: a block of 4032
      first = t.raw();
      EXPECT_EQ(BufferCache::cached_bytes(), before);
    }
    EXPECT_EQ(BufferCache::cached_bytes(), before + 4032);
    {
      Tensor again = cache.zeros(DType::F32, {1000});  // the same block, zero-filled again
      EXPECT_EQ(again.raw(), first);
      EXPECT_EQ(again.to_f32()[999], 0.0f);
      EXPECT_EQ(BufferCache::cached_bytes(), before);
      Tensor other = cache.zeros(DType::F32, {2000});
    }
    EXPECT_EQ(BufferCache::cached_bytes(), before + 4032 + 8000);
    // Over max_bytes, a block goes back to the allocator instead.
    { Tensor big = cache.zeros(DType::F32, {300000}); }
    EXPECT_EQ(BufferCache::cached_bytes(), before + 4032 + 8000);
  }
  EXPECT_EQ(BufferCache::cached_bytes(), before);  // the cache gone, its blocks freed
}

}  // namespace
}  // namespace unicorn::cpu
