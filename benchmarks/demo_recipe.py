"""Which translator recipe learns fastest per CPU-second on the demo's data (issue 15, item 6).

The demo (`keras-seq demo`) trains on the 30,000 shortest bundled fra-eng
pairs. Two measurements, both on the demo's own seeded split (the test
split is never read):

    speed SETTING...   CPU seconds (and wall) per pass of each setting, in
                       one process, alternating blocks of the same number
                       of pairs; a pass = the demo's batches per pass.
    quality SETTING    trains the setting for --passes passes with
                       `train_translator` (the demo's data and split) and
                       records after every pass: the process CPU seconds so
                       far (without the per-pass BLEU scoring), the
                       validation loss and the greedy validation BLEU of
                       the first 500 validation pairs.

Settings are named recipe variants (`SETTINGS`): `base` is the default
`TranslatorRecipe`, `t` the Transformer's; `bf16` trains in mixed bfloat16,
`xla` with `jit_compile`, `padN` on batches padded to a multiple of N tokens
(a benchmark option: XLA then compiles a few shapes, not one per length),
`keras-loop` with Keras's per-step LSTM cell instead of the hoisted input
projection. TensorFlow's intra-op threads: `--threads`
(default: TensorFlow's choice, one per core).

    nice python benchmarks/demo_recipe.py speed base b128 b256 gru
    nice python benchmarks/demo_recipe.py quality b256 --passes 6 --json /tmp/q-b256.json
    nice python benchmarks/demo_recipe.py speed t t-bf16 t-xla-pad8 --pairs 2560
    python benchmarks/demo_recipe.py speed t-bf16 t-bf16-keras-adam --data runs/splits-long/train.tsv \
        --valid-data runs/splits-long/valid.tsv
    nice python benchmarks/demo_recipe.py quality ft-cos1e3 --passes 3 --warm-start

`base` now has the unigram output bias (the recipe's default since session
7); `zbias` is the zero bias of before.
"""

import _common  # noqa: F401  (before keras: environment, sys.path)

import dataclasses
import json
import os
import time

DEMO_PAIRS = 30000
VALID_BLEU_SENTENCES = 500

