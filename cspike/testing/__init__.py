"""cspike.testing - an embedded Aerospike-compatible server for tests.

``Server`` starts ``cspike-server`` (a small C program built with cspike): one
process, one or more nodes on 127.0.0.1, behaving like Aerospike 8.1 Community
Edition on the wire.  No Docker, no Aerospike install::

    from cspike.testing import Server

    with Server() as seeds:          # "127.0.0.1:41231"
        ...                          # point any Aerospike client at seeds

    with Server(nodes=3) as seeds:   # a 3-node cluster, replication factor 2
        ...

The server exits when its stdin closes, so a crashed test run never leaves a
server behind.  Fault injection (kill / restart a node, move partitions,
delay, drop connections, return chosen errors, corrupt frames) goes through
the methods below.  ``cspike.testing.plugin`` provides pytest fixtures.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from importlib import resources
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = ["Server", "ServerError", "find_binary", "CORRUPT_MODES"]

#: Modes accepted by :meth:`Server.corrupt_next`.
CORRUPT_MODES = ("garbage", "truncate", "type", "version", "oversize")

NodeRef = Union[int, str]


class ServerError(RuntimeError):
    """The embedded server failed to start or refused a control command."""


def find_binary(binary: Optional[str] = None) -> str:
    """Locate cspike-server: argument, $CSPIKE_SERVER_BIN, then the package."""
    if binary:
        return os.fspath(binary)
    env = os.environ.get("CSPIKE_SERVER_BIN")
    if env:
        return env
    try:
        path = resources.files("cspike") / "_bin" / "cspike-server"
        if path.is_file():
            return os.fspath(path)
    except (ModuleNotFoundError, TypeError):
        pass
    raise ServerError(
        "cspike-server not found: pass binary=, set CSPIKE_SERVER_BIN, "
        "or install cspike with its server"
    )


def _ns_spec(ns: Union[str, Mapping[str, object]]) -> str:
    if isinstance(ns, str):
        return ns
    spec = dict(ns)
    name = spec.pop("name")
    if not spec:
        return str(name)
    opts = ",".join(f"{k.replace('_', '-')}={int(v)}" for k, v in spec.items())
    return f"{name}:{opts}"


class Server:
    """An embedded Aerospike-compatible server (one process, N nodes).

    Args:
        nodes: number of nodes (each its own port and node id).
        namespaces: names, or dicts ``{"name": "test", "rf": 2,
            "default_ttl": 0, "max_record_size": 1048576, "nsup_period": 1}``.
            Default ``test`` and ``bar``.
        replication_factor: default replication factor of the namespaces
            (1 for one node, 2 for a cluster, as the 3-node capture).
        threads: service threads (default 2).
        port: first port (node i listens on port + i); 0 = ephemeral ports,
            which never collide between parallel test processes.
        cluster_name: cluster-name to report (default none: "null").
        enterprise: answer like Enterprise Edition where CE refuses.
        binary: path of cspike-server (default: $CSPIKE_SERVER_BIN, then the
            copy installed with cspike).
        node_ids: node ids (hex strings) instead of the derived ones.
        rebalance_delay_ms / migrate_delay_ms: how long a node loss takes to
            reform the cluster and to finish migrations (default immediate).
        sindex_populate_ms: how long a secondary index created on a
            non-empty set stays write-only (state WO, queries answer 203)
            while it populates (default 20 ms, a real server's population
            time for a small set).  An index on an empty set is readable at
            once.
    """

    def __init__(
        self,
        nodes: int = 1,
        namespaces: Optional[Sequence[Union[str, Mapping[str, object]]]] = None,
        replication_factor: Optional[int] = None,
        threads: Optional[int] = None,
        port: int = 0,
        cluster_name: Optional[str] = None,
        enterprise: bool = False,
        binary: Optional[str] = None,
        *,
        node_ids: Optional[Sequence[str]] = None,
        rebalance_delay_ms: int = 0,
        migrate_delay_ms: int = 0,
        sindex_populate_ms: Optional[int] = None,
        extra_args: Iterable[str] = (),
    ) -> None:
        self._args: List[str] = ["--nodes", str(int(nodes))]
        if port:
            self._args += ["--port", str(int(port))]
        for ns in namespaces or ():
            self._args += ["--namespace", _ns_spec(ns)]
        if replication_factor:
            self._args += ["--replication-factor", str(int(replication_factor))]
        if threads:
            self._args += ["--threads", str(int(threads))]
        if cluster_name:
            self._args += ["--cluster-name", cluster_name]
        if enterprise:
            self._args.append("--enterprise")
        if node_ids:
            self._args += ["--node-ids", ",".join(node_ids)]
        if rebalance_delay_ms:
            self._args += ["--rebalance-delay", str(int(rebalance_delay_ms))]
        if migrate_delay_ms:
            self._args += ["--migrate-delay", str(int(migrate_delay_ms))]
        if sindex_populate_ms is not None:
            self._args += ["--sindex-populate-ms", str(int(sindex_populate_ms))]
        self._args += list(extra_args)
        self._binary = binary
        self._proc: Optional[subprocess.Popen] = None
        self._lock = threading.Lock()
        self.nodes: List[Tuple[str, int]] = []
        self.pid: Optional[int] = None
        #: Exit status after stop(): 0 for a clean exit, negative for the
        #: signal that ended it (-11: segfault), None while running.
        self.returncode: Optional[int] = None

    # ---- life cycle ---------------------------------------------------------

    def start(self) -> str:
        """Start the server; returns the seed string."""
        if self._proc is not None:
            return self.seeds
        exe = find_binary(self._binary)
        self.returncode = None
        self._proc = subprocess.Popen(
            [exe, *self._args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        line = self._proc.stdout.readline()
        if not line:
            err = self._proc.stderr.read()
            self._proc.wait()
            self._proc = None
            raise ServerError(f"cspike-server failed to start: {err.strip()}")
        info = json.loads(line)
        self.nodes = [(n["name"], int(n["port"])) for n in info["nodes"]]
        self.pid = int(info["pid"])
        return self.seeds

    def stop(self) -> None:
        """Stop the server (closing its stdin ends it); open client
        connections are closed by the server.  The exit status is kept in
        :attr:`returncode`."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            self.returncode = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            self.returncode = proc.wait()
        for f in (proc.stdout, proc.stderr):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.stop()
        except Exception:
            pass

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def seeds(self) -> str:
        """"127.0.0.1:p1,127.0.0.1:p2,..." for every node."""
        return ",".join(f"127.0.0.1:{port}" for _, port in self.nodes)

    @property
    def hosts(self) -> List[Tuple[str, int]]:
        return [("127.0.0.1", port) for _, port in self.nodes]

    # ---- control channel ----------------------------------------------------

    def command(self, line: str) -> str:
        """Send one raw control command; returns the text after "ok"."""
        with self._lock:
            # stop() may run concurrently (another thread, a finaliser):
            # use one snapshot of the process, and a pipe it closed means
            # the server is gone.
            proc = self._proc
            if proc is None or proc.poll() is not None:
                raise ServerError("server is not running")
            try:
                proc.stdin.write(line + "\n")
                proc.stdin.flush()
                answer = proc.stdout.readline()
            except (OSError, ValueError):
                raise ServerError("server is not running") from None
        if not answer:
            raise ServerError("server exited")
        answer = answer.rstrip("\n")
        if answer.startswith("ok"):
            return answer[3:]
        raise ServerError(answer[6:] if answer.startswith("error ") else answer)

    def _node(self, node: NodeRef) -> str:
        if isinstance(node, int):
            if not 0 <= node < len(self.nodes):
                raise IndexError(f"no node {node}")
            return str(node)
        for i, (name, _) in enumerate(self.nodes):
            if name.upper() == str(node).upper():
                return str(i)
        raise KeyError(f"no node named {node!r}")

    def node_index(self, node: NodeRef) -> int:
        return int(self._node(node))

    def kill(self, node: NodeRef) -> None:
        """Stop a node: its port refuses connections, open ones are closed,
        and the other nodes drop it and rebalance."""
        self.command(f"kill {self._node(node)}")

    def restart(self, node: NodeRef) -> None:
        """Start a killed node again (same port, same node id)."""
        self.command(f"restart {self._node(node)}")

    def migrate(self, partitions: Union[int, str, Tuple[int, int], Iterable[int]],
                to_node: NodeRef, namespace: str = "*") -> None:
        """Make `to_node` master of the partitions (an int, (lo, hi),
        "lo-hi", "all", or an iterable of ints).  The regime of the
        namespace moves on and the previous master answers result 11 for
        them."""
        target = self._node(to_node)
        if isinstance(partitions, tuple):
            specs = [f"{partitions[0]}-{partitions[1]}"]
        elif isinstance(partitions, (int, str)):
            specs = [str(partitions)]
        else:
            specs = [str(p) for p in partitions]
        for spec in specs:
            self.command(f"migrate {namespace} {spec} {target}")

    def delay(self, node: NodeRef, ms: int) -> None:
        """Delay every response of the node by `ms` (0 turns it off)."""
        self.command(f"delay {self._node(node)} {int(ms)}")

    def close_after(self, node: NodeRef, k: int, drop: bool = False) -> None:
        """After k more data requests on the node, close the connection of
        the k-th: after replying, or (drop=True) without replying."""
        mode = "drop" if drop else "reply"
        self.command(f"close_after {self._node(node)} {int(k)} {mode}")

    def fail_next(self, node: NodeRef, result_code: int, count: int = 1) -> None:
        """Answer the next `count` data commands with `result_code`."""
        self.command(f"fail_next {self._node(node)} {int(result_code)} {int(count)}")

    def corrupt_next(self, node: NodeRef, mode: str, count: int = 1,
                     target: str = "msg") -> None:
        """Corrupt the next `count` responses: mode garbage (body bytes),
        truncate (half a frame, then close), type (proto type 9), version
        (proto version 1) or oversize (size header > 128 MiB, then close).
        target: "msg" (data commands), "info" or "any"."""
        if mode not in CORRUPT_MODES:
            raise ValueError(f"mode must be one of {CORRUPT_MODES}")
        self.command(f"corrupt_next {self._node(node)} {mode} {int(count)} {target}")

    def clear_faults(self, node: NodeRef) -> None:
        self.command(f"clear {self._node(node)}")

    def set_rebalance_delay(self, reform_ms: int, migrate_ms: int = 0) -> None:
        self.command(f"rebalance_delay {int(reform_ms)} {int(migrate_ms)}")

    def stats(self) -> Dict[str, object]:
        """Server process CPU (getrusage, µs) and request counts."""
        return json.loads(self.command("stats"))

    def node_states(self) -> List[Dict[str, object]]:
        return json.loads(self.command("nodes"))
