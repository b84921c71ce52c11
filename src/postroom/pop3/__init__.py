"""POP3 (RFC 1939 with RFC 2449, 2595, 5034, 6856) on the shared store's INBOX."""
