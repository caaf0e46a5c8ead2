"""The relay core's shared machinery: the one attempt loop, channel health, and the
resilience settings they follow. Knows neither HTTP nor protobuf."""
