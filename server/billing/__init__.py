"""Asset management: money, prices, what a request may cost before it runs (worst-case
tokens) and what it did cost after. Pure code: no I/O, no transport."""
