"""st_ai.v1.Messages over gRPC: Anthropic's Messages API, relayed by the chat relay
(server/apis/messages/exchange.py says how), and its token counting."""
from __future__ import annotations

import grpc

from server.apis.messages import count, exchange as exchanges
from server.apis.messages.request import chat_messages, check_envelope
from server.billing.admission import Admission
from server.catalog import Catalog
from server.codec import codec_for
from server.core.token_count import CountRequest, TokenCounting
from server.errors import GatewayError
from server.relay import ChatRelay
from server.services.answers import batch_items, encoder
from server.services.status import rpc_errors
from server.store.tokens import Token
from st_ai.v1 import messages_pb2, messages_pb2_grpc

REQUEST = codec_for(messages_pb2.CreateMessageRequest, strict=True)
MESSAGE = codec_for(messages_pb2.AssistantMessage)
EVENT = codec_for(messages_pb2.MessageStreamEvent)
COUNT = codec_for(messages_pb2.MessageTokenCount)


class MessagesService(messages_pb2_grpc.MessagesServicer):
    def __init__(self, catalog: Catalog, relay: ChatRelay, counting: TokenCounting) -> None:
        self._catalog, self._relay, self._counting = catalog, relay, counting

    @rpc_errors
    async def CreateMessage(self, request: messages_pb2.CreateMessageRequest,
                            context: grpc.aio.ServicerContext) -> messages_pb2.AssistantMessage:
        token = await self._catalog.authenticate(api_key(context), check_address=False)
        exchange = await _exchange(self._relay.admission, token, REQUEST.to_dict(request), stream=False)
        answer = await self._relay.complete_exchange(token, exchange, context.time_remaining())
        return encoder(context, MESSAGE)(answer)

    @rpc_errors
    async def StreamMessage(self, request: messages_pb2.CreateMessageRequest, context: grpc.aio.ServicerContext):
        token = await self._catalog.authenticate(api_key(context), check_address=False)
        exchange = await _exchange(self._relay.admission, token, REQUEST.to_dict(request), stream=True)
        batches = self._relay.stream_exchange(token, exchange, context.time_remaining())
        items = batch_items(context, EVENT)
        try:
            async for batch in batches:
                for item in items(batch):
                    yield item
        finally:
            # A cancelled RPC lands here: closing the relay closes the upstream request.
            await batches.aclose()

    @rpc_errors
    async def CountTokens(self, request: messages_pb2.CreateMessageRequest,
                          context: grpc.aio.ServicerContext) -> messages_pb2.MessageTokenCount:
        token = await self._catalog.authenticate(api_key(context))
        body = check_envelope(REQUEST.to_dict(request), max_tokens=False)
        counted = await self._counting.count(token, CountRequest(
            api=exchanges.API, model=body["model"], body=body, chat=lambda: chat_messages(body),
            local=lambda upstream_model: count.count_tokens(body, upstream_model)["input_tokens"]),
            context.time_remaining())
        return encoder(context, COUNT)({"input_tokens": counted})


async def _exchange(admission: Admission, token: Token, body: dict, stream: bool) -> exchanges.MessagesExchange:
    """The request's exchange; a body no channel could take is refused, and booked like
    every request refused before it was admitted."""
    try:
        return exchanges.exchange(body)
    except GatewayError as error:
        await admission.refuse(token, "chat", body.get("model"), error, stream=stream, api=exchanges.API)


def api_key(context: grpc.aio.ServicerContext) -> str | None:
    """`authorization: Bearer <key>`, or Anthropic's `x-api-key: <key>` when there is none."""
    metadata = dict(context.invocation_metadata() or ())
    if "authorization" in metadata:
        return metadata["authorization"]
    key = metadata.get("x-api-key")
    return f"Bearer {key}" if key else None
