# Shared pieces of the real-dataset recipes in scripts/recipes/ (sourced, never run).
#
# A recipe declares its options, checks the input layout, then runs stages:
#
#   source "$(dirname "$0")/common.bash"
#   recipe_parse "--root:ROOT --model:INIT" "$@"    # --work, --gpus, --size, --dry-run, --help
#   require_opts --root ROOT --model INIT            # and `--` extras are common
#   expect_file "$ROOT/coco_test.json" "Karpathy test split"; expect_bundle "$INIT"
#   begin_work                                      # every missing input named, or exit 1
#   use_programs eve-prep eve-score                 # as ${PROG[eve-prep]} ...
#   stage "prep" "$WORK/data/manifest.json" "${PROG[eve-prep]}" retrieval ...
#   stage_stdout "score test" "$WORK/metrics-test.txt" "${PROG[eve-score]}" ...
#   show_tables "test" "$WORK/metrics-test.txt"
#
# Every stage is skipped when its output exists, so a rerun resumes where the last one stopped
# (the programs write their outputs atomically, so an existing output is a complete one).
# With --dry-run the commands are printed on stdout, shell-quoted, and nothing is created.
# The programs come from $EVE_BIN if set, else <repo>/build/release/bin, else PATH.

RECIPE=$(basename "$0")
RECIPES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$RECIPES_DIR/../.." && pwd)
PYTHON=${EVE_PYTHON:-/usr/bin/python3}

log() { printf '%s: %s\n' "$RECIPE" "$*" >&2; }
die() { printf '%s: error: %s\n' "$RECIPE" "$*" >&2; exit 1; }
usage_error() { printf '%s: error: %s (see %s --help)\n' "$RECIPE" "$*" "$RECIPE" >&2; exit 2; }

# The recipe's header comment (after the shebang, up to the first line that is not a
# comment) is its --help text: the usage, the expected input layout and the runtime.
recipe_usage() { sed -n '2,/^[^#]/{/^#/!q;s/^# \{0,1\}//;p}' "$0"; }

