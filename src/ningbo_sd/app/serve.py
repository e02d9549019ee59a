"""Serving the app safely: the port check, the Host allow-list and bounded URL values.

* **Host and Origin.** The server answers only requests whose ``Host`` header is on an
  allow-list (by default ``127.0.0.1:<port>`` and ``localhost:<port>``), and its websocket
  accepts only pages opened from the same list. Tornado compares a websocket's ``Origin``
  with its ``Host`` and calls Bokeh's origin check only when they differ, so without the
  Host check a page served under any name (DNS rebinding: ``evil.example`` resolving to
  127.0.0.1) could open a session. Other hosts get HTTP 403 for pages and websockets alike.
* **The port** is tried before the warm-up, so that a port in use is one line, not a
  traceback half a minute later.
* **Websockets** send without Nagle's delay (``TCP_NODELAY``), as browsers do.
* **Workers**: ``num_procs`` forks server processes sharing the port; each stops with its
  parent.
* **URL values** longer than :data:`MAX_URL_VALUE_CHARS` are taken out of the request
  before Panel parses its query: Panel turns digit strings into ``int``, and a value with
  more than 4,300 digits (Python's limit on int-string conversion) made the page an HTTP
  500. The app reports them in its usual one-line alert.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, urlencode

from ningbo_sd.io import excerpt

LOGGER = logging.getLogger("ningbo_sd.app")
#: The environment variable holding extra allowed hosts (``host:port``, comma separated).
ALLOWED_HOSTS_ENV = "NINGBO_SD_ALLOWED_HOSTS"
#: The longest URL value the app reads (lever values, scenario names, the language).
MAX_URL_VALUE_CHARS = 200
#: The longest URL query the app reads (every lever at its longest is under 15,000).
MAX_URL_QUERY_CHARS = 20_000
#: The most fields a URL query may have (the app writes about 55).
MAX_URL_FIELDS = 200
PORT_IN_USE = "ningbo-sd app: port {port} is in use (choose another with --port)"
CANNOT_LISTEN = "ningbo-sd app: cannot listen on {address}:{port} ({reason})"


# ---------------------------------------------------------------- the port
def port_problem(address: str, port: int) -> str | None:
    """Why the app could not listen on ``address:port``, as one line; None if it can.

    The socket is bound the way Tornado binds it (``SO_REUSEADDR``, so a port left in
    TIME_WAIT by an earlier server counts as free) and closed at once.

    Parameters
    ----------
    address : str
        The address to bind (``127.0.0.1`` by default).
    port : int

    Returns
    -------
    str or None
    """
    try:
        probe_port(address, port)
    except OSError as exc:
        return listen_error(exc, address, port)
    except OverflowError:  # a port outside 0-65535
        return CANNOT_LISTEN.format(address=address, port=port, reason="ports are 0 to 65535")
    return None


def probe_port(address: str, port: int) -> None:
    """Bind ``address:port`` as Tornado binds it (``SO_REUSEADDR``) and close it at once.

    Raises
    ------
    OSError
        When the port cannot be bound (in use, or not an address of this machine).
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((address, port))


def listen_error(exc: OSError, address: str, port: int) -> str:
    """The one line for an error binding ``address:port``."""
    if exc.errno == errno.EADDRINUSE:
        return PORT_IN_USE.format(port=port)
    reason = exc.strerror or type(exc).__name__
    return CANNOT_LISTEN.format(address=address, port=port, reason=reason)


