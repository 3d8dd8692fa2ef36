"""Reviewers' signing keys and canonical content: what makes a verdict unforgeable.

A row in the registry proves nothing by itself: whoever can write the database file can
INSERT an "approved" event. What an attacker with database access does not have is a
reviewer's PRIVATE key. So every approval and rejection is an Ed25519 signature (RFC 8032,
via `cryptography`) over the canonical JSON of the verdict: the run, the verdict, the
reviewer, the time, the SHA-256 of the report, the synthetic data, the model bundle and the
gate decision being judged, and the hash of the registry event it follows. The public keys
live in the reviewers file (`public_key: ed25519:BASE64`), which is configuration held
apart from the registry; the private key lives in a file only the reviewer can read
(mode 0600, `$SYNTHKIT_HOME/keys/NAME.ed25519` by default), never in the registry.

Canonical JSON (sorted keys, no whitespace, UTF-8, no NaN) is also what the registry's
hash chain hashes, so the signed bytes and the chained bytes are the same recipe.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from synthkit.errors import ConfigError

KEY_PREFIX = "ed25519:"
ENV_KEY = "SYNTHKIT_REVIEWER_KEY"
KEY_SUFFIX = ".ed25519"
VERDICT_FORMAT = "synthkit-verdict"
VERDICT_VERSION = 1


def _plain(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def canonical_json(obj: Any) -> bytes:
    """The one byte form that is hashed and signed: sorted keys, no whitespace, UTF-8,
    non-finite floats spelled as strings (JSON has none)."""
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------- keys
def keys_dir() -> Path:
    home = Path(os.environ.get("SYNTHKIT_HOME") or Path.home() / ".synthkit").expanduser()
    return home / "keys"


def default_key_path(reviewer: str) -> Path:
    """$SYNTHKIT_REVIEWER_KEY, else $SYNTHKIT_HOME/keys/REVIEWER.ed25519."""
    env = os.environ.get(ENV_KEY)
    return Path(env).expanduser() if env else keys_dir() / f"{reviewer}{KEY_SUFFIX}"


def public_key_line(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def key_id(public_line: str) -> str:
    """A short fingerprint of a public key (shown and stored next to signatures)."""
    return hashlib.sha256(public_line.encode("ascii")).hexdigest()[:16]


# Curve25519's field prime and the encodings (sign bit cleared) of the points of order 1, 2,
# 4 and 8. A public key of small order makes Ed25519 verification (cofactorless, as
# OpenSSL does it) accept one fixed signature for EVERY message: R = identity, S = 0
# verifies [S]B = R + [k]A whenever [k]A is the identity. Such a "key" in the reviewers
# file would let anyone sign any verdict, so it is refused like libsodium's blocklist.
_P = 2**255 - 19
_SMALL_ORDER = {0, 1, _P - 1,
                int.from_bytes(bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
                               "little"),
                int.from_bytes(bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
                               "little")}


def parse_public_key(line: str) -> Ed25519PublicKey:
    """`ed25519:BASE64` (32 raw bytes) as written by `synthkit reviewers key`; a weak key (of
    small order, or a non-canonical encoding) is refused."""
    problem = "a public key is 'ed25519:' followed by base64 of 32 bytes"
    if not isinstance(line, str) or not line.startswith(KEY_PREFIX):
        raise ValueError(problem)
    try:
        raw = base64.b64decode(line[len(KEY_PREFIX):], validate=True)
        key = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError):
        raise ValueError(problem) from None
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if y >= _P or y in _SMALL_ORDER:
        raise ValueError("this public key is a weak (small-order or non-canonical) point that would accept "
                         "forged signatures; create a real key with `synthkit reviewers key NAME`")
    return key


def create_key(path: Path) -> str:
    """Create a new Ed25519 private key at `path` (mode 0600, in a 0700 folder, written whole
    under a temporary name and linked into place, never overwriting an existing key) and
    return its public-key line for the reviewers file."""
    path = Path(path).expanduser()
    if path.exists():
        raise ConfigError(f"a key already exists at {str(path)!r}; keep it, or move it away first to make a new "
                          "one (then replace the public_key line in the reviewers file)")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.partial"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic and refuses to replace a key that appeared meanwhile
        except FileExistsError:
            raise ConfigError(f"a key already exists at {str(path)!r}; it was not replaced") from None
    finally:
        tmp.unlink(missing_ok=True)
    return public_key_line(key)


def load_private_key(path: Path, *, pem: bytes | None = None) -> Ed25519PrivateKey:
    """Read a reviewer's private key. Like ssh, refuse a key file others can read: a key
    that is not private proves nothing. `pem` gives the bytes directly (e.g. a key the
    reviewer uploads to the dashboard for one signature; never stored)."""
    path = Path(path).expanduser()
    if pem is None:
        if not path.is_file():
            raise ConfigError(f"no signing key at {str(path)!r}; create one with `synthkit reviewers key NAME` "
                              f"or pass --key (or ${ENV_KEY})")
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"the signing key {str(path)!r} can be read by other accounts (mode "
                              f"{stat.S_IMODE(mode):o}); run `chmod 600` on it")
        pem = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{str(path)!r} is not an unencrypted Ed25519 private key in PEM form") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{str(path)!r} is not an Ed25519 key")
    return key


# ---------------------------------------------------------------------------- signatures
def sign(key: Ed25519PrivateKey, payload: dict[str, Any]) -> str:
    return base64.b64encode(key.sign(canonical_json(payload))).decode("ascii")


def signature_valid(public_line: str | None, payload: dict[str, Any], signature: Any) -> bool:
    if not public_line or not isinstance(signature, str):
        return False
    try:
        pub = parse_public_key(public_line)
        pub.verify(base64.b64decode(signature, validate=True), canonical_json(payload))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
