"""The paper exchange: a local exchange that speaks the Bybit v5 REST API (linear USDT perpetuals).

- `engine`   matching, positions, fees, conditional orders (pure; injected clock)
- `server`   the ASGI app: /v5/… (signed like Bybit, rate-limited) and the admin API /paper/…
- `runner`   PaperServer (in-process, background thread), serve_forever, PaperAdmin (client)

Run one: `tpsl paper serve --port 8080 --account KEY:SECRET[:BALANCE]`. Its benchmarks are development
tooling (devtools/bench/: `tpsl paper bench`, `tpsl paper stream-bench`).
"""