# ---------------------------------------------------------------- hosts
def allowed_hosts(address: str, port: int, extra: Iterable[str] = ()) -> list[str]:
    """The ``host:port`` values the server answers to.

    ``127.0.0.1:<port>`` and ``localhost:<port>``, the bound address when it is one
    IPv4 host or name (not ``0.0.0.0``), then ``extra`` (``--allow-host``) and the hosts in
    the environment variable :data:`ALLOWED_HOSTS_ENV`. A host without a port means port
    80, as in Bokeh's ``--allow-websocket-origin``.

    Returns
    -------
    list of str
        Lower case, without repeats, in that order.
    """
    hosts = [f"127.0.0.1:{port}", f"localhost:{port}"]
    if address not in ("", "0.0.0.0", "127.0.0.1", "localhost") and ":" not in address:
        hosts.append(f"{address}:{port}")
    from_env = os.environ.get(ALLOWED_HOSTS_ENV, "").replace(",", " ").split()
    hosts += [*extra, *from_env]
    seen: list[str] = []
    for host in hosts:
        host = host.strip().lower()
        host = host if ":" in host.rsplit("]", 1)[-1] else f"{host}:80"
        if host and host not in seen:
            seen.append(host)
    return seen


def host_allowed(host: str | None, hosts: Iterable[str]) -> bool:
    """Whether a request's ``Host`` header is one of ``hosts`` (no port means port 80)."""
    if not host:
        return False
    host = host.strip().lower()
    if ":" not in host.rsplit("]", 1)[-1]:
        host += ":80"
    return host in set(hosts)


def guard_hosts(server, hosts: list[str]) -> None:
    """Put a Host check in front of a Bokeh server's routes: other hosts get HTTP 403.

    The first rule of the server's Tornado application (``server._tornado``, which Panel
    itself uses) sends every request, page or websocket, whose Host is not in ``hosts``
    to a handler that refuses it; the others go on to Bokeh's routes as before. Call it
    before the server starts.

    Parameters
    ----------
    server : bokeh.server.server.Server
        The server ``pn.serve(..., start=False)`` returned.
    hosts : list of str
        From :func:`allowed_hosts`.
    """
    from tornado.routing import Matcher, Rule
    from tornado.web import RequestHandler

    class OtherHost(Matcher):
        def match(self, request):
            return None if host_allowed(request.host, hosts) else {}

    class RefusedHost(RequestHandler):
        def prepare(self) -> None:
            LOGGER.warning("refused a request for host %r", excerpt(self.request.host or ""))
            self.set_status(403)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish("403: this server does not answer to that host name\n")

    server._tornado.default_router.rules.insert(0, Rule(OtherHost(), RefusedHost))


def send_without_delay(server) -> None:
    """Have the server's websockets send each frame at once (``TCP_NODELAY``).

    A Bokeh message is several websocket frames (header, metadata, content, buffers),
    each a small write. With Nagle's algorithm on (Tornado's default) the second frame
    waits until the first is acknowledged, and the client's delayed acknowledgement
    holds that back: one session's lever move took 44 ms instead of 33 ms on this
    machine (``bench/README.md``, App capacity). Each websocket route's handler is
    replaced by a subclass that turns the delay off when the connection opens. Call it
    before the server starts.

    Parameters
    ----------
    server : bokeh.server.server.Server
        The server ``pn.serve(..., start=False)`` returned.
    """
    from tornado.websocket import WebSocketHandler

    def without_delay(handler: type) -> type:
        class NoDelay(handler):
            def open(self, *args, **kwargs):
                self.set_nodelay(True)
                return super().open(*args, **kwargs)

        NoDelay.__name__ = NoDelay.__qualname__ = handler.__name__
        return NoDelay

    routers = [server._tornado.default_router, server._tornado.wildcard_router]
    for router in routers:
        for rule in getattr(router, "rules", []):
            target = rule.target
            if isinstance(target, type) and issubclass(target, WebSocketHandler):
                rule.target = without_delay(target)
            elif hasattr(target, "rules") and target not in routers:
                routers.append(target)


