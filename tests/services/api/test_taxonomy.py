"""GET /v1/taxonomy and the sector suggester."""

from __future__ import annotations

from shared.models import Role


def test_taxonomy_lists_sectors_and_vocabularies_with_labels(client, key_for):
    body = client.get("/v1/taxonomy", headers=key_for(Role.ENTERPRISE, "e")).json()
    assert len(body["sectors"]) >= 30
    assert {"stage", "chain_action", "chain_position", "element_type", "transfer_mode"} <= set(body)
    fill = next(entry for entry in body["chain_action"] if entry["code"] == "fill")
    assert (fill["zh"], fill["zh_hant"]) == ("补链", "補鏈")


def test_suggest_maps_free_text_in_any_script(client, key_for):
    headers = key_for(Role.ENTERPRISE, "e")
    codes = [
        s["code"] for s in client.get("/v1/taxonomy/suggest", params={"text": "石墨負極材料"}, headers=headers).json()
    ]
    assert "new_materials" in codes
    assert client.get("/v1/taxonomy").status_code == 401
