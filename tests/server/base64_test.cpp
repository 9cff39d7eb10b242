// Base64 decoding of data: URIs: the RFC 4648 vectors, what is tolerated (missing padding,
// line breaks) and what is refused with the offset named.
#include "server/base64.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace unicorn::server {
namespace {

TEST(Base64, Rfc4648Vectors) {
  EXPECT_EQ(decode_base64(""), "");
  EXPECT_EQ(decode_base64("Zg=="), "f");
  EXPECT_EQ(decode_base64("Zm8="), "fo");
  EXPECT_EQ(decode_base64("Zm9v"), "foo");
  EXPECT_EQ(decode_base64("Zm9vYg=="), "foob");
  EXPECT_EQ(decode_base64("Zm9vYmE="), "fooba");
  EXPECT_EQ(decode_base64("Zm9vYmFy"), "foobar");
  EXPECT_EQ(decode_base64("/+8="), std::string("\xff\xef"));
}

TEST(Base64, ToleratesMissingPaddingAndLineBreaks) {
  EXPECT_EQ(decode_base64("Zg"), "f");
  EXPECT_EQ(decode_base64("Zm8"), "fo");
  EXPECT_EQ(decode_base64("Zm9v\r\nYmFy\n"), "foobar");
}

std::string error_of(std::string_view s) {
  try {
    decode_base64(s);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Base64, RefusesBrokenInput) {
  EXPECT_NE(error_of("Zm9v!mFy").find("'!' at offset 4"), std::string::npos) << error_of("Zm9v!mFy");
  EXPECT_NE(error_of("Zm9v\x80").find("0x80"), std::string::npos);
  EXPECT_NE(error_of("Zg==Zg==").find("after '=' padding"), std::string::npos);
  EXPECT_NE(error_of("Zm9vY").find("whole number of bytes"), std::string::npos);
  EXPECT_NE(error_of("Zg=").find("padding"), std::string::npos);
  EXPECT_NE(error_of("Zg===").find("padding"), std::string::npos);
  EXPECT_NE(error_of("Zh==").find("bits set"), std::string::npos);  // 'h' leaves bits past "f"
  EXPECT_NE(error_of("Zm9v-_").find("'-'"), std::string::npos);     // the URL-safe alphabet is not base64
}

}  // namespace
}  // namespace unicorn::server
