"""The operator's operations on tokens, channels, prices and video tasks, one
implementation each, called by both the CLI and the Admin API; and the admin key and
audit log they answer to."""
