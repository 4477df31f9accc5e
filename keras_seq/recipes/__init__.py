"""Typed training recipes: every default the CLI advertises, in one place each.

    TranslatorRecipe        the attention-RNN / Transformer translator recipes
    LanguageModelRecipe     the recurrent / Transformer language-model recipes
"""

from keras_seq.recipes.language_model import *  # noqa: F401,F403
from keras_seq.recipes.translator import *  # noqa: F401,F403
