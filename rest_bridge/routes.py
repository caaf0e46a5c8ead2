"""Routes read from the services' `google.api.http` annotations at start."""
from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from types import ModuleType

from google.api import annotations_pb2, http_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

import st_ai.v1

_VARIABLE = re.compile(r"\{([^}]*)\}")
_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class Binding:
    """One RPC bound to an HTTP verb and path."""
    rpc_path: str                  # /st_ai.v1.Chat/CreateChatCompletion
    request_class: type[Message]
    response_class: type[Message]
    server_streaming: bool
    body: str                      # "*", "" (no body) or a request field name
    path_fields: tuple[str, ...]   # request fields filled from the path


@dataclass(frozen=True)
class Route:
    method: str          # GET, POST, ...
    path: str            # aiohttp path, e.g. /v1/models/{model}
    bindings: tuple[Binding, ...]


def proto_modules(package: ModuleType = st_ai.v1) -> list[ModuleType]:
    return [importlib.import_module(f"{package.__name__}.{info.name}")
            for info in pkgutil.iter_modules(package.__path__) if info.name.endswith("_pb2")]


def services(modules: list[ModuleType]) -> list[ServiceDescriptor]:
    return [svc for module in modules for svc in module.DESCRIPTOR.services_by_name.values()]


def _rules(rule: http_pb2.HttpRule) -> list[http_pb2.HttpRule]:
    return [rule, *rule.additional_bindings]


def _binding(method: MethodDescriptor, rule: http_pb2.HttpRule) -> tuple[str, str, Binding]:
    verb = rule.WhichOneof("pattern")
    if verb == "custom":
        verb, template = rule.custom.kind.lower(), rule.custom.path
    elif verb in _VERBS:
        template = getattr(rule, verb)
    else:
        raise ValueError(f"{method.full_name}: unsupported http rule {verb!r}")
    fields = tuple(_VARIABLE.findall(template))
    for name in fields:
        if name not in method.input_type.fields_by_name:
            raise ValueError(f"{method.full_name}: path variable {{{name}}} names no request field "
                             "(only {field} variables are supported)")
    binding = Binding(
        rpc_path=f"/{method.containing_service.full_name}/{method.name}",
        request_class=message_factory.GetMessageClass(method.input_type),
        response_class=message_factory.GetMessageClass(method.output_type),
        server_streaming=method.server_streaming, body=rule.body, path_fields=fields)
    return verb.upper(), template, binding


def discover(service_descriptors: list[ServiceDescriptor]) -> list[Route]:
    grouped: dict[tuple[str, str], list[Binding]] = {}
    for service in service_descriptors:
        for method in service.methods:
            options = method.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            for rule in _rules(options.Extensions[annotations_pb2.http]):
                verb, path, binding = _binding(method, rule)
                grouped.setdefault((verb, path), []).append(binding)
    routes = []
    for (verb, path), bindings in grouped.items():
        if len(bindings) > 1:
            # The one sharing we understand: a unary RPC and its streaming twin, picked
            # by the body's `stream` field (as OpenAI's endpoints do).
            kinds = sorted(b.server_streaming for b in bindings)
            if kinds != [False, True] or "stream" not in bindings[0].request_class.DESCRIPTOR.fields_by_name:
                raise ValueError(f"{verb} {path} is bound to several RPCs: "
                                 + ", ".join(b.rpc_path for b in bindings))
        routes.append(Route(verb, path, tuple(sorted(bindings, key=lambda b: b.server_streaming))))
    return routes