# ---------------------------------------------------------------- URL values
def bound_query(request) -> list[str]:
    """Take URL values too long to read out of a session's request; say what was dropped.

    Panel parses the page's query when a session first asks for ``pn.state.location``
    (``int()`` on every digit string), so this runs before. The request's ``uri`` is
    replaced by one without the values longer than :data:`MAX_URL_VALUE_CHARS` (or
    without the query, when it is longer than :data:`MAX_URL_QUERY_CHARS` or has more
    than :data:`MAX_URL_FIELDS` fields).

    Parameters
    ----------
    request : object or None
        The session's request (``pn.state.curdoc.session_context.request``); ``None`` or a
        request without a ``uri`` leaves nothing to do.

    Returns
    -------
    list of str
        One entry per value dropped, naming its parameter: ``"scenario (a value of 5,000
        characters; at most 200)"``.
    """
    uri = getattr(request, "uri", None)
    if not isinstance(uri, str) or "?" not in uri:
        return []
    path, _, query = uri.partition("?")
    if len(query) > MAX_URL_QUERY_CHARS:
        request.uri = path
        return [f"the query ({len(query):,} characters; at most {MAX_URL_QUERY_CHARS:,})"]
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_URL_FIELDS)
    except ValueError:
        request.uri = path
        return [f"the query (more than {MAX_URL_FIELDS} fields)"]
    kept, dropped = [], []
    for key, value in pairs:
        if len(value) > MAX_URL_VALUE_CHARS or len(key) > MAX_URL_VALUE_CHARS:
            length = max(len(value), len(key))
            dropped.append(
                f"{excerpt(key, 40)} (a value of {length:,} characters; "
                f"at most {MAX_URL_VALUE_CHARS})"
            )
        else:
            kept.append((key, value))
    if dropped:
        request.uri = f"{path}?{urlencode(kept)}" if kept else path
    return dropped


def read_query_once(location) -> dict:
    """The page's query values, read once from the bounded request, and no re-reading.

    The browser reports its URL as it was typed when the page's websocket connects, long
    values included, and Panel's ``Location`` parses the whole query again at every such
    report (``Location._update_synced``, for ``Location.sync``, which this app does not
    use): a value with more than 4,300 digits then failed in ``int()``, as the page
    request had. This stops that watcher and returns the values Panel parsed from the
    request :func:`bound_query` has already bounded.

    Parameters
    ----------
    location : panel.io.location.Location
        The session's ``pn.state.location``, asked for after :func:`bound_query` ran.

    Returns
    -------
    dict
        The query's values as Panel parses them (numbers as numbers).
    """
    query = dict(location.query_params)
    for watcher in location.param.watchers.get("search", {}).get("value", []):
        if getattr(watcher.fn, "__name__", "") == "_update_synced":
            location.param.unwatch(watcher)
    return query


# ---------------------------------------------------------------- sessions
#: How long a session lives without a websocket (Bokeh's default is 15 s).
UNUSED_SESSION_LIFETIME_MS = 10_000
#: How often the server looks for such sessions (Bokeh's default is every 17 s).
CHECK_UNUSED_SESSIONS_MS = 2_000


def release_views(session_context) -> None:
    """Forget the views Panel still holds for a destroyed session (``on_session_destroyed``).

    Panel keeps every rendered root in ``pn.state._views`` until that root's own
    ``_server_destroy`` hook runs; the notification area that ``pn.extension(
    notifications=True)`` adds to each page has no such hook (Panel 1.9), so its entry,
    and through it the session's whole Bokeh document, lived as long as the process: about
    3 MB for each page request that never opened a websocket. This runs the hook for every
    view of the session's document that is left.

    Parameters
    ----------
    session_context : bokeh.server.contexts.BokehSessionContext
        The destroyed session's context.
    """
    from panel.io.state import state

    doc = getattr(session_context, "_document", None)
    if doc is None:
        return
    for ref, (view, _root, view_doc, _comm) in list(state._views.items()):
        if view_doc is doc:
            try:
                view._server_destroy(session_context)
            finally:
                state._views.pop(ref, None)


