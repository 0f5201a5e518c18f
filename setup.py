"""Builds cnnlab's optional C++ kernels (src/cnnlab/csrc); everything else is in pyproject.toml.

If torch's C++ toolchain is missing or the compiler fails, cnnlab installs without
them and uses plain PyTorch operations instead (same results, slower first layer).
"""
from setuptools import setup

ext_modules, cmdclass = [], {}
try:
    from torch.utils.cpp_extension import BuildExtension, CppExtension

    ext_modules = [CppExtension(
        "cnnlab._fused", ["src/cnnlab/csrc/fused.cpp"],
        extra_compile_args=["-O3", "-march=native", "-fopenmp", "-ffp-contract=fast", "-w"],
        extra_link_args=["-fopenmp"], optional=True)]
    cmdclass = {"build_ext": BuildExtension.with_options(use_ninja=False)}
except ImportError:  # building an sdist without torch: no kernels
    pass

setup(ext_modules=ext_modules, cmdclass=cmdclass)