# name -> (recipe overrides, TrainConfig overrides)
SETTINGS = {
    "base": ({}, {}),
    "b128": ({}, dict(batch_size=128, learning_rate=3e-3, warmup_steps=150)),
    "b256": ({}, dict(batch_size=256, learning_rate=4e-3, warmup_steps=100)),
    "b256lr3": ({}, dict(batch_size=256, learning_rate=3e-3, warmup_steps=100)),
    "b512": ({}, dict(batch_size=512, learning_rate=5e-3, warmup_steps=60)),
    "gru": (dict(cell="gru"), {}),
    "gru-b256": (dict(cell="gru"), dict(batch_size=256, learning_rate=4e-3, warmup_steps=100)),
    "u192-b256": (dict(units=192, embedding_dim=192),
                  dict(batch_size=256, learning_rate=4e-3, warmup_steps=100)),
    "neg256-b256": (dict(sampled_negatives=256),
                    dict(batch_size=256, learning_rate=4e-3, warmup_steps=100)),
    "full-b256": (dict(sampled_softmax=0),
                  dict(batch_size=256, learning_rate=4e-3, warmup_steps=100)),
    # Candidates for the demo: batches of 128 with a shorter warm-up, dropout
    # 0.2 and a cosine schedule to 0 over the fixed passes.
    "fast-lstm": (dict(dropout=0.2), dict(batch_size=128, learning_rate=3e-3, warmup_steps=100,
                                          lr_schedule="cosine")),
    "fast-gru192": (dict(cell="gru", units=192, embedding_dim=192, dropout=0.2),
                    dict(batch_size=128, learning_rate=3e-3, warmup_steps=100,
                         lr_schedule="cosine")),
    # Batches of 64 (the loss follows the number of steps, not the pairs
    # seen: a step of 128 costs ~1.4x one of 64), a higher peak rate with a
    # short warm-up, dropout 0.2, a cosine schedule to 0 over the passes.
    "lstm-lr3": (dict(dropout=0.2), dict(learning_rate=3e-3, warmup_steps=100,
                                          lr_schedule="cosine")),
    "gru192-lr3": (dict(cell="gru", units=192, embedding_dim=192, dropout=0.2),
                   dict(learning_rate=3e-3, warmup_steps=100, lr_schedule="cosine")),
    "xla": ({}, dict(jit_compile=True)),
    "xla-b256": ({}, dict(batch_size=256, learning_rate=4e-3, warmup_steps=100,
                          jit_compile=True)),
    # Precision and XLA (issue 15, item 6): bfloat16 compute with float32
    # variables (AMX / AVX512-BF16 matmuls in oneDNN); XLA on batches padded
    # to a multiple of 8 tokens (a handful of shapes, not one per length).
    "bf16": ({}, dict(mixed_precision=True)),
    # Keras's LSTM loop (input projection per step), as before this session.
    "keras-loop": ({}, {}, dict(hoist=False)),
    "keras-loop-bf16": ({}, dict(mixed_precision=True), dict(hoist=False)),
    "pad8": ({}, {}, dict(pad_to=8)),
    "xla-pad8": ({}, dict(jit_compile=True), dict(pad_to=8)),
    "bf16-xla-pad8": ({}, dict(mixed_precision=True, jit_compile=True), dict(pad_to=8)),
    # 8 batches per compiled call (less Python per step in Keras's fit loop).
    "spe8": ({}, dict(steps_per_execution=8)),
    "bf16-spe8": ({}, dict(mixed_precision=True, steps_per_execution=8)),
    # The Transformer translator (`TranslatorRecipe.transformer()`): batches of the recipe's
    # size, 32 pairs since session 12 (figures in RESULTS.md before it are batches of 64).
    "t": (dict(model="transformer"), {}),
    "t-bf16": (dict(model="transformer"), dict(mixed_precision=True)),
    # float32 (the recipe's "auto" picks bfloat16 on a CPU with AMX or AVX512-BF16).
    "t-fp32": (dict(model="transformer"), dict(mixed_precision=False)),
    # Transformer shapes (issue 15, session 9): the target embedding tied to the
    # output projection; a feed-forward of 2 x width instead of 4 x.
    "t-bf16-tied": (dict(model="transformer", tie_embeddings=True), dict(mixed_precision=True)),
    "t-bf16-ff512": (dict(model="transformer", ff_dim=512), dict(mixed_precision=True)),
    "t-bf16-tied-ff512": (dict(model="transformer", tie_embeddings=True, ff_dim=512),
                          dict(mixed_precision=True)),
    "t-bf16-w384": (dict(model="transformer", units=384, num_heads=6), dict(mixed_precision=True)),
    "t-bf16-spe8": (dict(model="transformer"), dict(mixed_precision=True, steps_per_execution=8)),
    "t-bf16-b64": (dict(model="transformer"), dict(mixed_precision=True, batch_size=64)),
    # Keras's own Adam step (a dozen elementwise ops a weight) instead of the fused kernel.
    "t-bf16-keras-adam": (dict(model="transformer"), dict(mixed_precision=True), dict(keras_adam=True)),
    "keras-adam": ({}, {}, dict(keras_adam=True)),
    "t-pad8": (dict(model="transformer"), {}, dict(pad_to=8)),
    # The output bias started at the log unigram frequencies of the training targets.
    "ubias": (dict(unigram_bias=True), {}),
    "zbias": (dict(unigram_bias=False), {}),
    # Fine-tuning schedules from the demo's bundled start (`quality ... --warm-start`).
    "ft-cos1e3": ({}, dict(learning_rate=1e-3, lr_schedule="cosine", warmup_steps=100)),
    "ft-cos2e3": ({}, dict(learning_rate=2e-3, lr_schedule="cosine", warmup_steps=100)),
    "t-bf16-ubias": (dict(model="transformer", unigram_bias=True), dict(mixed_precision=True)),
    "t-xla-pad8": (dict(model="transformer"), dict(jit_compile=True), dict(pad_to=8)),
    "t-bf16-xla-pad8": (dict(model="transformer"), dict(mixed_precision=True, jit_compile=True),
                        dict(pad_to=8)),
}


def setting(name):
    """`(recipe overrides, TrainConfig overrides, benchmark options)` of a setting."""
    fields, train_fields, *bench = SETTINGS[name]
    return dict(fields), dict(train_fields), dict(bench[0]) if bench else {}


def recipe_for(name, **train):
    from keras_seq.recipes import TranslatorRecipe

    fields, train_fields, _ = setting(name)
    recipe = TranslatorRecipe.for_model(fields.pop("model", "rnn"), **fields)
    return recipe.with_training(**dict(train_fields, **train))


def pad_to_multiple(dataset, multiple):
    """Pads every batch's length (axis 1) up to a multiple of `multiple` with PAD (0)."""
    import tensorflow as tf

    def pad(x):
        extra = (-tf.shape(x)[1]) % multiple
        return tf.pad(x, [[0, 0], [0, extra]])

    padded = dataset.map(lambda f, y: ({k: pad(v) for k, v in f.items()}, pad(y)))
    for name in ("num_filtered", "num_examples"):  # what `make_pair_dataset` attaches
        if hasattr(dataset, name):
            setattr(padded, name, getattr(dataset, name))
    return padded