# recipe_parse SPEC "$@": SPEC lists the recipe's own options, "--name:VAR" for an option
# with a value, "--name+VAR" for a repeatable one (appended to the array VAR), "--name!VAR"
# for a flag (VAR=1). --work, --gpus, --size and --dry-run are added, everything after `--`
# goes to the array EXTRA, `--name=value` works too. Unknown options are usage errors.
recipe_parse() {
  local spec="--work:WORK --gpus:GPUS --size:SIZE --dry-run!DRY_RUN $1" item name kind var value
  shift
  local -A kinds=() vars=() renamed=([--init]=--model [--ann]=--annotations [--ques]=--questions)
  for item in $spec; do
    name=${item%%[:+!]*}
    kind=${item:${#name}:1}
    kinds[$name]=$kind
    vars[$name]=${item:${#name}+1}
    [[ $kind == "+" ]] && eval "${vars[$name]}=()" || printf -v "${vars[$name]}" '%s' ""
  done
  EXTRA=()
  while (($#)); do
    case $1 in
      -h | --help) recipe_usage; exit 0 ;;
      --) shift; EXTRA=("$@"); break ;;
    esac
    name=${1%%=*}
    # Old spellings, kept for one release as the programs keep theirs.
    if [[ -z ${kinds[$name]+x} && -n ${renamed[$name]+x} && -n ${kinds[${renamed[$name]}]+x} ]]; then
      log "warning: $name is deprecated and will be removed in the next release: use ${renamed[$name]}"
      set -- "${renamed[$name]}${1:${#name}}" "${@:2}"
      name=${renamed[$name]}
    fi
    [[ -n ${kinds[$name]+x} ]] || usage_error "unknown option '$1'"
    kind=${kinds[$name]} var=${vars[$name]}
    if [[ $kind == "!" ]]; then
      [[ $1 == "$name" ]] || usage_error "$name takes no value"
      printf -v "$var" '%s' 1
      shift
      continue
    fi
    if [[ $1 == *=* ]]; then
      value=${1#*=}
      shift
    else
      (($# >= 2)) || usage_error "$name needs a value"
      value=$2
      shift 2
    fi
    [[ -n $value ]] || usage_error "$name needs a non-empty value"
    if [[ $kind == "+" ]]; then
      eval "$var+=(\"\$value\")"
    else
      printf -v "$var" '%s' "$value"
    fi
  done
  [[ -z $GPUS || $GPUS =~ ^[1-9][0-9]*$ ]] || usage_error "--gpus $GPUS: expected a positive number of GPUs"
  [[ -z $SIZE || $SIZE =~ ^[0-9]+$ ]] || usage_error "--size $SIZE: expected a number of pixels (0 keeps the originals)"
  # --gpus N: N local workers, one GPU each (eve-pretrain and eve-finetune).
  GPU_ARGS=()
  [[ -z $GPUS ]] || GPU_ARGS=(--device cuda)
  [[ -z $GPUS || $GPUS == 1 ]] || GPU_ARGS+=(--nproc-per-node "$GPUS")
  # --size N: eve-prep's shorter image side (its own default when not given).
  PREP_ARGS=()
  [[ -z $SIZE ]] || PREP_ARGS=(--size "$SIZE")
}

# require_opts --name VAR ...: usage error for the first option left empty.
require_opts() {
  while (($#)); do
    [[ -n ${!2} ]] || usage_error "$1 is required"
    shift 2
  done
}

# one_of OPTION VALUE CHOICE...: usage error unless VALUE is one of the choices.
one_of() {
  local opt=$1 value=$2 c
  shift 2
  for c in "$@"; do [[ $value == "$c" ]] && return 0; done
  usage_error "$opt $value: expected one of: $*"
}

# use_programs NAME...: find each eve program, as PROG[NAME]; one not found counts as a
# missing input (reported with the layout check).
MISSING=()
declare -A PROG=()
use_programs() {
  local p path
  for p in "$@"; do
    if [[ -n ${EVE_BIN:-} ]]; then
      path=$EVE_BIN/$p
    elif [[ -x $REPO/build/release/bin/$p ]]; then
      path=$REPO/build/release/bin/$p
    else
      path=$(command -v "$p" || true)
    fi
    if [[ -n $path && -x $path ]]; then
      PROG[$p]=$path
    else
      MISSING+=("${path:-$p}|the program $p: build it (make build), set EVE_BIN to its folder, or put it on PATH")
    fi
  done
}

# share_file KIND NAME: a preset name (eve-base, vqa, ...) as the path of its file in the
# repo's share/eve/KIND, so that a file or directory named like the preset in the current
# directory (a --work dir called "vqa", say) is not taken for it; paths pass unchanged.
share_file() {
  if [[ $2 != */* && -f $REPO/share/eve/$1/$2.json ]]; then
    printf '%s\n' "$REPO/share/eve/$1/$2.json"
  else
    printf '%s\n' "$2"
  fi
}

# Layout checks: collect every missing input, then report them all at once.
expect_file() { [[ -f $1 ]] || MISSING+=("$1|a file: $2"); }
expect_dir() { [[ -d $1 ]] || MISSING+=("$1/|a directory: $2"); }
expect_bundle() {
  local f
  for f in config.json model.safetensors tokenizer.model; do
    expect_file "$1/$f" "the model bundle's $f (eve-pretrain or eve-finetune writes it)"
  done
}
check_layout() {
  ((${#MISSING[@]})) || return 0
  local m
  for m in "${MISSING[@]}"; do
    printf '%s: missing %s\n    (%s)\n' "$RECIPE" "${m%%|*}" "${m#*|}" >&2
  done
  die "${#MISSING[@]} expected input(s) missing; the expected layout is in $RECIPE --help"
}

# expand_shards SPEC: the tar shards SPEC names, one per line: a directory (its *.tar files,
# sorted), a brace range as img2dataset numbers them ('DIR/{00000..00099}.tar', zero-padded
# to the width of the first number), or a single file. Nothing is printed for an empty
# directory or a range that counts down.
expand_shards() {
  local spec=$1 re='^(.*)\{([0-9]+)\.\.([0-9]+)\}(.*)$' i width
  if [[ -d $spec ]]; then
    find "$spec" -maxdepth 1 -name '*.tar' \( -type f -o -type l \) | LC_ALL=C sort
  elif [[ $spec =~ $re ]]; then
    width=${#BASH_REMATCH[2]}
    for ((i = 10#${BASH_REMATCH[2]}; i <= 10#${BASH_REMATCH[3]}; i++)); do
      printf '%s%0*d%s\n' "${BASH_REMATCH[1]}" "$width" "$i" "${BASH_REMATCH[4]}"
    done
  else
    printf '%s\n' "$spec"
  fi
}

# Stages. The command is echoed on stderr before it runs; in a dry run it is printed on
# stdout instead (shell-quoted, so the output is itself a script).
quoted() { printf '%q ' "$@" | sed 's/ $//'; }
# begin_work: after the layout check passed, WORK is made (not in a dry run).
begin_work() {
  check_layout
  [[ -n $DRY_RUN ]] || mkdir -p "$WORK"
}

# stage NAME OUTPUT CMD...         run CMD unless OUTPUT exists; CMD must leave OUTPUT behind
# stage_stdout NAME OUTPUT CMD...  the same with CMD's stdout as OUTPUT (through a temporary
#                                  file, so OUTPUT exists only when CMD succeeded)
# stage_stamp NAME CMD...          for a command whose outputs do not tell whether it
#                                  finished (a training run resumes by itself): done when it
#                                  last exited 0, recorded in WORK/.done/NAME; delete the
#                                  stamp to run it again (with more steps, say)
stage() { run_stage "$1" "$2" write "${@:3}"; }
stage_stdout() { run_stage "$1" "$2" stdout "${@:3}"; }
stage_stamp() { run_stage "$1" "$WORK/.done/${1// /-}" stamp "${@:2}"; }

run_stage() {
  local name=$1 out=$2 how=$3 shown
  shift 3
  shown=$(quoted "$@")
  [[ $how != stdout ]] || shown+=" > $(printf '%q' "$out")"
  if [[ -e $out ]]; then
    log "skip $name: done already ($out)"
    return 0
  fi
  if [[ -n $DRY_RUN ]]; then
    printf '%s\n' "$shown"
    return 0
  fi
  log "run $name: $shown"
  if [[ $how == stdout ]]; then
    "$@" >"$out.tmp" || { rm -f "$out.tmp"; die "$name failed: $shown"; }
    mv "$out.tmp" "$out"
  else
    "$@" || die "$name failed (exit $?): $shown"
  fi
  case $how in
    write) [[ -e $out ]] || die "$name ended without writing $out" ;;
    stamp) mkdir -p "$(dirname "$out")" && : >"$out" ;;
  esac
}

# stage_links NAME DIR FILE...: DIR holding symbolic links to FILE... (absolute), so that a
# dataset dir can be reused with other records without touching it.
stage_links() {
  local name=$1 dir=$2 f
  shift 2
  if [[ -e $dir/$(basename "${!#}") ]]; then
    log "skip $name: done already ($dir)"
  elif [[ -n $DRY_RUN ]]; then
    quoted mkdir -p "$dir"; echo
    for f in "$@"; do quoted ln -sfn "$(realpath "$f")" "$dir/$(basename "$f")"; echo; done
  else
    log "run $name: links in $dir to $(dirname "$1")/"
    mkdir -p "$dir"
    for f in "$@"; do ln -sfn "$(realpath "$f")" "$dir/$(basename "$f")"; done
  fi
}

# encode_splits DATA TOKENIZER SPLIT...: DATA/SPLIT.jsonl -> DATA/SPLIT.ids.jsonl (token ids
# beside each text, the same cleaning EVE applies).
encode_splits() {
  local data=$1 model=$2 split
  shift 2
  for split in "$@"; do
    stage "encode $split" "$data/$split.ids.jsonl" \
      "${PROG[eve-tokenize]}" encode --tokenizer "$model" "$data/$split.jsonl" -o "$data/$split.ids.jsonl"
  done
}

# show_tables TITLE FILE ...: the metrics tables on stdout (not in a dry run).
show_tables() {
  [[ -z $DRY_RUN ]] || return 0
  while (($#)); do
    printf '\n== %s\n   [%s]\n' "$1" "$2"
    cat "$2"
    shift 2
  done
}
