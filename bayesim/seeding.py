"""Derivation of independent seeds from a root seed and a key path.

``derive_seed(seed, "eval", 3)`` is a pure function of its arguments: the same key path always gives
the same 63-bit seed, different key paths give statistically independent seeds (BLAKE2b). This is
how every random draw in bayesim is tied to *what* it is for rather than to the order in which work
was done, so results do not depend on batch sizes, chunking or thread counts.
"""

import hashlib

import torch


def derive_seed(seed: int, *keys: int | str) -> int:
    """Return a non-negative 63-bit integer seed for ``(seed, *keys)``."""
    text = "/".join([str(int(seed)), *(str(k) for k in keys)])
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def generator(seed: int, *keys: int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derive_seed(seed, *keys)``."""
    gen = torch.Generator()
    gen.manual_seed(derive_seed(seed, *keys))
    return gen
