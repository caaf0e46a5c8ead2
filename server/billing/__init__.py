"""Money, prices and what a request costs. Pure code: no I/O, no transport."""
