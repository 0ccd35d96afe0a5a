"""The monitors API over the whole running stack: create, read, list, events, remove."""

from __future__ import annotations

from tests.integration.pipeline.plans import conservative_long, fast_long

MONITOR_KEYS = {
    "id",
    "account",
    "symbol",
    "side",
    "phase",
    "tier",
    "live",
    "orders",
    "tp_hits",
    "breakeven",
    "closed_reason",
    "plan",
    "stop_price",
    "breakeven_price",
    "position_size",
    "avg_entry",
    "take_profits",
    "stop",
    "next_check",
}


def open_links(stack, account="main"):
    return {
        o["orderLinkId"]
        for o in stack.exchange_orders(account)
        if o["orderStatus"] in ("New", "PartiallyFilled", "Untriggered")
    }


def test_create_answers_201_with_the_pinned_shape(dash):
    dash.stack.prices(BTCUSDT="60500")
    r = dash.client.post("/api/monitors", json=conservative_long())
    assert r.status_code == 201, r.text
    m = r.json()
    assert m.keys() >= MONITOR_KEYS
    assert m["phase"] == "building" and m["tier"] in ("critical", "active", "standard")
    assert m["live"] is True and m["closed_reason"] is None and m["tp_hits"] == []
    assert m["breakeven"] == "none" and m["stop"]["at_breakeven"] is False
    assert [o["role"] for o in m["orders"]] == ["E", "E", "E"]
    assert {o["link_id"] for o in m["orders"]} <= open_links(dash.stack)  # placed for real
    assert [tp["status"] for tp in m["take_profits"]] == ["pending"] * 4
    assert m["next_check"]["tier"] == m["tier"] and isinstance(m["next_check"]["at"], float)

    got = dash.client.get(f"/api/monitors/{m['id']}").json()
    assert got["id"] == m["id"] and got.keys() >= MONITOR_KEYS
    listed = dash.client.get("/api/monitors").json()["monitors"]
    assert [x["id"] for x in listed] == [m["id"]]


def test_lifecycle_seen_through_the_api(dash):
    stack = dash.stack
    stack.prices(SOLUSDT="150")
    m = dash.client.post("/api/monitors", json=fast_long()).json()
    stack.wait(
        lambda: dash.client.get(f"/api/monitors/{m['id']}").json()["phase"] == "monitoring",
        what="market entry filled",
    )
    stack.prices(SOLUSDT="160.5")
    stack.wait(
        lambda: dash.client.get(f"/api/monitors/{m['id']}").json()["live"] is False,
        what="closed and read from the database",
    )
    closed = dash.client.get(f"/api/monitors/{m['id']}").json()
    assert closed["phase"] == "closed" and closed["closed_reason"] == "tp_complete"
    assert closed["tp_hits"] == [1] and closed["next_check"] is None
    assert [t["status"] for t in closed["take_profits"]] == ["hit"]

    events = dash.client.get(f"/api/monitors/{m['id']}/events").json()["events"]
    kinds = [e["kind"] for e in events]
    assert {"monitor_created", "tp_hit", "position_closed"} <= set(kinds)
    assert all({"id", "kind", "critical", "at", "payload"} <= e.keys() for e in events)
    ats = [e["at"] for e in events]
    assert ats == sorted(ats, reverse=True)  # newest first
    assert next(e for e in events if e["kind"] == "tp_hit")["critical"] is True

    assert [x["id"] for x in dash.client.get("/api/monitors?status=closed").json()["monitors"]] == [m["id"]]
    assert dash.client.get("/api/monitors?status=open").json()["monitors"] == []
    r = dash.client.delete(f"/api/monitors/{m['id']}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "closed"


def test_delete_cancels_orders_by_default(dash):
    dash.stack.prices(BTCUSDT="60500")
    m = dash.client.post("/api/monitors", json=conservative_long()).json()
    links = {o["link_id"] for o in m["orders"]}
    r = dash.client.delete(f"/api/monitors/{m['id']}")
    assert r.status_code == 200, r.text
    gone = r.json()
    assert gone["phase"] == "closed" and gone["closed_reason"] == "manual"
    dash.stack.wait(lambda: not (links & open_links(dash.stack)), what="entries cancelled")
    r = dash.client.get(f"/api/monitors/{m['id']}")
    assert r.status_code == 200 and r.json()["phase"] == "closed"


def test_delete_can_leave_the_orders(dash):
    dash.stack.prices(BTCUSDT="60500")
    m = dash.client.post("/api/monitors", json=conservative_long()).json()
    links = {o["link_id"] for o in m["orders"]}
    r = dash.client.delete(f"/api/monitors/{m['id']}", params={"cancel_orders": "false"})
    assert r.status_code == 200
    assert links <= open_links(dash.stack)
    events = dash.client.get(f"/api/monitors/{m['id']}/events").json()["events"]
    removed = next(e for e in events if e["kind"] == "monitor_removed")
    assert removed["payload"]["cancel_orders"] is False


def test_idempotency_key_gives_the_same_monitor(dash):
    dash.stack.prices(BTCUSDT="60500")
    headers = {"Idempotency-Key": "order-ticket-17"}
    a = dash.client.post("/api/monitors", json=conservative_long(), headers=headers)
    b = dash.client.post("/api/monitors", json=conservative_long(), headers=headers)
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] == b.json()["id"]
    assert len(dash.client.get("/api/monitors").json()["monitors"]) == 1
    assert len(open_links(dash.stack)) == 3  # placed once


def test_unknown_monitor_is_404_everywhere(dash):
    for method, path in (
        ("GET", "/api/monitors/zzzzzzzzzz"),
        ("GET", "/api/monitors/zzzzzzzzzz/events"),
        ("DELETE", "/api/monitors/zzzzzzzzzz"),
        ("GET", "/api/monitors/..%2F..%2Fetc"),
        ("GET", "/api/monitors/" + "x" * 150),
    ):
        r = dash.client.request(method, path)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"


def test_a_second_monitor_on_the_same_position_is_refused(dash):
    dash.stack.prices(BTCUSDT="60500")
    assert dash.client.post("/api/monitors", json=conservative_long()).status_code == 201
    r = dash.client.post("/api/monitors", json=conservative_long())
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "symbol" and "already guarded" in r.json()["error"]["message"]


def test_list_filters_and_paging(dash):
    dash.stack.prices(BTCUSDT="60500", SOLUSDT="150")
    a = dash.client.post("/api/monitors", json=conservative_long()).json()
    b = dash.client.post("/api/monitors", json=fast_long()).json()
    # live monitors are listed by tier, then soonest due: every check moves a due time, so the
    # order holds still only once nothing checks any more (no dispatcher, no stream process)
    dash.stack.quiesce()
    ids = [m["id"] for m in dash.client.get("/api/monitors").json()["monitors"]]
    assert set(ids) == {a["id"], b["id"]}
    page = dash.client.get("/api/monitors", params={"limit": 1, "offset": 1}).json()["monitors"]
    assert [m["id"] for m in page] == ids[1:]
    assert dash.client.get("/api/monitors", params={"account": "mirror1"}).json()["monitors"] == []
    assert dash.client.get("/api/monitors", params={"account": "nobody"}).json()["monitors"] == []
