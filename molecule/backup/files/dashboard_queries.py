"""Query every expression of a Grafana dashboard through a Prometheus HTTP API: each must return data.

Usage: python3 dashboard_queries.py DASHBOARD_JSON PROMETHEUS_URL   (such as http://127.0.0.1:9090)
The dashboard's variables are replaced as "All" would: $instance, $backup_job (and ${...} forms) with .*, and
$__rate_interval, $__interval, $__range with 5m. Every expression is sent to /api/v1/query (an instant query, now);
one line per expression as sent: "ok N series: EXPR", "EMPTY: EXPR" or "ERROR: EXPR: message". Exit status 1 when an
expression is empty or fails (or there is none), else 0. Standard library only: it runs with the controller's python3.
"""

import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

# "All" of the dashboard's multi-value variables (their allValue), and Grafana's interval variables.
VARIABLES = {"instance": ".*", "backup_job": ".*", "__rate_interval": "5m", "__interval": "5m", "__range": "5m"}
# $name, ${name} and ${name:format}; names are letters, digits and _.
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
TIMEOUT = 30


def panel_expressions(dashboard):
    """Every non-empty "expr" of the dashboard's panels (rows' nested panels included), in order, each once."""
    found = []

    def walk(panels):
        for panel in panels or []:
            for target in panel.get("targets") or []:
                expr = (target.get("expr") or "").strip()
                if expr and expr not in found:
                    found.append(expr)
            walk(panel.get("panels"))

    walk(dashboard.get("panels"))
    return found


def substitute(expr, variables=None):
    """The expression with its variables replaced; ValueError names any variable left unknown."""
    values = VARIABLES if variables is None else variables
    unknown = []

    def replace(match):
        name = match.group(1) or match.group(2)
        if name in values:
            return values[name]
        unknown.append(name)
        return match.group(0)

    result = VARIABLE.sub(replace, expr)
    if unknown:
        raise ValueError("unknown variable(s): %s" % ", ".join("$" + name for name in unknown))
    return result


def one_line(expr):
    return " ".join(expr.split())


def series_count(answer):
    """Series (or a scalar or string: 1) in a successful /api/v1/query answer; ValueError when it is not one."""
    if not isinstance(answer, dict) or answer.get("status") != "success":
        error = answer.get("error") if isinstance(answer, dict) else None
        raise ValueError(error or "not a successful Prometheus answer")
    data = answer.get("data") or {}
    if data.get("resultType") in ("vector", "matrix"):
        return len(data.get("result") or [])
    return 1 if data.get("result") is not None else 0


def query(base_url, expr):
    """The parsed answer of /api/v1/query for ``expr``; Prometheus's own error message when it refuses the query."""
    if not base_url.startswith(("http://", "https://")):
        raise ValueError("the Prometheus URL must start with http:// or https://, not %r" % base_url)
    url = base_url.rstrip("/") + "/api/v1/query"
    body = urllib.parse.urlencode({"query": expr}).encode()
    # http(s) only, checked above.
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        # 400 and 422 carry {"status": "error", "error": "..."}: the message is the useful part.
        try:
            return json.loads(err.read().decode("utf-8"))
        except ValueError:
            raise ValueError("HTTP %d %s" % (err.code, err.reason)) from err


def check(exprs, base_url):
    """(lines, failures): one line per expression."""
    lines, failures = [], 0
    for expr in exprs:
        shown = one_line(expr)
        try:
            sent = substitute(expr)
            shown = one_line(sent)
            count = series_count(query(base_url, sent))
        except (ValueError, OSError) as err:
            lines.append("ERROR: %s: %s" % (shown, err))
            failures += 1
            continue
        if count:
            lines.append("ok %d series: %s" % (count, shown))
        else:
            lines.append("EMPTY: %s" % shown)
            failures += 1
    return lines, failures


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: python3 dashboard_queries.py DASHBOARD_JSON PROMETHEUS_URL\n")
        return 2
    with open(argv[0], encoding="utf-8") as handle:
        exprs = panel_expressions(json.load(handle))
    if not exprs:
        print("ERROR: no expression in %s" % argv[0])
        return 1
    lines, failures = check(exprs, argv[1])
    for line in lines:
        print(line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
