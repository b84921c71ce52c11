"""Mail for remote recipients: the queue, delivery to MX hosts, retries and DSNs."""
