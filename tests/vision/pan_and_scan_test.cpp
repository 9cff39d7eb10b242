#include "vision/pan_and_scan.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace unicorn::vision {
namespace {

// The expected grids follow transformers' rule by hand: n = round-half-up(long / short),
// at most floor(long / min_crop_size), clamped to [2, max_crops]; side = ceil(long / n).
TEST(PanAndScan, ReferencePanoramaGivesThreeSquareCrops) {
  const auto crops = pan_and_scan_crops(1536, 512, {});
  EXPECT_EQ(crops, (std::vector<CropRect>{{0, 0, 512, 512}, {512, 0, 512, 512}, {1024, 0, 512, 512}}));
}

TEST(PanAndScan, PortraitCropsStackVertically) {
  const auto crops = pan_and_scan_crops(512, 1536, {});
  EXPECT_EQ(crops, (std::vector<CropRect>{{0, 0, 512, 512}, {0, 512, 512, 512}, {0, 1024, 512, 512}}));
}

TEST(PanAndScan, NotTriggered) {
  EXPECT_TRUE(pan_and_scan_crops(600, 512, {}).empty());   // ratio 1.17 < 1.2
  EXPECT_TRUE(pan_and_scan_crops(512, 512, {}).empty());
  EXPECT_TRUE(pan_and_scan_crops(451, 100, {}).empty());   // crops would be 100 high (< 256)
  EXPECT_TRUE(pan_and_scan_crops(500, 300, {}).empty());   // 2 crops of 250 wide (< 256)
}

TEST(PanAndScan, CountClampedToMaxCrops) {
  const auto crops = pan_and_scan_crops(4000, 500, {});  // ratio 8 -> 4 crops of 1000
  ASSERT_EQ(crops.size(), 4u);
  EXPECT_EQ(crops[3], (CropRect{3000, 0, 1000, 500}));
  PanAndScanOptions two;
  two.max_crops = 2;
  EXPECT_EQ(pan_and_scan_crops(4000, 500, two).size(), 2u);
}

TEST(PanAndScan, AtLeastTwoCropsOnceTriggered) {
  // ratio 1.25 rounds to 1, but an activated pan-and-scan always cuts at least 2.
  EXPECT_EQ(pan_and_scan_crops(700, 560, {}), (std::vector<CropRect>{{0, 0, 350, 560}, {350, 0, 350, 560}}));
}

TEST(PanAndScan, CountLimitedByMinCropSize) {
  // ratio 3.5 rounds to 4, but only floor(900 / 256) = 3 crops of 256 fit.
  EXPECT_EQ(pan_and_scan_crops(900, 257, {}).size(), 3u);
}

TEST(PanAndScan, LastCropTakesTheRemainder) {
  // ratio 3.33 -> 3 crops of ceil(1000 / 3) = 334; numpy's slice leaves 332 for the last.
  EXPECT_EQ(pan_and_scan_crops(1000, 300, {}),
            (std::vector<CropRect>{{0, 0, 334, 300}, {334, 0, 334, 300}, {668, 0, 332, 300}}));
}

TEST(PanAndScan, BadOptions) {
  PanAndScanOptions o;
  o.min_crop_size = 0;
  EXPECT_THROW(pan_and_scan_crops(100, 10, o), Error);
  EXPECT_THROW(pan_and_scan_crops(0, 10, {}), Error);
}

}  // namespace
}  // namespace unicorn::vision
