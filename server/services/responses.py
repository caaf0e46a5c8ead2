"""st_ai.v1.Responses over gRPC: OpenAI's Responses API on every chat channel.

A create reads the request, rebuilds the conversation `previous_response_id` continues
from this token's stored responses, relays one exchange (server/apis/responses/exchange.py)
and, unless `store` is false, stores the response before the client has its end: the
whole answer, or a stream's final response (completed, incomplete or failed). A stream
whose client left before its end is not stored."""
from __future__ import annotations

import asyncio
import time

import grpc

from server.apis.responses import history
from server.apis.responses.exchange import API, TERMINAL, ResponsesExchange
from server.apis.responses.request import ResponsesRequest, read_request
from server.catalog import Catalog
from server.codec import codec_for
from server.errors import GatewayError, invalid_request
from server.relay import ChatRelay
from server.services.answers import batch_items, encoder
from server.services.status import bearer, rpc_errors
from server.store import responses as store
from server.store.db import DbWorker
from server.store.tokens import Token
from st_ai.v1 import responses_pb2, responses_pb2_grpc

REQUEST = codec_for(responses_pb2.CreateResponseRequest, strict=True)
RESPONSE = codec_for(responses_pb2.Response)
EVENT = codec_for(responses_pb2.ResponseStreamEvent)
ITEMS = codec_for(responses_pb2.InputItemList)


class ResponsesService(responses_pb2_grpc.ResponsesServicer):
    def __init__(self, catalog: Catalog, relay: ChatRelay, worker: DbWorker,
                 retention: float | None = store.DEFAULT_RETENTION) -> None:
        self._catalog, self._relay, self._worker, self._retention = catalog, relay, worker, retention

    @rpc_errors
    async def CreateResponse(self, request: responses_pb2.CreateResponseRequest,
                             context: grpc.aio.ServicerContext) -> responses_pb2.Response:
        token = await self._catalog.authenticate(bearer(context), check_address=False)
        exchange = await self._exchange(token, REQUEST.to_dict(request), stream=False)
        answer = await self._relay.complete_exchange(token, exchange, context.time_remaining())
        await self._keep(token, exchange.request, answer)
        return encoder(context, RESPONSE)(answer)

    @rpc_errors
    async def StreamResponse(self, request: responses_pb2.CreateResponseRequest,
                             context: grpc.aio.ServicerContext):
        token = await self._catalog.authenticate(bearer(context), check_address=False)
        exchange = await self._exchange(token, REQUEST.to_dict(request), stream=True)
        batches = self._relay.stream_exchange(token, exchange, context.time_remaining())
        items = batch_items(context, EVENT)
        try:
            async for batch in batches:
                for event in batch:
                    if event.get("type") in TERMINAL and isinstance(event.get("response"), dict):
                        # stored before the client sees the end, so a retrieve right after finds it
                        await self._keep(token, exchange.request, event["response"])
                for item in items(batch):
                    yield item
        finally:
            # A cancelled RPC lands here: closing the relay closes the upstream request.
            await batches.aclose()

    @rpc_errors
    async def GetResponse(self, request: responses_pb2.GetResponseRequest,
                          context: grpc.aio.ServicerContext) -> responses_pb2.Response:
        token = await self._catalog.authenticate(bearer(context))
        stored = await self._stored(store.get, token.id, request.response_id)
        return encoder(context, RESPONSE)(stored.output)

    @rpc_errors
    async def DeleteResponse(self, request: responses_pb2.DeleteResponseRequest,
                             context: grpc.aio.ServicerContext) -> responses_pb2.DeletedResponse:
        token = await self._catalog.authenticate(bearer(context))
        await self._stored(store.delete, token.id, request.response_id)
        return responses_pb2.DeletedResponse(id=request.response_id, object="response", deleted=True)

    @rpc_errors
    async def ListInputItems(self, request: responses_pb2.ListInputItemsRequest,
                             context: grpc.aio.ServicerContext) -> responses_pb2.InputItemList:
        token = await self._catalog.authenticate(bearer(context))
        # an explicit 0 is a 400, not the default
        limit = request.limit if request.HasField("limit") else store.LIST_LIMIT_DEFAULT
        page = await self._stored(store.input_items, token.id, request.response_id,
                                  after=request.after if request.HasField("after") else None, limit=limit,
                                  order=request.order or "desc")
        return encoder(context, ITEMS)(page.as_dict())

    async def _exchange(self, token: Token, body: dict, stream: bool) -> ResponsesExchange:
        """The request's exchange; a body that cannot be read, or a conversation that cannot be
        continued, is refused and booked like every request refused before it was admitted."""
        try:
            request = read_request(body)
            earlier: list[dict] = []
            if request.previous_response_id is not None:
                earlier = await self._stored(store.conversation, token.id, request.previous_response_id)
        except GatewayError as error:
            await self._relay.admission.refuse(token, "chat", body.get("model"), error, stream=stream,
                                               api=API)
        return ResponsesExchange(request, body, earlier, store.new_id(), int(time.time()), stream)

    async def _keep(self, token: Token, request: ResponsesRequest, response: dict) -> None:
        if request.store:
            # shielded: a client leaving now must not lose what it was answered
            await asyncio.shield(self._worker.run(store.create, token.id, response,
                                                  history.as_listed(request.input_items), retention=self._retention))

    async def _stored(self, read, *args, **kwargs):
        """A store call for this token, its refusals as the client's errors."""
        try:
            return await self._worker.run(read, *args, **kwargs)
        except store.ResponseNotFound as missing:
            raise not_found(missing) from None
        except store.ResponseQueryError as wrong:
            raise invalid_request(str(wrong), wrong.param) from None


def not_found(missing: store.ResponseNotFound) -> GatewayError:
    """OpenAI's 404 for a response this token cannot see (never made, another token's,
    deleted, expired or not stored)."""
    if missing.param == "previous_response_id":
        return GatewayError(404, f"Previous response with id '{missing.response_id[:80]}' not found.",
                            "previous_response_not_found", "previous_response_id")
    return GatewayError(404, str(missing), None, None)
