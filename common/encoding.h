// common/encoding.h: the byte encodings several sgsync parts need: hex, SHA digests in hex, random
// uuids and gzip (MISP's sync compresses request bodies; web servers may compress answers).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sgsync {

// Lower-case hex of `bytes`.
std::string HexEncode(std::string_view bytes);
// Lower-case hex digests.
std::string Sha1Hex(std::string_view data);
std::string Sha256Hex(std::string_view data);
// ASCII letters lowered (uuids, host names); other bytes unchanged.
std::string AsciiLower(std::string_view s);
// A random (version 4) uuid, lower case, from OpenSSL's generator: what MISP gives new elements.
std::string RandomUuid();

// gzip (RFC 1952) of `data`.
std::string GzipCompress(std::string_view data);
// Undoes gzip or zlib encoding. Fails with kParse for corrupt or truncated data and with
// kLimitExceeded when the result would exceed `max_bytes` (checked while decoding).
Result<std::string> GzipDecompress(std::string_view data, std::size_t max_bytes);

}  // namespace sgsync
