// Base64 (RFC 4648, standard alphabet) decoding of data: URIs. Strict where a lenient decoder
// would hide a broken client (characters outside the alphabet, '=' inside the data, leftover
// bits), tolerant where clients legitimately differ (missing padding, line breaks as MIME
// encoders write them).
#pragma once

#include <string>
#include <string_view>

namespace unicorn::server {

// Throws Error naming the offset of the first bad character.
std::string decode_base64(std::string_view text);

}  // namespace unicorn::server
