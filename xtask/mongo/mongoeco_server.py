"""The MongoDB-wire test server of the stats workspace.

Runs mongoeco's in-memory MongoDB wire server (PyPI `mongoeco[wire]==4.11.0`, which needs
CPython >= 3.13) on --host/--port (port 0, the default: the system picks a free one), prints
one line on stdout once it accepts connections:

    READY mongodb://HOST:PORT/?directConnection=true

and serves until SIGINT or SIGTERM. Data lives in memory only: every start is empty.

`cargo xtask` embeds this file, writes it into the server's temporary directory and starts it
with an interpreter that has mongoeco. It sets $STATS_MONGO_PYTHON (that interpreter) and
$STATS_MONGO_LAUNCHER (this file) for the test suites, so a test can start and kill a server
of its own:

    "$STATS_MONGO_PYTHON" "$STATS_MONGO_LAUNCHER" --port 0

mongoeco answers PyMongo well, but three details of its replies and of its argument checks
break the official Rust driver (`mongodb` 3.x). The adaptations below apply to this process
only: a subclass of mongoeco's server and a wrapper around its command executor's request
parsing. Nothing in site-packages is changed. They hook two private methods of mongoeco 4.11.0
(`_build_request_context` and `_render_wire_result`); start-up fails with a clear message when
another version lacks them.

Patch 1, cursor ids as Int64 (replies). mongoeco keeps cursor ids as Python ints, which BSON
encodes as Int32 when they are small (they count up from 1). MongoDB always sends `cursor.id`
as Int64, and the Rust driver's cursor type requires it: every find, aggregate, listIndexes,
listCollections and getMore reply would fail with `error at key "id": unexpected element type:
Int32, expected: Int64`.

Patch 2, Int64 counts accepted (requests). The Rust driver sends several numeric command
options as Int64 (`find_one`'s `limit: 1`, the `$skip`/`$limit` stages of `count_documents`,
getMore's cursor id, killCursors' ids, ...). mongoeco decodes an Int64 into its own wrapper
type and then rejects it in these places as "must be an integer" or "requires a non-negative
integer". They are unwrapped to plain ints before mongoeco checks the command. Only fields
that hold a count, a size, a time or a cursor id are touched; stored values, filters and update
operators keep their exact BSON types.

Patch 3, error replies always carry a code (replies). mongoeco leaves `code` out of some
failures (its own argument checks, an Int64 overflow in `$inc`). MongoDB always sends one, and
the Rust driver cannot read a command error without it: it reports "invalid reply: missing
field `code`" instead of the server's message. Such replies get `code: 2, codeName:
"BadValue"`; the same holds for entries of `writeErrors`, where mongoeco's code is optional
as well.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

#: The mongoeco release these patches were written and tested against.
TESTED_VERSION = "4.11.0"

#: The code and name MongoDB uses for a bad argument, given to errors mongoeco sends uncoded.
FALLBACK_CODE, FALLBACK_CODE_NAME = 2, "BadValue"

try:
    from importlib.metadata import version as distribution_version

    import bson  # noqa: F401  (mongoeco's wire layer encodes with PyMongo's bson)
    from mongoeco.core.bson_scalars import BsonInt64
    from mongoeco.wire import AsyncMongoEcoProxyServer
    from mongoeco.wire.executor import WireCommandExecutor
except ImportError as missing:
    sys.stderr.write(
        f"error: {sys.executable} cannot import mongoeco's wire server ({missing}); install "
        f"it into a virtualenv of a CPython >= 3.13 with: "
        f"python -m pip install 'mongoeco[wire]=={TESTED_VERSION}'\n"
    )
    sys.exit(3)


# --- Patch 2: Int64 counts in requests --------------------------------------------------

#: Top-level command options that are counts, sizes, times or cursor ids in every command
#: that has them (find, count, getMore, aggregate, ...), never data.
COUNT_OPTIONS = ("getMore", "batchSize", "limit", "skip", "maxTimeMS")


def plain(value):
    """`value` as a Python int when it is mongoeco's Int64 wrapper, else unchanged."""
    return value.value if isinstance(value, BsonInt64) else value


def with_plain(document, key):
    """`document` with `document[key]` unwrapped (a copy), or `document` itself when that is
    not an Int64 (or `document` is not a dict)."""
    if isinstance(document, dict) and isinstance(document.get(key), BsonInt64):
        return {**document, key: document[key].value}
    return document


def plain_stage(stage):
    """A top-level aggregation stage with its count unwrapped: `$limit`, `$skip`, and the
    `size` of `$sample`."""
    if not isinstance(stage, dict) or len(stage) != 1:
        return stage
    name = next(iter(stage))
    if name in ("$limit", "$skip"):
        return {name: plain(stage[name])}
    if name == "$sample":
        return {name: with_plain(stage[name], "size")}
    return stage


