"""The compatibility corpus (tests/compat/corpus.py) through edgekit's real export pipeline.

CI runs each family's representative on one runtime (ONNX Runtime or OpenVINO), and one transformers
representative per task on every target but ExecuTorch and LiteRT (:attr:`~tests.compat.corpus.Model.ci_targets`);
``EDGEKIT_FULL_COMPAT=1`` runs every pair: every model on both runtimes, and every representative on every
target. A pair passes when the parity gate passes at its
default tolerances (CoreML off macOS: when the conversion succeeds, parity recorded as not measured); a pair
declared :class:`~tests.compat.corpus.Known` must still fail with its declared message. Every failure must be
one of edgekit's own errors: an exception of any other type escaping ``edgekit.export`` is a bug here.
``scripts/compat_matrix.py`` runs the same pairs and writes docs/compatibility.md.

The selected pairs run two models at a time in worker processes (``EDGEKIT_COMPAT_WORKERS`` to change it):
the CI tier took 121 s that way on 2 cores, against ~210 s one after the other.
"""
from __future__ import annotations

import os

import pytest

from tests.compat.corpus import BASE_TARGETS, CORPUS, FAMILY_TARGETS, ZOO_FAMILIES, pairs
from tests.compat.runner import run_pairs

FULL = os.environ.get("EDGEKIT_FULL_COMPAT") == "1"
WORKERS = int(os.environ.get("EDGEKIT_COMPAT_WORKERS") or min(2, os.cpu_count() or 1))
_SKIP_FULL = pytest.mark.skip(reason="full compatibility corpus: set EDGEKIT_FULL_COMPAT=1 to run every pair "
                                     "(CI runs one model per family)")


def _params():
    ci = {(m.id, t) for m, t in pairs(full=False)}
    return [pytest.param(m, t, id=f"{m.id}-{t}", marks=() if FULL or (m.id, t) in ci else _SKIP_FULL)
            for m, t in pairs(full=True)]


@pytest.fixture(scope="session")
def compat_results(tmp_path_factory, request):
    """The result of every pair this session selected (not skipped), computed at the first test that needs one:
    :data:`WORKERS` models at a time (:func:`tests.compat.runner.run_pairs`); checkpoints and model directories
    are written once and shared by a model's targets."""
    selected = [(item.callspec.params["model"], item.callspec.params["target"]) for item in request.session.items
                if getattr(item, "originalname", "") == "test_pair" and not item.get_closest_marker("skip")]
    return run_pairs(selected, tmp_path_factory.mktemp("compat"), WORKERS)


@pytest.mark.parametrize("model,target", _params())
def test_pair(model, target, compat_results):
    result = compat_results[(model.id, target)]
    assert not result.error_type.startswith("uncaught"), f"not an edgekit error: {result.error_type}: {result.reason}"
    known = model.known_for(target)
    if known is None:
        assert result.passed, f"{result.error_type}: {result.reason}"
        if target == "coreml":
            assert result.measured_on == "not measured" or result.cosine is not None
        else:  # measured: the worst image's cosine is what the gate checked (>= 0.99999 at the fp32 default)
            assert result.cosine is not None and result.cosine >= 0.99999, result
    else:
        assert not result.passed, f"{model.id} on {target} now passes: remove its Known entry ({known.why})"
        assert known.match in result.reason, f"fails differently than declared ({known.match!r}): {result.reason}"


def test_corpus_meets_the_issue():
    """At least 30 timm architectures beyond the zoo from 15 families, 12 transformers architectures (5 of
    them segmentation); one representative per family, which alone carries TensorRT, CoreML, ExecuTorch and
    LiteRT."""
    timm = [m for m in CORPUS if m.library == "timm" and m.published]
    hf = [m for m in CORPUS if m.library == "transformers"]
    assert len({m.id for m in CORPUS}) == len(CORPUS), "duplicate model ids"
    assert len(timm) >= 30 and len({m.family for m in timm}) >= 15
    assert len(hf) >= 12 and sum(m.task == "segmentation" for m in hf) >= 5
    assert not {m.family for m in CORPUS} & set(ZOO_FAMILIES), "the corpus is for models beyond edgekit's zoo"
    for family in {m.family for m in CORPUS}:
        reps = [m.id for m in CORPUS if m.family == family and m.ci]
        assert len(reps) == 1, f"family {family}: representatives {reps}"
    assert all(m.targets == BASE_TARGETS + (FAMILY_TARGETS if m.ci else ()) for m in CORPUS)
    for m in (m for m in CORPUS if m.ci):
        assert set(m.ci_targets) <= set(m.targets) and set(m.ci_targets) & set(BASE_TARGETS), m.id
    ci_runtimes = [m.ci_target for m in CORPUS if m.ci and not m.all_targets_in_ci]
    assert set(ci_runtimes) == set(BASE_TARGETS), "CI checks both runtimes across the families"
    assert {m.task for m in CORPUS if m.all_targets_in_ci} == {"classification", "segmentation"}
    for m in CORPUS:
        assert all(k.target in m.targets and k.why for k in m.known), m.id
