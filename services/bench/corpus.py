"""A large, deterministic corpus of demo-like entities for load benchmarks.

Texts are varied from `shared/demo/` (bilingual pitches, mandates and needs) in two levels:

* distinct variants: a demo item's sentences recombined (one dropped, two swapped, one or
  two borrowed from another item of the same kind and language), numbers rescaled, a new
  name and region. These are encoded with the real model.
* near copies of a distinct variant: another name, region and amount, same wording. Their
  vector is the variant's vector plus small Gaussian noise, renormalised, because encoding
  100k texts with MiniLM takes hours on two cores. The benchmark reports how many texts it
  really encoded.

Rows go straight into the database (status `matched`, with their `EntityVector`), as if the
pipeline had already processed them; no proposals are stored for them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from embeddings import Encoder
from services.api.intake import build_entity
from services.demo import demo_items
from shared.models import CREATE_MODELS, ENTITY_TABLES, Entity, EntityStatus, EntityVector, entity_text, new_id, utcnow

# An innovation-salon platform hears from many more enterprises than funds or regions.
KIND_SHARES = {"pitch": 0.70, "mandate": 0.15, "need": 0.15}
TEXT_FIELD = {"pitch": "summary", "mandate": "thesis", "need": "description"}
NOISE_SIGMA = 0.01  # per dimension; cosine to the parent vector stays ≈ 0.98
SENTENCE_SPLIT = re.compile(r"(?<=[。！？；!?])|(?<=\.)\s+(?=[A-Z0-9])")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
CJK = re.compile(r"[\u3400-\u9fff]")

CITIES = (
    ("哈尔滨", "黑龙江省哈尔滨市", "Harbin, Heilongjiang"),
    ("鹤岗", "黑龙江省鹤岗市", "Hegang, Heilongjiang"),
    ("成都", "四川省成都市", "Chengdu, Sichuan"),
    ("深圳", "广东省深圳市", "Shenzhen, Guangdong"),
    ("苏州", "江苏省苏州市", "Suzhou, Jiangsu"),
    ("合肥", "安徽省合肥市", "Hefei, Anhui"),
    ("武汉", "湖北省武汉市", "Wuhan, Hubei"),
    ("西安", "陕西省西安市", "Xi'an, Shaanxi"),
    ("杭州", "浙江省杭州市", "Hangzhou, Zhejiang"),
    ("长沙", "湖南省长沙市", "Changsha, Hunan"),
    ("青岛", "山东省青岛市", "Qingdao, Shandong"),
    ("南宁", "广西壮族自治区南宁市", "Nanning, Guangxi"),
    ("贵阳", "贵州省贵阳市", "Guiyang, Guizhou"),
    ("银川", "宁夏回族自治区银川市", "Yinchuan, Ningxia"),
    ("郑州", "河南省郑州市", "Zhengzhou, Henan"),
    ("厦门", "福建省厦门市", "Xiamen, Fujian"),
    ("北京", "北京市", "Beijing"),
    ("上海", "上海市", "Shanghai"),
)
NAME_CORES_ZH = ("华芯", "中科", "新源", "智航", "恒创", "瑞能", "启明", "鼎盛", "云帆", "睿达", "海纳", "博远")
NAME_CORES_EN = ("Aurora", "Keystone", "Meridian", "Northstar", "Evergreen", "Summit", "Pioneer", "Harbor")
SUFFIX_ZH = {"pitch": "科技有限公司", "mandate": "产业投资基金", "need": "产业发展促进中心"}
SUFFIX_EN = {"pitch": "Technologies Co., Ltd.", "mandate": "Capital Fund", "need": "Development Office"}


@dataclass(frozen=True)
class Template:
    kind: str
    item: dict[str, Any]
    chinese: bool
    sentences: tuple[str, ...]


def load_templates() -> dict[str, list[Template]]:
    templates: dict[str, list[Template]] = {}
    for kind in KIND_SHARES:
        for item in demo_items(kind):
            text = item[TEXT_FIELD[kind]]
            sentences = tuple(s.strip() for s in SENTENCE_SPLIT.split(text) if s.strip())
            templates.setdefault(kind, []).append(Template(kind, item, bool(CJK.search(text)), sentences))
    return templates


def _rescale_numbers(text: str, rng: random.Random) -> str:
    factor = rng.uniform(0.6, 1.6)

    def swap(match: re.Match[str]) -> str:
        raw = match.group()
        if "." in raw:
            return f"{float(raw) * factor:.{len(raw.split('.')[1])}f}"
        return str(max(1, round(int(raw) * factor))) if len(raw) < 5 else raw  # years and codes stay

    return NUMBER.sub(swap, text)


def _name(kind: str, chinese: bool, rng: random.Random) -> tuple[str, tuple[str, str, str]]:
    city = rng.choice(CITIES)
    if chinese:
        return f"{city[0]}{rng.choice(NAME_CORES_ZH)}{SUFFIX_ZH[kind]}", city
    return f"{city[2].split(',')[0]} {rng.choice(NAME_CORES_EN)} {SUFFIX_EN[kind]}", city


def variant_body(
    templates: dict[str, list[Template]], kind: str, number: int, rng: random.Random, *, mix: int = 1
) -> dict[str, Any]:
    """A distinct variant of the `number`-th demo item of `kind` (cycling), as an API body.

    `mix` sets how far it strays: `mix` sentences dropped, two swapped, `mix` to `mix + 1`
    sentences borrowed from other items of the same kind and language.
    """
    pool = templates[kind]
    base = pool[number % len(pool)]
    sentences = list(base.sentences)
    for _ in range(mix):
        if len(sentences) > 3:
            del sentences[rng.randrange(1, len(sentences) - 1)]
    if len(sentences) > 2:
        i, j = rng.sample(range(1, len(sentences)), 2)
        sentences[i], sentences[j] = sentences[j], sentences[i]
    donors = [t for t in pool if t is not base and t.chinese == base.chinese] or pool
    for _ in range(rng.choice((mix, mix + 1))):
        borrowed = rng.choice(rng.choice(donors).sentences)
        sentences.insert(rng.randrange(1, len(sentences) + 1), borrowed)
    joiner = "" if base.chinese else " "
    body = {k: v for k, v in base.item.items() if k not in ("ref", "owner")}
    body[TEXT_FIELD[kind]] = _rescale_numbers(joiner.join(sentences), rng)[:7900]
    return retarget(body, kind, base.chinese, rng)


def retarget(body: dict[str, Any], kind: str, chinese: bool, rng: random.Random) -> dict[str, Any]:
    """Another submitter, place and amount for the same wording (the small perturbation)."""
    body = dict(body)
    name, city = _name(kind, chinese, rng)
    region = city[1] if chinese else city[2]
    scale = rng.choice((0.5, 0.8, 1.0, 1.25, 2.0))
    if kind == "pitch":
        body["company"] = name
        body["region"] = region
        body["funding_ask"] = round(body["funding_ask"] * scale)
    elif kind == "mandate":
        body["fund_name"] = name
        body["ticket_min"] = round(body["ticket_min"] * scale)
        body["ticket_max"] = round(body["ticket_max"] * scale)
    else:
        body["issuer"] = name
        body["region"] = region
    return body


def variant_entity(kind: str, body: dict[str, Any], owner: str) -> Entity:
    return build_entity(kind, CREATE_MODELS[kind].model_validate(body), owner=owner)


def kind_counts(total: int) -> dict[str, int]:
    counts = {kind: int(total * share) for kind, share in KIND_SHARES.items()}
    counts["pitch"] += total - sum(counts.values())
    return counts


def kind_sequence(total: int, rng: random.Random) -> list[str]:
    """`total` kinds in the platform's proportions, shuffled."""
    kinds = [kind for kind, count in kind_counts(total).items() for _ in range(count)]
    rng.shuffle(kinds)
    return kinds


