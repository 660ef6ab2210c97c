#!/usr/bin/env bash
# One rule for output paths in every program: missing parent directories are created, and a
# destination that is a directory is refused before any work, naming it (eve-tokenize train
# used to train first and fail on the rename; eve-embed -o DIR wrote DIR.npy beside it).
source "$(dirname "$0")/lib.bash"
make_bundle bundle
make_dataset
mkdir adir

refused() {  # PROGRAM DIR ARGS...: exits 1 naming DIR as a directory, writes nothing into it
  local prog=$1 dir=$2 err rc
  shift 2
  set +e; err=$("$EVE_BIN/$prog" "$@" 2>&1); rc=$?; set -e
  [[ $rc == 1 && $err == "$prog: error: $dir: is a directory (name a file to write, for example $dir/out)" ]] \
    || fail "$prog $*: $rc $err"
  [[ -z $(ls -A "$dir") ]] || fail "$prog wrote into $dir: $(ls -A "$dir")"
}

# eve-tokenize: train and encode create parents; a directory is refused before training.
"$EVE_BIN/eve-tokenize" train -q w/corpus.txt -o new/tok/t.model --vocab-size 300
[[ -s new/tok/t.model && -s new/tok/t.json ]] || fail "tokenize train did not create new/tok"
refused eve-tokenize adir train -q w/corpus.txt -o adir --vocab-size 300
"$EVE_BIN/eve-tokenize" encode --tokenizer tok.model --max-tokens 16 -o enc/deep/test.ids.jsonl < ret/test.jsonl
[[ -s enc/deep/test.ids.jsonl ]] || fail "tokenize encode did not create enc/deep"

# eve-embed: -o with missing parents; -o naming a directory.
"$EVE_BIN/eve-embed" -q --threads 2 -m bundle --texts enc/deep/test.ids.jsonl -o emb/texts/txt
[[ -s emb/texts/txt.npy && -s emb/texts/txt.ids.jsonl ]] || fail "eve-embed did not create emb/texts"
refused eve-embed adir -q -m bundle --texts enc/deep/test.ids.jsonl -o adir
[[ ! -e adir.npy ]] || fail "eve-embed wrote adir.npy beside the directory"

# eve-rank: ranks and --scores-out with missing parents; either naming a directory.
"$EVE_BIN/eve-embed" -q --threads 2 -m bundle --images ret -o emb/img
"$EVE_BIN/eve-rank" -q --queries emb/texts/txt.npy --gallery emb/img.npy -k 3 -o ranks/a/t2i.jsonl \
  --scores-out ranks/b/t2i.npy
[[ -s ranks/a/t2i.jsonl && -s ranks/b/t2i.npy ]] || fail "eve-rank did not create its output dirs"
refused eve-rank adir -q --queries emb/texts/txt.npy --gallery emb/img.npy -k 3 -o adir
refused eve-rank adir -q --queries emb/texts/txt.npy --gallery emb/img.npy -k 3 -o r.jsonl --scores-out adir
[[ ! -e r.jsonl ]] || fail "eve-rank wrote its ranks although --scores-out was refused"

# A parent that is a file is named.
touch afile
set +e; err=$("$EVE_BIN/eve-tokenize" encode --tokenizer tok.model -o afile/x.jsonl < ret/test.jsonl 2>&1); rc=$?; set -e
[[ $rc == 1 && $err == *"afile: "* ]] || fail "parent is a file: $rc $err"
echo ok
