"""Typed training recipes: every default the CLI advertises, in one place each.

    TranslatorRecipe        the attention-RNN / Transformer translator recipes
    LanguageModelRecipe     the recurrent / Transformer language-model recipes

Both estimate the memory their training needs (`recipe.memory_estimate()`,
`recipe.check_memory()`; `keras_seq.recipes.memory` says what is counted),
so sizes that cannot fit are refused before a model is built.
"""

from keras_seq.recipes.language_model import *  # noqa: F401,F403
from keras_seq.recipes.translator import *  # noqa: F401,F403
