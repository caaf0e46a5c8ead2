"""How st-ai rides out failing upstreams: the gateway-wide defaults that `st-ai serve`
takes (--max-attempts, --timeout-*, --cooldown-*, --shutdown-grace). A channel's own
timeouts (`st-ai channel add|update --timeout-*`) override the defaults."""
from __future__ import annotations

from dataclasses import dataclass, field

from server.store.channels import Channel, Timeouts

DEFAULT_TIMEOUTS = Timeouts(connect=10.0, first_byte=300.0, idle=120.0, total=600.0)


@dataclass(frozen=True)
class Resilience:
    timeouts: Timeouts = field(default_factory=lambda: DEFAULT_TIMEOUTS)
    max_attempts: int = 3  # upstream calls one client request may make, over all its channels
    backoff: float = 0.05  # base of the jittered pause before an attempt on another channel
    backoff_max: float = 1.0
    cooldown_failures: int = 3  # consecutive failures that put a channel in cooldown
    cooldown_base: float = 5.0  # its first cooldown; each next one doubles ...
    cooldown_max: float = 300.0  # ... up to this
    shutdown_grace: float = 30.0  # how long in-flight requests may finish after SIGTERM
    probe_interval: float = 60.0  # how often channels st-ai disabled (a rejected key) are tested again

    def timeouts_for(self, channel: Channel) -> Timeouts:
        return channel.timeouts.filled(self.timeouts)
