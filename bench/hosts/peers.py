"""Walks every run with Python's standard library, as Python scripts do.

    python3 bench/hosts/peers.py urllib|http.client BASE_URL WORKFLOW TOKEN

urllib: urllib.request.urlopen per page, json.load; urllib has no keep-alive, so
each page is a new TCP connection (and no gzip). http.client: one HTTPConnection
kept alive for the whole walk, the fairer peer. Prints the number of runs.
"""
import http.client
import json
import sys
import urllib.parse
import urllib.request


def walk_urllib(base, workflow, token):
    count, offset = 0, 0
    while True:
        url = f"{base}/v1/workflows/{workflow}/runs?limit=100&offset={offset}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request) as response:
            page = json.load(response)
        count += sum(1 for run in page["data"]["items"] if run.get("id"))
        offset += len(page["data"]["items"])
        if not page["data"]["hasMore"]:
            return count


def walk_http_client(base, workflow, token):
    parts = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    count, offset = 0, 0
    while True:
        path = f"/v1/workflows/{workflow}/runs?limit=100&offset={offset}"
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"GET {path} failed: {response.status}")
        page = json.loads(body)
        count += sum(1 for run in page["data"]["items"] if run.get("id"))
        offset += len(page["data"]["items"])
        if not page["data"]["hasMore"]:
            connection.close()
            return count


if __name__ == "__main__":
    how, base, workflow, token = sys.argv[1:5]
    walk = walk_urllib if how == "urllib" else walk_http_client
    print(walk(base, workflow, token))
