"""The operations panel says when the registry was lost and rebuilt from the database."""

from __future__ import annotations

from tests.integration.pipeline.plans import conservative_long


def test_the_operations_panel_shows_a_rebuilt_registry(dash, redis_client):
    stack = dash.stack
    stack.prices(BTCUSDT="60500")
    m = stack.create(conservative_long())
    stack.flush()
    page = dash.client.get("/ui/ops").text
    assert "Registry" in page and "since" in page and "rebuilt" not in page
    redis_client.flushdb()  # Redis lost everything: the dispatcher rebuilds without an operator
    stack.wait(lambda: stack.monitor(m.id) is not None, timeout=10, what="the registry rebuilt")
    stack.wait(
        lambda: "rebuilt from the database at" in dash.client.get("/ui/ops").text,
        timeout=15,
        what="the rebuild on the operations panel",
    )
    assert "1 monitors restored" in dash.client.get("/ui/ops").text
    figures = dash.client.get("/api/stats").json()
    assert figures["registry"]["restored"] == 1 and figures["registry"]["rebuilt_at"] is not None
