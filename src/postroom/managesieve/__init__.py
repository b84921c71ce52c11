"""ManageSieve (RFC 5804): remote management of the Sieve scripts the store keeps per account."""
