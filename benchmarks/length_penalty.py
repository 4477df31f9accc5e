"""Beam search's length penalty, chosen on validation (issue 15, session 13).

For each translator run, decodes the run's validation split with beam 5 and
each GNMT length penalty alpha, and prints BLEU and chrF (sacrebleu, cased,
detokenized, as `Translator.evaluate` scores them) with the output/reference
length ratio and BLEU's brevity penalty: beam search favours short outputs,
and alpha trades that off against over-long ones.

    python benchmarks/length_penalty.py runs/s12-b32 runs/s12-rnn \\
        --alphas 0.6 1.0 1.2 1.4 1.6 2.0 --json lp.json

Only the public API: `ks.Translator.from_run(run, which=...)`, its `split`
and `translate`. The test split is never read.
"""

import _common  # noqa: F401  (before keras: environment, sys.path)


def score_run(run, alphas, which, beam):
    import sacrebleu

    import keras_seq as ks

    translator = ks.Translator.from_run(run, which=which)
    pairs = translator.split("valid")
    sources, refs = [s for s, _ in pairs], [t for _, t in pairs]
    rows = []
    for alpha in alphas:
        outputs = [r.text for r in translator.translate(sources, beam=beam, length_penalty=alpha)]
        bleu = sacrebleu.corpus_bleu(outputs, [refs])
        chrf = sacrebleu.corpus_chrf(outputs, [refs])
        rows.append({"run": run, "alpha": alpha, "bleu": round(bleu.score, 2),
                     "chrf": round(chrf.score, 2),
                     "length_ratio": round(bleu.sys_len / bleu.ref_len, 3),
                     "brevity_penalty": round(bleu.bp, 3), "sentences": len(pairs)})
        print(f"{run:<28} alpha {alpha:<4g} BLEU {bleu.score:6.2f}  chrF {chrf.score:6.2f}  "
              f"length ratio {rows[-1]['length_ratio']:.3f}  BP {bleu.bp:.3f}", flush=True)
    return rows


def main(argv=None):
    parser = _common.argument_parser(__doc__)
    parser.add_argument("runs", nargs="+", help="translator run directories")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.6, 1.0, 1.2, 1.4, 1.6, 2.0])
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--which", default="auto",
                        help="the weights of each run (Translator.from_run's `which`)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    out = {"load_before": _common.load_average(), "beam": args.beam, "which": args.which,
           "rows": []}
    for run in args.runs:
        out["rows"] += score_run(run, args.alphas, args.which, args.beam)
    out.update(load_after=_common.load_average(), environment=_common.environment())
    if args.json:
        _common.write_json(args.json, out)
    print(_common.load_average_line())


if __name__ == "__main__":
    main()
