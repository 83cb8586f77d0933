"""Time ``GET /api/v1/projects`` cold and warm over a generated runs directory.

Usage: python scripts/bench_listing.py [--projects 50] [--runs 500] [--repeat 20]

Builds the tree in a temporary directory, dates every file an hour back (as a
directory of finished runs looks), then times the listing through a real HTTP
server in this process: the first request, then the median and worst of the
rest. Prints the figures; exits 0.
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import tornado.httpclient
import tornado.httpserver
import tornado.netutil

from greendots.app import make_app
from greendots.config import Settings

# An hour back: well past the time the listing cache waits before it trusts a
# file's modification time.
AGE_SECONDS = 3600


def build(root, projects, runs):
    then = time.time() - AGE_SECONDS
    for p in range(projects):
        project = os.path.join(root, f"project-{p:03}")
        for r in range(runs):
            run = os.path.join(project, f"run-{r:04}")
            os.makedirs(run)
            for name, text in (
                ("plan.json", '{"worker_count": 1, "groups": {}}'),
                ("metadata.toml", f'name = "Run {r}"\nhost = "ci-{r % 7}"\n'),
            ):
                path = os.path.join(run, name)
                with open(path, "w") as f:
                    f.write(text)
                os.utime(path, (then + r, then + r))
            os.utime(run, (then, then))
        os.utime(project, (then, then))


async def measure(root, repeat):
    app = make_app(Settings(data_dir=root))
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/api/v1/projects"
    client = tornado.httpclient.AsyncHTTPClient()
    times = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        response = await client.fetch(url)
        times.append(1000 * (time.perf_counter() - start))
    server.stop()
    app.services.close()
    return times, len(response.body)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        build(root, args.projects, args.runs)
        times, size = asyncio.run(measure(root, args.repeat))
    warm = times[1:]
    print(f"{args.projects} projects x {args.runs} runs, {size} bytes per answer")
    print(f"cold: {times[0]:.1f} ms")
    print(f"warm: median {statistics.median(warm):.1f} ms, worst {max(warm):.1f} ms")


if __name__ == "__main__":
    main()
