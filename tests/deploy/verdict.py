"""The deploy checks' shared verdict: collect every failed check, then report them all at once
(a manifest with three problems shows three lines, not the first one)."""

failures = []


def check(cond, what):
    """Records `what` when `cond` is false; returns cond so callers can skip dependent checks."""
    if not cond:
        failures.append(what)
    return cond


def report():
    """Prints the failures (or "ok") and returns the process exit code."""
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("ok")
    return 0