# ---------------------------------------------------------------- serving
def make_server(
    session: Callable,
    *,
    port: int,
    address: str,
    hosts: list[str],
    title: str,
    show: bool = False,
    num_procs: int = 1,
):
    """A Panel server for ``session`` with the Host check, not yet started.

    Parameters
    ----------
    session : callable
        Builds one session's page.
    port, address
        Where to listen.
    hosts : list of str
        The allowed hosts (:func:`allowed_hosts`), for the Host header and the websocket's
        Origin alike.
    title : str
        The page title.
    show : bool
        Open a browser tab once the server runs.
    num_procs : int
        Server processes sharing the port (0 means one per CPU). Above 1 the call forks:
        it returns in each worker process, never in the parent, which waits for the
        workers (Tornado's ``fork_processes``); a worker stops when the parent is gone
        (:func:`stop_with_parent`). Each worker listens on a socket of its own, bound
        with ``SO_REUSEPORT``, so that the kernel spreads the connections over the
        workers (:func:`reusable_port`). Each worker holds its own sessions; a page's
        websocket that reaches the other worker opens a session there (the page request
        built only the frame, so this costs milliseconds).

    A session without a websocket is discarded :data:`UNUSED_SESSION_LIFETIME_MS` after
    its page request (or its websocket's closing), looked for every
    :data:`CHECK_UNUSED_SESSIONS_MS`.

    Returns
    -------
    bokeh.server.server.Server
        Start it with ``server.start(); server.io_loop.start()``.
    """
    import panel as pn

    forked = num_procs != 1
    if forked:
        from tornado.process import fork_processes

        # a port taken since the first check is one OSError here, in the parent, not a
        # failing worker that Tornado restarts a hundred times
        probe_port(address, port)
        fork_processes(num_procs if num_procs > 0 else None)  # returns in each worker
    with reusable_port() if forked else contextlib.nullcontext():
        server = pn.serve(
            session,
            port=port,
            address=address,
            show=show and not forked,
            title=title,
            websocket_origin=hosts,
            start=False,
            num_procs=1,
            unused_session_lifetime_milliseconds=UNUSED_SESSION_LIFETIME_MS,
            check_unused_sessions_milliseconds=CHECK_UNUSED_SESSIONS_MS,
        )
    guard_hosts(server, hosts)
    send_without_delay(server)
    if forked:
        from tornado.process import task_id

        stop_with_parent(server)
        if show and task_id() == 0:  # one tab, from the first worker
            server.io_loop.add_callback(server.show, "/")
    return server


@contextlib.contextmanager
def reusable_port():
    """While the block runs, Bokeh binds its server's sockets with ``SO_REUSEPORT``.

    Bokeh's own ``num_procs`` binds one socket before forking, and all workers accept
    from it: each woken worker takes up to 128 waiting connections, so 25 websockets
    opened together split 21/4 and 18/7 between two workers and one core idled through
    most of a burst of moves. Workers forked first, each binding the port with
    ``SO_REUSEPORT``, get the connections spread over them by the kernel.
    """
    import bokeh.server.server as bokeh_server
    from tornado.netutil import bind_sockets

    bokeh_bind = bokeh_server.bind_sockets

    def bind(address: str | None, port: int):
        bound = bind_sockets(port=port, address=address, reuse_port=True)
        return bound, bound[0].getsockname()[1]

    bokeh_server.bind_sockets = bind
    try:
        yield
    finally:
        bokeh_server.bind_sockets = bokeh_bind


def stop_with_parent(server, period_ms: int = 1000) -> None:
    """Stop a forked worker's event loop once its parent process is gone.

    Tornado's parent process only waits for its workers: killed (``SIGTERM``), it would
    leave them serving the port on their own. Each worker checks every ``period_ms``
    whether its parent changed, and stops its loop (the process then exits) if so.

    Parameters
    ----------
    server : bokeh.server.server.Server
        A worker's server (after the fork).
    period_ms : int
        How often to check.
    """
    from tornado.ioloop import PeriodicCallback

    parent = os.getppid()

    def check() -> None:
        if os.getppid() != parent:
            LOGGER.info("the parent process is gone: stopping this worker")
            server.io_loop.stop()

    PeriodicCallback(check, period_ms).start()
