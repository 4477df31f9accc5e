"""Inference and training pipelines over the models, tokenizers and run directories.

    Translator              from_run(run_dir), translate([...]), evaluate(pairs)
    TextGenerator           from_run(run_dir), generate([...]), evaluate(text)
    train_translator        train a translator into a run directory from a recipe
    train_language_model    train a language model into a run directory from a recipe
"""

from keras_seq.pipelines.text_generator import *  # noqa: F401,F403
from keras_seq.pipelines.translator import *  # noqa: F401,F403
