#!/bin/sh
# /usr/local/bin/sigil: runs the bundled Sigil (dist/sigil.js, built with
# `deno task bundle`) with exactly the permissions it needs. Install the bundle at
# /usr/local/lib/sigil/sigil.js and Deno 2.9.6 (npm install -g deno@2.9.6).
# With a compiled binary (`deno task compile`), install that as /usr/local/bin/sigil
# instead and skip this launcher.
# SIGIL_V8_FLAGS (optional) is passed as --v8-flags, e.g. --memory-saver-mode
# for a router that must stay small with a large route table (see deploy/README.md).
exec "${DENO:-deno}" run --no-config --no-prompt --unstable-net \
  ${SIGIL_V8_FLAGS:+"--v8-flags=$SIGIL_V8_FLAGS"} \
  --allow-net --allow-read --allow-write --allow-env --allow-run --allow-sys \
  "${SIGIL_BUNDLE:-/usr/local/lib/sigil/sigil.js}" "$@"
