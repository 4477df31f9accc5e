#!/usr/bin/env bash
# GPU check: trains the PTB language model and the default translator through
# `keras-seq` for a few minutes each on a GPU machine and records what ran.
#
#   bash benchmarks/gpu_check.sh [PTB_DIR]        # PTB_DIR default: ../shared/data/ptb
#
# For a lent device machine (../.library/device): copy PTB into an ignored folder of
# the repo first (../shared does not travel), e.g. `mkdir -p .gpu && cp ../shared/data/ptb/*.txt .gpu/`
# with `.gpu/` in .git/info/exclude, then run this with `carry: [".gpu"]` and PTB_DIR=.gpu.
# Under 8 minutes: 3 minutes of training each, plus start-up and scoring.
#
# Writes to $OUT (default /tmp/gpu_check): lm.log, translator.log, summary.txt:
# tokens/s and validation perplexity of the LM, BLEU of the translator, and
# whether TensorFlow loaded cuDNN and ran the fused cuDNN RNN kernels.
#
# Exit status 3 when the Python here has no TensorFlow that sees a GPU (the lent
# machines' image has PyTorch/JAX, not TensorFlow, and a TensorFlow wheel, ~600 MB,
# is larger than what a device call may carry: see benchmarks/RESULTS.md, "GPU").
set -u
PTB_DIR=${1:-${PTB_DIR:-../shared/data/ptb}}
OUT=${OUT:-/tmp/gpu_check}
PY=${PYTHON:-python3}
MINUTES=${GPU_CHECK_MINUTES:-3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=cuda_dnn=1
summary="$OUT/summary.txt"
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

if ! "$PY" - <<'PY'
import sys
try:
    import tensorflow as tf
except ImportError as e:
    sys.exit(f"gpu_check: no TensorFlow in {sys.executable}: {e}")
gpus = tf.config.list_physical_devices("GPU")
if not gpus:
    sys.exit(f"gpu_check: TensorFlow {tf.__version__} sees no GPU (built with CUDA: {tf.test.is_built_with_cuda()})")
print(f"gpu_check: TensorFlow {tf.__version__}, GPUs: {[g.name for g in gpus]}")
PY
then
    note "gpu_check: nothing trained (see the line above)"
    exit 3
fi
if ! "$PY" -c "import keras_seq" 2>/dev/null; then
    "$PY" -m pip install -q -e . >"$OUT/pip.log" 2>&1 || { note "gpu_check: pip install -e . failed (see pip.log)"; exit 3; }
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /' | tee -a "$summary"

# The PTB language model (the recipe's defaults), a time budget, its perplexity.
"$PY" -m keras_seq.cli train-lm --data "$PTB_DIR/ptb.train.txt" --valid-data "$PTB_DIR/ptb.valid.txt" \
    --test-data "$PTB_DIR/ptb.test.txt" --max-minutes "$MINUTES" --run-dir "$OUT/lm-run" --overwrite -v \
    >"$OUT/lm.log" 2>&1
note "train-lm exit status: $?"
# The default translator on the bundled pairs, a time budget, its BLEU.
"$PY" -m keras_seq.cli train-translator --max-minutes "$MINUTES" --run-dir "$OUT/translator-run" \
    --overwrite -v >"$OUT/translator.log" 2>&1
note "train-translator exit status: $?"

for log in lm translator; do
    note "== $log"
    grep -E "tokens/s|perplexity|BLEU|stopped|trained for" "$OUT/$log.log" | tail -8 | tee -a "$summary"
    if grep -qiE "Loaded cuDNN version|cudnn" "$OUT/$log.log"; then
        note "cuDNN: loaded ($(grep -m1 -iE 'Loaded cuDNN version' "$OUT/$log.log" | sed 's/.*Loaded/Loaded/'))"
    else
        note "cuDNN: no sign of it in the log"
    fi
    grep -qE "CudnnRNN|cudnn_rnn" "$OUT/$log.log" && note "fused cuDNN RNN kernels: seen" \
        || note "fused cuDNN RNN kernels: not seen in the log"
done
