// Where request images may come from: data: URIs decoded, remote URLs refused, local files
// only inside the allowed directory (symlinks and ".." resolved before the check).
#include "server/images.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "server/api_error.h"
#include "support/test_paths.h"

namespace unicorn::server {
namespace {

namespace fs = std::filesystem;

std::string error_of(std::string_view url, const ImagePolicy& policy = {}) {
  try {
    image_bytes(url, policy, "messages[0].content[0]");
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.param(), "messages[0].content[0]");
    return e.what();
  }
  return "no error";
}

TEST(RequestImages, DataUris) {
  const ImagePolicy none;
  EXPECT_EQ(image_bytes("data:image/png;base64,aGVsbG8=", none, "x"), "hello");
  EXPECT_EQ(image_bytes("DATA:Image/JPEG;BASE64,aGVsbG8", none, "x"), "hello");
  EXPECT_EQ(image_bytes("data:image/webp;base64,aGVs\nbG8=", none, "x"), "hello");
  EXPECT_NE(error_of("data:image/gif;base64,aGVsbG8=").find("unsupported image type 'image/gif'"), std::string::npos);
  EXPECT_NE(error_of("data:;base64,aGVsbG8=").find("'none'"), std::string::npos);
  EXPECT_NE(error_of("data:image/png,hello").find("only base64"), std::string::npos);
  EXPECT_NE(error_of("data:image/png;base64").find("','"), std::string::npos);
  EXPECT_NE(error_of("data:image/png;base64,aGV*sbG8=").find("invalid base64"), std::string::npos);
}

TEST(RequestImages, RemoteAndOtherSchemesRefused) {
  EXPECT_NE(error_of("https://example.com/a.png").find("remote image URLs are not fetched"), std::string::npos);
  EXPECT_NE(error_of("HTTP://example.com/a.png").find("remote"), std::string::npos);
  EXPECT_NE(error_of("ftp://example.com/a.png").find("unsupported image URL scheme"), std::string::npos);
  EXPECT_NE(error_of("").find("no URL"), std::string::npos);
  // Local files need --allow-local-images.
  EXPECT_NE(error_of("/etc/passwd").find("--allow-local-images"), std::string::npos);
  EXPECT_NE(error_of("file:///etc/passwd").find("--allow-local-images"), std::string::npos);
}

TEST(RequestImages, LocalFilesOnlyInsideTheDirectory) {
  const std::string dir = test::scratch_dir("images-policy/allowed");
  const std::string out = test::scratch_dir("images-policy/elsewhere");
  test::write_bytes(dir + "/a b.png", "inside");
  test::write_bytes(out + "/secret.png", "outside");
  fs::create_symlink(out + "/secret.png", dir + "/escape.png");
  fs::create_symlink(out, dir + "/escape-dir");
  fs::create_directories(dir + "/sub");
  test::write_bytes(dir + "/sub/c.png", "nested");
  const ImagePolicy p = make_image_policy(dir, 1 << 20);

  EXPECT_EQ(image_bytes(dir + "/a b.png", p, "x"), "inside");
  EXPECT_EQ(image_bytes("a b.png", p, "x"), "inside");
  EXPECT_EQ(image_bytes("file://" + dir + "/a%20b.png", p, "x"), "inside");
  EXPECT_EQ(image_bytes("file://localhost" + dir + "/a%20b.png", p, "x"), "inside");
  EXPECT_EQ(image_bytes("sub/../sub/c.png", p, "x"), "nested");
  for (const std::string& url : {std::string("escape.png"), std::string("escape-dir/secret.png"),
                                 std::string("../elsewhere/secret.png"), out + "/secret.png",
                                 "file://" + dir + "/../elsewhere/secret.png", std::string("/etc/passwd")})
    EXPECT_NE(error_of(url, p).find("outside the allowed directory"), std::string::npos) << url << ": " << error_of(url, p);
  EXPECT_NE(error_of("missing.png", p).find("not found"), std::string::npos);
  EXPECT_NE(error_of("sub", p).find("not a regular file"), std::string::npos);
  EXPECT_NE(error_of(".", p).find("outside"), std::string::npos);  // the directory itself
  EXPECT_NE(error_of("file://other-host/x.png", p).find("file:///absolute/path"), std::string::npos);
  EXPECT_NE(error_of("file://" + dir + "/a%2", p).find("percent"), std::string::npos);
  EXPECT_NE(error_of("file://" + dir + "/a%00.png", p).find("NUL"), std::string::npos);

  const ImagePolicy tiny = make_image_policy(dir, 3);
  EXPECT_NE(error_of("a b.png", tiny).find("over the limit"), std::string::npos);
  EXPECT_THROW(make_image_policy(dir + "/a b.png", 10), Error);
  EXPECT_THROW(make_image_policy(dir + "/nope", 10), Error);
}

}  // namespace
}  // namespace unicorn::server
