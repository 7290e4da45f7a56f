// Checks a bundle's files against the sha256 the manifest records. sha256 comes from OpenSSL's
// libcrypto (EVP interface): present on every Linux a robot or server runs, maintained, and fast
// (SHA-NI / ARMv8 crypto extensions), so no hashing code of our own.
#include <fstream>
#include <memory>
#include <vector>

#include <openssl/evp.h>

#include "edgekit/errors.hpp"
#include "edgekit/manifest.hpp"

namespace edgekit {

std::string sha256_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw RuntimeFailure("cannot read " + path.string());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw RuntimeFailure("OpenSSL cannot start a sha256 digest");
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (f.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(f.gcount()));
  }
  if (f.bad()) throw RuntimeFailure("cannot read " + path.string());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::vector<std::string> verify_files(const std::filesystem::path& bundle_dir, const Manifest& manifest) {
  namespace fs = std::filesystem;
  std::vector<std::string> problems;
  for (const FileEntry& entry : manifest.files) {
    const fs::path p = bundle_dir / fs::path(entry.path);
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) {
      problems.push_back(entry.path + " is missing");
    } else if ((entry.bytes >= 0 && static_cast<std::int64_t>(fs::file_size(p, ec)) != entry.bytes) ||
               sha256_file(p) != entry.sha256) {  // a size mismatch is a sha256 mismatch, found without hashing
      problems.push_back(entry.path + " was modified (sha256 differs from the manifest)");
    }
  }
  return problems;
}

}  // namespace edgekit
