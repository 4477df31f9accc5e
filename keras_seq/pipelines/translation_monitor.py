"""`TranslationMonitor`: seeing a translator learn, epoch by epoch.

At the end of every epoch it translates (greedy) a few fixed validation
sentences and prints them with their references on stderr, and, when asked,
scores the validation BLEU (sacrebleu) of a bounded sample and logs it as
`val_bleu`, which `keras_seq.training.train(monitor="val_bleu")` then uses to
pick the best checkpoint and to early-stop (`--early-stop-on bleu`).
"""

import keras

from keras_seq import progress

__all__ = ["BLEU_SENTENCES", "SAMPLE_SENTENCES", "TranslationMonitor"]

# Validation sentences printed every epoch.
SAMPLE_SENTENCES = 3
# Validation sentences scored every epoch with --early-stop-on bleu.
BLEU_SENTENCES = 200


class TranslationMonitor(keras.callbacks.Callback):
    """Prints sample translations and logs validation BLEU at every epoch end.

    Put it before the run's checkpoint callback (`train(callbacks=[...])`
    does) so `val_bleu` is in the epoch logs it reads.

    Args:
        source_tokenizer, target_tokenizer: the run's tokenizers.
        pairs: the validation `(source, reference)` pairs; the first
            `samples` distinct sources are printed, the first
            `bleu_sentences` pairs scored.
        samples: sentences printed each epoch (0: none).
        bleu_sentences: sentences whose BLEU is logged as `val_bleu` each
            epoch (0: no BLEU).
        unk_replace: `Translator`'s `<unk>` replacement.
        verbose: 0 prints nothing (BLEU is still logged).

    Example:

    ```python
    monitor = TranslationMonitor(src_tok, tgt_tok, valid_pairs, bleu_sentences=200)
    ks.training.train(build, train_ds, valid_ds, "runs/x", config,
                      callbacks=[monitor], monitor="val_bleu")
    ```
    """

    def __init__(self, source_tokenizer, target_tokenizer, pairs, *, samples=SAMPLE_SENTENCES,
                 bleu_sentences=0, unk_replace=True, verbose=1):
        super().__init__()
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        pairs = list(pairs)
        self.pairs = pairs[:bleu_sentences]
        # The printed sentences: the first `samples` distinct sources.
        distinct = {}
        for source, reference in pairs:
            if len(distinct) >= samples:
                break
            distinct.setdefault(source, reference)
        self.shown = list(distinct.items())
        self.bleu_sentences = bleu_sentences
        self.unk_replace = unk_replace
        self.verbose = progress.resolve_verbose(verbose)
        self._translator = None

    def _translate(self, sources):
        from keras_seq.pipelines.translator import Translator

        if self._translator is None or self._translator.model is not self.model:
            # decode_mode "auto": a bounded sample decodes eagerly, without
            # tracing the decoding loop for each output-length limit.
            self._translator = Translator(self.model, self.source_tokenizer,
                                          self.target_tokenizer, unk_replace=self.unk_replace)
        return [r.text for r in self._translator.translate(sources, greedy=True)]

    def on_epoch_end(self, epoch, logs=None):
        shown = self.shown if self.verbose else []
        scored = self.pairs
        sources = [s for s, _ in scored] + [s for s, _ in shown]
        if not sources:
            return
        outputs = self._translate(sources)
        if scored and logs is not None:
            from keras_seq import metrics

            scores = metrics.translation_scores(outputs[:len(scored)], [t for _, t in scored])
            logs["val_bleu"] = float(scores["bleu"])
        if shown:
            outputs = outputs[len(scored):]
            bleu = f" (validation BLEU {logs['val_bleu']:.2f} on {len(scored)} sentences)" \
                if scored and logs is not None else ""
            lines = [f"epoch {epoch + 1} sample translations{bleu}:"]
            for (source, reference), output in zip(shown, outputs):
                lines.append(f"  {source}\n    -> {output}\n       (reference: {reference})")
            progress.echo("\n".join(lines), self.verbose)
