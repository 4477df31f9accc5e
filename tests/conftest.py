import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# The default run spreads test files over two processes (pytest.ini: `-n 2
# --dist loadfile`, pytest-xdist), handing out files in collection order. The
# longest files (30-60 s each on 2 cores) go first, so that the run does not
# end with one process working through a long file alone.
LONGEST_FIRST = (
    "test_transformer_export.py", "test_multi_worker.py", "test_export.py",
    "test_translation_task.py", "test_keras_roundtrip.py", "test_multi_worker_cli.py",
    "test_per_request_decoding.py", "test_lm_task.py", "test_split_files.py",
    "test_sampled_models.py", "test_serving_batching.py", "test_training.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable otherwise
