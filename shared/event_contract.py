"""The event contract as the Kafka world reads it, generated from the models in ``shared.events``:
one JSON Schema per CloudEvent type (``docs/schemas/<type>.json``, the whole structured-mode
message with its ``data``) and an AsyncAPI 3.0 document for the topics (``docs/asyncapi.yaml``).

    python -m shared.event_contract          # rewrite docs/asyncapi.yaml and docs/schemas/
    python -m shared.event_contract --check  # exit 1 when the committed files are stale
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from shared.events import EVENT_TYPES, Event, encode

DOCS = Path(__file__).resolve().parents[1] / "docs"
JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"
TRACEPARENT = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
EXAMPLE_TIME = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)

TOPICS: dict[str, dict[str, Any]] = {
    "inbound": {
        "producer": "any integrator (and router's own webhook intake)",
        "consumers": ["router"],
        "description": "Canonical inbound ticket events from any source; router turns them into "
        "the canonical ticket.",
    },
    "tickets": {
        "producer": "router",
        "consumers": ["sla", "survey"],
        "description": "Router's facts about canonical tickets; every event carries the ticket "
        "snapshot with its growing `version`.",
    },
    "sla": {
        "producer": "sla",
        "consumers": [],
        "description": "SLA timers' life: started, paused, resumed, met, warning, breached, "
        "escalated.",
    },
    "surveys": {
        "producer": "survey",
        "consumers": [],
        "description": "Satisfaction surveys' life: scheduled, sent, answered, cancelled, expired, "
        "follow-up required.",
    },
}


def _data_schema(model: type[Event]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/definitions/{model}")
    return schema


def cloudevent_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of a structured-mode CloudEvent of ``event_type``, ``data`` included."""
    model = EVENT_TYPES[event_type]
    data = _data_schema(model)
    definitions = data.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DRAFT,
        "$id": f"https://ticketflow.invalid/schemas/{event_type}.json",
        "title": f"{event_type} ({model.__name__})",
        "description": (model.__doc__ or f"The {event_type} event.").strip(),
        "type": "object",
        "required": ["specversion", "id", "source", "type", "subject", "time", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1, "description": "Unique per event."},
            "source": {
                "type": "string",
                "minLength": 1,
                "description": "URI reference of the producer, e.g. /ticketflow/router.",
            },
            "type": {"const": event_type},
            "subject": {
                "type": "string",
                "description": "The ticket id (also the Kafka message key).",
            },
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "traceparent": {
                "type": "string",
                "pattern": TRACEPARENT,
                "description": "W3C trace context of the span that emitted the event.",
            },
            "data": data,
        },
    }
    if definitions:
        schema["definitions"] = definitions
    return schema


# --- examples: one valid instance of each model, built from its fields -----------------------


def _example_value(annotation: Any, name: str) -> Any:
    origin = get_origin(annotation)
    if origin is Literal:
        return get_args(annotation)[0]
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return _example_value(options[0], name)
    if origin is list:
        return []
    if origin is dict:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return example_data(annotation)
    if annotation is datetime:
        return EXAMPLE_TIME
    if annotation is bool:
        return False
    if annotation is int:
        return 1
    if annotation is float:
        return 0.5
    if name == "source":
        return "acme"
    if name.endswith("id"):
        return f"{name.removesuffix('_id') or 'ticket'}-1"
    return "example"


def example_data(model: type[BaseModel]) -> dict[str, Any]:
    """A minimal valid ``data`` for ``model``: every field, the first choice of each."""
    return {name: _example_value(f.annotation, name) for name, f in model.model_fields.items()}


def example_event(event_type: str) -> Event:
    model = EVENT_TYPES[event_type]
    return model.model_validate(example_data(model))


