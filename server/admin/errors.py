"""How an admin operation refuses: one line the CLI prints as is and the Admin API
answers as a 400, 404 or 409 OpenAI-style error."""
from __future__ import annotations

from server.errors import GatewayError


class AdminError(ValueError):
    """Input the operation cannot take (400)."""
    status = 400
    code = "invalid_value"

    def to_gateway(self) -> GatewayError:
        return GatewayError(self.status, str(self), self.code, type="invalid_request_error")


class NotFound(AdminError):
    """The token, channel, price or video named does not exist (404)."""
    status = 404
    code = "not_found"


class Conflict(AdminError):
    """A token or channel of that name already exists (409)."""
    status = 409
    code = "already_exists"


def refusal(error: ValueError) -> GatewayError:
    """An operation's refusal as the API answers it: a store's or a rule's one line
    (TokenError, ChannelError, PriceError, MoneyError) is a 400."""
    return (error if isinstance(error, AdminError) else AdminError(str(error))).to_gateway()
