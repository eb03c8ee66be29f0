#!/usr/bin/env bash
# Ruby 2.3.8 (the last 2.3 release) built against /opt/openssl-1.0, and
# Bundler 1.17.3 (Rails 4.2 requires bundler < 2). See docs/ruby-2.3.md.
set -euo pipefail

RUBY_VERSION=2.3.8
RUBY_SHA256=b5016d61440e939045d4e22979e04708ed6c8e1c52e7edb2553cf40b73c59abf
BUNDLER_VERSION=1.17.3
BUNDLER_SHA256=bc4bf75b548b27451aa9f443b18c46a739dd22ad79f7a5f90b485376a67dc352
PREFIX=/opt/ruby-${RUBY_VERSION}
OPENSSL_DIR=/opt/openssl-1.0

work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
cd "${work}"

if [ ! -x "${PREFIX}/bin/ruby" ]; then
  curl -fsSL --retry 3 --proto '=https' --tlsv1.2 -o "ruby-${RUBY_VERSION}.tar.gz" \
    "https://cache.ruby-lang.org/pub/ruby/2.3/ruby-${RUBY_VERSION}.tar.gz"
  echo "${RUBY_SHA256}  ruby-${RUBY_VERSION}.tar.gz" | sha256sum -c -
  tar -xzf "ruby-${RUBY_VERSION}.tar.gz"
  cd "ruby-${RUBY_VERSION}"
  # GCC 13 turned several old warnings into errors that Ruby 2.3's C code trips.
  CFLAGS="-O2 -fno-omit-frame-pointer -Wno-error=implicit-function-declaration -Wno-error=incompatible-pointer-types -Wno-error=int-conversion" \
    ./configure --prefix="${PREFIX}" --with-openssl-dir="${OPENSSL_DIR}" \
    --enable-shared --disable-install-doc "LDFLAGS=-Wl,-rpath,${OPENSSL_DIR}/lib"
  make -j"$(nproc)" >/dev/null
  make install >/dev/null
  cd "${work}"
fi

# The app needs these extensions; a silently skipped one would only show at runtime.
"${PREFIX}/bin/ruby" -ropenssl -rzlib -rreadline -rpsych -e \
  'puts "ruby #{RUBY_VERSION}, #{OpenSSL::OPENSSL_VERSION}"'
"${PREFIX}/bin/ruby" -ropenssl -e \
  'exit(OpenSSL::OPENSSL_VERSION.start_with?("OpenSSL 1.0.2") ? 0 : 1)'

for bin in ruby gem rake bundle bundler erb irb; do
  [ -e "${PREFIX}/bin/${bin}" ] || continue
  ln -sf "${PREFIX}/bin/${bin}" "/usr/local/bin/${bin}"
done

if ! "${PREFIX}/bin/gem" list -i bundler -v "${BUNDLER_VERSION}" >/dev/null; then
  curl -fsSL --retry 3 --proto '=https' --tlsv1.2 -o "bundler-${BUNDLER_VERSION}.gem" \
    "https://rubygems.org/downloads/bundler-${BUNDLER_VERSION}.gem"
  echo "${BUNDLER_SHA256}  bundler-${BUNDLER_VERSION}.gem" | sha256sum -c -
  "${PREFIX}/bin/gem" install --local --no-document "bundler-${BUNDLER_VERSION}.gem"
fi
ln -sf "${PREFIX}/bin/bundle" /usr/local/bin/bundle
ln -sf "${PREFIX}/bin/bundler" /usr/local/bin/bundler
bundle --version