def example_message(event_type: str) -> dict[str, Any]:
    """The example event as it goes on the wire (encoded by the real ``encode``)."""
    _, value, _ = encode(
        example_event(event_type),
        source=f"/ticketflow/{_producer_service(event_type)}",
        event_id="00000000-0000-4000-8000-000000000001",
        time=EXAMPLE_TIME,
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    message: dict[str, Any] = json.loads(value)
    return message


def _producer_service(event_type: str) -> str:
    topic = EVENT_TYPES[event_type].topic
    return {"inbound": "router", "tickets": "router", "sla": "sla", "surveys": "survey"}.get(
        topic, topic
    )


# --- AsyncAPI -------------------------------------------------------------------------------


def _message_name(event_type: str) -> str:
    return EVENT_TYPES[event_type].__name__


def asyncapi(version: str = "1") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic and event type (default topic prefix)."""
    by_topic: dict[str, list[str]] = {}
    for event_type, model in EVENT_TYPES.items():
        by_topic.setdefault(model.topic, []).append(event_type)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic, event_types in by_topic.items():
        about = TOPICS.get(topic, {"producer": topic, "consumers": [], "description": ""})
        refs = {
            _message_name(t): {"$ref": f"#/components/messages/{_message_name(t)}"}
            for t in event_types
        }
        channels[topic] = {
            "address": f"ticketflow.{topic}",
            "title": f"ticketflow.{topic}",
            "description": f"{about['description']} Produced by {about['producer']}. Topic "
            "names carry TICKETFLOW_TOPIC_PREFIX (default `ticketflow.`). Messages that a "
            f"consumer cannot process go to `ticketflow.{topic}.dlq` with the error.",
            "messages": refs,
        }
        channel_messages = [{"$ref": f"#/channels/{topic}/messages/{n}"} for n in refs]
        operations[f"publish_{topic}"] = {
            "action": "send",
            "title": f"{about['producer']} publishes to ticketflow.{topic}",
            "channel": {"$ref": f"#/channels/{topic}"},
            "messages": channel_messages,
        }
        for consumer in about["consumers"]:
            operations[f"{consumer}_consumes_{topic}"] = {
                "action": "receive",
                "title": f"{consumer} consumes ticketflow.{topic} (consumer group {consumer})",
                "channel": {"$ref": f"#/channels/{topic}"},
                "messages": channel_messages,
            }
        for event_type in event_types:
            model = EVENT_TYPES[event_type]
            messages[model.__name__] = {
                "name": event_type,
                "title": model.__name__,
                "summary": (model.__doc__ or event_type).strip().splitlines()[0],
                "contentType": "application/cloudevents+json",
                "headers": {
                    "type": "object",
                    "properties": {"content-type": {"const": "application/cloudevents+json"}},
                },
                "payload": {
                    "schemaFormat": "application/schema+json;version=draft-07",
                    "schema": {"$ref": f"schemas/{event_type}.json"},
                },
                "bindings": {
                    "kafka": {
                        "key": {
                            "type": "string",
                            "description": "The CloudEvent subject: the ticket id.",
                        },
                        "bindingVersion": "0.5.0",
                    }
                },
                "examples": [{"name": event_type, "payload": example_message(event_type)}],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ticketflow events",
            "version": version,
            "description": "CloudEvents 1.0 in structured JSON mode on Kafka. Message key and "
            "`subject` are the ticket id; the W3C `traceparent` is a CloudEvents extension. "
            "Delivery is at least once: consumers are idempotent by event `id`. Consumers "
            "ignore fields they do not know; fields are added, never renamed. Generated from "
            "shared/events.py by `python -m shared.event_contract`.",
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


# --- files ----------------------------------------------------------------------------------


def rendered(docs: Path = DOCS) -> dict[Path, str]:
    """Every generated file and its content."""
    import yaml  # a dev dependency: only the generator and its test need it

    files = {
        docs / "schemas" / f"{t}.json": json.dumps(cloudevent_schema(t), indent=2) + "\n"
        for t in EVENT_TYPES
    }
    header = (
        "# Generated by `python -m shared.event_contract` from shared/events.py: do not edit.\n"
    )
    files[docs / "asyncapi.yaml"] = header + yaml.safe_dump(
        asyncapi(), sort_keys=False, allow_unicode=True, width=100
    )
    return files


def stale(docs: Path = DOCS) -> list[Path]:
    """Generated files that are missing or differ from what the models give."""
    out = [p for p, text in rendered(docs).items() if not p.exists() or p.read_text() != text]
    known = {p.name for p in rendered(docs) if p.parent.name == "schemas"}
    folder = docs / "schemas"
    if folder.exists():
        out += [p for p in folder.glob("*.json") if p.name not in known]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.event_contract")
    parser.add_argument("--check", action="store_true", help="fail when the files are stale")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale()
        for path in outdated:
            print(f"stale: {path} (run python -m shared.event_contract)", file=sys.stderr)
        return 1 if outdated else 0
    folder = DOCS / "schemas"
    folder.mkdir(parents=True, exist_ok=True)
    files = rendered()
    for old in folder.glob("*.json"):
        if old not in files:
            old.unlink()
    for path, text in files.items():
        path.write_text(text)
    print(f"wrote {len(files)} files under {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
