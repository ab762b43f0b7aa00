"""JSON columns are written by orjson (``shared.db.json_dumps``) yet keep what the standard
library kept: an integer beyond 64 bits (a vendor's custom field may hold one) and int keys."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, Table, insert, select

from shared.db import JSONType, create_engine


async def test_a_json_column_keeps_big_integers_and_int_keys(tmp_path: Path) -> None:
    metadata = MetaData(schema="sample")
    rows = Table("rows", metadata, Column("id", Integer, primary_key=True), Column("doc", JSONType))
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'tf.db'}", "sample")
    document = {"account": 2**70, "seats": 40, "ratio": 0.5, "by_day": {1: "mon"}, "none": None}
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(insert(rows).values(id=1, doc=document))
        async with engine.connect() as conn:
            stored = (await conn.execute(select(rows.c.doc))).scalar_one()
    finally:
        await engine.dispose()
    assert stored == {**document, "by_day": {"1": "mon"}}
    assert stored["account"] == 1180591620717411303424  # exact, not a float
