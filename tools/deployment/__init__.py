"""Stage 9's deployment: several daphne workers behind nginx over TLS, for `make step9` and the
tests alike (the nginx configuration comes from the stage's own template)."""
