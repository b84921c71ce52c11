"""HTTP and HTTPS listeners (issue #16): mail-client autoconfiguration, health checks,
and the endpoints other parts mount (MTA-STS policy, metrics). See docs/http.md."""
