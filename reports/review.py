"""Who may review a release: the reviewer configuration, credential checks, four-eyes.

A release leaves the building only when a configured reviewer approves it, so the rules
live here (one place, used by the dashboard and by `synthkit release approve`) and not
in a view:

- reviewers are listed in a YAML file (`--reviewers` or $SYNTHKIT_REVIEWERS), each with
  a salted scrypt password hash (`synthkit reviewers add NAME`) and/or the e-mail address
  an OIDC provider vouches for (Streamlit's `st.login`, configured in
  .streamlit/secrets.toml). No file, or an empty one, means nobody can approve anything;
- an anonymous visitor is no reviewer: the dashboard shows nothing before sign-in;
- four-eyes: the person who ran a job, and the job's owner, cannot approve its release.
  The runner is the OS account that ran the job (never a self-declared name), so a
  reviewer's `name` must be their login name for the rule to bind;
- every verdict is signed: a reviewer's `public_key` (Ed25519, `ed25519:BASE64`, printed by
  `synthkit reviewers key NAME`) lives here, next to the password hash, and NOT in the
  registry; the private key stays in a file only the reviewer can read (reports/signing.py).
  A reviewer without a public key can sign in and read, but cannot approve or reject;
- `roles` (optional) name what a reviewer may sign off, for a policy that requires one.

Passwords are never stored or logged; only scrypt(salt, password) (RFC 7914, n=2**14,
r=8, p=1) is, and comparisons are constant-time.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from reports.registry import RunRecord
from reports.signing import parse_public_key
from synthkit.errors import SynthkitError

ENV_REVIEWERS = "SYNTHKIT_REVIEWERS"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_REVIEWER_KEYS = {"name", "password", "email", "display_name", "public_key", "roles"}


class AccessDenied(SynthkitError):
    """The person is not a configured reviewer, gave wrong credentials, or may not review
    this release (four-eyes)."""


class ReviewerConfigError(SynthkitError):
    """The reviewers file is invalid; carries every problem found."""

    def __init__(self, problems: list[str], *, where: str) -> None:
        self.problems = list(problems)
        super().__init__(f"invalid reviewers file {where} ({len(problems)} problem(s)): " + "; ".join(problems))


@dataclass(frozen=True, slots=True, kw_only=True)
class Reviewer:
    name: str
    password: str | None = None     # scrypt hash, never the password
    email: str | None = None        # identity asserted by the OIDC provider
    display_name: str | None = None
    public_key: str | None = None   # "ed25519:BASE64": verifies this reviewer's signed verdicts
    roles: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.display_name or self.name


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """Salted scrypt hash in the form 'scrypt$n$r$p$salt_b64$hash_b64'."""
    if not password or len(password) < 8:
        raise AccessDenied("a reviewer password must have at least 8 characters")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt)}${b64(digest)}"


def verify_password(stored: str, password: str) -> bool:
    try:
        kind, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if kind != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        got = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


@functools.cache
def _dummy_hash() -> str:
    """A hash to compare against when the name is unknown, so that timing does not tell
    which reviewer names exist."""
    return hash_password("not-a-real-password-" + secrets.token_hex(8))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewerConfig:
    reviewers: tuple[Reviewer, ...] = ()
    source: str | None = None
    # SHA-256 of the policy files that may release WITHOUT a person. A policy is whatever
    # file the job names, so whoever writes a job (or the registry) could name one with
    # `auto_release: true`; when a reviewers file is in use, only the policies its owner
    # listed here make an auto-release valid for `publish` and `verify`.
    auto_release_policies: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.reviewers)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> ReviewerConfig:
        """Read the reviewers file (`path`, else $SYNTHKIT_REVIEWERS). No file means no
        reviewers, i.e. nothing can be approved: that is the safe default."""
        raw = os.fspath(path) if path is not None else os.environ.get(ENV_REVIEWERS)
        if not raw:
            return cls()
        p = Path(raw)
        if not p.is_file():
            raise ReviewerConfigError([f"no such file (set --reviewers or ${ENV_REVIEWERS})"], where=str(p))
        from synthkit import safeload  # size, depth and alias caps; non-UTF-8 is one line

        try:
            text = safeload.read_text(p, max_bytes=safeload.POLICY_MAX_BYTES, where=str(p))
            data = safeload.load_yaml(text, where=str(p)) or {}
        except safeload.InputLimitError as err:
            raise ReviewerConfigError([err.problem], where=str(p)) from None
        return cls.from_dict(data, source=str(p))

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "reviewers") -> ReviewerConfig:
        problems: list[str] = []
        if not isinstance(data, dict) or set(data) - {"reviewers", "auto_release_policies"}:
            raise ReviewerConfigError(["expected a mapping with the key 'reviewers' (a list) and optionally "
                                       "'auto_release_policies' (a list of policy SHA-256)"], where=source)
        auto = data.get("auto_release_policies") or []
        if not isinstance(auto, list) or not all(isinstance(h, str) and _SHA256.match(h) for h in auto):
            problems.append("'auto_release_policies' must be a list of policy SHA-256 (64 hex digits, as "
                            "`synthkit policy check` prints)")
            auto = []
        items = data.get("reviewers") or []
        if not isinstance(items, list):
            raise ReviewerConfigError(["'reviewers' must be a list"], where=source)
        out: list[Reviewer] = []
        names: set[str] = set()
        keys: dict[str, str] = {}
        emails: dict[str, str] = {}
        for i, item in enumerate(items):
            where = f"reviewers[{i}]"
            if not isinstance(item, dict):
                problems.append(f"{where} must be a mapping")
                continue
            extra = sorted(set(map(str, item)) - _REVIEWER_KEYS)
            if extra:
                problems.append(f"{where}: unknown key(s) {extra}; allowed: {sorted(_REVIEWER_KEYS)}")
            name = item.get("name")
            if not isinstance(name, str) or not _NAME.match(name):
                problems.append(f"{where}: 'name' must be a login name ([A-Za-z0-9._@-]), got {name!r}")
                continue
            if name.lower() in names:
                problems.append(f"{where}: reviewer {name!r} is listed twice")
            names.add(name.lower())
            password, email = item.get("password"), item.get("email")
            if password is not None and (not isinstance(password, str) or not password.startswith("scrypt$")):
                problems.append(f"{where} ({name}): 'password' must be a hash from `synthkit reviewers add`, "
                                "never a plain password")
                password = None
            if email is not None and (not isinstance(email, str) or "@" not in email):
                problems.append(f"{where} ({name}): 'email' must be an e-mail address")
                email = None
            if email is not None:
                if email.lower() in emails:
                    problems.append(f"{where} ({name}): the e-mail address of {emails[email.lower()]!r}; a "
                                    "sign-in with it would pick one of two reviewers")
                emails.setdefault(email.lower(), name)
            if password is None and email is None:
                problems.append(f"{where} ({name}): give a 'password' hash or an OIDC 'email', else "
                                "this reviewer can never sign in")
            public_key = item.get("public_key")
            if public_key is not None:
                try:
                    parse_public_key(public_key)
                except ValueError as err:
                    problems.append(f"{where} ({name}): 'public_key' is invalid: {err}; paste the line that "
                                    "`synthkit reviewers key NAME` printed")
                    public_key = None
            if public_key is not None:
                if public_key in keys:
                    problems.append(f"{where} ({name}): the same public_key as {keys[public_key]!r}; one person "
                                    "with two names would count as two approvals. Give each reviewer their own key")
                keys.setdefault(public_key, name)
            roles = item.get("roles") or []
            if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
                problems.append(f"{where} ({name}): 'roles' must be a list of names")
                roles = []
            display = item.get("display_name")
            out.append(Reviewer(name=name, password=password, email=email.lower() if email else None,
                                display_name=display if isinstance(display, str) else None,
                                public_key=public_key, roles=tuple(roles)))
        if problems:
            raise ReviewerConfigError(problems, where=source)
        return cls(reviewers=tuple(out), source=source, auto_release_policies=tuple(h.lower() for h in auto))

    def to_dict(self) -> dict[str, Any]:
        out = []
        for r in self.reviewers:
            d: dict[str, Any] = {"name": r.name}
            for key in ("display_name", "email", "password", "public_key"):
                if getattr(r, key):
                    d[key] = getattr(r, key)
            if r.roles:
                d["roles"] = list(r.roles)
            out.append(d)
        if self.auto_release_policies:
            return {"reviewers": out, "auto_release_policies": list(self.auto_release_policies)}
        return {"reviewers": out}

    def find(self, name: str) -> Reviewer | None:
        return next((r for r in self.reviewers if r.name.lower() == name.lower()), None)

    def authenticate(self, name: str, password: str) -> Reviewer:
        """The reviewer `name` if `password` matches; AccessDenied otherwise (one message
        for unknown names and wrong passwords, so names cannot be probed)."""
        if not self.configured:
            raise AccessDenied("no reviewers are configured, so nothing can be approved; add one with "
                               "`synthkit reviewers add NAME --file reviewers.yaml`")
        reviewer = self.find(name or "")
        stored = reviewer.password if reviewer is not None and reviewer.password else _dummy_hash()
        ok = verify_password(stored, password or "")
        if reviewer is None or reviewer.password is None or not ok:
            raise AccessDenied("unknown reviewer or wrong password")
        return reviewer

    def by_email(self, email: str | None) -> Reviewer:
        """The reviewer an OIDC provider signed in (matched on the verified e-mail)."""
        if email:
            for r in self.reviewers:
                if r.email and r.email == email.lower():
                    return r
        raise AccessDenied("this account is signed in but is not a configured reviewer")


def with_reviewer(config: ReviewerConfig, *, name: str, password: str | None = None, email: str | None = None,
                  display_name: str | None = None, public_key: str | None = None) -> ReviewerConfig:
    """A copy of `config` with reviewer `name` added or replaced (a replaced reviewer keeps
    their public key and roles unless a new key is given)."""
    hashed = hash_password(password) if password is not None else None
    old = config.find(name)
    kept = tuple(r for r in config.reviewers if r.name.lower() != name.lower())
    new = Reviewer(name=name, password=hashed, email=email, display_name=display_name,
                   public_key=public_key or (old.public_key if old else None), roles=old.roles if old else ())
    return ReviewerConfig.from_dict({"reviewers": [*ReviewerConfig(reviewers=kept).to_dict()["reviewers"],
                                                   ReviewerConfig(reviewers=(new,)).to_dict()["reviewers"][0]]},
                                    source=config.source or "reviewers")


def identity_key(name: str) -> str:
    """How names are compared for four-eyes: Unicode compatibility form (NFKC: full-width
    and other look-alike forms of the same letters), case-folded, with invisible format
    characters (zero-width spaces, joiners, direction marks) removed. Homoglyphs from other
    scripts (Cyrillic 'а' for Latin 'a') stay distinct, which is why reviewer names are
    restricted to ASCII login names."""
    text = unicodedata.normalize("NFKC", name)
    return "".join(c for c in text if unicodedata.category(c) != "Cf").casefold().strip()


def four_eyes_problem(run: RunRecord, reviewer: Reviewer, *, runner_display: str | None = None) -> str | None:
    """Why `reviewer` may not approve `run`, or None. The person who ran the job (its OS
    account) and the job's owner are excluded: nobody approves their own release. A display
    name the runner gave (`runner_display`) only ever adds to who is excluded."""
    who = {identity_key(reviewer.name)}
    if reviewer.email:
        who.add(identity_key(reviewer.email))
    involved = {identity_key(run.run_by)} | ({identity_key(run.owner)} if run.owner else set())
    if runner_display:
        involved.add(identity_key(runner_display))
    if who & involved:
        ran = {identity_key(run.run_by)} | ({identity_key(runner_display)} if runner_display else set())
        role = "ran this job" if who & ran else "owns this job"
        return f"{reviewer.name} {role}; another reviewer must approve it (four-eyes rule)"
    return None
