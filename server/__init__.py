"""st-ai: the gateway's gRPC services, relay core, providers and stores."""
