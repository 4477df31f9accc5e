"""Distribution `keras-seq` (import name `keras_seq`)."""

from setuptools import find_packages, setup

setup(
    name="keras-seq",
    version="0.1.0",
    description=(
        "Recurrent and attention sequence models for Keras 3: train, decode, "
        "export to SavedModel/ONNX and serve."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_seq", "keras_seq.*"]),
    package_data={"keras_seq.datasets": ["*.gz", "*.csv", "README.md"]},
    include_package_data=True,
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<3.16",
        "keras-hub>=0.32,<0.33",
        "tensorflow-text>=2.21,<2.22",
        "tf2onnx>=1.17,<1.18",
        "onnx>=1.17",
        "onnxruntime>=1.31,<1.32",
        "sacrebleu>=2.4,<3",
        "matplotlib>=3.8",
        "starlette>=0.40",
        "uvicorn>=0.30",
    ],
    extras_require={"test": ["pytest>=8", "httpx>=0.27"]},
    entry_points={"console_scripts": ["keras-seq=keras_seq.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Keras",
        "License :: OSI Approved :: Apache Software License",
    ],
)
