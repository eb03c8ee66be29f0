#!/usr/bin/env bash
# OpenSSL 1.0.2u, only for Ruby 2.3 (whose openssl extension does not build
# against OpenSSL >= 1.1). Installed under /opt/openssl-1.0 and linked only into
# that Ruby: the system (nginx, curl, apt) keeps Ubuntu's maintained OpenSSL 3.
# See docs/ruby-2.3.md.
set -euo pipefail

OPENSSL_VERSION=1.0.2u
OPENSSL_SHA256=ecd0c6ffb493dd06707d38b14bb4d8c2288bb7033735606569d8f90f89669d16
PREFIX=/opt/openssl-1.0

if [ -x "${PREFIX}/bin/openssl" ]; then
  echo "10-openssl: ${PREFIX} already present"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
cd "${work}"

curl -fsSL --retry 3 --proto '=https' --tlsv1.2 \
  -o "openssl-${OPENSSL_VERSION}.tar.gz" \
  "https://www.openssl.org/source/old/1.0.2/openssl-${OPENSSL_VERSION}.tar.gz"
echo "${OPENSSL_SHA256}  openssl-${OPENSSL_VERSION}.tar.gz" | sha256sum -c -

tar -xzf "openssl-${OPENSSL_VERSION}.tar.gz"
cd "openssl-${OPENSSL_VERSION}"
# Shared libraries with an rpath so Ruby finds them without touching ld.so.conf;
# the certificate store is the system one (kept up to date by ca-certificates).
./config --prefix="${PREFIX}" --openssldir=/usr/lib/ssl shared zlib no-ssl2 no-ssl3 \
  "-Wl,-rpath,${PREFIX}/lib"
make depend >/dev/null
make -j"$(nproc)" >/dev/null
make install_sw >/dev/null
"${PREFIX}/bin/openssl" version
