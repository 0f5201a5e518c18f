"""Builds cnnlab's C++ kernels (src/cnnlab/fast/csrc); everything else is in pyproject.toml.

One binary per instruction set (src/cnnlab/fast/isa.py: AVX-512 and AVX2+FMA on x86-64,
the compiler's defaults elsewhere), each with only its own flags, never -march=native;
cnnlab loads the best one the CPU runs. Where torch's C++ toolchain or a compiler is
missing, or a build fails, cnnlab installs without them (plain torch ops, same results,
slower) and the build ends with a line that says so; so does the first fit.
"""
import importlib.util
import os
import sys

from setuptools import setup

SOURCE = "src/cnnlab/fast/csrc/fused.cpp"
FLAGS = ["-O3", "-fopenmp", "-ffp-contract=fast", "-Wall"]


def _isa():
    spec = importlib.util.spec_from_file_location("_cnnlab_isa", "src/cnnlab/fast/isa.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _say(line: str) -> None:
    print(f"cnnlab: {line}", file=sys.stderr, flush=True)


ext_modules, cmdclass = [], {}
try:
    from torch.utils.cpp_extension import BuildExtension, CppExtension
except ImportError:  # building without torch (an sdist): no kernels
    _say("C++ kernels NOT built: torch is not importable in the build environment.")
else:
    ext_modules = [
        CppExtension(f"cnnlab.fast._kernels_{name}", [SOURCE],
                     extra_compile_args=FLAGS + list(flags) + [f'-DCNNLAB_KERNELS_ISA="{name}"'],
                     extra_link_args=["-fopenmp"], optional=True)
        for name, (flags, _) in _isa().variants().items()]

    class BuildKernels(BuildExtension):
        def build_extension(self, ext):
            temp = self.build_temp
            self.build_temp = os.path.join(temp, ext.name)  # one object file per variant
            try:
                super().build_extension(ext)
            finally:
                self.build_temp = temp

        def run(self):
            try:
                super().run()
            except Exception as err:  # e.g. no compiler at all: install without the kernels
                _say(f"building the C++ kernels failed: {err}")
            built = [e.name.rsplit("_", 1)[-1] for e in self.extensions
                     if os.path.exists(self.get_ext_fullpath(e.name))]
            if built:
                _say(f"C++ kernels built for: {', '.join(built)}.")
            else:
                _say("C++ kernels NOT built (see the compiler's messages above): cnnlab will "
                     "run on plain torch ops, slower, with the same results.")

    cmdclass = {"build_ext": BuildKernels.with_options(use_ninja=False)}

setup(ext_modules=ext_modules, cmdclass=cmdclass)