@dataclass
class SeedReport:
    entities: dict[str, int]
    distinct_texts: int
    encoded_texts: int
    seconds_encoding: float
    seconds_inserting: float


def seed_corpus(
    engine: Engine,
    encoder: Encoder,
    *,
    total: int,
    distinct: int,
    seed: int = 0,
    chunk: int = 2000,
    on_progress: Callable[[str], None] | None = None,
) -> SeedReport:
    """Insert `total` matched entities with vectors, `distinct` of them encoded for real."""
    import time

    rng = random.Random(seed)
    templates = load_templates()
    counts = kind_counts(total)
    parents: dict[str, list[tuple[dict[str, Any], bool]]] = {}
    texts: list[str] = []
    for kind, count in counts.items():
        wanted = max(1, min(count, round(distinct * KIND_SHARES[kind])))
        for number in range(wanted):
            body = variant_body(templates, kind, number, rng)
            chinese = templates[kind][number % len(templates[kind])].chinese
            parents.setdefault(kind, []).append((body, chinese))
            texts.append(entity_text(variant_entity(kind, body, owner="seed")))
    started = time.perf_counter()
    if on_progress:
        on_progress(f"encoding {len(texts)} distinct texts with {encoder.model_name}")
    vectors = encoder.encode(texts)
    seconds_encoding = time.perf_counter() - started
    started = time.perf_counter()
    offset = 0
    next_vector_id = 1
    noise = np.random.default_rng(seed)
    for kind, count in counts.items():
        kind_parents = parents[kind]
        parent_vectors = vectors[offset : offset + len(kind_parents)]
        offset += len(kind_parents)
        parent_rows = [_columns(variant_entity(kind, body, owner="seed")) for body, _ in kind_parents]
        for start in range(0, count, chunk):
            if on_progress:
                on_progress(f"inserting {kind}s {start}/{count}")
            rows, vector_rows = [], []
            for number in range(start, min(count, start + chunk)):
                which = number % len(kind_parents)
                body, chinese = kind_parents[which]
                row = _near_copy(kind, parent_rows[which], body, chinese, number, fresh=number == which, rng=rng)
                vector = parent_vectors[which]
                if number != which:
                    vector = vector + noise.normal(0, NOISE_SIGMA, encoder.dim)
                    vector = vector / np.linalg.norm(vector)
                rows.append(row)
                vector_rows.append(
                    {
                        "id": next_vector_id,
                        "entity_id": row["id"],
                        "kind": kind,
                        "version": 1,
                        "model": encoder.model_name,
                        "dim": encoder.dim,
                        "vector": np.asarray(vector, dtype=np.float32).tobytes(),
                        "updated_at": row["updated_at"],
                    }
                )
                next_vector_id += 1
            with engine.begin() as connection:
                connection.execute(insert(ENTITY_TABLES[kind]), rows)
                connection.execute(insert(EntityVector), vector_rows)
    return SeedReport(
        entities=counts,
        distinct_texts=len(texts),
        encoded_texts=len(texts),
        seconds_encoding=seconds_encoding,
        seconds_inserting=time.perf_counter() - started,
    )


