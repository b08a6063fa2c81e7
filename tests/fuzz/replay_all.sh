#!/bin/sh
# The "fuzz" suite of `make test`: every fuzz target replays its seeds and its regression corpus
# (inputs that once crashed, kept by `make fuzz`), built without libFuzzer.
set -u
cd "$(dirname "$0")/../.."
status=0
build/fuzz/replay_frontend models models/lib tests/errors tests/errors/lib tests/golden tests/fuzz/regressions/frontend || status=1
build/fuzz/replay_safetensors tests/fuzz/seeds/safetensors tests/fuzz/regressions/safetensors || status=1
build/fuzz/replay_npy tests/fuzz/seeds/npy tests/fuzz/regressions/npy || status=1
exit $status
