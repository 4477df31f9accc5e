"""The jobs behind the `keras-seq` subcommands (train, generate/translate, evaluate, export)."""
