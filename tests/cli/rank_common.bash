# Shared by the merge and near-duplicate CLI tests of eve-rank (sourced, not run): moves to
# a scratch dir removed on exit, sets PY, defines fail, expect_error and make_image_bundle.
# Expects EVE_BIN and EVE_SOURCE.
PY=${EVE_PYTHON:-/usr/bin/python3}
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
cd "$t"
fail() { echo "FAIL: $*" >&2; exit 1; }
. "$EVE_SOURCE/tests/cli/embed_common.bash"

# expect_error RC PATTERN ARGS...: eve-rank ARGS fails with status RC and one line on
# stderr holding PATTERN.
expect_error() {
  local rc=0 want=$1 pat=$2; shift 2
  "$EVE_BIN/eve-rank" -q "$@" 2> err.txt > /dev/null || rc=$?
  [[ $rc == "$want" ]] || fail "eve-rank $* exited $rc, not $want: $(cat err.txt)"
  [[ $(wc -l < err.txt) == 1 ]] && grep -q -- "$pat" err.txt || fail "eve-rank $*: $(cat err.txt)"
}

# make_image_bundle DIR: the tiny bundle of make_bundle with weights that let the image
# content through. At the usual small initialisation (std 0.02, small layer scales) the
# vision CLS barely attends to the patches and every image embeds to almost one vector
# (cosines above 0.99999 between unrelated images); with weights of std 1/sqrt(fan-in)
# and layer scales of 1 it behaves like a random-feature model: copies of one image stay
# close and different images do not.
make_image_bundle() {
  make_bundle "$1"
  "$PY" - "$EVE_SOURCE/tests/reference" "$1" <<'PYEOF'
import math, sys, torch
sys.path.insert(0, sys.argv[1])
import eve_ref, eve_ref_io
m = eve_ref.EveRef(eve_ref.read_config(sys.argv[2] + "/config.json"))
eve_ref.init_weights(m, 5)
g = torch.Generator().manual_seed(5)
with torch.no_grad():
    for n, p in m.named_parameters():
        if n.endswith(("gamma_1", "gamma_2")):
            p.fill_(1.0)
        elif (p.dim() >= 2 and "embed" not in n) or n.endswith("patch_embed.weight"):
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
eve_ref_io.save(sys.argv[2] + "/model.safetensors", dict(m.named_parameters()))
PYEOF
}
