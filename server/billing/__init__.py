"""Asset management: what a request may cost before it runs and what it did cost after."""
