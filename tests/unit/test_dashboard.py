"""The Grafana dashboard asks only for metrics the services export or the rules record."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from ruamel.yaml import YAML

import services.ingest.metrics
import services.projector.metrics
from services.query_api.metrics import REGISTRY as API_REGISTRY

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMQL_WORDS = {
    "sum",
    "by",
    "rate",
    "increase",
    "outcome",
    "topk",
    "bottomk",
    "count",
    "max",
    "histogram_quantile",
    "le",
    "route",
    "status",
    "type",
    "partition",
    "organization",
    "reason",
    "scenario",
    "check",
}


def exported_names() -> set[str]:
    assert services.ingest.metrics  # importing registers the metrics
    assert services.projector.metrics
    suffixes = ("", "_total", "_bucket", "_sum", "_count")
    return {
        family.name + suffix
        for registry in (DEFAULT_REGISTRY, API_REGISTRY)
        for family in registry.collect()
        for suffix in suffixes
    }


def recorded_names() -> set[str]:
    rules = YAML(typ="safe").load((DEPLOY / "prometheus" / "rules" / "metering.yml").read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def test_every_panel_queries_known_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "metering.json").read_text())
    known = exported_names() | recorded_names()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    for expr in exprs:
        without_labels = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", "", expr)
        words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_labels)) - PROMQL_WORDS
        unknown = {w for w in words if w not in known}
        assert not unknown, f"{expr}: {unknown}"
