"""``tidings services``: the running services (list, show, graph) and third-party
registration (register, deregister)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..discovery import graph as graphs
from .connection import client_for
from .output import JsonOpt, UrlOpt, console, fail, print_json, show, state, table

app = typer.Typer(
    help="""List the running services and their instances (tidings and NATS micro services).

Without a subcommand: the list.

Example:

\b
    tidings services
    tidings services show pricing --json
    tidings services graph --format mermaid
""",
    invoke_without_command=True,
)

TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for $SRV answers.")]

LIST_COLUMNS = ["service", "instances", "ready", "versions", "endpoints"]
INSTANCE_COLUMNS = ["id", "version", "health", "started", "last seen", "sources", "url"]
ENDPOINT_COLUMNS = [
    "instance", "endpoint", "kind", "subject", "group", "version", "requests", "errors",
    "avg (ms)", "last error",
]  # fmt: skip
GRAPH_COLUMNS = ["caller", "callee", "kind", "topic", "calls/s", "errors/s", "calls", "errors"]


@app.callback()
def list_(
    ctx: typer.Context, url: UrlOpt = None, as_json: JsonOpt = False, timeout: TimeoutOpt = 0.5
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    st = state(ctx, url, as_json)
    with client_for(st) as client:
        views = client.services(timeout=timeout)
    data = [v.as_dict() for v in views]
    rows = [
        (
            v.name,
            len(v.instances),
            sum(1 for i in v.instances if i.health == "ready"),
            ", ".join(v.versions),
            len({e.name for i in v.instances for e in i.endpoints}),
        )
        for v in views
    ]
    show(st, data, lambda: table(None, LIST_COLUMNS, rows))


@app.command(
    "show",
    help="""Show one service: its instances, versions, endpoints, health and stats.

Example:

\b
    tidings services show pricing
""",
)
def show_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The service name.")],
    url: UrlOpt = None,
    as_json: JsonOpt = False,
    timeout: TimeoutOpt = 0.5,
) -> None:
    st = state(ctx, url, as_json)
    with client_for(st) as client:
        views = [v for v in client.services(timeout=timeout) if v.name == name]
    if not views:
        raise fail(f"no running service is called {name!r}: `tidings services` lists them", 4)
    view = views[0]
    if st.json:
        print_json(view.as_dict())
        return
    out = console()
    out.print(
        table(
            f"{name}: instances",
            INSTANCE_COLUMNS,
            [
                (
                    i.id,
                    i.version,
                    i.health,
                    i.started,
                    i.last_seen,
                    ",".join(sorted(i.sources)),
                    i.url,
                )
                for i in view.instances
            ],
        )
    )
    out.print(
        table(
            f"{name}: endpoints",
            ENDPOINT_COLUMNS,
            [
                (
                    i.id,
                    e.name,
                    e.kind,
                    e.subject,
                    e.queue_group,
                    e.version,
                    e.num_requests,
                    e.num_errors,
                    round(e.average_processing_time / 1e6, 3),
                    e.last_error,
                )
                for i in view.instances
                for e in i.endpoints
            ],
        )
    )


@app.command(
    "graph",
    help="""The live dependency map: who publishes, sends or requests what to whom, with call
and error rates per edge, as a table, Graphviz DOT or Mermaid.

Example:

\b
    tidings services graph --format dot > services.dot
""",
)
def graph(
    ctx: typer.Context,
    format: Annotated[str, typer.Option("--format", "-f", help="table, dot or mermaid.")] = "table",
    url: UrlOpt = None,
    as_json: JsonOpt = False,
    timeout: TimeoutOpt = 0.5,
) -> None:
    if format not in ("table", "dot", "mermaid"):
        raise fail(f"--format must be table, dot or mermaid, got {format!r}")
    st = state(ctx, url, as_json)
    with client_for(st) as client:
        views = client.services(timeout=timeout)
    instances = [i for v in views for i in v.instances]
    edges = graphs.build(instances)
    names = [v.name for v in views]
    if st.json:
        print_json({"services": names, "edges": [e.as_dict() for e in edges]})
    elif format == "dot":
        typer.echo(graphs.to_dot(edges, names), nl=False)
    elif format == "mermaid":
        typer.echo(graphs.to_mermaid(edges, names), nl=False)
    else:
        rows = [
            (e.caller, e.callee, e.kind, e.topic, round(e.rate, 3), round(e.error_rate, 3),
             e.calls, e.errors)
            for e in edges
        ]  # fmt: skip
        console().print(table(None, GRAPH_COLUMNS, rows))


@app.command(
    "register",
    help="""Register an external endpoint (e.g. an HTTP service) under a service name; it
stays until deregistered.

Example:

\b
    tidings services register legacy-billing http://127.0.0.1:8080 --version 3.1.0
""",
)
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The service name.")],
    endpoint: Annotated[str, typer.Argument(help="Its address, e.g. http://host:port.")],
    id: Annotated[str | None, typer.Option("--id", help="Instance id (default: the URL).")] = None,
    version: Annotated[str, typer.Option("--version", help="Its version.")] = "0.0.0",
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    from ..client.registry import Registry

    st = state(ctx, url, as_json)
    with client_for(st) as client:
        inst = client._portal.call(
            Registry(client._async).register(name, endpoint, id=id, version=version)
        )
    show(st, {"name": inst.name, "id": inst.id, "url": inst.url}, lambda: f"registered {name} "
         f"at {endpoint} (id {inst.id})")  # fmt: skip


@app.command(
    "deregister",
    help="""Remove a third-party registration.

Example:

\b
    tidings services deregister legacy-billing http://127.0.0.1:8080
""",
)
def deregister(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The service name.")],
    id: Annotated[str, typer.Argument(help="The instance id (the URL by default).")],
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    from ..client.registry import Registry

    st = state(ctx, url, as_json)
    with client_for(st) as client:
        client._portal.call(Registry(client._async).deregister(name, id))
    show(st, {"name": name, "id": id, "deregistered": True}, lambda: f"deregistered {name} {id}")
