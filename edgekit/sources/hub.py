"""Hub names as users type them: ``hf:<repo id>`` and ``timm:<name>[.<tag>] --pretrained``.

A repo is resolved to a snapshot directory in the Hugging Face cache with ``huggingface_hub``: downloaded
when online, read from the cache when ``HF_HUB_OFFLINE=1`` or the hub cannot be reached. The cache is
``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub`` (read when the source is
resolved, so a test or a script can point it elsewhere). The snapshot is then read as a model directory
(:func:`edgekit.sources.directory.hf_model`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from edgekit.errors import UsageError

_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_WANTED = ["*.json", "*.safetensors", "*.txt"]  # config, weights, preprocessing, labels; not every format the repo has


def cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface")
    return Path(home) / "hub"


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "on", "yes", "true")


def snapshot(repo_id: str) -> tuple[Path, str]:
    """(local snapshot directory, "hub <repo>@<commit>") for ``repo_id`` ("org/name", optionally "@revision")."""
    repo_id, _, revision = repo_id.partition("@")
    if not _REPO.match(repo_id):
        raise UsageError(f"hf:{repo_id} is not a Hugging Face repo id (org/name)")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                            RepositoryNotFoundError, RevisionNotFoundError)
    except ImportError:
        raise UsageError("hub sources need huggingface_hub: pip install huggingface_hub") from None
    cache = cache_dir()
    kwargs = dict(cache_dir=str(cache), revision=revision or None, endpoint=os.environ.get("HF_ENDPOINT") or None)

    def fetch(patterns: list[str], local: bool) -> Path:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=local, **kwargs))

    local = offline()
    try:
        try:
            path = fetch(_WANTED, local)
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
            if local or isinstance(e, (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError)):
                raise
            local = True  # no network: what the cache holds
            path = fetch(_WANTED, True)
        if not any(path.glob("*.safetensors")) and not local:
            path = fetch(["*.bin"], False)  # an older repo without safetensors
    except (RepositoryNotFoundError, GatedRepoError) as e:
        raise UsageError(f"hf:{repo_id}: the hub has no such repo, or it is gated or private "
                         f"({e.__class__.__name__}); check the name, or log in with `hf auth login`") from None
    except RevisionNotFoundError:
        raise UsageError(f"hf:{repo_id}: no revision {revision!r}") from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as e:
        why = "offline (HF_HUB_OFFLINE=1)" if offline() else "the hub cannot be reached"
        raise UsageError(f"hf:{repo_id} is not in the Hugging Face cache {cache} and {why} "
                         f"({e.__class__.__name__}); download it where there is a network (hf download {repo_id}) "
                         f"into that cache, or point HF_HOME at a cache that has it") from None
    return path, f"hub {repo_id}@{path.name[:12]}"


def timm_snapshot(timm, arch: str, tag: str) -> tuple[Path, str]:
    """The hub snapshot of timm's published weights for ``arch.tag`` (the default tag when empty)."""
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(f"{arch}.{tag}" if tag else arch)
    except RuntimeError:
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*")]
        raise UsageError(f"timm has no pretrained tag {tag!r} for {arch}"
                         f"{'; it has: ' + ', '.join(tags[:8]) if tags else '; it publishes no weights'}") from None
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        where = getattr(cfg, "url", None) if cfg is not None else None
        raise UsageError(f"timm's weights for {arch}{'.' + tag if tag else ''} are not on the Hugging Face hub"
                         f"{f' ({where})' if where else ''}; download them yourself and pass --checkpoint PATH")
    return snapshot(hub_id)
