"""Keeping an API key out of everything posttrain writes or prints.

The key lives only in an environment variable and in the Authorization header. Three ways it used
to leak, each closed here:
- a key pasted where the variable's NAME belongs (`--api-key-env sk-...`) was echoed back in the
  "not set" error: a value that does not look like a variable name is never repeated;
- a server that echoes the key in an error body had it copied into failure messages and so into
  job manifests: every message built from a server's answer goes through `Redactor.redact`;
- a key inside the base URL (`https://user:KEY@host/v1`, `?api_key=KEY`) was stored in manifests
  and printed in errors: such a URL is refused, without repeating it.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, urlsplit

from posttrain.errors import UserError

# A conventional environment variable name (OPENAI_API_KEY): only such a value is safe to repeat.
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")
# Query parameters that carry credentials in the APIs people paste URLs from.
_SECRET_PARAM = re.compile(r"key|token|secret|passw|auth|signature|sig$|credential", re.IGNORECASE)
MASK = "***"


def read_api_key(api_key_env: str | None) -> str:
    """The key held by the variable named `api_key_env` ('' without one); a UserError naming the
    variable only when the given text looks like a variable name rather than a key."""
    if not api_key_env:
        return ""
    key = os.environ.get(api_key_env, "") if _looks_like_name(api_key_env) else ""
    if key:
        return key
    if _ENV_NAME.match(api_key_env):
        raise UserError(f"api_key_env names ${api_key_env}, which is not set")
    raise UserError(
        "api_key_env must be the NAME of an environment variable holding the key (e.g. "
        "OPENAI_API_KEY), and the value given is not set as one; it is not repeated here "
        "because it may be the key itself"
    )


def _looks_like_name(text: str) -> bool:
    return bool(re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", text))


def check_base_url(url: str) -> str:
    """`url` when it is an http(s) URL without credentials; a UserError that does not repeat it
    otherwise (credentials in a URL end up in manifests, logs and shell history)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UserError("the server URL is not a valid URL (expected http(s)://HOST[:PORT]/v1)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"the server URL must start with http:// or https:// and name a host, got scheme {parts.scheme or 'none'!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise UserError(
            "the server URL (--base-url, or a judge's model=) holds credentials (user:password@): "
            "they would be stored in the manifest; put the key in an environment variable and "
            "pass --api-key-env NAME"
        )
    secret = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True) if _SECRET_PARAM.search(name)]
    if secret:
        raise UserError(
            f"the server URL (--base-url, or a judge's model=) carries a credential in its query "
            f"({', '.join(sorted(set(secret)))}=...): it would be stored in the manifest; pass the "
            "key through --api-key-env NAME"
        )
    return url


class Redactor:
    """Replaces the key's value in any text before it is raised, logged or written."""

    def __init__(self, key: str):
        self.key = key

    def redact(self, text: str) -> str:
        return text.replace(self.key, MASK) if self.key else text
