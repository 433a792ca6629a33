"""GET /v1/taxonomy: sectors and controlled vocabularies with bilingual labels, and a
suggester that maps free text to sector codes (users never have to type codes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.api.deps import CallerDep
from shared.taxonomy import load_taxonomy
from shared.vocab import vocabularies

router = APIRouter(prefix="/v1/taxonomy", tags=["taxonomy"])


@router.get("", summary="Sector taxonomy and vocabularies (codes with zh / zh_hant / en labels)")
def get_taxonomy(_caller: CallerDep) -> dict[str, Any]:
    sectors = [
        {"code": s.code, "group": s.group, "zh": s.zh, "zh_hant": s.zh_hant, "en": s.en, "synonyms": list(s.synonyms)}
        for s in load_taxonomy().sectors.values()
    ]
    return {"sectors": sectors, **vocabularies()}


@router.get("/suggest", summary="Sector codes named in a text (any language)")
def suggest_sectors(
    _caller: CallerDep, text: Annotated[str, Query(min_length=1, max_length=8000)]
) -> list[dict[str, str]]:
    taxonomy = load_taxonomy()
    codes = taxonomy.codes_for([text]) + taxonomy.codes_in_text(text)
    return [
        {"code": code, "zh": taxonomy.sectors[code].zh, "en": taxonomy.sectors[code].en}
        for code in dict.fromkeys(codes)
    ]
