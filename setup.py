"""Install tfcomp: `pip install -e .` (the Makefile does this inside .venv)."""

import os
import subprocess
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop

HERE = os.path.dirname(os.path.abspath(__file__))


def build_ops():
    """Compiles tfcomp/_bpg_ops.so against the installed TensorFlow (no-op when up to date)."""
    subprocess.check_call([sys.executable, os.path.join(HERE, "tfcomp", "csrc", "build.py")])


class BuildPyWithOps(build_py):
    def run(self):
        build_ops()
        super().run()


class DevelopWithOps(develop):
    # `pip install -e .` (no pyproject.toml) runs develop, not build_py.
    def run(self):
        build_ops()
        super().run()

setup(
    name="tfcomp",
    version="0.1.0",
    description="Learned image compression and compression-artifact reduction in TensorFlow/Keras",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["tfcomp", "tfcomp.*"]),
    package_data={"tfcomp": ["weights/*.weights.h5", "weights/*.ctx.npz", "_bpg_ops.so"]},
    cmdclass={"build_py": BuildPyWithOps, "develop": DevelopWithOps},
    install_requires=[
        "tensorflow==2.14.1",
        "tensorflow-compression==2.14.1",
        "tensorflow-addons==0.23.0",
        "numpy==1.26.4",
        "scipy==1.11.4",
        "Pillow==10.4.0",
        "matplotlib==3.8.4",
        "scikit-image==0.22.0",
        "tqdm==4.66.5",
        "protobuf==3.20.3",
        "tf2onnx==1.16.1",
        "onnx==1.17.0",
        "onnxruntime==1.26.0",
        "tensorflow-serving-api==2.14.1",
        "grpcio==1.85.1",
        "ai-edge-litert==2.3.0",
    ],
    # `pip install .[gpu]`: TensorFlow with its CUDA/cuDNN wheels (NVIDIA GPUs on Linux).
    extras_require={"test": ["pytest==8.3.3"], "gpu": ["tensorflow[and-cuda]==2.14.1"]},
    entry_points={"console_scripts": ["tfcomp=tfcomp.cli:main"]},
)
