"""The REST bridge: transcodes the documented /v1 JSON and SSE endpoints onto st-ai's
gRPC services, grpc-gateway style (routes come from google.api.http annotations)."""
