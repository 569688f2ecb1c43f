"""Where a result came from: the bayesim version and, when the package runs from a git checkout,
the commit (and whether the tree had uncommitted changes). Reports carry it, `--version` prints
it."""

import functools
import hashlib
import subprocess
from pathlib import Path
from typing import Any

from bayesim import __version__


def _git(*args: str) -> str | None:
    """``git args…`` in the package's directory; None without git or outside a checkout."""
    try:
        done = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def code_digest() -> str:
    """SHA-256 over the names and bytes of every module of the installed bayesim package: changes
    whenever the code does, committed or not (it keys cached results)."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(f"{path.relative_to(root)}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.cache
def provenance() -> dict[str, Any]:
    """``{"version", "git_commit", "git_dirty"}``; the git keys are None when the package is not
    in a git checkout (an installed wheel)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"version": __version__, "git_commit": commit,
            "git_dirty": None if status is None else bool(status)}
