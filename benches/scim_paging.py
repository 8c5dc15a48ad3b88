"""What paging through a SCIM list costs in Okta calls (a measurement, not a test).

Against the quick start (`cargo run --release -- --simulate` in another terminal), seeds
USERS users into the simulated org, then pages through `/Users` as a SCIM client does, 100
and 200 at a time, and counts the Okta list calls the simulator received:

- in order, by one caller: each walk resumes where the last one stopped;
- with the filter spelled anew for each page (`userName pr` in another letter case), so no
  walk finds a bookmark: what every page cost before bookmarks.

Run: `python3 benches/scim_paging.py [USERS]` (default 1990: the simulated org's users bucket
allows 600 list calls a minute, which a walk without bookmarks over many more would exceed).
"""

import json
import sys
import urllib.request

SIMULATOR = "http://127.0.0.1:8089"
SCIM = "http://127.0.0.1:8090/scim/v2"


def call(url, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, method=method, data=data, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        text = response.read()
        return json.loads(text) if text else None


def okta_list_calls():
    requests = call(f"{SIMULATOR}/__sim/requests")
    return sum(1 for r in requests if r["method"] == "GET" and r["path"] == "/api/v1/users")


def spelling(page):
    """`username` with its letters' case set by the bits of `page`: another listing each page."""
    return "".join(c.upper() if (page >> k) & 1 else c for k, c in enumerate("username"))


def walk(count, bookmarks):
    call(f"{SIMULATOR}/__sim/requests", "DELETE")
    listed = pages = 0
    while True:
        attribute = "userName" if bookmarks else spelling(pages)
        page = call(
            f"{SCIM}/Users?filter={attribute}%20pr&startIndex={listed + 1}"
            f"&count={count}&attributes=userName"
        )
        pages += 1
        listed += len(page["Resources"])
        if not page["Resources"] or listed >= page["totalResults"]:
            return listed, pages, okta_list_calls()


def main():
    users = int(sys.argv[1]) if len(sys.argv) > 1 else 1990
    seeded = [{"login": f"paging-{n:05d}@example.com"} for n in range(users)]
    call(f"{SIMULATOR}/__sim/seed", "POST", {"users": seeded})
    print("| count | users listed | pages | Okta calls, in order | Okta calls, no bookmarks |")
    print("|---|---|---|---|---|")
    for count in (100, 200):
        listed, pages, resumed = walk(count, bookmarks=True)
        _, _, from_start = walk(count, bookmarks=False)
        print(f"| {count} | {listed} | {pages} | {resumed} | {from_start} |")


if __name__ == "__main__":
    main()
