#!/usr/bin/env python3
"""Renders a kustomization of deploy/kubernetes/ and checks what a sidecar deployment needs.

    kubernetes_test.py KUBECTL RESPGUARD KUSTOMIZATION_DIR

- `kubectl kustomize DIR` renders (offline: only local resources);
- the respguard.yaml of the rendered ConfigMap passes `respguard --check-config`;
- the Deployment's respguard container mounts that ConfigMap at /etc/respguard and is started
  with --config /etc/respguard/respguard.yaml, listens where the app expects (127.0.0.1:6379),
  has liveness /healthz and readiness /readyz on the admin port, a preStop sleep, a grace
  period above preStop + shutdown_grace, requests and limits, and a locked-down
  securityContext; the Prometheus annotations and the PodMonitor point at the admin port.
"""
import os
import re
import subprocess
import sys
import tempfile

import yaml  # Debian python3-yaml

CONFIG_PATH = "/etc/respguard/respguard.yaml"
from verdict import check, report  # noqa: E402  (tests/deploy/verdict.py, beside this file)


def duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", str(text).strip())
    if not m:
        return 0.0 if str(text).strip() == "0" else None
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def port_of(endpoint):
    return int(str(endpoint).rsplit(":", 1)[1])


def main():
    kubectl, respguard, kdir = sys.argv[1:4]
    render = subprocess.run([kubectl, "kustomize", kdir], capture_output=True, text=True, timeout=30)
    if render.returncode != 0:
        print(f"kubectl kustomize {kdir} failed:\n{render.stderr}")
        return 1
    docs = [d for d in yaml.safe_load_all(render.stdout) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    # --- the ConfigMap and --check-config ---
    cms = [c for c in by_kind.get("ConfigMap", []) if "respguard.yaml" in c.get("data", {})]
    if not check(len(cms) == 1, f"expected one ConfigMap with respguard.yaml, found {len(cms)}"):
        return report()
    cm = cms[0]
    config_text = cm["data"]["respguard.yaml"]
    with tempfile.TemporaryDirectory(prefix="respguard-k8s-") as tmp:
        path = os.path.join(tmp, "respguard.yaml")
        with open(path, "w") as f:
            f.write(config_text)
        res = subprocess.run([respguard, "--check-config", path], capture_output=True, text=True,
                             timeout=10)
        check(res.returncode == 0,
              f"respguard --check-config rejects the ConfigMap's respguard.yaml:\n{res.stdout}{res.stderr}")
    config = yaml.safe_load(config_text) or {}
    admin = config.get("admin", {})
    check(config.get("listen") == "127.0.0.1:6379",
          f"listen is {config.get('listen')!r}; the app talks to 127.0.0.1:6379")
    check(admin.get("enabled", True) is True, "admin.enabled must be true (probes, metrics)")
    admin_listen = admin.get("listen", "127.0.0.1:9380")
    check(admin_listen.startswith("0.0.0.0:"),
          f"admin.listen {admin_listen!r} must be 0.0.0.0:PORT for probes and Prometheus")
    admin_port = port_of(admin_listen)
    upstream = config.get("upstream", {}).get("address", "127.0.0.1:6379")
    check(not upstream.startswith("127.") and upstream != "localhost:6379",
          f"upstream.address {upstream!r} must be the Redis Service, not the pod's loopback")
    grace_s = duration_s(config.get("shutdown_grace", "10s"))
    check(grace_s is not None, f"shutdown_grace {config.get('shutdown_grace')!r} unparsable")

    # --- the Deployment ---
    deps = by_kind.get("Deployment", [])
    if not check(len(deps) == 1, f"expected one Deployment, found {len(deps)}"):
        return report()
    dep = deps[0]
    tmpl = dep["spec"]["template"]
    pod = tmpl["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    if not check("respguard" in containers, "no container named respguard"):
        return report()
    check(len(containers) >= 2, "expected an app container next to the respguard sidecar")
    rg = containers["respguard"]
    cmdline = rg.get("command", []) + rg.get("args", [])
    check(cmdline[-2:] == ["--config", CONFIG_PATH] or
          ("--config" in cmdline and cmdline[cmdline.index("--config") + 1] == CONFIG_PATH),
          f"respguard is not started with --config {CONFIG_PATH}: {cmdline}")
    check(not any(a.startswith(("--listen", "--admin", "--upstream")) for a in cmdline),
          f"flags override the ConfigMap: {cmdline}")

    # the ConfigMap is mounted where --config reads it
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = [m for m in rg.get("volumeMounts", []) if m.get("mountPath") == os.path.dirname(CONFIG_PATH)]
    if check(len(mounts) == 1, f"nothing mounted at {os.path.dirname(CONFIG_PATH)}"):
        vol = volumes.get(mounts[0]["name"], {})
        check(vol.get("configMap", {}).get("name") == cm["metadata"]["name"],
              f"the mounted volume is not the rendered ConfigMap {cm['metadata']['name']}")
        check(mounts[0].get("readOnly") is True, "the config mount should be readOnly")

    # admin port, probes
    ports = {p.get("name"): p["containerPort"] for p in rg.get("ports", [])}
    check(ports.get("admin") == admin_port,
          f"container port 'admin' is {ports.get('admin')}, the config's admin port is {admin_port}")

    def probe_port(probe):
        p = probe.get("httpGet", {}).get("port")
        return ports.get(p) if isinstance(p, str) else p

    for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        probe = rg.get(kind, {})
        check(probe.get("httpGet", {}).get("path") == path, f"{kind} is not httpGet {path}")
        check(probe_port(probe) == admin_port, f"{kind} does not target the admin port {admin_port}")

    # drain: preStop sleep, then shutdown_grace, inside the grace period
    pre = rg.get("lifecycle", {}).get("preStop", {})
    sleep_s = None
    if "sleep" in pre:
        sleep_s = pre["sleep"].get("seconds")
    elif pre.get("exec", {}).get("command", [])[:1] == ["sleep"]:
        sleep_s = float(pre["exec"]["command"][1])
    check(sleep_s is not None and sleep_s > 0, f"respguard has no preStop sleep: {pre}")
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    if sleep_s is not None and grace_s is not None:
        check(tgps > sleep_s + grace_s,
              f"terminationGracePeriodSeconds {tgps} must exceed preStop {sleep_s}s + "
              f"shutdown_grace {grace_s}s")

    # resources
    for name, c in containers.items():
        res = c.get("resources", {})
        check(res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory"),
              f"container {name}: cpu and memory requests")
        check(res.get("limits", {}).get("memory"), f"container {name}: a memory limit")

    # securityContext: container fields override the pod's
    psc = pod.get("securityContext", {})
    for name, c in containers.items():
        sc = {**{k: psc[k] for k in ("runAsNonRoot", "runAsUser", "seccompProfile") if k in psc},
              **c.get("securityContext", {})}
        check(sc.get("runAsNonRoot") is True, f"container {name}: runAsNonRoot")
        check(isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0,
              f"container {name}: runAsUser non-zero")
        check(sc.get("readOnlyRootFilesystem") is True, f"container {name}: readOnlyRootFilesystem")
        check(sc.get("allowPrivilegeEscalation") is False, f"container {name}: allowPrivilegeEscalation false")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"container {name}: capabilities drop ALL")
        check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
              f"container {name}: seccompProfile RuntimeDefault")
    check(rg.get("securityContext", {}).get("runAsUser") == 10001,
          "respguard runAsUser should be the image's respguard user (10001, Dockerfile)")

    # Prometheus: annotations and PodMonitor
    ann = tmpl.get("metadata", {}).get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true", "prometheus.io/scrape annotation")
    check(ann.get("prometheus.io/port") == str(admin_port), "prometheus.io/port is not the admin port")
    check(ann.get("prometheus.io/path", "/metrics") == "/metrics", "prometheus.io/path")
    pms = by_kind.get("PodMonitor", [])
    if check(len(pms) == 1, f"expected one PodMonitor, found {len(pms)}"):
        pm = pms[0]
        check(pm["apiVersion"] == "monitoring.coreos.com/v1", "PodMonitor apiVersion")
        if pm["metadata"].get("namespace") or dep["metadata"].get("namespace"):
            check(pm["metadata"].get("namespace") == dep["metadata"].get("namespace"),
                  "PodMonitor and Deployment are in different namespaces")
        sel = pm["spec"]["selector"].get("matchLabels", {})
        labels = tmpl["metadata"].get("labels", {})
        check(sel and all(labels.get(k) == v for k, v in sel.items()),
              f"PodMonitor selector {sel} does not select the pod labels {labels}")
        eps = pm["spec"].get("podMetricsEndpoints", [])
        check(any(e.get("port") == "admin" and e.get("path", "/metrics") == "/metrics" for e in eps),
              "PodMonitor does not scrape port admin, /metrics")
    return report()


if __name__ == "__main__":
    sys.exit(main())