def set_hoisting(model, hoist):
    """Sets `hoist_input_projection` on every `keras_seq.layers.LSTM` of the model."""
    from keras_seq.layers import LSTM

    for layer in model._flatten_layers(include_self=False, recursive=True):
        for inner in (layer, getattr(layer, "forward_layer", None),
                      getattr(layer, "backward_layer", None)):
            if isinstance(inner, LSTM):
                inner.hoist_input_projection = hoist


def policy_of(recipe):
    """The Keras dtype policy `keras_seq.training.train` sets for the recipe."""
    from keras_seq.training import precision_policy

    return precision_policy(recipe.train.mixed_precision)


def set_threads(threads):
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


# ---------------------------------------------------------------- speed


def speed(names, pairs, blocks, threads, data_file=None, valid_file=None):
    import keras
    from keras_seq.models import build_model
    from keras_seq.pipelines import translation_training as tt
    from keras_seq.training import make_optimizer
    from keras_seq.training.devices import resolve_jit_compile

    set_threads(threads)
    models = {}
    for name in names:
        recipe = recipe_for(name, verbose=0)
        if data_file:  # a training file (and its validation file) instead of the demo's pairs
            setup = tt._new_setup(recipe, data_file, False, None, valid_data=valid_file)
        else:
            setup = tt._new_setup(recipe, "bundled:fra-eng", False, DEMO_PAIRS)
        max_length = int(setup.run_config["data"]["max_length"])
        train_ds, _ = tt._datasets(setup, max_length)
        pad = setting(name)[2].get("pad_to")
        info = setup.run_config["model"]
        keras.utils.set_random_seed(1)
        policy = policy_of(recipe)
        keras.mixed_precision.set_global_policy(policy)
        model = build_model("translator", info)
        set_hoisting(model, setting(name)[2].get("hoist", True))
        sampled = int(info["config"].get("sampled_softmax", 0) or 0)
        smoothing = 0.0 if sampled else recipe.label_smoothing
        # As `train_translator`: the Transformer computes its own loss unless smoothed.
        loss = tt.label_smoothed_loss(smoothing) if info["type"] == "rnn" or smoothing else None
        optimizer = make_optimizer(recipe.train)
        if setting(name)[2].get("keras_adam"):
            optimizer = keras.optimizers.Adam.from_config(optimizer.get_config())
        model.compile(optimizer=optimizer, loss=loss,
                      jit_compile=resolve_jit_compile(recipe.train.jit_compile),
                      steps_per_execution=recipe.train.steps_per_execution)
        batch = recipe.train.batch_size
        steps = max(1, pairs // batch)
        data = (pad_to_multiple(train_ds, pad) if pad else train_ds).repeat()
        cpu = time.process_time()
        model.fit(data, steps_per_epoch=2 * steps, epochs=1, verbose=0)  # warm-up: traces
        warm = round(time.process_time() - cpu, 1)
        keras.mixed_precision.set_global_policy("float32")
        models[name] = dict(model=model, data=data, steps=steps, policy=policy,
                            batches_per_pass=int(train_ds.cardinality()),
                            vocab=[info["config"]["source_vocab_size"],
                                   info["config"]["target_vocab_size"]],
                            sampled=sampled, warmup=warm, cpu=[], wall=[])
    for _ in range(blocks):
        for name, m in models.items():
            keras.mixed_precision.set_global_policy(m["policy"])
            wall, cpu = time.perf_counter(), time.process_time()
            m["model"].fit(m["data"], steps_per_epoch=m["steps"], epochs=1, verbose=0)
            m["wall"].append((time.perf_counter() - wall) / m["steps"])
            m["cpu"].append((time.process_time() - cpu) / m["steps"])
            keras.mixed_precision.set_global_policy("float32")
    rows = []
    for name, m in models.items():
        cpu_step = sorted(m["cpu"])[len(m["cpu"]) // 2]
        wall_step = sorted(m["wall"])[len(m["wall"]) // 2]
        row = dict(setting=name, batches_per_pass=m["batches_per_pass"], vocab=m["vocab"],
                   sampled=m["sampled"], warmup_cpu_s=m["warmup"], cpu_ms_per_step=round(1000 * cpu_step, 1),
                   wall_ms_per_step=round(1000 * wall_step, 1),
                   cpu_s_per_pass=round(cpu_step * m["batches_per_pass"], 1),
                   wall_s_per_pass=round(wall_step * m["batches_per_pass"], 1),
                   cpu_ms_blocks=[round(1000 * x, 1) for x in m["cpu"]],
                   wall_ms_blocks=[round(1000 * x, 1) for x in m["wall"]])
        rows.append(row)
        print(f"{name:<14} {row['batches_per_pass']:>4} batches/pass  "
              f"{row['cpu_ms_per_step']:>7.1f} CPU ms/step {row['wall_ms_per_step']:>7.1f} wall ms/step"
              f"  {row['cpu_s_per_pass']:>6.1f} CPU s/pass {row['wall_s_per_pass']:>6.1f} wall s/pass",
              flush=True)
    return rows


# ---------------------------------------------------------------- quality


def quality(name, passes, run_dir, threads, cosine, warm=False):
    from keras_seq.pipelines import translation_monitor
    from keras_seq.pipelines.translation_training import train_translator

    set_threads(threads)
    pad = setting(name)[2].get("pad_to")
    if pad:  # the training and validation batches padded like `speed`'s
        from keras_seq.pipelines import translation_training as tt

        datasets = tt._datasets
        tt._datasets = lambda *a: tuple(pad_to_multiple(d, pad) for d in datasets(*a))
    train = dict(epochs=passes, verbose=2)
    if cosine:
        train.update(lr_schedule="cosine")
    recipe = dataclasses.replace(recipe_for(name, **train), early_stop_on="bleu")
    translation_monitor.BLEU_SENTENCES = VALID_BLEU_SENTENCES
    curve, spent = [], {"monitor": 0.0}
    original = translation_monitor.TranslationMonitor.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        cpu = time.process_time()
        trained = cpu - spent["start"] - spent["monitor"]  # without the BLEU scoring
        original(self, epoch, logs)
        spent["monitor"] += time.process_time() - cpu
        curve.append(dict(epoch=epoch + 1, cpu_s=round(trained, 1),
                          wall_s=round(time.perf_counter() - spent["wall"], 1),
                          val_loss=round(float(logs.get("val_loss", float("nan"))), 4),
                          val_bleu=round(float(logs.get("val_bleu", float("nan"))), 2),
                          load=_common.load_average()))
        print(f"QUALITY {name} pass {epoch + 1}: {curve[-1]}", flush=True)

    translation_monitor.TranslationMonitor.on_epoch_end = on_epoch_end
    spent["start"], spent["wall"] = time.process_time(), time.perf_counter()
    from keras_seq.pipelines import demo

    result = train_translator(recipe, run_dir, data="bundled:fra-eng", max_pairs=DEMO_PAIRS,
                              overwrite=True, warm_start=demo.START_FILE if warm else None)
    return dict(setting=name, passes=passes, cosine=cosine, threads=threads, curve=curve,
                warm_start=warm,
                stop_reason=result["stop_reason"], valid_bleu_best=result["valid_bleu"],
                total_cpu_s=round(time.process_time() - spent["start"], 1),
                total_wall_s=round(time.perf_counter() - spent["wall"], 1))


def main():
    parser = _common.argument_parser(__doc__)
    parser.add_argument("mode", choices=("speed", "quality"))
    parser.add_argument("settings", nargs="+", choices=sorted(SETTINGS))
    parser.add_argument("--pairs", type=int, default=3200, help="pairs per timed block (speed)")
    parser.add_argument("--blocks", type=int, default=3, help="timed blocks per setting (speed)")
    parser.add_argument("--passes", type=int, default=6, help="passes to train (quality)")
    parser.add_argument("--cosine", action="store_true", help="cosine schedule over the passes")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--warm-start", action="store_true",
                        help="start from the demo's bundled start weights (quality)")
    parser.add_argument("--data", default=None,
                        help="speed: a TSV training file instead of the demo's pairs")
    parser.add_argument("--valid-data", default=None, help="speed: its validation file")
    parser.add_argument("--run-dir", default="/tmp/demo-recipe/run")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    load_before = _common.load_average()
    if args.mode == "speed":
        out = dict(rows=speed(args.settings, args.pairs, args.blocks, args.threads,
                              args.data, args.valid_data), data=args.data or "demo")
    else:
        out = quality(args.settings[0], args.passes, args.run_dir, args.threads, args.cosine,
                      args.warm_start)
    out.update(mode=args.mode, threads=args.threads, load_before=load_before,
               load_after=_common.load_average(), environment=_common.environment(),
               date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    print(json.dumps(out), flush=True)
    print(_common.load_average_line())
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
