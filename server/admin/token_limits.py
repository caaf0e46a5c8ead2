"""A token's rate limits and address rules as the Admin API takes them (numbers, a list
of CIDRs, and `no_rpm`/`no_tpm`/`no_max_concurrency`/`any_ip` to remove one), checked
by the CLI's own rules (server/token_rules.py), so both refuse the same input with the
same line, naming the field instead of the flag."""
from __future__ import annotations

from server import token_rules
from server.admin.errors import AdminError

LIMITS = ("rpm", "tpm", "max_concurrency")
# what removes each setting in an update, as the CLI's `none` does
CLEARS = {"rpm": "no_rpm", "tpm": "no_tpm", "max_concurrency": "no_max_concurrency", "allow_ip": "any_ip"}


def given(body: dict, clearable: bool) -> dict:
    """The limits a request sets (checked) or, with `clearable`, removes (None); a limit
    it does not name is left out (TokenChanges.limits, tokens.create's `limits`)."""
    changes: dict = {}
    for name in (*LIMITS, "allow_ip"):
        clear = clearable and bool(body.get(CLEARS[name]))
        if clear and name in body:
            raise AdminError(f"give either {name} or {CLEARS[name]}, not both")
        if clear:
            changes[name] = None
        elif name == "allow_ip" and name in body:
            # each item checked alone, so an empty one is refused, not skipped
            changes[name] = tuple(dict.fromkeys(network for item in body[name]
                                                for network in token_rules.parse_allow_ip(item, what=name)))
        elif name in body:
            # str(): the number goes through the CLI's rule (1..MAX_LIMIT, digits only)
            changes[name] = token_rules.parse_limit(str(body[name]), name)
    return changes
