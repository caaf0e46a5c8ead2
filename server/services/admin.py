"""st_ai.v1.Admin over gRPC: the admin key checked on every call, then the shared
operations of server/admin/ run on the database thread. Changes reload the catalog at
once, not at its next look for changes (server/catalog.py), so the next call sees them."""
from __future__ import annotations

import functools
from typing import Any, Callable

import grpc

from server import call_record
from server.admin import api, audit, channel_test, channels, usage
from server.admin import videos as video_admin
from server.admin.errors import AdminError, refusal
from server.admin.keys import AdminAuth
from server.billing.money import MoneyError
from server.billing.prices import PriceError
from server.codec import codec_for
from server.services.status import bearer, rpc_errors
from server.store.channels import ChannelError
from server.store.tokens import TokenError
from server.store.usage_report import UsageQueryError
from st_ai.v1 import admin_pb2, admin_pb2_grpc, videos_pb2

REFUSALS = (AdminError, TokenError, ChannelError, PriceError, MoneyError, UsageQueryError)


def _answer(cls, data: dict):
    if "data" in data and not data["data"]:  # clients expect "data": [], which a repeated field cannot say
        message = codec_for(cls).to_message({k: v for k, v in data.items() if k != "data"})
        message.extra_json = '{"data":[]}'
        return message
    return codec_for(cls).to_message(data)


def admin_rpc(method: Callable) -> Callable:
    """Check the admin key, then run the method with who is calling (for the audit)."""
    @rpc_errors
    @functools.wraps(method)
    async def call(self: "AdminService", request: Any, context: grpc.aio.ServicerContext):
        key = await self._worker.run(self._auth.check, bearer(context))
        call_record.note_token("(admin)")
        record = call_record.current()
        actor = audit.Actor(key.actor, record.request_id if record else None)
        try:
            return await method(self, codec_for(type(request)).to_dict(request), actor)
        except REFUSALS as error:
            raise refusal(error) from None
    return call


class AdminService(admin_pb2_grpc.AdminServicer):
    def __init__(self, core, auth: AdminAuth) -> None:
        self._worker, self._catalog, self._videos = core.worker, core.catalog, core.videos
        self._registry = core.videos.registry
        self._health = core.health
        self._auth = auth

    async def _read(self, fn: Callable, *args: Any) -> Any:
        return await self._worker.run(fn, *args)

    async def _change(self, fn: Callable, *args: Any) -> Any:
        try:
            return await self._worker.run(fn, *args)
        finally:
            await self._catalog.load()  # a refused change may still have raced another's: reload anyway

    # -- tokens
    @admin_rpc
    async def ListTokens(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.TokenList, await self._read(api.list_tokens, body))

    @admin_rpc
    async def CreateToken(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.TokenWithKey, await self._change(api.create_token, actor, body))

    @admin_rpc
    async def GetToken(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.TokenInfo, await self._read(api.get_token, body))

    @admin_rpc
    async def UpdateToken(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.TokenInfo, await self._change(api.update_token, actor, body))

    @admin_rpc
    async def DisableToken(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.TokenInfo, await self._change(api.disable_token, actor, body))

    @admin_rpc
    async def EnableToken(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.TokenInfo, await self._change(api.enable_token, actor, body))

    @admin_rpc
    async def DeleteToken(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.Deleted, await self._change(api.delete_token, actor, body))

    @admin_rpc
    async def RotateTokenKey(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.TokenWithKey, await self._change(api.rotate_token_key, actor, body))

    @admin_rpc
    async def AddTokenQuota(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.TokenInfo, await self._change(api.add_token_quota, actor, body))

    # -- channels
    @admin_rpc
    async def ListChannels(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.ChannelList, await self._read(api.list_channels, body, self._registry.specs))

    @admin_rpc
    async def CreateChannel(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.ChannelInfo,
                       await self._change(api.create_channel, actor, body, self._registry.specs))

    @admin_rpc
    async def GetChannel(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.ChannelInfo, await self._read(api.get_channel, body, self._registry.specs))

    @admin_rpc
    async def UpdateChannel(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.ChannelInfo,
                       await self._change(api.update_channel, actor, body, self._registry.specs))

    @admin_rpc
    async def DisableChannel(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.ChannelInfo,
                       await self._change(api.disable_channel, actor, body, self._registry.specs))

    @admin_rpc
    async def EnableChannel(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.ChannelInfo,
                       await self._change(api.enable_channel, actor, body, self._registry.specs))

    @admin_rpc
    async def DeleteChannel(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.Deleted, await self._change(api.delete_channel, actor, body, self._registry.specs))

    @admin_rpc
    async def TestChannel(self, body: dict, actor: audit.Actor):
        channel = await self._read(channels.get, body.get("name", ""))
        result = await channel_test.run(self._registry, channel, body.get("model"))
        result = await self._change(channel_test.record, actor, channel, result)
        if result.ok and self._health is not None:
            self._health.forget(channel.id)
        return _answer(admin_pb2.ChannelTestResult, result.view())

    # -- prices
    @admin_rpc
    async def ListPrices(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.PriceList, await self._read(api.list_prices, body))

    @admin_rpc
    async def SetPrice(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.PriceInfo, await self._change(api.set_price, actor, body))

    @admin_rpc
    async def DeletePrice(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.Deleted, await self._change(api.delete_price, actor, body))

    # -- video tasks
    @admin_rpc
    async def ListVideoTasks(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.VideoTaskList, await self._read(video_admin.list_tasks, body))

    @admin_rpc
    async def GetVideoTask(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.VideoTask, await self._read(video_admin.get_task, body))

    @admin_rpc
    async def DeleteVideoTask(self, body: dict, actor: audit.Actor):
        deleted = await video_admin.delete_task(self._worker, self._videos, actor, body)
        return videos_pb2.DeletedVideo(**deleted)

    # -- audit
    @admin_rpc
    async def ListAuditEvents(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.AuditEventList, await self._read(api.list_audit_events, body))

    # -- usage
    @admin_rpc
    async def GetUsage(self, body: dict, actor: audit.Actor):
        return _answer(admin_pb2.UsageReport, await self._read(usage.report, body))