def plain_counts(body):
    """The command `body` (a copy when anything changes) with the Int64 counts mongoeco
    rejects turned into plain ints: the options in COUNT_OPTIONS, `cursor.batchSize`, the ids
    of killCursors, the `limit` of each delete statement, the `expireAfterSeconds` of each
    index createIndexes makes, and the counts of top-level aggregation stages."""
    if not isinstance(body, dict) or not body:
        return body
    body = dict(body)
    for option in COUNT_OPTIONS:
        if option in body:
            body[option] = plain(body[option])
    if "cursor" in body:
        body["cursor"] = with_plain(body["cursor"], "batchSize")
    # The command's name is the first key of its document.
    command = next(iter(body))
    lists = {
        "killCursors": ("cursors", plain),
        "delete": ("deletes", lambda statement: with_plain(statement, "limit")),
        "createIndexes": ("indexes", lambda index: with_plain(index, "expireAfterSeconds")),
        "aggregate": ("pipeline", plain_stage),
    }
    if command in lists:
        field, unwrap = lists[command]
        if isinstance(body.get(field), list):
            body[field] = [unwrap(item) for item in body[field]]
    return body


# --- Patches 1 and 3: replies -------------------------------------------------------------


def is_code(value):
    """Whether `value` is an error code as the Rust driver reads it (an int, not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def with_code(error):
    """The error document `error` (a copy) with the fallback code when it has none."""
    if not isinstance(error, dict) or is_code(error.get("code")):
        return error
    return {**error, "code": FALLBACK_CODE, "codeName": FALLBACK_CODE_NAME}


def driver_ready(reply):
    """The command reply `reply` (a copy when anything changes) as MongoDB would send it:
    its cursor id an Int64 (patch 1), a code in a failed reply and in every write error
    (patch 3)."""
    if not isinstance(reply, dict):
        return reply
    cursor = reply.get("cursor")
    if isinstance(cursor, dict) and is_code(cursor.get("id")):
        # mongoeco's encoder turns its own Int64 wrapper into BSON Int64.
        reply = {**reply, "cursor": {**cursor, "id": BsonInt64(cursor["id"])}}
    ok = reply.get("ok")
    if ok is not None and not isinstance(ok, bool) and ok == 0:
        reply = with_code(reply)
    errors = reply.get("writeErrors")
    if isinstance(errors, list) and any(with_code(error) is not error for error in errors):
        reply = {**reply, "writeErrors": [with_code(error) for error in errors]}
    return reply


class PatchedServer(AsyncMongoEcoProxyServer):
    """mongoeco's wire server with the three patches, for this server object only."""

    def __init__(self, **options):
        super().__init__(**options)
        executor = self._executor
        parse = executor._build_request_context

        # Every command, OP_MSG or legacy OP_QUERY, is parsed and checked here first.
        def parse_with_plain_counts(body, *args, **kwargs):
            return parse(plain_counts(body), *args, **kwargs)

        executor._build_request_context = parse_with_plain_counts

    @staticmethod
    def missing_hooks():
        """The private methods of mongoeco the patches hook that this version lacks (none in
        4.11.0)."""
        hooks = (
            (WireCommandExecutor, "_build_request_context"),
            (AsyncMongoEcoProxyServer, "_render_wire_result"),
        )
        return [
            f"{owner.__name__}.{name}"
            for owner, name in hooks
            if not callable(getattr(owner, name, None))
        ]

    def _render_wire_result(self, header, request_id, state):
        # Every reply, success or failure, is encoded here.
        state.result = driver_ready(state.result)
        return super()._render_wire_result(header, request_id, state)


# --- Running ------------------------------------------------------------------------------


def installed_version():
    """The installed mongoeco release, or "unknown"."""
    try:
        return distribution_version("mongoeco")
    except Exception:  # noqa: BLE001  (only for messages)
        return "unknown"


def mongodb_url(host, port):
    """The URL a driver connects to: one server, no replica-set discovery."""
    shown = f"[{host}]" if ":" in host else host
    return f"mongodb://{shown}:{port}/?directConnection=true"


async def serve(host, port):
    """Serves on host:port until SIGINT or SIGTERM, after printing the READY line."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with PatchedServer(host=host, port=port) as server:
        address = server.address
        print(f"READY {mongodb_url(address.host, address.port)}", flush=True)
        await stop.wait()


def main():
    parser = argparse.ArgumentParser(
        description="mongoeco's MongoDB wire server, patched for the Rust driver"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=0, help="port to listen on; 0 (the default) picks a free one"
    )
    args = parser.parse_args()
    version = installed_version()
    missing = PatchedServer.missing_hooks()
    if missing:
        sys.exit(
            f"error: mongoeco {version} lacks what this launcher patches ({', '.join(missing)}); "
            f"it was written for mongoeco {TESTED_VERSION}: install "
            f"'mongoeco[wire]=={TESTED_VERSION}'"
        )
    if version != TESTED_VERSION:
        print(
            f"warning: mongoeco {version} is installed; these patches were tested with "
            f"{TESTED_VERSION}",
            file=sys.stderr,
        )
    try:
        asyncio.run(serve(args.host, args.port))
    except OSError as error:
        sys.exit(f"error: cannot listen on {args.host}:{args.port}: {error}")


if __name__ == "__main__":
    main()
