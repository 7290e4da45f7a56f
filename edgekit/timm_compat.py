"""Import timm on machines without torchvision (CPU-only hosts, many Jetsons).

timm imports torchvision at import time (``FrozenBatchNorm2d``, the data transforms), yet none of
the model code edgekit uses needs it. :func:`import_timm` installs a stand-in ``torchvision`` package
only for the duration of ``import timm`` and removes it again afterwards, so no other library is
fooled into thinking torchvision exists (a global stub breaks e.g. transformers' image processors).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

from edgekit.errors import UsageError


class _MissingMeta(type):
    def __getattr__(cls, name: str):  # torchvision.transforms.InterpolationMode.BILINEAR etc.
        if name.startswith("__"):
            raise AttributeError(name)
        return _missing(f"{cls.__qualname__}.{name}")

    def __call__(cls, *args, **kwargs):
        raise RuntimeError(f"{cls.__qualname__} needs torchvision, which is not installed")


def _missing(qualname: str) -> type:
    return _MissingMeta(qualname.rsplit(".", 1)[-1], (), {"__qualname__": qualname})


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _missing(f"{self.__name__}.{name}")


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []  # a package, so submodules resolve through this finder too
        return module

    def exec_module(self, module):
        return None


@contextmanager
def _torchvision_stub() -> Iterator[None]:
    finder = _StubFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n, m in sys.modules.items() if isinstance(m, _StubModule)]:
            del sys.modules[name]


def torchvision_available() -> bool:
    return importlib.util.find_spec("torchvision") is not None


def import_timm() -> types.ModuleType:
    """Return the ``timm`` module, importing it with a scoped torchvision stand-in when needed."""
    if "timm" in sys.modules:
        return sys.modules["timm"]
    if importlib.util.find_spec("timm") is None:
        raise UsageError("timm is not installed; run: pip install --no-deps timm huggingface_hub safetensors")
    if torchvision_available():
        return importlib.import_module("timm")
    with _torchvision_stub():
        return importlib.import_module("timm")
