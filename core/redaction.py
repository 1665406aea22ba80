"""The one scrubber: removes secrets from text before it is logged, stored or raised.

A :class:`Redactor` knows literal secrets (the settings' secrets, a request's credentials,
values bound with :func:`add_secrets` for the current task) and removes each of them in
every form a vendor or a library is likely to echo it back in, case-insensitively:

* the value itself, and upper- or lower-cased;
* URL-encoded (``quote`` with and without ``/`` kept, ``quote_plus``);
* hex;
* base64, standard and URL-safe, with or without padding, also when the secret is only
  part of what was encoded (``base64("user:secret")`` of a Basic header): the whole base64
  run that contains the secret's bytes at any alignment is removed.

Then it removes what is shaped like a secret whatever its value: the password of a URL,
``Bearer``/``Basic`` credentials, the value of a secret-named key (``access_token=``,
``"client_secret": "..."``) and 32-byte base64 keys (Fernet, AES-256).

Everything that removes secrets goes through here: the log filter of every process, the
descriptions of failed vendor calls, the audit trail and the webhook inbox's copies of
headers and URLs use :data:`REDACTED`, :data:`SECRET_HEADERS` and :func:`is_secret_name`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, quote_plus, urlsplit

if TYPE_CHECKING:
    from core.settings import Settings

REDACTED: Final = "[redacted]"
#: A literal secret shorter than this is not searched for (it would redact ordinary words).
MIN_SECRET_LENGTH: Final = 6
#: Base64 of a part of a secret is searched for only from this many characters on, so
#: that a short fragment cannot match an unrelated base64 run by chance.
MIN_BASE64_FRAGMENT: Final = 12
#: Request headers whose values are secrets.
SECRET_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "x-auth-token"}
)

SECRET_NAMES: Final = (
    r"(?:[\w-]*(?:password|passwd|secret|token|api[_-]?key|apikey|private[_-]?key"
    r"|access[_-]?key|authorization|signature|cookie|clientstate)[\w-]*|key)"
)
_BASE64_ALPHABET: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"
)
_SHAPES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # scheme://user:password@host -> scheme://user:[redacted]@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/?#@\s]*):[^@/?#\s]+@"), rf"\1:{REDACTED}@"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w\-.~+/]+=*"), rf"\1 {REDACTED}"),
    # "token <credential>" (GitHub-style Authorization): only a long value with a digit
    (re.compile(r"(?i)\b(token)\s+(?=[\w\-.~+/]*\d)[\w\-.~+/]{16,}=*"), rf"\1 {REDACTED}"),
    # access_token=..., 'client_secret': '...', "password": "...", api-key: ..., key=...
    (
        re.compile(
            rf"(?i)(?P<key>[\"']?\b{SECRET_NAMES}\b[\"']?\s*[:=]\s*)"
            r"(?:(?P<q>[\"'])(?:(?!(?P=q)).)*(?P=q)|[^\s&\"',;{}\[\]()]+)"
        ),
        rf"\g<key>\g<q>{REDACTED}\g<q>",
    ),
    # a 32-byte key in base64 (Fernet keys, AES-256 keys of PLUGS_SECRET_KEYS)
    (re.compile(r"(?<![\w+/=-])[A-Za-z0-9+/_-]{43}=(?![\w+/=-])"), REDACTED),
)

_task_secrets: ContextVar[tuple[str, ...]] = ContextVar("plugs_task_secrets", default=())


def is_secret_name(name: object) -> bool:
    """Whether a key, header or parameter of this name holds a secret (``client_secret``,
    ``X-Api-Key``, ``refresh_token``, ``clientState``, ...)."""
    return re.fullmatch(SECRET_NAMES, str(name), re.IGNORECASE) is not None


class Redactor:
    """Removes the given literal secrets (in every form above), then secret shapes."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        self.literals = _usable(literals)

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        return cls(settings_secrets(settings))

    def __call__(self, text: str, extra_literals: Iterable[str] = ()) -> str:
        extra = _usable(extra_literals)
        literals = self.literals | extra if extra else self.literals
        if literals:
            text = _remove_literals(text, literals)
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
        return text

    def value(self, value: Any, extra_literals: Iterable[str] = ()) -> Any:
        """``value`` with every string in it redacted, and the values of secret-named keys
        replaced whole; containers are copied, other values returned as they are."""
        extra = tuple(extra_literals)
        if isinstance(value, str):
            return self(value, extra)
        if isinstance(value, Mapping):
            return {
                k: REDACTED if is_secret_name(k) else self.value(v, extra) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v, extra) for v in value]
        return value


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without ``secrets`` (in any case or encoding), the current task's secrets,
    or anything shaped like a secret."""
    return Redactor(secrets)(text, _task_secrets.get())


# --- the current task's secrets ---------------------------------------------------------------


def add_secrets(*values: str) -> None:
    """Redact ``values`` from every log record of the current task (or context), e.g. a
    credential just decrypted; they are forgotten when the task ends."""
    _task_secrets.set((*_task_secrets.get(), *(v for v in values if v)))


def task_secrets() -> tuple[str, ...]:
    return _task_secrets.get()


def reset_task_secrets() -> Any:
    """Start the current context with no task secrets; returns the token to restore with
    :func:`restore_task_secrets`."""
    return _task_secrets.set(())


def restore_task_secrets(token: Any) -> None:
    try:
        _task_secrets.reset(token)
    except ValueError:  # set in another context (e.g. a pool thread): start afresh
        _task_secrets.set(())


# --- the settings' secrets --------------------------------------------------------------------


def settings_secrets(settings: Settings) -> set[str]:
    """Every secret value of ``settings`` (nested ones too, e.g. an SMTP server's password)
    and the secret parts inside it: the password of a URL, each key of ``kid:key,kid:key``,
    the password of ``user:password``."""
    found: set[str] = set()
    for value in _walk(settings):
        if hasattr(value, "get_secret_value"):
            found.update(_secret_parts(str(value.get_secret_value())))
    return found


def _walk(value: Any) -> Iterator[Any]:
    fields = getattr(type(value), "model_fields", None)
    if fields is not None:
        for name in fields:
            yield from _walk(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item)
    else:
        yield value


def _secret_parts(value: str) -> set[str]:
    parts = {value}
    for item in value.split(","):
        item = item.strip()
        parts.add(item)
        if "://" in item:
            try:
                password = urlsplit(item).password
            except ValueError:
                password = None
            if password:
                parts.add(password)
        else:
            parts.add(item.partition(":")[2])  # kid:key, user:password
    return parts


# --- finding every form of a secret -----------------------------------------------------------


def _usable(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH)


def variants(secret: str) -> tuple[set[str], set[str]]:
    """The forms of ``secret`` to search for: (literal forms, base64 fragments).  A base64
    fragment stands for the whole base64 run it is found in."""
    literal: set[str] = set()
    fragments: set[str] = set()
    for form in {secret, secret.upper(), secret.lower()}:
        data = form.encode("utf-8", "surrogatepass")
        literal.update({form, quote(form), quote(form, safe=""), quote_plus(form), data.hex()})
        for start in range(3):  # the secret's bytes at each alignment of base64's groups
            whole = data[start:]
            aligned = whole[: len(whole) - len(whole) % 3]
            encoded = base64.b64encode(aligned).decode()
            if len(encoded) >= MIN_BASE64_FRAGMENT:
                fragments.update({encoded, base64.urlsafe_b64encode(aligned).decode()})
        # a short secret: its exact base64 forms only
        for raw in (base64.b64encode(data), base64.urlsafe_b64encode(data)):
            literal.update({raw.decode(), raw.rstrip(b"=").decode()})
    return literal, fragments


@lru_cache(maxsize=256)
def _searched(literals: frozenset[str]) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """The pattern of every form of ``literals``, and those forms lower-cased (for a quick
    first look that lets most texts skip the pattern)."""
    plain: set[str] = set()
    fragments: set[str] = set()
    for secret in literals:
        found, parts = variants(secret)
        plain |= found
        fragments |= parts
    groups = [f"(?P<b64>{_trie(fragments)})"] if fragments else []
    groups.append(f"(?:{_trie(plain)})")
    lowered = tuple({form.lower() for form in plain | fragments})
    return re.compile("|".join(groups), re.IGNORECASE), lowered


def _trie(words: Iterable[str]) -> str:
    """One regular expression matching any of ``words`` (the longest first), as a trie:
    a position that starts no word is given up after one character, not after trying every
    word in turn."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word.lower():
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here
    return _branches(root)


def _branches(node: dict[str, Any]) -> str:
    alternatives = []
    for char, child in sorted(node.items()):
        if not char:
            continue
        chain = re.escape(char)
        while "" not in child and len(child) == 1:  # a run without a choice: no group
            ((char, child),) = child.items()
            chain += re.escape(char)
        alternatives.append(chain + _branches(child))
    if not alternatives:
        return ""
    body = alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"
    return f"(?:{body})?" if "" in node else body


def _remove_literals(text: str, literals: frozenset[str]) -> str:
    pattern, lowered = _searched(literals)
    if text.isascii():
        folded = text.lower()
        if not any(form in folded for form in lowered):
            return text
    fragments = "b64" in pattern.groupindex
    spans: list[tuple[int, int]] = []
    for match in pattern.finditer(text):
        start, end = match.span()
        if fragments and match.group("b64") is not None:
            while start > 0 and text[start - 1] in _BASE64_ALPHABET:
                start -= 1
            while end < len(text) and text[end] in _BASE64_ALPHABET:
                end += 1
            while end < len(text) and text[end] == "=":
                end += 1
        while spans and start <= spans[-1][1]:
            earlier = spans.pop()
            start, end = min(start, earlier[0]), max(end, earlier[1])
        spans.append((start, end))
    if not spans:
        return text
    pieces, last = [], 0
    for start, end in spans:
        pieces += [text[last:start], REDACTED]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)