def _columns(entity: Entity) -> dict[str, Any]:
    return {column.name: getattr(entity, column.name) for column in type(entity).__table__.columns}  # type: ignore[union-attr]


RETARGETED = ("company", "region", "funding_ask", "fund_name", "ticket_min", "ticket_max", "issuer")


def _near_copy(
    kind: str,
    parent: dict[str, Any],
    body: dict[str, Any],
    chinese: bool,
    number: int,
    *,
    fresh: bool,
    rng: random.Random,
) -> dict[str, Any]:
    """The parent variant's row itself the first time, then retargeted copies of it.

    Only name, region and amounts change, none of which moves sector codes, so the parent's
    validated row is copied and patched (validating 100k bodies would dominate seeding).
    """
    row = dict(parent)
    if not fresh:
        patched = retarget(body, kind, chinese, rng)
        row.update({field: patched[field] for field in RETARGETED if field in patched})
    now = utcnow()
    row.update(
        id=new_id(),
        owner=f"bench-{kind}-owner-{number:06d}",
        status=EntityStatus.MATCHED.value,
        created_at=now,
        updated_at=now,
    )
    return row


def submission_bodies(seed: int) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """An endless, deterministic stream of fresh (kind, API body, chinese) to submit."""
    rng = random.Random(f"submissions-{seed}")
    templates = load_templates()
    while True:
        for kind in kind_sequence(100, rng):
            # Mixed further than the seeded variants, so that few are flagged as duplicates.
            body = variant_body(templates, kind, rng.randrange(10**6), rng, mix=3)
            yield kind, body, bool(CJK.search(body[TEXT_FIELD[kind]]))
