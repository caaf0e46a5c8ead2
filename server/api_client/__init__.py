"""The pooled HTTP/1.1 client of model API calls (server/api_client/client.py says why)."""
from server.api_client.client import ApiClient
from server.api_client.connection import Answer

__all__ = ["ApiClient", "Answer"]
