#!/usr/bin/env python3
"""Checks the Dockerfile without a container engine.

    dockerfile_test.py SOURCE_DIR RESPGUARD_BINARY

- multi-stage, every stage FROM debian:bookworm-slim;
- the build stage installs the packages of scripts/lib/deps.sh and runs the same cmake
  configure and build commands as scripts/run (the Release build);
- the final stage copies the binary and the config to /etc/respguard/respguard.yaml, starts
  respguard --config /etc/respguard/respguard.yaml, runs as a non-root USER, EXPOSEs the data
  (6380) and admin (9380) ports, and has STOPSIGNAL SIGTERM;
- its runtime apt-get install list provides every shared library the binary needs (ldd, each
  library mapped to its Debian package with dpkg -S), and holds nothing the binary does not
  link (only runtime libraries in the final image).
"""
import json
import os
import re
import shlex
import subprocess
import sys

# Packages every debian:bookworm-slim image has (libc6 is essential; apt, in the image, depends
# on libstdc++6 and libgcc-s1); the runtime stage need not install them.
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}
CONFIG_PATH = "/etc/respguard/respguard.yaml"
from verdict import check, report  # noqa: E402  (tests/deploy/verdict.py, beside this file)


def instructions(text):
    """(KEYWORD, argument) pairs: continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):  # comment inside a continued instruction
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        kw, _, arg = cur.partition(" ")
        out.append((kw.upper(), arg.strip()))
        cur = ""
    return out


def shell_commands(run_arg):
    """The commands of a RUN line (split on && and ;), each as a normalized string."""
    return [" ".join(c.split()) for c in re.split(r"&&|;", run_arg) if c.strip()]


def cmake_lines(commands):
    return [c for c in commands if c.startswith("cmake ")]


def needed_packages(binary):
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=10, check=True)
    libs = []  # (soname, path, the paths dpkg may know it under)
    for line in ldd.stdout.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(/\S+)", line)
        if not m:
            continue  # vdso, the dynamic loader line
        soname, path = m.groups()
        # dpkg knows a file under the path it was installed at: try the one ldd printed, the
        # resolved one, and both sides of the /lib -> /usr/lib merge.
        real = os.path.realpath(path)
        cands = [path, real] + [p[4:] if p.startswith("/usr/") else "/usr" + p for p in (path, real)]
        libs.append((soname, path, cands))
    # One dpkg -S for all of them (it is slow to start); it exits 1 when some path is unknown.
    owner = {}
    res = subprocess.run(["dpkg", "-S"] + [c for _, _, cs in libs for c in cs],
                         capture_output=True, text=True, timeout=30)
    for line in res.stdout.splitlines():
        pkgs, _, path = line.partition(": ")
        owner[path.strip()] = pkgs.split(",")[0].split(":")[0].strip()
    pkgs, missing = {}, []
    for soname, path, cands in libs:
        pkg = next((owner[c] for c in cands if c in owner), None)
        if pkg:
            pkgs.setdefault(pkg, []).append(soname)
        else:
            missing.append(f"{soname} ({path})")
    return pkgs, missing


def main():
    src, binary = sys.argv[1:3]
    with open(os.path.join(src, "Dockerfile")) as f:
        ins = instructions(f.read())

    # stages
    stages, cur = [], None
    for kw, arg in ins:
        if kw == "FROM":
            cur = {"from": arg, "ins": []}
            stages.append(cur)
        elif cur is not None:
            cur["ins"].append((kw, arg))
    check(len(stages) >= 2, f"not multi-stage: {len(stages)} FROM")
    for s in stages:
        check(s["from"].split()[0] == "debian:bookworm-slim", f"stage FROM {s['from']}: not debian:bookworm-slim")
    if len(stages) < 2:
        return report()
    build, final = stages[0], stages[-1]
    build_name = build["from"].split()[-1] if " as " in build["from"].lower() else "0"

    # build stage: deps.sh packages and scripts/run's cmake commands
    build_runs = [a for kw, a in build["ins"] if kw == "RUN"]
    build_cmds = [c for a in build_runs for c in shell_commands(a)]
    check(any("scripts/lib/deps.sh" in a and "install_missing_packages" in a and
              "RESPGUARD_PACKAGES" in a for a in build_runs),
          "the build stage does not install scripts/lib/deps.sh's RESPGUARD_PACKAGES")
    with open(os.path.join(src, "scripts", "run")) as f:
        run_cmds = [" ".join(l.split()) for l in f.read().splitlines()]
    want = cmake_lines(run_cmds)
    got = cmake_lines(build_cmds)
    check(want and got == want,
          "the Dockerfile's cmake commands differ from scripts/run's:\n"
          f"    scripts/run: {want}\n    Dockerfile:  {got}")

    # final stage
    fin = final["ins"]
    kws = {}
    for kw, a in fin:
        kws.setdefault(kw, []).append(a)
    users = kws.get("USER", [])
    check(users and users[-1].split(":")[0] not in ("root", "0"), f"final stage USER {users}: not non-root")
    exposed = {p.split("/")[0] for a in kws.get("EXPOSE", []) for p in a.split()}
    check({"6380", "9380"} <= exposed, f"EXPOSE {sorted(exposed)}: needs 6380 and 9380")
    check(kws.get("STOPSIGNAL", [""])[-1] == "SIGTERM", f"STOPSIGNAL {kws.get('STOPSIGNAL')}")
    copies = kws.get("COPY", [])
    check(any(f"--from={build_name}" in c and "build/respguard" in c for c in copies),
          f"the final stage does not copy build/respguard from stage {build_name}")
    check(any(c.split()[-1] == CONFIG_PATH for c in copies), f"no config copied to {CONFIG_PATH}")
    try:
        entry = json.loads(kws.get("ENTRYPOINT", ["[]"])[-1])
    except json.JSONDecodeError:
        entry = []
    check(entry[:1] == ["respguard"] and "--config" in entry and
          entry[entry.index("--config") + 1] == CONFIG_PATH,
          f"ENTRYPOINT {entry}: should be respguard --config {CONFIG_PATH} (exec form)")

    # runtime packages vs ldd
    installed = set()
    for kw, a in fin:
        if kw != "RUN":
            continue
        for c in shell_commands(a):
            words = shlex.split(c)
            if "apt-get" in words and "install" in words:
                installed |= {w for w in words[words.index("install") + 1:] if not w.startswith("-")}
    check(installed, "the final stage installs no runtime packages with apt-get install")
    needed, unmapped = needed_packages(binary)
    check(not unmapped, f"libraries no Debian package owns: {unmapped}")
    for pkg, sonames in sorted(needed.items()):
        if pkg not in BASE_IMAGE_PACKAGES:
            check(pkg in installed, f"{pkg} ({', '.join(sonames)}) is not in the runtime apt-get install list")
    extra = installed - set(needed)
    check(not extra, f"runtime packages the binary does not link (ldd): {sorted(extra)}")
    return report()


if __name__ == "__main__":
    sys.exit(main())
