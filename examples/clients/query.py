#!/usr/bin/env python3
"""Run one statement through Gatehouse's REST API, with only the standard library.

    GATEHOUSE_URL=http://127.0.0.1:8080 GATEHOUSE_TOKEN=$(gatehouse token --sub ada) \
        python3 examples/clients/query.py shop "SELECT id, status FROM orders WHERE id < ?" 5

Parameters after the SQL are passed as JSON values when they parse as JSON (numbers,
true/false/null), otherwise as strings. Errors are RFC 9457 problems: the script prints
their `code` and `detail` and exits non-zero.
"""

import json
import os
import sys
import urllib.error
import urllib.request


def param(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    datasource, sql, params = sys.argv[1], sys.argv[2], [param(p) for p in sys.argv[3:]]
    base = os.environ.get("GATEHOUSE_URL", "http://127.0.0.1:8080")
    request = urllib.request.Request(
        f"{base}/v1/query",
        data=json.dumps({"datasource": datasource, "sql": sql, "params": params}).encode(),
        headers={
            "authorization": f"Bearer {os.environ['GATEHOUSE_TOKEN']}",
            "content-type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            result = json.load(response)
    except urllib.error.HTTPError as error:
        problem = json.load(error)
        sys.exit(f"{problem['status']} {problem['code']}: {problem['detail']}")
    names = [column["name"] for column in result["columns"]]
    print("\t".join(names))
    for row in result["rows"]:
        print("\t".join(json.dumps(value) for value in row))
    more = " (truncated)" if result["truncated"] else ""
    print(f"-- {result['row_count']} rows{more}", file=sys.stderr)


if __name__ == "__main__":
    main()
