#!/usr/bin/env python3
"""Checks deploy/prometheus and deploy/grafana against the respguard binary and the docs.

    monitoring_test.py RESPGUARD_BINARY SOURCE_DIR [PROMTOOL]

- every respguard_* metric named in the alert rules, the rule tests and the dashboard exists in
  `respguard --print-metrics` (histograms also as _bucket, _sum, _count);
- every alert has a severity, summary, description and a runbook_url whose anchor is a heading
  of docs/operations.md, and has a firing and a quiet case in the promtool tests;
- the dashboard is valid JSON with the datasource/job/instance variables, unique panel ids,
  the four rows, and (with PROMTOOL) every query parses as PromQL;
- (with PROMTOOL) prometheus.yml passes `promtool check config` once its kubernetes_sd job is
  removed (Debian's promtool is built without Kubernetes discovery).

Standard library only (no PyYAML): the YAML files are read line by line, which their simple,
fixed layout allows. No network; runs in well under a second.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

failures = []


def fail(msg):
    failures.append(msg)


def metric_catalogue(binary):
    out = subprocess.run([binary, "--print-metrics"], check=True, capture_output=True,
                         text=True, timeout=30).stdout
    types = {}
    for m in re.finditer(r"^\| `(respguard_\w+)` \| (\w+) \|", out, re.M):
        types[m.group(1)] = m.group(2)
    if len(types) < 10:
        raise SystemExit(f"could not parse `{binary} --print-metrics` output:\n{out}")
    known = set(types)
    for name, kind in types.items():
        if kind == "histogram":
            known |= {name + "_bucket", name + "_sum", name + "_count"}
    return known


def github_anchors(markdown):
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if not m:
            continue
        text = re.sub(r"[`*_]", "", m.group(1)).lower()
        text = re.sub(r"[^\w\- ]", "", text)
        anchors.add(text.replace(" ", "-"))
    return anchors


def check_metric_names(where, text, known):
    used = set(re.findall(r"\brespguard_[a-z0-9_]+\b", text))
    for name in sorted(used - known):
        fail(f"{where}: metric {name} is not in `respguard --print-metrics`")
    return used


def check_rules(src, known):
    path = os.path.join(src, "deploy/prometheus/respguard-rules.yaml")
    text = open(path).read()
    used = check_metric_names("respguard-rules.yaml", text, known)
    anchors = github_anchors(open(os.path.join(src, "docs/operations.md")).read())
    # Split into one chunk per alert: from "- alert: X" to the next rule.
    chunks = re.split(r"^\s*- (?=alert:|record:)", text, flags=re.M)[1:]
    alerts = []
    for chunk in chunks:
        m = re.match(r"alert: (\w+)", chunk)
        if not m:
            continue
        name = m.group(1)
        alerts.append(name)
        sev = re.search(r"^\s+severity: (\S+)", chunk, re.M)
        if not sev or sev.group(1) not in ("critical", "warning", "info"):
            fail(f"{name}: no severity label critical|warning|info")
        for key in ("summary", "description"):
            if not re.search(rf"^\s+{key}: \S", chunk, re.M):
                fail(f"{name}: no {key} annotation")
        rb = re.search(r'^\s+runbook_url: "?docs/operations\.md#([\w-]+)"?\s*$', chunk, re.M)
        if not rb:
            fail(f"{name}: no runbook_url pointing into docs/operations.md")
        elif rb.group(1) not in anchors:
            fail(f"{name}: runbook anchor #{rb.group(1)} is not a heading of docs/operations.md")
    if len(alerts) != len(set(alerts)):
        fail("respguard-rules.yaml: duplicate alert names")
    return alerts, used


def check_rule_tests(src, alerts, known):
    text = open(os.path.join(src, "deploy/prometheus/tests/respguard-rules-test.yaml")).read()
    check_metric_names("respguard-rules-test.yaml", text, known)
    fires, quiet = set(), set()
    for m in re.finditer(r"^\s+alertname: (\w+)\n\s+exp_alerts:(.*)$", text, re.M):
        (quiet if m.group(2).strip() == "[]" else fires).add(m.group(1))
    for name in alerts:
        if name not in fires:
            fail(f"{name}: no promtool test case where it fires")
        if name not in quiet:
            fail(f"{name}: no promtool test case where it does not fire")
    for name in sorted((fires | quiet) - set(alerts)):
        fail(f"respguard-rules-test.yaml tests unknown alert {name}")


def dashboard_exprs(dash):
    exprs = []
    for panel in dash.get("panels", []):
        for t in panel.get("targets", []):
            exprs.append((panel.get("title", "?"), t.get("expr", "")))
    for var in dash.get("templating", {}).get("list", []):
        q = var.get("query")
        if var.get("type") == "query":
            exprs.append((f"variable {var.get('name')}", q.get("query") if isinstance(q, dict) else q))
    return exprs


def check_dashboard(src, known):
    path = os.path.join(src, "deploy/grafana/respguard-dashboard.json")
    with open(path) as f:
        dash = json.load(f)
    if not 36 <= dash.get("schemaVersion", 0) <= 39:
        fail(f"dashboard: schemaVersion {dash.get('schemaVersion')} is not ~38")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource":
        fail("dashboard: no datasource variable")
    for name in ("job", "instance"):
        if variables.get(name, {}).get("type") != "query":
            fail(f"dashboard: no {name} query variable")
    ids = [p.get("id") for p in dash["panels"]]
    if len(ids) != len(set(ids)):
        fail("dashboard: duplicate panel ids")
    rows = [p["title"] for p in dash["panels"] if p.get("type") == "row"]
    for want in ("Traffic", "Latency", "Upstream health", "Saved you", "Bloom filters & coherence"):
        if want not in rows:
            fail(f"dashboard: no row {want!r}")
    exprs = dashboard_exprs(dash)
    for title, expr in exprs:
        if not expr:
            fail(f"dashboard panel {title!r}: target without expr")
            continue
        check_metric_names(f"dashboard panel {title!r}", expr, known)
        if "respguard_" in expr and "$job" not in expr and not expr.startswith("label_values(respguard_build_info,"):
            fail(f"dashboard panel {title!r}: query does not filter by $job/$instance")
    for p in dash["panels"]:
        if p.get("type") != "row" and p.get("datasource", {}).get("uid") != "${datasource}":
            fail(f"dashboard panel {p.get('title')!r}: datasource is not ${{datasource}}")
    saved = json.dumps([p for p in dash["panels"] if p.get("type") != "row"
                        and p["gridPos"]["y"] > next(r["gridPos"]["y"] for r in dash["panels"]
                                                     if r.get("title") == "Saved you")])
    for metric in ("respguard_coalesced_requests_total", "respguard_negative_cache_hits_total",
                   "respguard_lease_waits_total", "respguard_rate_limited_total",
                   "respguard_breaker_rejected_total", "respguard_bloom_checks_total"):
        if metric not in saved:
            fail(f"dashboard: the Saved you row does not show {metric}")
    return exprs


def promql_check(promtool, exprs):
    """Parse every dashboard query with promtool by wrapping it as a recording rule."""
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, (_, expr) in enumerate(exprs):
        if expr.startswith("label_values("):
            m = re.match(r"label_values\((.*), \w+\)$", expr)
            expr = m.group(1) if m else expr
        expr = (expr.replace("$__rate_interval", "5m").replace("$__range", "1h")
                .replace("$job", ".*").replace("$instance", ".*"))
        lines += [f"      - record: dashboard:query_{i}", "        expr: " + json.dumps(expr)]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    try:
        r = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            fail("dashboard: promtool cannot parse its queries:\n" + r.stdout + r.stderr)
    finally:
        os.unlink(f.name)


def check_scrape_config(src, promtool):
    path = os.path.join(src, "deploy/prometheus/prometheus.yml")
    text = open(path).read()
    for needed in ("job_name: respguard\n", "static_configs:", "kubernetes_sd_configs:",
                   "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
                   "rule_files:\n  - respguard-rules.yaml"):
        if needed not in text:
            fail(f"prometheus.yml: missing {needed!r}")
    if not promtool:
        return
    # Drop every job with kubernetes_sd_configs (Debian's promtool lacks that discovery) and
    # point rule_files at the real file; the rest is checked as is.
    jobs = re.split(r"(?=^  - job_name:)", text, flags=re.M)
    kept = [j for j in jobs if "kubernetes_sd_configs" not in j]
    rules = os.path.abspath(os.path.join(src, "deploy/prometheus/respguard-rules.yaml"))
    stripped = "".join(kept).replace("  - respguard-rules.yaml", "  - " + json.dumps(rules))
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write(stripped)
    try:
        r = subprocess.run([promtool, "check", "config", f.name], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            fail("prometheus.yml: promtool check config failed:\n" + r.stdout + r.stderr)
    finally:
        os.unlink(f.name)


def check_readme_links(src):
    path = os.path.join(src, "deploy/README.md")
    text = open(path).read()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"\w+://", target):
            continue
        if not os.path.exists(os.path.join(src, "deploy", target)):
            fail(f"deploy/README.md: broken link {target}")


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    binary, src = sys.argv[1], sys.argv[2]
    promtool = sys.argv[3] if len(sys.argv) == 4 else None
    known = metric_catalogue(binary)
    alerts, _ = check_rules(src, known)
    check_rule_tests(src, alerts, known)
    exprs = check_dashboard(src, known)
    if promtool:
        promql_check(promtool, exprs)
    check_scrape_config(src, promtool)
    check_readme_links(src)
    if failures:
        print("\n".join("FAIL " + f for f in failures))
        return 1
    print(f"OK: {len(alerts)} alerts, {len(exprs)} dashboard queries, all metrics known")
    return 0


if __name__ == "__main__":
    sys.exit(main())
